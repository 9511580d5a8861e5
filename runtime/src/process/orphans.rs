//! An in-process init is the container's PID 1 for the container's whole life,
//! and PID 1 must reap the orphans of its pid namespace (as tini and catatonit
//! do): a process exec'd into the container that leaves a background child
//! behind (`sh -c 'sleep 1 &'`) makes an orphan the kernel reparents to the
//! init, and a zombie that nobody reaps counts against `pids.limit` until every
//! later `fork` in the container, `exec` included, fails with EAGAIN.
//!
//! ## Which processes can be the init's children
//!
//! - The init's own children: the compile child of a cache miss and the
//!   startContainer hooks. Each is waited for before the workload starts; the
//!   init forks nothing after that (WASI has no way to start a process).
//! - Never a process of `amphi exec`: its intermediate clones it with
//!   `CLONE_PARENT` ([`super::exec`]), so its parent is the `amphi exec` caller,
//!   outside the container's pid namespace. When that caller ends (`--detach`),
//!   the kernel finds the new parent in the *caller's* pid namespace (a
//!   subreaper such as containerd's shim, or the host's init), never in the
//!   container's: no exit status an `exec` waits for can reach the init.
//! - Orphans: a process whose parent ended inside the container's pid namespace
//!   is reparented to its child reaper, the init. Reparenting sets its exit
//!   signal to SIGCHLD, and one that is a zombie already notifies its new parent
//!   at once, as if it ended then.
//!
//! So from the hand-over to the executor on, every child the init can have is an
//! orphan that nobody else may wait for.
//!
//! ## How
//!
//! The init ignores SIGCHLD (`SIG_IGN`): the kernel then releases each child as
//! it ends (an already-dead one as it is reparented), no SIGCHLD is ever queued
//! or delivered, and nothing in the guest is interrupted (no EINTR, no handler,
//! no change to the signal mask or to the dispositions the wasm executor
//! installs afterwards: its trap handlers and SIGTERM/SIGINT/SIGHUP). Zombies
//! left before that moment (orphans of an `exec` into the created container, of
//! a startContainer hook) are reaped right after it, without blocking. This is
//! also what the kernel itself does to a pid namespace's init as it ends. It
//! needs no thread (nothing can escape an isolation step) and no code running
//! in the init: the release happens as the orphan exits, so `pause`/`resume`
//! change nothing, and `kill` of SIGCHLD to PID 1 is dropped as it was before.
//! The guest's own exit status is untouched: the init has no child to wait for.
//! Until `start` (the init waits at the barrier) orphans wait as zombies.
//!
//! It happens at the hand-over to the executor ([`super::workload::run`]),
//! after every isolation step and after the startContainer hooks (whose status
//! the init must still wait for), only for an executor that runs the workload
//! in this process, and only when this process is PID 1 of its pid namespace
//! (an `exec`'d process or an init in a shared pid namespace gets no orphans).
//! The hand-over says so ([`crate::executor::Signals::releases_orphans`]), and
//! the executor leaves SIGCHLD as it is.
//! A native workload is never touched: an ignored SIGCHLD would survive
//! `execve` and keep a native init from waiting for its own children.

use crate::executor::Executor;

/// Makes this process reap every orphan from now on, if it runs its workload
/// in-process as PID 1 of its pid namespace. Returns whether it does.
pub(crate) fn reap_if_pid1(executor: &dyn Executor) -> bool {
    if !executor.runs_in_process() || nix::unistd::getpid().as_raw() != 1 {
        return false;
    }
    // Cannot fail for SIGCHLD; were it to, the guest still runs (as before).
    if crate::sys::signal::release_children_as_they_end().is_err() {
        return false;
    }
    crate::sys::signal::reap_ended_children();
    true
}
