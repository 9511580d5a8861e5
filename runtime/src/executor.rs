//! The plug between the Linux container and the workload.
//!
//! `create` and `start` are two commands, so an executor has two phases, both run
//! inside the container's init process (or an `exec`'d process):
//!
//! - [`Executor::prepare`] runs **before the start barrier**, once the container's
//!   mounts are in place and before `pivot_root`: the container's files (bind mounts
//!   included) and the host's files are both reachable. It resolves and opens the
//!   entrypoint *inside the rootfs* ([`crate::sys::inroot`]) and validates it; a wasm
//!   executor compiles here. An error makes `create` fail with the executor's message.
//! - [`Executor::arm`] runs after every isolation step (pivot_root, identity,
//!   capabilities, seccomp) and **before the barrier**: an in-process executor
//!   instantiates its workload here, so that `start` costs only the call into it.
//!   A failure still fails `create`.
//! - [`Executor::exec`] runs **after the barrier** and after every isolation step
//!   (pivot_root, identity, capabilities, seccomp). A native executor calls `execve`
//!   and returns only on failure; an in-process executor runs the workload and
//!   returns its exit status, which becomes the process's.
//!
//! The boxed executor moves into the cloned child, which owns its own copy of the
//! memory: neither phase needs `Clone`, and nothing is shared with the caller.

use std::fmt::Debug;
use std::os::fd::BorrowedFd;
use std::path::Path;

use oci_spec::runtime::{Process, Spec};

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
    /// [`crate::sys::inroot`] so that no symlink leads out of the rootfs.
    pub rootfs_fd: BorrowedFd<'a>,
    /// The process to run (`spec.process` for the init, the exec'd process for exec).
    pub process: &'a Process,
    /// The whole spec: annotations, `root.readonly`, `linux.resources`.
    pub spec: &'a Spec,
}

/// What an executor sees in [`Executor::exec`], after every isolation step.
#[derive(Debug)]
pub struct ExecContext<'a> {
    pub process: &'a Process,
    pub spec: &'a Spec,
}

/// Runs a workload inside a prepared container process.
pub trait Executor: Debug + Send {
    /// A short name for logs and `state` annotations (`native`, `wasm`).
    fn name(&self) -> &'static str;

    /// Before the start barrier: find, open and validate the entrypoint (and for
    /// wasm, compile it). Runs with the container's mounts in place, before
    /// `pivot_root`, still privileged.
    fn prepare(&mut self, ctx: &PrepareContext<'_>) -> Result<(), ExecutorError>;

    /// After every isolation step, before the barrier: make the workload ready
    /// to run (instantiate it), as far as that can happen before `start`. The
    /// default does nothing: `execve` cannot be split.
    fn arm(&mut self, _ctx: &ExecContext<'_>) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// After the barrier and every isolation step: become the workload. Returns the
    /// exit status for an in-process workload; a native executor never returns
    /// `Ok` because `execve` replaces the process.
    fn exec(self: Box<Self>, ctx: &ExecContext<'_>) -> Result<i32, ExecutorError>;
}
