//! Mount syscalls that `nix` does not wrap: `mount_setattr(2)` and the
//! descriptor-based mount API (`open_tree`, `move_mount`, `fsopen`, `fsconfig`,
//! `fsmount`: [`FsContext`]), and [`ProcRoot`], through which `mount(2)` reaches
//! a target by descriptor.
//!
//! A mount whose target (or source) is a path of the container is made by
//! descriptor: the target is opened inside the rootfs first ([`super::inroot`])
//! and the mount lands on that descriptor, never on a path looked up again. A
//! bind is a detached copy of the source ([`clone_tree`]) attached to the target
//! ([`attach_tree`]); a new filesystem is configured one parameter at a time
//! ([`FsContext`]) and attached the same way; what is left (the cgroup
//! hierarchies of a v1 host) goes through `mount(2)` with the target named as
//! `self/fd/N` of a verified procfs ([`ProcRoot::mount_on`]).
//!
//! (`pivot_root`, `mount`, `umount2` and `chroot` come from `nix`.)

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::MsFlags;

/// What one `mount_setattr(2)` call changes on a mount (or, with `recursive`, on
/// a whole mount tree): `MOUNT_ATTR_*` bits to set and to clear, and an optional
/// propagation type (`MS_SHARED`, `MS_SLAVE`, `MS_PRIVATE` or `MS_UNBINDABLE`, 0
/// for none). Attributes not named stay as they are, so the flags the kernel
/// locked on a mount copied into a user namespace are kept without being read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttr {
    pub set: u64,
    pub clear: u64,
    pub propagation: u64,
}

impl MountAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0 && self.propagation == 0
    }
}

/// Applies `attr` to the mount that `fd` (any descriptor, `O_PATH` is fine) sits
/// on top of, and with `recursive` to every mount below it.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    setattr(fd, c"", libc::AT_EMPTY_PATH as libc::c_uint, recursive, attr)
}

