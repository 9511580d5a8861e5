//! `seccomp(2)`: installing a compiled BPF filter, and asking the kernel which
//! filter flags it knows.
//!
//! [`crate::seccomp`] compiles a profile into [`Instruction`]s before any fork;
//! installing them is this one system call, which allocates nothing, so it is
//! safe in a forked child and is the last thing the init does before its workload.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The kernel's flag values (`SECCOMP_FILTER_FLAG_*`, `<linux/seccomp.h>`).
pub const FLAG_TSYNC: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC as u32;
pub const FLAG_LOG: u32 = libc::SECCOMP_FILTER_FLAG_LOG as u32;
pub const FLAG_SPEC_ALLOW: u32 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
pub const FLAG_NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
pub const FLAG_TSYNC_ESRCH: u32 = libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;

/// The most instructions one filter may have (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// One classic-BPF instruction, laid out exactly as the kernel's
/// `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Installs `program` as a seccomp filter on the calling thread (on every thread
/// of the process with [`FLAG_TSYNC`]). With [`FLAG_NEW_LISTENER`] the kernel
/// returns the user-notification descriptor (close-on-exec), which is handed back.
///
/// Needs `no_new_privs` or `CAP_SYS_ADMIN` (`EACCES` otherwise).
pub fn set_mode_filter(flags: u32, program: &[Instruction]) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog { len, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `fprog` points at `len` instructions with the layout of `struct
    // sock_filter` (`Instruction` is repr(C) with the same fields); both outlive the
    // call, and the kernel only reads them (it copies the program). The flags are
    // plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER a successful call returns a new descriptor that
        // nothing else in this process owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }));
    }
    if ret > 0 {
        // TSYNC without TSYNC_ESRCH reports the thread that could not be
        // synchronized as a positive return; no filter was installed.
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(None)
}

/// Has `command` install `program` as its seccomp filter between `fork` and
/// `exec`, so the program it runs starts under it (with [`set_mode_filter`]'s
/// needs: `no_new_privs` or `CAP_SYS_ADMIN`).
pub fn set_mode_filter_before_exec(command: &mut std::process::Command, flags: u32, program: Vec<Instruction>) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and makes one
    // seccomp(2) call (async-signal-safe) on a program moved into the closure
    // before the fork; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || set_mode_filter(flags, &program).map(drop));
    }
}

/// Whether the kernel accepts `flags` for `SECCOMP_SET_MODE_FILTER`. Installs
/// nothing: the kernel checks the flags before it reads the (null) program, so a
/// known set fails with `EFAULT` and an unknown one with `EINVAL`.
pub fn filter_flags_supported(flags: u32) -> bool {
    // SAFETY: a null program pointer is never dereferenced by us; the kernel
    // validates it with copy_from_user and fails with EFAULT. No filter is
    // installed whatever the outcome.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<Instruction>(), std::mem::size_of::<libc::sock_filter>());
        assert_eq!(std::mem::align_of::<Instruction>(), std::mem::align_of::<libc::sock_filter>());
    }

    #[test]
    fn known_flags_probe_as_supported_and_unknown_ones_do_not() {
        assert!(filter_flags_supported(FLAG_LOG));
        assert!(filter_flags_supported(FLAG_TSYNC));
        assert!(!filter_flags_supported(1 << 30));
    }
}
