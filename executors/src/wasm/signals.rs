//! Ending the workload on SIGTERM, SIGINT and SIGHUP, from the signal state
//! the runtime hands over.
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
//! ## From the hand-over
//!
//! The runtime states the process's signal state at the hand-over
//! (`ExecContext::handover`): every disposition at its default but the
//! signals its caller left ignored (SIGPIPE, which Rust's runtime ignores),
//! SIGCHLD when the init releases its orphans (it is PID 1 of the container:
//! the kernel then reaps the orphans of processes exec'd into it,
//! `amphi_runtime::process`'s orphans), and the handlers the executor
//! installed itself; the mask is the caller's. A guest runs as a native
//! program would, so [`take_over`] changes only what that needs: the ignored
//! signals go back to their default (SIGCHLD stays ignored when the runtime
//! says it releases orphans), the ending handlers go in, and whatever is
//! blocked is unblocked.
//!
//! wasmtime turns a guest's out-of-bounds access, division by zero or stack
//! overflow into a trap through handlers for SIGSEGV, SIGBUS, SIGILL and SIGFPE,
//! installed once per process when the first engine is made (in `prepare`).
//! Nothing replaces them afterwards (the runtime puts back what its waiting
//! init's handlers replaced), so the executor leaves them alone.

use amphi_runtime::executor::Handover;
use nix::sys::signal::Signal;

/// The signals that end the workload, with status `128 + signal`.
pub const ENDING_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// The signals that end a service at once; SIGTERM and SIGINT first stop it
/// gracefully (`service::serve`).
pub const SERVICE_ENDING_SIGNALS: [Signal; 1] = [Signal::SIGHUP];

/// Brings the signal state the runtime handed over to the guest's (module
/// docs), with handlers that end the process on `ending`.
pub fn take_over(handover: &Handover, ending: &[Signal]) -> nix::Result<()> {
    let signals = handover.signals();
    let mut back_to_default = signals.ignored;
    if signals.releases_orphans {
        back_to_default.remove(Signal::SIGCHLD);
    }
    handover.restore_defaults(&back_to_default)?;
    handover.exit_on(ending)?;
    handover.unblock(&signals.blocked)
}
