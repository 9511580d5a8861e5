//! Guarding amphi's own binary and descriptors from the container
//! (the `/proc/self/exe` overwrite attack, CVE-2019-5736).
//!
//! ## What is attacked
//! Every stage is a clone of the amphi process, so until it calls `execve` its
//! `/proc/<pid>/exe` is amphi's binary and its `/proc/<pid>/fd` are host
//! descriptors. A wasm workload never calls `execve`: the init of a wasm
//! container *is* amphi for its whole life. And a native workload can turn
//! itself back into amphi: an entrypoint or an exec'd script that starts with
//! `#!/proc/self/exe` makes the kernel run the stage's own executable, now
//! dumpable, as a process of the container. Another process of the container
//! (or of its pod, in a shared pid namespace) opens `/proc/<pid>/exe` while that
//! process runs, keeps the descriptor, and once every amphi has exited (no more
//! `ETXTBSY`) reopens it for writing through `/proc/self/fd/N`: the next
//! `amphi` anyone runs on the host is the attacker's program, as root.
//! Making the stages non-dumpable does not stop that, nor does anything that
//! only shortens a window: a `#!` line, an entrypoint swapped for a link to
//! `/proc/self/exe` after it was checked, or a pod's neighbour watching
//! `/proc` all end with amphi running as a process of the container.
//!
//! ## The protection: amphi runs from an image nobody can write
//! [`run_from_sealed_image`] runs first in every command that makes a stage
//! (`create`, `run`, `exec`), before it logs or opens anything. Unless the
//! process already runs from a protected image, it re-executes itself, same
//! argv, same environment, from one:
//! 1. A detached read-only bind mount of its own binary: `open_tree` of
//!    `/proc/self/exe` with `OPEN_TREE_CLONE`, `mount_setattr` read-only,
//!    nosuid, nodev, and `execveat` of that descriptor. The mount is never
//!    attached to any mount namespace (the host's mount table does not change),
//!    and it dissolves when its descriptor closes on `execve`: from then on only
//!    the process's executable pins it, and neither `mount_setattr` nor
//!    `open_tree` accepts it any more, even from root on the host. So every
//!    `/proc/<pid>/exe` of the command and of the stages it clones names a file
//!    on a read-only mount: opening it for writing fails with `EROFS`, while the
//!    process runs and after it is gone. It is the same inode as the installed
//!    binary: nothing is copied, the page cache is shared.
//! 2. Where `open_tree` or `mount_setattr` is refused (an unprivileged caller,
//!    a kernel before 5.12, a seccomp profile around amphi): a caller that
//!    cannot write the binary needs nothing, as no container it makes can write
//!    it either (a rootless container maps only the caller's own ids).
//!    Otherwise amphi copies itself into a memfd, seals it against writing,
//!    growing, shrinking and further sealing, and re-executes from that.
//! 3. If neither works the command refuses to run, with both reasons.
//!
//! A process knows it runs protected from its executable alone, not from
//! anything a caller could set: either `/proc/self/exe` lies on a read-only
//! mount whose path is `/` (only a file mount that no namespace holds has a
//! file as its root), or it is a memfd that carries the four seals. So there is
//! no loop and no marker to forge. amphi installed on a read-only filesystem
//! still re-executes: a read-only mount in a namespace can be remounted
//! writable by the host later, while a container still holds the path.
//!
//! ## The rest: non-dumpable stages
//! Each stage also makes itself non-dumpable ([`hide`]) as soon as nobody
//! outside needs its `/proc` files; from then on the kernel lets only a
//! process with `CAP_SYS_PTRACE` in the host's user namespace (the owner of
//! amphi's memory) open its `exe`, `fd`, `mem`, `environ` or `ns`, or ptrace
//! it. That keeps host descriptors and memory out of reach; the read-only
//! image is what keeps the binary safe once a process is dumpable again
//! (`execve` of a native workload, `#!/proc/self/exe`).
//!
//! One exception keeps rootless `exec` working: an unprivileged caller cannot
//! join the namespaces of a non-dumpable process. When the caller is
//! unprivileged and cannot write amphi's binary, the container cannot either,
//! so a stage becomes dumpable again once it has dropped to the process's
//! identity ([`may_show`], [`show_if_harmless`]).
//!
//! ## Cost
//! For `create`, `run` and `exec`: a second `execve` of amphi and four
//! syscalls. amphi is a static binary, so no loader runs, but it is a large
//! static-pie one (29 MB): starting it again costs its relocations' page
//! faults (about 290) on top of the `execve`. On the project's 2-core VM the
//! harness measured 1 to 2 ms a command, paired medians against the build
//! before (`benches/runs/2026-12-03-vm-exe-guard/`): `create` of a native
//! `/bin/true` +2.0 ms (1.21x), `run` +1.1 ms (1.08x), `exec` +1.9 ms
//! (1.31x); `start` and the commands that make no stage pay nothing. The
//! memfd fallback also copies the binary in the kernel on every such command.
//! What would make it cheaper: a command could skip it when the container cannot
//! write the binary in any case (a user namespace that maps neither its owner
//! nor a group that may write it), which needs the spec before the re-exec.
//!
//! ## What is left
//! - `/proc/<pid>/exe` of a protected process reads as `/`, and `ps` shows its
//!   argv unchanged.
//! - Before it re-executes, the command runs from the installed binary for a
//!   moment. Only a process that may ptrace it could open its `/proc/<pid>/exe`
//!   then: one in the host's pid namespace that is root in the host's user
//!   namespace with `CAP_SYS_PTRACE` or with every capability amphi has, which
//!   owns the host anyway.
//! - A container granted `CAP_SYS_PTRACE` without a user namespace of its own
//!   may ptrace a non-dumpable stage in its pid namespace, above all the init
//!   of a wasm container, which is amphi for its life. It cannot write amphi's
//!   binary through it (the image is read-only), but it can read and change
//!   that process's memory and make it do whatever the process's own
//!   privileges allow: after setup those are the container's (its
//!   capabilities, seccomp filter, namespaces, cgroup), so it gains what it
//!   could already do, plus the wasm guest's memory and the compiled module.
//!   Without a pid namespace it sees and may ptrace host processes as well:
//!   such a config is as strong as the host's root (docs/security.md).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::statvfs::{FsFlags, fstatvfs};

