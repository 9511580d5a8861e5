//! Paths resolved *inside* a container's rootfs.
//!
//! Every path the runtime creates or opens in a rootfs (mount targets, device
//! nodes, the entrypoint, the cwd) goes through here. Resolution uses `openat2`
//! with `RESOLVE_IN_ROOT`: `..` stops at the root and absolute symlinks are read
//! relative to it, exactly as the container will later see them, so no symlink in
//! the rootfs can lead a mkdir, mknod, open or mount out of it. Creation happens one
//! component at a time with `*at` calls on a directory that was itself resolved in
//! the root.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Opens `path` (absolute or relative, read as relative to `root`) inside `root`
/// with `flags` (`O_CLOEXEC` is always added).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    openat2(root, path, flags, Mode::empty(), libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS)
}

/// `openat2(2)` with the given resolve flags.
pub fn openat2(dir: BorrowedFd<'_>, path: &Path, flags: OFlag, mode: Mode, resolve: u64) -> io::Result<OwnedFd> {
    let rel = relative(path);
    let cpath = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let flags = flags | OFlag::O_CLOEXEC;
    let mut how: libc::open_how =
        // SAFETY: open_how is a plain C struct of integers; all-zero is a valid value.
        unsafe { std::mem::zeroed() };
    how.flags = flags.bits() as u64;
    how.mode = if flags.intersects(OFlag::O_CREAT | OFlag::O_TMPFILE) { mode.bits() as u64 } else { 0 };
    how.resolve = resolve;
    loop {
        // SAFETY: cpath is a valid NUL-terminated string and `how` a valid open_how
        // whose size we pass; both outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                cpath.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if ret >= 0 {
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) });
        }
        let err = io::Error::last_os_error();
        // EAGAIN: a concurrent rename raced with a RESOLVE_IN_ROOT lookup; retry.
        if err.raw_os_error() != Some(libc::EAGAIN) {
            return Err(err);
        }
    }
}

/// Makes every missing directory of `path` inside `root` (like `mkdir -p`) and
/// returns the last one opened `O_PATH`. Each prefix is resolved from the root with
/// `RESOLVE_IN_ROOT` (so `/var/run -> /run` style symlinks work as they will in the
/// container) and each missing component is made with `mkdirat` on the directory
/// that prefix resolved to, which cannot follow a symlink. A dangling symlink on
/// the way is followed inside the root: its target is made there, as the
/// container would see it.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    // The common case: the directory is already there.
    match open_in_root(root, path, dir_flags) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let mut pending: std::collections::VecDeque<OsString> = components(relative(path)).collect();
    let mut prefix = PathBuf::new();
    let mut current = open_in_root(root, Path::new("."), dir_flags)?;
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        let candidate = prefix.join(&name);
        match open_in_root(root, &candidate, dir_flags) {
            Ok(fd) => {
                (current, prefix) = (fd, candidate);
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && name != ".." => {}
            Err(e) => return Err(e),
        }
        match nix::sys::stat::mkdirat(Some(current.as_raw_fd()), name.as_os_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        match open_in_root(root, &candidate, dir_flags) {
            Ok(fd) => (current, prefix) = (fd, candidate),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // `name` exists yet leads nowhere: a dangling symlink. Go on from
                // its target, read against the root (absolute) or `prefix`.
                let target = nix::fcntl::readlinkat(Some(current.as_raw_fd()), name.as_os_str()).map_err(|_| e)?;
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    prefix = PathBuf::new();
                    current = open_in_root(root, Path::new("."), dir_flags)?;
                }
                for (i, c) in components(&target).enumerate() {
                    pending.insert(i, c);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(current)
}

/// As many symlinks as the kernel follows in one lookup (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// The names of `path` to walk: normal components and `..`.
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
    })
}

/// Makes sure a regular file exists at `path` inside `root` (its parent
/// directories are made as needed) and returns it opened `O_PATH`: the target of a
/// bind mount whose source is a file.
pub fn create_file_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    let (parent, name) = split_parent(path)?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    match nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    ) {
        // SAFETY: openat returned a fresh descriptor that nothing else owns.
        Ok(fd) => drop(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_in_root(root, path, OFlag::O_PATH)
}

/// Splits `path` into its parent and final name; the final name must be a normal
/// component (not `/`, `.` or `..`).
pub fn split_parent(path: &Path) -> io::Result<(&Path, &std::ffi::OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok((parent, name)),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} names no file", path.display()))),
    }
}

/// The path of an open descriptor as `mount(2)` and friends can use it.
pub fn proc_fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() { Path::new(".") } else { rel }
}
