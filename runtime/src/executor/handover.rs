//! The hand-over: the state a container process is in when the runtime gives
//! it to [`Executor::exec`](super::Executor::exec), stated as a value
//! ([`ExecContext::handover`](super::ExecContext::handover)).
//!
//! ## What the runtime promises
//!
//! - **Descriptors**: `0..n` ([`Handover::kept_fds`]) are the workload's:
//!   stdio and the first `--preserve-fds` (LISTEN_FDS) ones, not
//!   close-on-exec. Every other descriptor the process holds is the runtime's
//!   or the executor's, and is close-on-exec: `execve` closes it; an
//!   in-process executor keeps it away from its guest (WASI is an allow-list).
//! - **Signals** ([`Signals`]): every signal has its default disposition,
//!   except those listed as ignored ([`Signals::ignored`]: what the runtime's
//!   own caller ignored, SIGPIPE always, since Rust's runtime ignores it; and
//!   SIGCHLD when [`Signals::releases_orphans`]) and the handlers the executor
//!   installed itself in `prepare` or `arm` (the wasm engine's trap handlers).
//!   The runtime leaves none of its own: the handlers with which the waiting
//!   init ends on `kill` ([`crate::process::barrier`]) are removed, and what
//!   they replaced is put back, before the hand-over. The signals in
//!   [`Signals::blocked`] are blocked in the calling thread (the caller of
//!   `exec` and `run` blocks every signal while it waits; the waiting init has
//!   unblocked them all).
//!
//! ## What each executor does with it
//!
//! A native executor resets every disposition and the mask right before
//! `execve` ([`Handover::reset_signals_for_execve`]): an ignored signal and a
//! blocked one would otherwise survive into the new program. An in-process
//! executor changes only what it needs from this starting point: the
//! ignored signals it does not want back at their default
//! ([`Handover::restore_defaults`]), the handlers its workload cannot install
//! itself ([`Handover::exit_on`]), the mask ([`Handover::unblock`]). It
//! leaves SIGCHLD alone when [`Signals::releases_orphans`].
//!
//! Dispositions belong to the process and the mask to the calling thread, the
//! one that calls `execve` or the guest: each method holds whatever other
//! threads exist, and an executor starts none before `exec`.

use std::os::fd::RawFd;

use nix::sys::signal::{SigSet, Signal};

use crate::sys::signal;

/// The signal state of a process at the hand-over (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// The signals whose disposition is `SIG_IGN`.
    pub ignored: SigSet,
    /// The signals blocked in the calling thread.
    pub blocked: SigSet,
    /// SIGCHLD is ignored so that the kernel releases the orphans of an init
    /// that runs its workload in-process as PID 1 ([`crate::process`]'s
    /// orphans): it must stay so.
    pub releases_orphans: bool,
}

/// What the runtime hands an executor in [`Executor::exec`](super::Executor::exec):
/// the signal state the process is in and the descriptors its workload may keep.
#[derive(Debug)]
pub struct Handover {
    signals: Signals,
    kept_fds: RawFd,
}

impl Handover {
    /// The state of this process as it stands, for a process that plays a
    /// container process (a test harness): descriptors below `kept_fds` are
    /// the workload's, and no orphan is released.
    pub fn of_this_process(kept_fds: RawFd) -> nix::Result<Self> {
        Self::measure(kept_fds, false)
    }

    /// Reads the dispositions and the calling thread's mask.
    pub(crate) fn measure(kept_fds: RawFd, releases_orphans: bool) -> nix::Result<Self> {
        let signals = Signals { ignored: signal::ignored()?, blocked: signal::blocked()?, releases_orphans };
        Ok(Self { signals, kept_fds })
    }

    /// The signal state at the hand-over.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The descriptors the workload may keep: stdio and the preserved ones.
    pub fn kept_fds(&self) -> std::ops::Range<RawFd> {
        0..self.kept_fds
    }

    /// For `execve`: every disposition back to its default and no signal
    /// blocked, the state a new program expects.
    pub fn reset_signals_for_execve(&self) -> nix::Result<()> {
        signal::reset_all()
    }

    /// Gives each of `signals` its default disposition (an ignored signal the
    /// workload must not inherit).
    pub fn restore_defaults(&self, signals: &SigSet) -> nix::Result<()> {
        signal::set_default(signals)
    }

    /// Ends the process with status 128+N on each of `signals`, as a program
    /// with handlers for them would end (`_exit` in the handler: it works
    /// while the workload runs, blocks or spins, and flushes nothing).
    pub fn exit_on(&self, signals: &[Signal]) -> nix::Result<()> {
        signal::exit_on(signals.iter().copied()).map(drop)
    }

    /// Unblocks `signals` in the calling thread.
    pub fn unblock(&self, signals: &SigSet) -> nix::Result<()> {
        signal::unblock(signals)
    }
}
