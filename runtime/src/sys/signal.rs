//! Signal names as runc's command line takes them, and the primitives behind the
//! signal state of a container process: handlers that end the process
//! ([`exit_on`], for the init waiting at the start barrier and for a wasm
//! guest), what is ignored and blocked, the reset a native program needs before
//! `execve`, and the SIGCHLD disposition that lets the kernel reap an
//! in-process init's orphans. The hand-over to the executor
//! ([`crate::executor::Handover`]) is built from these.

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};

/// Parses `TERM`, `SIGTERM`, `sigterm` or `15` (as `runc kill` does).
pub fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().ok()
}

/// The dispositions some signals had before a change, to put back with
/// [`SavedDispositions::restore`].
pub struct SavedDispositions {
    saved: Vec<(Signal, SigAction)>,
}

impl std::fmt::Debug for SavedDispositions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let signals: Vec<Signal> = self.saved.iter().map(|(signal, _)| *signal).collect();
        f.debug_struct("SavedDispositions").field("signals", &signals).finish()
    }
}

impl SavedDispositions {
    /// Reinstalls every saved disposition.
    pub fn restore(self) -> nix::Result<()> {
        for (signal, action) in &self.saved {
            // SAFETY: `action` is what the kernel reported for this very signal
            // when `exit_on` replaced it: a default or ignored disposition, or a
            // handler of this process installed earlier (Rust's stack-overflow
            // handler, the wasm engine's trap handlers), whose code stays loaded
            // and which was sound to run before the change.
            unsafe { sigaction(*signal, action) }?;
        }
        Ok(())
    }
}

/// Whether a signal's default action ends the process (everything but
/// SIGCHLD, SIGCONT, SIGURG, SIGWINCH, the stop signals, SIGKILL and SIGSTOP,
/// which cannot be caught).
pub fn terminates_by_default(signal: Signal) -> bool {
    !matches!(
        signal,
        Signal::SIGKILL
            | Signal::SIGSTOP
            | Signal::SIGCHLD
            | Signal::SIGCONT
            | Signal::SIGURG
            | Signal::SIGWINCH
            | Signal::SIGTSTP
            | Signal::SIGTTIN
            | Signal::SIGTTOU
    )
}

/// Ends the process on each of `signals` with status 128+N (`_exit` in the
/// handler, which is async-signal-safe and ends every thread at once). Returns
/// what was there before, so that a caller that installs them for a while can
/// put it back.
pub fn exit_on(signals: impl IntoIterator<Item = Signal>) -> nix::Result<SavedDispositions> {
    let action = SigAction::new(SigHandler::Handler(exit_with_signal), SaFlags::SA_RESTART, SigSet::all());
    let mut saved = SavedDispositions { saved: Vec::new() };
    for signal in signals {
        // SAFETY: the handler only calls _exit, which is async-signal-safe and
        // never returns, so it is sound whatever the interrupted code was doing.
        match unsafe { sigaction(signal, &action) } {
            Ok(old) => saved.saved.push((signal, old)),
            Err(e) => {
                // Leave nothing half-installed behind the error.
                let _ = saved.restore();
                return Err(e);
            }
        }
    }
    Ok(saved)
}

/// Gives every signal its default disposition and unblocks every signal in the
/// calling thread: the signal state a new program expects from `execve`, which
/// keeps ignored dispositions and the caller's mask (handlers it resets).
/// Dispositions are the process's and `SIG_DFL` runs no code; the mask is the
/// calling thread's, the one `execve` keeps: this holds whatever other threads
/// exist.
pub fn reset_all() -> nix::Result<()> {
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// Gives each of `signals` its default disposition.
pub fn set_default(signals: &SigSet) -> nix::Result<()> {
    for signal in signals.iter() {
        // SAFETY: installing SIG_DFL runs no handler code.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
    }
    Ok(())
}

/// The signals whose disposition is `SIG_IGN` now (standard signals).
pub fn ignored() -> nix::Result<SigSet> {
    let mut ignored = SigSet::empty();
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask).
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a null new action only reads the disposition into `current`,
        // a live, writable sigaction.
        if unsafe { libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut current) } != 0 {
            return Err(nix::errno::Errno::last());
        }
        if current.sa_sigaction == libc::SIG_IGN {
            ignored.add(signal);
        }
    }
    Ok(ignored)
}

/// The signals blocked in the calling thread.
pub fn blocked() -> nix::Result<SigSet> {
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, None, Some(&mut old))?;
    Ok(old)
}

/// Unblocks `signals` in the calling thread.
pub fn unblock(signals: &SigSet) -> nix::Result<()> {
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(signals), None)
}

/// Has the kernel release this process's children the moment they end: SIGCHLD
/// ignored (`SIG_IGN`), so an ending child (or a zombie reparented here) never
/// stays a zombie, no SIGCHLD is ever queued or delivered (nothing is
/// interrupted), and `wait` never reports one. A zombie already present is not
/// released by this: reap those with [`reap_ended_children`].
pub fn release_children_as_they_end() -> nix::Result<()> {
    // SAFETY: SIG_IGN runs no handler code.
    unsafe { nix::sys::signal::signal(Signal::SIGCHLD, SigHandler::SigIgn) }.map(drop)
}

/// Reaps every child that has already ended, without waiting for a live one;
/// returns how many.
pub fn reap_ended_children() -> usize {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let mut reaped = 0;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return reaped,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return reaped,
            Ok(_) => reaped += 1,
        }
    }
}

extern "C" fn exit_with_signal(signal: libc::c_int) {
    super::clone::exit_now(128 + signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runc_signal_spellings() {
        for text in ["TERM", "SIGTERM", "sigterm", "term", "15"] {
            assert_eq!(parse_signal(text), Some(Signal::SIGTERM), "{text}");
        }
        assert_eq!(parse_signal("KILL"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("USR1"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("999"), None);
    }
}
