//! `clone(2)` used like `fork(2)`: the child continues on a copy of the caller's
//! stack, with the namespace flags the container needs; a forked worker for an
//! executor; and `_exit`.
//!
//! A child made by cloning a process owns a copy of the whole address space but
//! only the calling thread: a lock another thread held (in `malloc`, in a
//! logger) would stay locked forever in the child. So every way to fork here
//! checks first that the caller is single-threaded ([`single_threaded`]) and
//! refuses otherwise: the condition is checked, not promised.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::unistd::Pid;

/// Which side of a [`clone_fork`] this process is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Whether this process has a single thread: glibc's `__libc_single_threaded`
/// (true until the process first creates a thread), else a count of
/// `/proc/self/task` (which a process of a pid namespace its procfs does not
/// show cannot read: then false).
pub fn single_threaded() -> bool {
    #[cfg(target_env = "gnu")]
    {
        unsafe extern "C" {
            /// glibc (2.32+): non-zero while the process is known to have one thread.
            static __libc_single_threaded: libc::c_char;
        }
        // SAFETY: a plain byte that glibc exports for applications to read; it
        // only changes when this very thread creates another one.
        if unsafe { std::ptr::read_volatile(&raw const __libc_single_threaded) } != 0 {
            return true;
        }
    }
    std::fs::read_dir("/proc/self/task").map(|tasks| tasks.count() == 1).unwrap_or(false)
}

/// The error of a fork refused because the caller has more than one thread.
fn multi_threaded() -> io::Error {
    io::Error::other("refused to fork a multi-threaded process")
}

/// Clones the calling process like `fork(2)`, with extra `CLONE_*` flags (namespaces,
/// `CLONE_PARENT`). The child is reported to its parent with `SIGCHLD`. Refuses
/// (an error) when the caller has more than one thread (module docs).
pub fn clone_fork(flags: libc::c_int) -> io::Result<Forked> {
    if !single_threaded() {
        return Err(multi_threaded());
    }
    let flags = (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack pointer the kernel gives the child a copy-on-write
    // copy of the caller's stack, exactly as fork(2) does; no pointers are passed.
    // The process is single-threaded (checked above), so the child's copy of
    // memory holds no lock owned by a thread that does not exist there.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// [`clone_fork`], with the child born in the cgroup2 directory `cgroup`
/// (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7) when one is given.
pub fn clone_fork_into(flags: libc::c_int, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let Some(cgroup) = cgroup else { return clone_fork(flags) };
    if !single_threaded() {
        return Err(multi_threaded());
    }
    /// `struct clone_args` of `linux/sched.h`, up to `cgroup` (version 2).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: (flags as u32 as u64) | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: `args` is a valid, fully initialised `struct clone_args` that
    // outlives the call, and its size is passed with it. With no stack the child
    // continues on a copy-on-write copy of the caller's, as with fork(2); the
    // caller is single-threaded (checked above).
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Runs `work` in a child made by glibc's `fork` (whose child may allocate and
/// start threads of its own), which ends with `work`'s status (1 if it
/// panics), and waits for it. `None` when the caller has more than one thread
/// (nothing is forked) or the fork failed; otherwise how the child ended: its
/// exit status, or `None` when a signal killed it.
pub fn run_in_child(work: impl FnOnce() -> i32) -> Option<Option<i32>> {
    if !single_threaded() {
        return None;
    }
    // SAFETY: this process has a single thread (checked above), so the child is
    // a complete copy that may take locks and start threads of its own; it
    // leaves through `_exit`, running no destructor of the parent's state.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(1);
            exit_now(code)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => loop {
            match nix::sys::wait::waitpid(child, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => break Some(Some(code)),
                _ => break Some(None),
            }
        },
        Err(_) => None,
    }
}

/// In a test binary (whose other threads are libtest's, idle while the test
/// runs): forks with glibc's `fork`, runs `f` in the child, which exits 0 if
/// `f` returns and 1 if it panics; returns that status.
#[cfg(test)]
pub(crate) fn fork_test_child(f: impl FnOnce()) -> i32 {
    // SAFETY: the caller is a test re-executed alone in its own test binary:
    // its only other thread is the harness's main thread, blocked waiting for
    // this test, so it holds no lock the child could need; glibc's fork keeps
    // malloc consistent in the child, which runs `f` and exits without
    // returning into the harness.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let code = if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok() { 0 } else { 1 };
            exit_now(code)
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None).expect("waitpid") {
            nix::sys::wait::WaitStatus::Exited(_, code) => code,
            other => panic!("child ended with {other:?}"),
        },
    }
}

/// Ends the calling process at once, without running Rust or libc exit handlers:
/// what a forked child must do so as not to flush or free the parent's copies.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes an integer, touches no memory and never returns.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_thread_is_seen() {
        // A fork is refused then: it never copies a multi-threaded process.
        let other = std::thread::spawn(single_threaded);
        assert!(!other.join().expect("thread"));
        assert!(run_in_child(|| 0).is_none());
    }
}