use super::{Stage, StageFailure};
use crate::sys::mount::{MountAttr, mount_setattr, open_tree_clone};

/// The process's own executable, as the kernel names it.
const OWN_EXE: &str = "/proc/self/exe";

/// The seals that make a memfd image immutable.
const SEALS: SealFlag =
    SealFlag::F_SEAL_SEAL.union(SealFlag::F_SEAL_SHRINK).union(SealFlag::F_SEAL_GROW).union(SealFlag::F_SEAL_WRITE);

/// Why amphi could not run from a protected image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A step on amphi's own binary failed.
    #[error("{step} {OWN_EXE}: {source}")]
    Own {
        /// The call or step that failed (`open_tree`, `copy`, `execveat`, ...).
        step: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// Neither protected image could be made.
    #[error(
        "cannot protect amphi's binary from its containers (CVE-2019-5736): read-only mount of {OWN_EXE}: {mount}; sealed copy: {copy}"
    )]
    Unprotected {
        /// Why the read-only mount failed.
        mount: String,
        /// Why the sealed copy failed.
        copy: String,
    },
}

/// How the process runs, once [`run_from_sealed_image`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// From a detached read-only mount of amphi's binary.
    ReadOnlyMount,
    /// From a sealed memfd copy of it.
    SealedCopy,
    /// From the installed binary, which the caller (and so its containers)
    /// cannot write.
    NotWritable,
}

/// Returns how the process runs when its image is protected (or needs no
/// protection); otherwise re-executes this program with `argv` and the same
/// environment from a protected image, and so returns only on failure. Call it
/// first, single-threaded, before anything is opened that must not survive an
/// `execve`.
pub fn run_from_sealed_image(argv: &[CString]) -> Result<Image, ImageError> {
    let own = |step| move |source| ImageError::Own { step, source };
    let exe = File::open(OWN_EXE).map_err(own("open"))?;
    if let Some(image) = protected(&exe)? {
        name_after(argv);
        return Ok(image);
    }
    let mount = match read_only_mount() {
        Ok(image) => step("execveat")(crate::sys::exec::execveat_with_own_env(image.as_fd(), argv)),
        Err(e) => e,
    };
    if nix::unistd::access(OWN_EXE, nix::unistd::AccessFlags::W_OK).is_err() {
        return Ok(Image::NotWritable);
    }
    let copy = match sealed_copy(&exe) {
        Ok(image) => step("execveat")(crate::sys::exec::execveat_with_own_env(image.as_fd(), argv)),
        Err(e) => e,
    };
    Err(ImageError::Unprotected { mount, copy })
}

