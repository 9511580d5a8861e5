//! The one home of raw syscalls and `unsafe`, private to the crate.
//!
//! Each function here is a narrow, safe wrapper: it takes owned or borrowed file
//! descriptors and Rust types, and returns `std::io::Result`. A wrapper whose
//! soundness depends on the process (a fork needs a single thread) checks it
//! when called ([`clone::single_threaded`]). What the CLI, the executors and
//! the benches need is re-exported by the module that owns the concept
//! (`crate::inroot`, `crate::kernel`, `crate::process::PidFd`,
//! `crate::console`, `crate::container::parse_signal`,
//! `crate::seccomp::load_before_exec`, `crate::executor`'s hand-over and
//! worker). Where `nix` covers a
//! call the rest of the crate uses `nix` directly; what `nix` lacks (fork-like
//! `clone` with namespace flags, `openat2`, pidfds, `mount_setattr`, `open_tree`,
//! `execveat` with the process's own environment, `close_range`, `bpf`, extended
//! attributes, the pty and namespace ioctls)
//! lives here, each `unsafe` block with the reason it holds.

pub mod bpf;
pub mod caps;
pub mod clone;
pub mod cmdline;
pub mod exec;
pub mod fd;
pub mod inroot;
pub mod keyring;
pub mod mount;
pub mod ns;
pub mod pidfd;
pub mod proc;
pub mod procfs;
pub mod pty;
pub mod rlimit;
pub mod seccomp;
pub mod signal;
pub mod uts;
pub mod xattr;

/// An io error's text as amphi's messages read: lowercase, without the
/// `(os error N)` suffix.
pub(crate) fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_lowercase(),
        None => e.to_string(),
    }
}
