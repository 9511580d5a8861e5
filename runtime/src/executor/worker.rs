//! A short-lived child process for work an executor does in `prepare`, before
//! the container process is isolated: compiling a large program on every core
//! in a child, so that the threads live and die there and the container
//! process stays single-threaded through its isolation steps.

/// Runs `work` in a forked child (which may allocate and start threads) and
/// waits for it. Returns the child's exit status (`work`'s value, 1 if it
/// panicked); `None` when nothing ran or it did not exit by itself: this
/// process has more than one thread (a fork would copy locks that other
/// threads hold, so none is made), the fork failed, or a signal killed the
/// child. The child ends with `_exit`, running no destructor of this process's
/// state.
pub fn run_in_child(work: impl FnOnce() -> i32) -> Option<i32> {
    crate::sys::clone::run_in_child(work).flatten()
}
