//! The container's session keyring.

use std::ffi::CString;
use std::io;

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
const KEYCTL_SETPERM: libc::c_long = 5;

/// Joins a new session keyring called `name`, so the container does not share
/// the caller's (runc does the same unless `--no-new-keyring`). The keyring is
/// made readable and searchable by its possessor only.
pub fn join_new_session_keyring(name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING) reads the NUL-terminated name,
    // which outlives the call, and returns the new keyring's serial or -1.
    let serial = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if serial < 0 {
        return Err(io::Error::last_os_error());
    }
    // Possessor: view, read, write, search, link, setattr (0x3f); nobody else.
    let perm: libc::c_ulong = 0x3f00_0000;
    // SAFETY: keyctl(KEYCTL_SETPERM) takes two integers and touches no memory.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, serial, perm) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
