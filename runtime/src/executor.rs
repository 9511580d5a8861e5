//! The plug between the Linux container and the workload.
//!
//! `create` and `start` are two commands, so an executor has two phases, both run
//! inside the container's init process (or an `exec`'d process):
//!
//! - [`Executor::prepare`] runs **before the start barrier**, once the container's
//!   mounts are in place and before `pivot_root`: the container's files (bind mounts
//!   included) and the host's files are both reachable. It resolves and opens the
//!   entrypoint *inside the rootfs* ([`crate::inroot`]) and validates it; a wasm
//!   executor compiles here. An error makes `create` fail with the executor's message.
//! - [`Executor::arm`] runs after every isolation step (pivot_root, identity,
//!   capabilities, seccomp) and **before the barrier**: an in-process executor
//!   instantiates its workload here, so that `start` costs only the call into it.
//!   A failure still fails `create`.
//! - [`Executor::exec`] runs **after the barrier** and after every isolation step
//!   (pivot_root, identity, capabilities, seccomp). A native executor calls `execve`
//!   and returns only on failure; an in-process executor runs the workload and
//!   returns its exit status, which becomes the process's. An in-process
//!   executor tells the runtime the moment it calls into the workload
//!   ([`WorkloadEntry::entered`], in [`ExecContext::entry`]): `start` runs the
//!   poststart hooks only after it (for `execve`, close-on-exec tells).
//!
//! ## The hand-over
//!
//! [`ExecContext::handover`] states the process's state as the executor gets
//! it: the signal dispositions and mask, and the descriptors the workload may
//! keep ([`handover`]'s docs). The runtime changes nothing of it on the
//! executor's behalf: a native executor resets the signals for `execve`, an
//! in-process one changes only what its workload needs. Work an executor
//! does in a child process goes through [`worker`], which refuses to fork a
//! multi-threaded process.
//!
//! The boxed executor moves into the cloned child, which owns its own copy of the
//! memory: neither phase needs `Clone`, and nothing is shared with the caller.
//!
//! ## Host resources
//!
//! A container process holds no host directory while it touches the
//! container's files. The one host directory an executor may need, its compile
//! cache, is not inherited: in `prepare` the executor asks for it
//! ([`CacheDir::ask`]) once it knows it needs it (the entrypoint was read and is
//! wasm), the caller opens it on the host and hands the descriptor over the
//! stage channel, and the executor closes it before any further container
//! path is touched. A native workload never sees it.
//!
//! An executor that runs the workload in this very process (wasm) says so
//! ([`Executor::runs_in_process`]): the runtime then gives the process a view of
//! the container's files in which no procfs is mounted, so the guest can never
//! reach its own process's `/proc` entries (`mem`, `environ`, `fd`). Such an
//! init stays PID 1 of its pid namespace for the container's life, so from the
//! hand-over to [`Executor::exec`] on the runtime has the kernel reap the
//! orphans reparented to it (SIGCHLD ignored, [`Signals::releases_orphans`]);
//! the executor must not start a child process it means to wait for.

use std::fmt::Debug;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

mod handover;
pub mod worker;

pub use handover::{Handover, Signals};

/// An executor's error: the executors crate has its own typed errors; the runtime
/// only needs to report them (with their source chain) across the stage channel.
pub type ExecutorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an executor sees in [`Executor::prepare`].
#[derive(Debug)]
pub struct PrepareContext<'a> {
    /// The container's root as a path in the init's mount namespace (before
    /// `pivot_root`); `/` for a process exec'd into a running container.
    pub rootfs: &'a Path,
    /// The same directory, opened `O_PATH`: resolve container paths against it with
    /// [`crate::inroot`] so that no symlink leads out of the rootfs.
    pub rootfs_fd: BorrowedFd<'a>,
    /// The process to run (`spec.process` for the init, the exec'd process for
    /// exec), with `HOME` from the container's `/etc/passwd` when its env has none.
    pub process: &'a Process,
    /// The whole spec: annotations, `root.readonly`, `linux.resources`.
    pub spec: &'a Spec,
    /// Asks the caller for the executor's compile-cache directory.
    pub cache_dir: CacheDir<'a>,
}

/// A directory on the host, opened by the caller and handed to a container
/// process: a descriptor (`O_PATH`) and, for messages, its host path.
#[derive(Debug)]
pub struct HostDir {
    /// The directory, opened `O_PATH`.
    pub fd: OwnedFd,
    /// Its host path, for messages.
    pub path: PathBuf,
}

/// Opens a host directory on request: `Ok(None)` when there is none to give
/// (the cache is disabled); `Err` carries the reason, one line.
pub type OpenHostDir<'a> = &'a dyn Fn() -> Result<Option<HostDir>, String>;

/// Where the caller gets the executor's cache directory when a container
/// process asks for it (set by the CLI; the default has none). Runs in the
/// caller, on the host.
#[derive(Clone, Default)]
pub struct CacheDirSource(Option<std::sync::Arc<HostDirFn>>);

/// What [`CacheDirSource`] calls.
type HostDirFn = dyn Fn() -> Result<Option<HostDir>, String> + Send + Sync;

impl CacheDirSource {
    /// The directory `open` opens, on request.
    pub fn new(open: impl Fn() -> Result<Option<HostDir>, String> + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(open)))
    }

    /// The way to it, for the stage requests.
    pub fn cache_dir(&self) -> CacheDir<'_> {
        match self.0.as_deref() {
            Some(open) => CacheDir::new(open),
            None => CacheDir::none(),
        }
    }
}

