//! Signal names as runc's command line takes them, the signal state a
//! container process must start with, and the SIGCHLD disposition that lets the
//! kernel reap an in-process init's orphans.

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};

/// Parses `TERM`, `SIGTERM`, `sigterm` or `15` (as `runc kill` does).
pub fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().ok()
}

/// Gives the calling process the signal state a new program expects: nothing
/// blocked and every disposition at its default. The runtime ignores SIGPIPE (the
/// Rust runtime does so before `main`) and `run` blocks the signals it forwards;
/// an ignored or blocked signal would otherwise survive `execve` into the workload.
pub fn reset_for_workload() -> nix::Result<()> {
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code; the process is single-threaded.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) }?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

/// While the init waits at the start barrier it is pid 1 of its namespace, where a
/// signal without a handler is ignored even when sent from the host. So that
/// `kill` of a created container works as it does for a running one, the waiting
/// init ends on any signal whose default action would end a process, with status
/// 128+N. [`reset_for_workload`] undoes this before the workload starts.
pub fn exit_on_terminating_signals() -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, sigaction};
    let action = SigAction::new(SigHandler::Handler(exit_with_signal), SaFlags::empty(), SigSet::all());
    for signal in Signal::iterator() {
        let ignored_by_default = matches!(
            signal,
            Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGCHLD | Signal::SIGCONT | Signal::SIGURG | Signal::SIGWINCH
        ) || matches!(signal, Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU);
        if ignored_by_default {
            continue;
        }
        // SAFETY: the handler only calls _exit, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
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
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + signal) }
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
