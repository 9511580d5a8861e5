//! The UTS namespace's names.

use std::io;

/// Sets the NIS domain name (`setdomainname(2)`; nix wraps only the hostname).
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the
    // call; the kernel copies them and does not need a terminating NUL.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