impl Debug for CacheDirSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CacheDirSource").field(&self.0.is_some()).finish()
    }
}

/// The way to the executor's compile-cache directory during
/// [`Executor::prepare`]: in a container process, a request to the caller over
/// the stage channel; in tests, any function.
#[derive(Clone, Copy)]
pub struct CacheDir<'a> {
    open: Option<OpenHostDir<'a>>,
}

impl<'a> CacheDir<'a> {
    /// No cache directory to give.
    pub fn none() -> Self {
        Self { open: None }
    }

    /// The directory `open` gives.
    pub fn new(open: OpenHostDir<'a>) -> Self {
        Self { open: Some(open) }
    }

    /// Asks for the directory. Call it only once the workload needs it, and
    /// close it before touching any other container path.
    pub fn ask(&self) -> Result<Option<HostDir>, CacheDirError> {
        match self.open {
            None => Ok(None),
            Some(open) => open().map_err(CacheDirError),
        }
    }
}

impl Debug for CacheDir<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheDir").field("available", &self.open.is_some()).finish()
    }
}

/// The caller could not give the cache directory (its message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CacheDirError(pub String);

/// What an executor sees in [`Executor::arm`], after every isolation step and
/// before the barrier.
#[derive(Debug)]
pub struct ArmContext<'a> {
    /// The process to make ready (`HOME` filled in).
    pub process: &'a Process,
    /// The container's spec.
    pub spec: &'a Spec,
}

/// What an executor sees in [`Executor::exec`], after the barrier and every
/// isolation step.
#[derive(Debug)]
pub struct ExecContext<'a> {
    /// The process to run: the spec's, or the one `exec` was given.
    pub process: &'a Process,
    /// The container's spec.
    pub spec: &'a Spec,
    /// Tells `start` that the workload began ([`WorkloadEntry`]); empty for a
    /// process exec'd into a running container.
    pub entry: WorkloadEntry,
    /// The state the process is handed over in: signals, and the descriptors
    /// the workload may keep.
    pub handover: Handover,
}

impl<'a> ExecContext<'a> {
    /// A context with nobody to tell of the workload's entry.
    pub fn new(process: &'a Process, spec: &'a Spec, handover: Handover) -> Self {
        Self { process, spec, entry: WorkloadEntry::none(), handover }
    }
}

/// The container's init tells `start` the moment its workload begins: the
/// runtime-spec runs the poststart hooks only after the user's program was
/// executed. The init holds the start barrier's descriptor
/// ([`crate::process::barrier`]) until then; `start` waits for it to close.
///
/// An executor that `execve`s has nothing to do: the runtime takes the go byte
/// right before [`Executor::exec`] and the descriptor is close-on-exec, so it
/// closes exactly when `execve` succeeds (and the runtime says "not executed"
/// when `exec` returns an error). An executor that runs the workload in this
/// process ([`Executor::runs_in_process`]) calls [`WorkloadEntry::entered`]
/// once, right before it calls into the workload (after instantiation, at the
/// guest's entry point); an error returned before that counts as "not
/// executed".
#[derive(Default)]
pub struct WorkloadEntry(std::cell::Cell<Option<OwnedFd>>);

impl WorkloadEntry {
    /// Nobody to tell.
    pub fn none() -> Self {
        Self::default()
    }

    /// The init's barrier descriptor, its go byte still unread.
    pub(crate) fn new(barrier: OwnedFd) -> Self {
        Self(std::cell::Cell::new(Some(barrier)))
    }

    /// The workload is entered now: takes the go byte and closes the
    /// descriptor, which lets `start` run the poststart hooks. Later calls do
    /// nothing.
    pub fn entered(&self) {
        if let Some(fd) = self.0.take() {
            use std::os::fd::AsFd;
            // A read cannot fail on the init's own fifo holding a byte; were
            // it to, the closed descriptor still lets `start` go on.
            let _ = crate::process::barrier::take_go(fd.as_fd());
        }
    }

    /// The descriptor, when it is still held.
    pub(crate) fn take(&self) -> Option<OwnedFd> {
        self.0.take()
    }
}

impl Debug for WorkloadEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.take();
        let text = if held.is_some() { "WorkloadEntry(waiting)" } else { "WorkloadEntry(none)" };
        self.0.set(held);
        f.write_str(text)
    }
}

/// Runs a workload inside a prepared container process.
pub trait Executor: Debug + Send {
    /// A short name for logs and `state` annotations (`native`, `wasm`).
    fn name(&self) -> &'static str;

    /// Whether the workload runs inside this process (wasm) rather than
    /// replacing it with `execve`. Asked after `prepare`; the runtime then hides
    /// every procfs from the process's view of the container's files.
    fn runs_in_process(&self) -> bool {
        false
    }

    /// Before the start barrier: find, open and validate the entrypoint (and for
    /// wasm, compile it). Runs with the container's mounts in place, before
    /// `pivot_root`, still privileged.
    fn prepare(&mut self, ctx: &PrepareContext<'_>) -> Result<(), ExecutorError>;

    /// After every isolation step, before the barrier: make the workload ready
    /// to run (instantiate it), as far as that can happen before `start`. The
    /// default does nothing: `execve` cannot be split.
    fn arm(&mut self, _ctx: &ArmContext<'_>) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// After the barrier and every isolation step: become the workload, from the
    /// state [`ExecContext::handover`] states. Returns the exit status for an
    /// in-process workload; a native executor never returns `Ok` because
    /// `execve` replaces the process.
    fn exec(self: Box<Self>, ctx: &ExecContext<'_>) -> Result<i32, ExecutorError>;
}
