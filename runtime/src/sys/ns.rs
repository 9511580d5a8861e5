//! Namespace descriptors: who owns a namespace.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `NS_GET_USERNS`: the user namespace that owns the namespace `ns`.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// `NS_GET_OWNER_UID`: the uid (in the caller's user namespace) of the creator of
/// the user namespace `ns`.
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// `NS_GET_NSTYPE`: the `CLONE_NEW*` type of the namespace.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The `CLONE_NEW*` flag of the namespace `ns` names: asked of the kernel, so it
/// works for a namespace file bind-mounted anywhere (`/var/run/netns/x`), where
/// the fd's link only shows that path.
pub fn namespace_type(ns: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type or -1.
    check(unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_NSTYPE) })
}

/// The uid that created the user namespace owning the namespace `ns` (itself,
/// when `ns` is a user namespace), as seen from the caller's user namespace; the
/// overflow uid when that creator is not mapped there.
pub fn namespace_owner_uid(ns: BorrowedFd<'_>, is_user_ns: bool) -> io::Result<u32> {
    let owner = if is_user_ns {
        None
    } else {
        // SAFETY: NS_GET_USERNS takes no argument and returns a new fd or -1.
        let fd = check(unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS) })?;
        // SAFETY: the kernel just returned this fd to us; nothing else owns it.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let user_ns = owner.as_ref().map_or(ns.as_raw_fd(), AsRawFd::as_raw_fd);
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer, which points
    // at a live local of that type; the fd is a user namespace's.
    check(unsafe { libc::ioctl(user_ns, NS_GET_OWNER_UID, &mut uid) })?;
    Ok(uid)
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn namespace_types_come_from_the_kernel() {
        let net = std::fs::File::open("/proc/self/ns/net").unwrap();
        assert_eq!(namespace_type(net.as_fd()).unwrap(), libc::CLONE_NEWNET);
        let uts = std::fs::File::open("/proc/self/ns/uts").unwrap();
        assert_eq!(namespace_type(uts.as_fd()).unwrap(), libc::CLONE_NEWUTS);
    }

    #[test]
    fn the_owner_of_this_user_namespace_is_readable() {
        let ns = std::fs::File::open("/proc/self/ns/user").unwrap();
        let net = std::fs::File::open("/proc/self/ns/net").unwrap();
        let owner = namespace_owner_uid(ns.as_fd(), true).unwrap();
        assert_eq!(namespace_owner_uid(net.as_fd(), false).unwrap(), owner);
    }
}