/// A protected image of the running binary for a new process to execute
/// (through `/proc/self/fd/N`), so that it starts protected and
/// [`run_from_sealed_image`] has nothing to do in it: the read-only mount,
/// else a sealed copy; `None` when the caller cannot write the binary (the
/// new process needs no protection) or the running image is protected
/// already (executing it again is as safe).
pub fn protected_image() -> Result<Option<std::os::fd::OwnedFd>, ImageError> {
    let exe = File::open(OWN_EXE).map_err(|source| ImageError::Own { step: "open", source })?;
    if protected(&exe)?.is_some() {
        return Ok(None);
    }
    let mount = match read_only_mount() {
        Ok(image) => return Ok(Some(image)),
        Err(e) => e,
    };
    if nix::unistd::access(OWN_EXE, nix::unistd::AccessFlags::W_OK).is_err() {
        return Ok(None);
    }
    match sealed_copy(&exe) {
        Ok(copy) => Ok(Some(copy.into())),
        Err(copy) => Err(ImageError::Unprotected { mount, copy }),
    }
}

/// `step: error`, for [`ImageError::Unprotected`].
fn step(name: &'static str) -> impl Fn(io::Error) -> String {
    move |e| format!("{name}: {e}")
}

/// The protection the running image has, if any (see the module docs).
fn protected(exe: &File) -> Result<Option<Image>, ImageError> {
    let flags = fstatvfs(exe).map_err(|e| ImageError::Own { step: "statvfs", source: e.into() })?.flags();
    if flags.contains(FsFlags::ST_RDONLY) {
        let path = std::fs::read_link(OWN_EXE).map_err(|source| ImageError::Own { step: "readlink", source })?;
        if path == Path::new("/") {
            return Ok(Some(Image::ReadOnlyMount));
        }
    }
    // Only a memfd has seals: any other file answers EINVAL.
    let seals =
        fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS).map(SealFlag::from_bits_truncate).unwrap_or(SealFlag::empty());
    Ok(seals.contains(SEALS).then_some(Image::SealedCopy))
}

/// A detached, read-only, nosuid, nodev bind mount of the running binary.
fn read_only_mount() -> Result<std::os::fd::OwnedFd, String> {
    let image = open_tree_clone(c"/proc/self/exe").map_err(step("open_tree"))?;
    let attr = MountAttr {
        set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        ..Default::default()
    };
    mount_setattr(image.as_fd(), false, &attr).map_err(step("mount_setattr"))?;
    Ok(image)
}

/// A memfd copy of the running binary, sealed against any change.
fn sealed_copy(exe: &File) -> Result<File, String> {
    use nix::sys::memfd::{MemFdCreateFlag, memfd_create};
    let fd = memfd_create(c"amphi", MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING)
        .map_err(|e| step("memfd_create")(e.into()))?;
    let mut copy = File::from(fd);
    // From the start; std copies file to file in the kernel (copy_file_range,
    // sendfile).
    let mut source = exe;
    io::Seek::rewind(&mut source).map_err(step("copy"))?;
    io::copy(&mut source, &mut copy).map_err(step("copy"))?;
    fcntl(copy.as_raw_fd(), FcntlArg::F_ADD_SEALS(SEALS)).map_err(|e| step("seal")(e.into()))?;
    Ok(copy)
}

/// Names the process after `argv[0]`, as a plain `execve` would have: older
/// kernels name a process executed by descriptor after the descriptor's
/// number, and a memfd after the memfd.
fn name_after(argv: &[CString]) {
    let Some(file_name) = argv.first().and_then(|a| Path::new(OsStr::from_bytes(a.as_bytes())).file_name()) else {
        return;
    };
    let mut name = file_name.as_bytes().to_vec();
    name.truncate(15);
    if let Ok(name) = CString::new(name) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

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
    !geteuid().is_root() && access(OWN_EXE, AccessFlags::W_OK).is_err()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_file_on_a_writable_mount_is_not_protected() {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(b"\x7fELF not really").expect("write");
        assert_eq!(protected(&file).expect("inspect"), None);
    }

    #[test]
    fn a_sealed_copy_is_protected_and_refuses_writes() {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(b"\x7fELF not really").expect("write");
        let mut copy = sealed_copy(&file).expect("sealed copy");
        assert_eq!(protected(&copy).expect("inspect"), Some(Image::SealedCopy));
        let refused = copy.write_all(b"more").expect_err("a sealed copy took a write");
        assert_eq!(refused.raw_os_error(), Some(libc::EPERM));
        assert_eq!(std::fs::read(format!("/proc/self/fd/{}", copy.as_raw_fd())).expect("read"), b"\x7fELF not really");
    }
}
