//! Guarding amphi's own binary and descriptors from the container
//! (the `/proc/self/exe` overwrite attack, CVE-2019-5736).
//!
//! Every stage is a clone of the amphi process, so until it calls `execve` its
//! `/proc/<pid>/exe` is amphi's binary on the host and its `/proc/<pid>/fd` are
//! host descriptors. A process in the container that opened them could
//! overwrite the binary (and so run code as host root in every later
//! container) or reach host files. A wasm workload never calls `execve`: the
//! init of a wasm container *is* amphi for its whole life, which makes this
//! more than a race for amphi.
//!
//! amphi does not re-execute itself from a sealed copy of its binary on every
//! command (what runc and youki pay for). Each stage instead makes itself
//! non-dumpable as soon as nobody outside needs its `/proc` files; from then
//! on the kernel lets only a process with `CAP_SYS_PTRACE` in the host's user
//! namespace (the owner of amphi's memory) open its `exe`, `fd`, `mem`,
//! `environ` or `ns`, or ptrace it. `execve` of a native workload makes it
//! dumpable again, as for any program.
//!
//! One exception keeps rootless `exec` working: an unprivileged caller cannot
//! join the namespaces of a non-dumpable process. When the caller is
//! unprivileged and cannot write amphi's binary, the container cannot either
//! (a rootless container maps only the caller's own ids), so a stage becomes
//! dumpable again once it has dropped to the process's identity.

use super::{Stage, StageFailure};

/// Makes the calling stage non-dumpable.
pub(crate) fn hide(stage: Stage) -> Result<(), StageFailure> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| {
        StageFailure::new(stage, "exe guard", Some(e as i32), format!("make the process non-dumpable: {e}"))
    })
}

/// After the stage dropped to the process's identity: dumpable again when
/// [`may_show`] said so in the caller.
pub(crate) fn show_if_harmless(may_show: bool, stage: Stage) -> Result<(), StageFailure> {
    if !may_show {
        return Ok(());
    }
    nix::sys::prctl::set_dumpable(true)
        .map_err(|e| StageFailure::new(stage, "exe guard", Some(e as i32), format!("make the process dumpable: {e}")))
}

/// In the caller, before any clone: whether the stages may become dumpable
/// once they run as the process's user (an unprivileged caller that cannot
/// write amphi's binary).
pub fn may_show() -> bool {
    use nix::unistd::{AccessFlags, access, geteuid};
    !geteuid().is_root() && access("/proc/self/exe", AccessFlags::W_OK).is_err()
}
