//! `clone(2)` used like `fork(2)`: the child continues on a copy of the caller's
//! stack, with the namespace flags the container needs.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::unistd::Pid;

/// Which side of a [`clone_fork`] this process is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Clones the calling process like `fork(2)`, with extra `CLONE_*` flags (namespaces,
/// `CLONE_PARENT`). The child is reported to its parent with `SIGCHLD`.
///
/// The caller must be single-threaded: the child owns a copy of the whole address
/// space but only the calling thread, so any lock held by another thread would stay
/// locked forever in the child. amphi never starts a thread before its container
/// process exists.
pub fn clone_fork(flags: libc::c_int) -> io::Result<Forked> {
    let flags = (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack pointer the kernel gives the child a copy-on-write
    // copy of the caller's stack, exactly as fork(2) does; no pointers are passed.
    // The process is single-threaded (documented contract above), so the child's
    // copy of memory holds no lock owned by a thread that does not exist there.
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
    // caller is single-threaded (see `clone_fork`).
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Ends the calling process at once, without running Rust or libc exit handlers:
/// what a forked child must do so as not to flush or free the parent's copies.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes an integer, touches no memory and never returns.
    unsafe { libc::_exit(code) }
}
