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

/// The running kernel's version as `(major, minor)`, read from `uname(2)`'s
/// release (`6.18.44-custom` → `(6, 18)`).
pub fn kernel_version() -> io::Result<(u32, u32)> {
    // SAFETY: utsname is a plain C struct of byte arrays; all-zero is valid.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname writes one struct utsname through the pointer, which
    // points at a live local of that type.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let release: Vec<u8> = uts.release.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    parse_version(&String::from_utf8_lossy(&release))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the kernel release names no version"))
}

fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_off_the_release() {
        assert_eq!(parse_version("6.18.44-fc-v1147"), Some((6, 18)));
        assert_eq!(parse_version("5.15.0-91-generic"), Some((5, 15)));
        assert_eq!(parse_version("6.1"), Some((6, 1)));
        assert_eq!(parse_version("garbage"), None);
        assert!(kernel_version().is_ok());
    }
}
