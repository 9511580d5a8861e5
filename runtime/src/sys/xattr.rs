//! Extended attributes of a path (the marks amphi leaves on the cgroup
//! directories it makes, [`crate::cgroups`]). `nix` does not wrap them.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The longest value [`get`] reads; a longer one fails with `ERANGE`.
const MAX_VALUE: usize = 4096;

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `setxattr(path, name, value, 0)`: creates or replaces the attribute.
pub fn set(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let cpath = c_string(path.as_os_str().as_bytes())?;
    let cname = c_string(name.as_bytes())?;
    // SAFETY: both strings are NUL-terminated and live for the call; the kernel
    // reads `value.len()` bytes from `value`, which is that long.
    let ret = unsafe { libc::setxattr(cpath.as_ptr(), cname.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getxattr(path, name)`: the attribute's value (`ENODATA` when there is none,
/// `EOPNOTSUPP` where the filesystem keeps no attributes).
pub fn get(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    let cpath = c_string(path.as_os_str().as_bytes())?;
    let cname = c_string(name.as_bytes())?;
    let mut buf = vec![0u8; MAX_VALUE];
    // SAFETY: both strings are NUL-terminated and live for the call; the kernel
    // writes at most `buf.len()` bytes into `buf`, which is that long.
    let ret = unsafe { libc::getxattr(cpath.as_ptr(), cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(ret as usize);
    Ok(buf)
}

/// `removexattr(path, name)`.
pub fn remove(path: &Path, name: &str) -> io::Result<()> {
    let cpath = c_string(path.as_os_str().as_bytes())?;
    let cname = c_string(name.as_bytes())?;
    // SAFETY: both strings are NUL-terminated and live for the call.
    let ret = unsafe { libc::removexattr(cpath.as_ptr(), cname.as_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_attribute_round_trips_where_the_filesystem_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        match set(dir.path(), "user.amphi.test", b"v1") {
            Ok(()) => {}
            // tmpfs before Linux 6.6 keeps no user attributes: nothing to test.
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return,
            Err(e) => panic!("setxattr: {e}"),
        }
        assert_eq!(get(dir.path(), "user.amphi.test").unwrap(), b"v1");
        remove(dir.path(), "user.amphi.test").unwrap();
        let gone = get(dir.path(), "user.amphi.test").unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ENODATA));
    }
}
