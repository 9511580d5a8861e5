//! Ending the workload on SIGTERM, SIGINT and SIGHUP.
//!
//! The wasm init is pid 1 of its pid namespace, and the kernel drops every signal
//! sent to pid 1 from inside the namespace that has no handler, and from outside
//! every one but SIGKILL and SIGSTOP. A native init (a shell, a server) installs
//! handlers; a wasm guest cannot (WASI has no signals). So the executor installs
//! them on the guest's behalf, after the start barrier and right before the guest
//! (instantiated before the barrier) is called.
//!
//! The handler calls `_exit(128 + signal)`: the exit status a shell reports for a
//! process killed by that signal, and what `amphi kill` / `delete --force`
//! expect of any container. `_exit` is async-signal-safe, ends every thread of
//! the process at once (`exit_group`) and needs no cooperation from the guest, so
//! it works while the guest spins in a loop that never calls the host, blocks in
//! a host call (a read on stdin, an `accept`) or sits in the engine. Nothing is
//! flushed: the guest's stdout and stderr are unbuffered file streams, and a
//! native program killed by the same signal would not flush either.
//!
//! The alternative, epoch interruption (a handler bumps the engine's epoch and
//! the guest traps at its next check), would let the host run cleanup but costs
//! a check in every loop and function of the compiled code, and does not reach a
//! guest blocked in a host call. There is no cleanup worth that here: the
//! process is about to end and the kernel closes everything.
//!
//! SIGCHLD is the runtime's: an init that is PID 1 ignores it from the
//! hand-over on, so the kernel reaps the orphans of processes exec'd into the
//! container (`amphi_runtime::process`, `orphans`). Nothing here touches it.
//!
//! ## The engine's own handlers
//!
//! wasmtime turns a guest's out-of-bounds access, division by zero or stack
//! overflow into a trap through handlers for SIGSEGV, SIGBUS, SIGILL and SIGFPE,
//! installed once per process when the first engine is made (in `prepare`). A
//! runtime that resets every disposition to the default between `prepare` and
//! `exec` (as a native workload needs) would turn such a trap into a crash, so
//! [`TrapHandlers`] records them after the engine exists and puts them back in
//! `exec`.

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};

/// The signals that end the workload, with status `128 + signal`.
pub const ENDING_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

extern "C" fn exit_on_signal(signal: libc::c_int) {
    // SAFETY: `_exit` is async-signal-safe and takes no pointers; it does not
    // return, so no Rust state is observed half-updated.
    unsafe { libc::_exit(128 + signal) }
}

/// Installs the ending handlers and unblocks their signals.
pub fn install() -> nix::Result<()> {
    let action = SigAction::new(SigHandler::Handler(exit_on_signal), SaFlags::SA_RESTART, SigSet::all());
    let mut set = SigSet::empty();
    for signal in ENDING_SIGNALS {
        // SAFETY: the handler only calls `_exit`, which is async-signal-safe, so
        // it is sound whatever the interrupted code was doing.
        unsafe { sigaction(signal, &action) }?;
        set.add(signal);
    }
    sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None)
}

/// The signals wasmtime handles to implement traps.
const TRAP_SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// The engine's trap handlers, as recorded after the engine was made.
pub struct TrapHandlers {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl std::fmt::Debug for TrapHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrapHandlers").field("signals", &self.saved.len()).finish()
    }
}

impl TrapHandlers {
    /// Records the current dispositions of the trap signals.
    pub fn save() -> std::io::Result<Self> {
        let mut saved = Vec::with_capacity(TRAP_SIGNALS.len());
        for signal in TRAP_SIGNALS {
            // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask).
            let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a null new action only reads the disposition into `current`,
            // a valid, writable sigaction.
            if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            saved.push((signal, current));
        }
        Ok(Self { saved })
    }

    /// Reinstalls the recorded dispositions.
    pub fn restore(&self) -> std::io::Result<()> {
        for (signal, action) in &self.saved {
            // SAFETY: `action` was read from the kernel for this very signal by
            // `save`: it names wasmtime's handler (a static function of this
            // process, which stays loaded) or a default disposition.
            if unsafe { libc::sigaction(*signal, action, std::ptr::null_mut()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
