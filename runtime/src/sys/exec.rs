//! Replacing this process's image with a program named by a descriptor:
//! `execveat(2)` with `AT_EMPTY_PATH`, which `nix` wraps only with an
//! environment rebuilt from Rust's view of it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Executes the program open on `image` with `argv` and this process's own
/// environment (the C `environ`, passed on exactly as it is). Returns only
/// when the kernel refused, with the reason.
pub fn execveat_with_own_env(image: BorrowedFd<'_>, argv: &[CString]) -> io::Error {
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: `pointers` is a NULL-terminated array of valid NUL-terminated
    // strings (borrowed from `argv`, alive for the call); `environ` is the C
    // library's NULL-terminated environment, which this single-threaded process
    // does not change while the call reads it; the empty path with
    // AT_EMPTY_PATH makes the kernel execute `image` itself. On success the call
    // does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            image.as_raw_fd(),
            c"".as_ptr(),
            pointers.as_ptr(),
            libc::environ.cast_const(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}