/// A detached copy of the mount that `path` names, as `open_tree(2)` with
/// `OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC` makes it: a bind mount of `path` alone
/// (a file or a directory) that no mount namespace holds. It lives as long as
/// a descriptor or a path (an open file, a process's executable) refers to it;
/// once the returned descriptor is closed nobody can attach it or change its
/// attributes any more.
pub fn open_tree_clone(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call;
    // open_tree only reads it and returns a new descriptor or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

fn setattr(
    fd: BorrowedFd<'_>,
    path: &CStr,
    mut flags: libc::c_uint,
    recursive: bool,
    attr: &MountAttr,
) -> io::Result<()> {
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let raw =
        libc::mount_attr { attr_set: attr.set, attr_clr: attr.clear, propagation: attr.propagation, userns_fd: 0 };
    // SAFETY: `path` is a valid NUL-terminated string (empty with AT_EMPTY_PATH,
    // which makes the call act on `fd` itself) and `raw` is a valid mount_attr
    // whose size we pass; both outlive the call, which only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            path.as_ptr(),
            flags,
            &raw as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn check_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

/// A detached copy of the mount that `fd` is open on (`O_PATH` is fine), rooted
/// at the file or directory `fd` names, as a bind mount of it would be; with
/// `recursive`, the mounts below it too (`open_tree(2)` with
/// `OPEN_TREE_CLONE`). The copy is close-on-exec and mounted nowhere until
/// [`attach_tree`]; dropping it unmounts it.
pub fn clone_tree(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a valid empty NUL-terminated string (with
    // AT_EMPTY_PATH the call acts on `fd` itself); the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    check_fd(ret)
}

/// Mounts the detached tree `tree` ([`clone_tree`], [`new_filesystem`]) on the
/// file or directory `target` is open on (`O_PATH` is fine): `move_mount(2)`
/// with both sides given by descriptor, so neither is looked up by path.
pub fn attach_tree(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: both paths are valid empty NUL-terminated strings (the EMPTY_PATH
    // flags make the call act on the descriptors); the kernel only reads them.
    let ret = unsafe {
        libc::syscall(libc::SYS_move_mount, tree.as_raw_fd(), c"".as_ptr(), target.as_raw_fd(), c"".as_ptr(), flags)
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new filesystem of type `fstype` (one that needs no source, like `tmpfs`),
/// detached, with the mount attributes `attrs` (`MOUNT_ATTR_*`): `fsopen(2)`,
/// `fsconfig(2)` and `fsmount(2)`. Attach it with [`attach_tree`].
pub fn new_filesystem(fstype: &CStr, attrs: u64) -> io::Result<OwnedFd> {
    let fs = FsContext::open(fstype)?;
    fs.create()?;
    fs.mount(attrs)
}

/// A filesystem being configured (`fsopen(2)`): parameters are set one at a
/// time, so the one a filesystem refuses is known, then [`FsContext::create`]
/// makes the superblock and [`FsContext::mount`] a detached mount of it. This
/// is what `mount(2)` does inside with its comma-joined data: a `key=value`
/// option is a string parameter, a bare `key` a flag.
#[derive(Debug)]
pub struct FsContext(OwnedFd);

impl FsContext {
    pub fn open(fstype: &CStr) -> io::Result<Self> {
        // SAFETY: fstype is a valid NUL-terminated string the kernel only reads.
        check_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), libc::FSOPEN_CLOEXEC) }).map(Self)
    }

    /// `FSCONFIG_SET_FLAG`: a parameter without a value (`ro`, `newinstance`).
    pub fn set_flag(&self, key: &CStr) -> io::Result<()> {
        self.config(libc::FSCONFIG_SET_FLAG, Some(key), None)
    }

    /// `FSCONFIG_SET_STRING`: a parameter with a value (`mode` `755`, `source`).
    pub fn set_string(&self, key: &CStr, value: &CStr) -> io::Result<()> {
        self.config(libc::FSCONFIG_SET_STRING, Some(key), Some(value))
    }

    /// `FSCONFIG_CMD_CREATE`: makes (or finds) the superblock.
    pub fn create(&self) -> io::Result<()> {
        self.config(libc::FSCONFIG_CMD_CREATE, None, None)
    }

    /// `fsmount(2)`: a detached, close-on-exec mount of the superblock with the
    /// mount attributes `attrs` (`MOUNT_ATTR_*`).
    pub fn mount(&self, attrs: u64) -> io::Result<OwnedFd> {
        // SAFETY: fsmount takes the filesystem context and two flag words by value.
        check_fd(unsafe {
            libc::syscall(libc::SYS_fsmount, self.0.as_raw_fd(), libc::FSMOUNT_CLOEXEC, attrs as libc::c_uint)
        })
    }

    /// The last error the filesystem logged on this context (`e tmpfs: Bad
    /// value for 'nr_inodes'` read as `tmpfs: Bad value for 'nr_inodes'`), if
    /// any: the reason behind an `EINVAL`. Reading takes the messages out.
    pub fn error_message(&self) -> Option<String> {
        let mut last = None;
        let mut buf = [0u8; 1024];
        loop {
            // SAFETY: `buf` is a valid writable buffer of the given length that
            // outlives the call; read writes at most that many bytes into it.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            if let Some(error) = text.strip_prefix("e ") {
                last = Some(error.trim_end().to_owned());
            }
        }
        last
    }

    fn config(&self, cmd: libc::c_uint, key: Option<&CStr>, value: Option<&CStr>) -> io::Result<()> {
        let key = key.map_or(std::ptr::null(), CStr::as_ptr);
        let value = value.map_or(std::ptr::null(), |v| v.as_ptr().cast::<libc::c_void>());
        // SAFETY: `key` and `value` are null (for commands and flags that take
        // none) or valid NUL-terminated strings that outlive the call; the
        // kernel only reads them; aux is 0 for every command used here.
        let ret = unsafe { libc::syscall(libc::SYS_fsconfig, self.0.as_raw_fd(), cmd, key, value, 0) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A procfs root directory, checked with `fstatfs` to be procfs, through which
/// `mount(2)` names a target by descriptor: `self/fd/N` resolved from it (the
/// magic link to the open target, not a path looked up again).
///
/// `mount(2)` takes no directory descriptor, so [`ProcRoot::mount_on`] makes
/// the procfs root the cwd for the call; the cwd the process had when the
/// `ProcRoot` was opened comes back when it is dropped.
#[derive(Debug)]
pub struct ProcRoot {
    proc: OwnedFd,
    cwd: OwnedFd,
}

impl ProcRoot {
    /// Opens the procfs at `path` (the host's `/proc`, before anything of the
    /// container is touched). A directory there that is not procfs is refused
    /// with `EXDEV`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let proc: OwnedFd = nix::fcntl::open(path, dir, nix::sys::stat::Mode::empty())
            // SAFETY: open returned a fresh descriptor that nothing else owns.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })?;
        if nix::sys::statfs::fstatfs(&proc)?.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let cwd: OwnedFd = nix::fcntl::open(".", dir, nix::sys::stat::Mode::empty())
            // SAFETY: open returned a fresh descriptor that nothing else owns.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })?;
        Ok(Self { proc, cwd })
    }

    /// `mount(2)` of `source` (a filesystem's source, or a path of the host)
    /// onto the file or directory `target` is open on.
    pub fn mount_on(
        &self,
        source: Option<&Path>,
        target: BorrowedFd<'_>,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::unistd::fchdir(self.proc.as_raw_fd())?;
        let at = format!("self/fd/{}", target.as_raw_fd());
        nix::mount::mount(source, at.as_str(), fstype, flags, data)
    }
}

impl Drop for ProcRoot {
    fn drop(&mut self) {
        let _ = nix::unistd::fchdir(self.cwd.as_fd().as_raw_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_attr_is_empty() {
        assert!(MountAttr::default().is_empty());
        assert!(!MountAttr { set: libc::MOUNT_ATTR_RDONLY, ..Default::default() }.is_empty());
    }
}
