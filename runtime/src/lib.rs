//! # amphi-runtime: the Linux container
//!
//! This crate turns an OCI bundle into an isolated process and manages it for the
//! rest of its life. It knows nothing about WebAssembly: the workload is started by
//! an [`executor::Executor`] that the caller hands in, and this crate only promises
//! to call it at the right moments.
//!
//! ## The life of `create`
//!
//! 1. [`bundle`] loads `config.json` and checks every field before the first side
//!    effect (the spec's rules are [`plan`]'s, one module per section; `bundle`
//!    asks the host). A bad bundle never leaves anything behind.
//! 2. [`state`] reserves the container's directory under `--root` (mode 0700) while
//!    holding the container's lock, so concurrent commands on one id serialize.
//! 3. [`cgroups`] creates the container's cgroup and applies `linux.resources`.
//! 4. [`process`] clones the container's init with the spec's namespaces (through an
//!    intermediate process only when a namespace must be joined by path), writes the
//!    id maps from the parent, places the init in the cgroup and lets it go. The init
//!    mounts the rootfs, calls [`executor::Executor::prepare`], pivots, applies the
//!    process identity, reports *ready* and blocks at the start barrier (a fifo in
//!    the state directory).
//! 5. The state is written as `created`, the pid file is written, and the caller
//!    exits. The init stays behind, a descendant of the caller, so that a subreaper
//!    above it (containerd's shim) inherits it.
//!
//! [`hooks`] run at the moments the runtime-spec names: prestart and createRuntime
//! in the runtime and createContainer in the init while the init waits before
//! `pivot_root` (a round trip made only when the spec has such hooks),
//! startContainer in the init after the barrier, poststart in `start` once the
//! workload was executed (the barrier tells, [`process::barrier`]), poststop
//! in `delete`.
//! With `process.terminal`, the init makes a pty from the container's own devpts
//! after the pivot and sends its master over a console socket ([`console`]);
//! a foreground `run` or `exec -t` relays it to the caller's terminal. A caller
//! without privileges (rootless) maps only its own ids, and with `--rootless`
//! uses a cgroup only where it may write one ([`container`]'s rootless rules).
//!
//! `start` writes one byte into the barrier fifo; the init then runs
//! [`executor::Executor::exec`], and closes its end of the fifo as the workload
//! begins (`execve`, or the call into a wasm guest). Every other verb
//! ([`container`]) opens the container for itself (`Store::open(id, verb)`): it
//! reads the record ([`state`], the one owner of the container's directory and
//! files) and looks at the real process (`/proc`, a pidfd) before it acts.
//!
//! ## What this crate must never do
//!
//! - Start a thread: the caller forks, and namespaces, capabilities and seccomp act
//!   per thread.
//! - Print: errors are returned as typed values and the binary reports them once.
//! - Follow a symlink of the container's rootfs out of it when it creates a mount
//!   target, a device node or opens the entrypoint ([`inroot`]).
//!
//! Raw syscalls and every `unsafe` block live in `sys`, which is private to
//! this crate: the rest of the crate calls its safe wrappers, and what the CLI,
//! the executors and the benches need of it is re-exported by the module that
//! owns the concept or at the root ([`inroot`], [`kernel`], [`PidFd`],
//! [`container::parse_signal`], [`terminal`]'s window size, the executor's
//! [`executor::Handover`] and [`executor::worker`]). A fork is refused in a
//! multi-threaded process, checked when it is asked for.

// Every public item is documented.
#![warn(missing_docs)]

pub(crate) mod bundle;
pub(crate) mod cgroups;
pub(crate) mod console;
pub mod container;
pub mod default_spec;
pub mod executor;
pub(crate) mod hooks;
pub(crate) mod id;
pub mod mountinfo;
pub mod plan;
pub(crate) mod process;
pub(crate) mod seccomp;
pub mod state;
pub(crate) mod sys;
pub mod timestamp;

/// Paths of a container resolved inside its root through descriptors
/// (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`), never through a
/// host path a symlink can redirect: how an executor opens the entrypoint.
pub mod inroot {
    pub use crate::sys::inroot::{FileKind, VerifiedOpenError, open_in_root, open_verified_in_root, openat2};
}

/// The running kernel.
pub mod kernel {
    /// The kernel's version as `(major, minor)`, from `uname(2)`'s release.
    pub use crate::sys::uts::kernel_version as version;
}

/// The pty calls a caller of a container with a terminal needs: its window
/// size, and the master a console socket receives.
pub mod terminal {
    /// Reads one message from a console socket with the descriptors passed
    /// along it, as a console socket's owner (containerd's shim) receives the
    /// master.
    pub use crate::sys::fd::recv_with_fds;
    /// A terminal's window size and setting it (a host terminal's, a master's).
    pub use crate::sys::pty::{WinSize, set_window_size};
}

pub use bundle::{Bundle, BundleError};
pub use container::Error;
pub use executor::Executor;
pub use id::{ContainerId, IdError};
pub use process::barrier::WaitingHandlers;
pub use process::exe_guard::{Image, ImageError, protected_image, run_from_sealed_image};
pub use seccomp::{SeccompPlan, load_before_exec};
/// A process file descriptor: signal and wait for a process without racing
/// against pid reuse.
pub use sys::pidfd::PidFd;
