//! Ctrl-C, SIGTERM and SIGHUP while the containerd section runs: noticed, not
//! obeyed at once, so that the section stops between two commands and cleans
//! up (tasks, containers, shims, cgroups, state) before the harness exits.
//!
//! The signals are blocked in the harness and read from a signalfd; the
//! commands it spawns start with an empty signal mask (std's `Command` resets
//! it), so `ctr` still dies of the terminal's Ctrl-C, and containerd, in a
//! process group of its own, does not, and is there for the cleanup.

use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, bail};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals caught while it lives; the old mask comes back on drop.
#[derive(Debug)]
pub struct Interrupt {
    fd: SignalFd,
    old_mask: SigSet,
    /// The first signal read, 0 while none came.
    seen: AtomicI32,
}

impl Interrupt {
    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (the threads it
    /// starts inherit the mask) and opens a signalfd for them.
    pub fn catch() -> anyhow::Result<Self> {
        let mut mask = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            mask.add(signal);
        }
        let old_mask = mask.thread_swap_mask(SigmaskHow::SIG_BLOCK).context("block SIGINT, SIGTERM and SIGHUP")?;
        let fd = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = old_mask.thread_set_mask();
                return Err(e).context("signalfd for SIGINT, SIGTERM and SIGHUP");
            }
        };
        Ok(Self { fd, old_mask, seen: AtomicI32::new(0) })
    }

    /// An error once one of the signals came.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Ok(Some(info)) = self.fd.read_signal() {
            let _ = self.seen.compare_exchange(0, info.ssi_signo as i32, Ordering::SeqCst, Ordering::SeqCst);
        }
        match self.seen.load(Ordering::SeqCst) {
            0 => Ok(()),
            signo => {
                let name = Signal::try_from(signo).map_or_else(|_| format!("signal {signo}"), |s| s.to_string());
                bail!("interrupted by {name}")
            }
        }
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        // A signal read from the fd is consumed; one still pending is delivered
        // now, with its default action.
        let _ = self.old_mask.thread_set_mask();
    }
}
