//! Paths resolved *inside* a container's rootfs.
//!
//! Every path the runtime creates or opens in a rootfs (mount targets, device
//! nodes, the entrypoint, the cwd) goes through here. Resolution uses `openat2`
//! with `RESOLVE_IN_ROOT`: `..` stops at the root and absolute symlinks are read
//! relative to it, exactly as the container will later see them, so no symlink in
//! the rootfs can lead a mkdir, mknod, open or mount out of it. Creation happens one
//! component at a time with `*at` calls on a directory that was itself resolved in
//! the root.
//!
//! A file that is then *used* (opened for reading, mounted, executed) is first
//! opened `O_PATH`, which has no side effect and cannot block, and looked at
//! ([`FileKind`]: its type, its filesystem); only a file of the kind the caller
//! asked for is opened for real, and only if it is still the same inode
//! ([`open_verified_in_root`]).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statfs::FsType;

/// Opens `path` (absolute or relative, read as relative to `root`) inside `root`
/// with `flags` (`O_CLOEXEC` is always added).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    openat2(root, path, flags, Mode::empty(), libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS)
}

/// What an open file is: its identity, its type and the filesystem it is on
/// (`fstat` and `fstatfs` of a descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    /// The device of the filesystem the file is on (`st_dev`).
    pub dev: u64,
    /// The inode number (`st_ino`).
    pub ino: u64,
    /// The whole `st_mode` (type and permission bits).
    pub mode: u32,
    /// The device number of a device node.
    pub rdev: u64,
    /// The filesystem's magic number (`fstatfs`'s `f_type`).
    pub fs_type: FsType,
}

impl FileKind {
    /// Looks at the open file `fd` (any descriptor, `O_PATH` included).
    pub fn of(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        let fs = nix::sys::statfs::fstatfs(fd)?;
        Ok(Self { dev: st.st_dev, ino: st.st_ino, mode: st.st_mode, rdev: st.st_rdev, fs_type: fs.filesystem_type() })
    }

    /// The file type bits of the mode (`S_IFMT`).
    pub fn file_type(&self) -> SFlag {
        SFlag::from_bits_truncate(self.mode) & SFlag::S_IFMT
    }

    /// Whether it is a regular file.
    pub fn is_regular(&self) -> bool {
        self.file_type() == SFlag::S_IFREG
    }

    /// Whether it is a character device.
    pub fn is_char_device(&self) -> bool {
        self.file_type() == SFlag::S_IFCHR
    }

    /// Whether this is the same file as `other` (same device and inode).
    pub fn same_file(&self, other: &FileKind) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }

    /// The file's type as messages name it: `regular file`, `directory`,
    /// `fifo`, `socket`, `symlink`, `char device 5:2`, `block device 8:0`.
    pub fn describe(&self) -> String {
        let device =
            |kind: &str| format!("{kind} {}:{}", nix::sys::stat::major(self.rdev), nix::sys::stat::minor(self.rdev));
        match self.file_type() {
            SFlag::S_IFREG => "regular file".into(),
            SFlag::S_IFDIR => "directory".into(),
            SFlag::S_IFIFO => "fifo".into(),
            SFlag::S_IFSOCK => "socket".into(),
            SFlag::S_IFLNK => "symlink".into(),
            SFlag::S_IFCHR => device("char device"),
            SFlag::S_IFBLK => device("block device"),
            _ => format!("file of mode {:o}", self.mode),
        }
    }
}

/// Why [`open_verified_in_root`] gave no descriptor.
#[derive(Debug, thiserror::Error)]
pub enum VerifiedOpenError {
    /// A lookup, an open or a look at the file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The file is not of the kind the caller accepts.
    #[error("{}", .0.describe())]
    Refused(FileKind),
    /// The file opened for real is not the one that was looked at.
    #[error("replaced while it was being opened")]
    Replaced,
}

/// Opens `path` inside `root` for real only once it is known to be acceptable:
/// first `O_PATH` (no side effect, no hang on a fifo or a device), `accept`
/// judges what that found, then `flags` (`O_NONBLOCK` and `O_NOCTTY` added for
/// the open itself) and the result must be the same file. `O_NONBLOCK` is
/// cleared afterwards unless `flags` asked for it. Returns the descriptor and
/// what it is.
pub fn open_verified_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    accept: impl Fn(&FileKind) -> bool,
) -> Result<(OwnedFd, FileKind), VerifiedOpenError> {
    let look = open_in_root(root, path, OFlag::O_PATH)?;
    let looked = FileKind::of(look.as_fd())?;
    if !accept(&looked) {
        return Err(VerifiedOpenError::Refused(looked));
    }
    let fd = open_in_root(root, path, flags | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)?;
    let opened = FileKind::of(fd.as_fd())?;
    if !opened.same_file(&looked) {
        return Err(VerifiedOpenError::Replaced);
    }
    if !flags.contains(OFlag::O_NONBLOCK) {
        let status = OFlag::from_bits_retain(
            nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?,
        );
        nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(status - OFlag::O_NONBLOCK))
            .map_err(io::Error::from)?;
    }
    Ok((fd, opened))
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
///
/// The existing part is found from the end: a path whose parent exists costs
/// three calls (open, mkdirat, open).
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> io::Result<OwnedFd> {
    mkdir_all(root, relative(path), mode, 0)
}

fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32, links: usize) -> io::Result<OwnedFd> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open_in_root(root, path, dir_flags) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    // Only a last component that names something can be made (`a/..` cannot).
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let dir = mkdir_all(root, parent, mode, links)?;
    match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    match open_in_root(root, path, dir_flags) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            // `name` exists yet leads nowhere: a dangling symlink. Make its
            // target, read against the root (absolute) or the parent.
            let target = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name).map_err(|_| e)?;
            if links >= MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = Path::new(&target);
            let next = if target.is_absolute() { relative(target).to_path_buf() } else { parent.join(target) };
            mkdir_all(root, &next, mode, links + 1)?;
            open_in_root(root, path, dir_flags)
        }
        other => other,
    }
}

/// As many symlinks as the kernel follows in one lookup (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

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

/// Opens the entry `name` of the directory `dir` without following a symlink
/// there: a new file made with `O_EXCL` (open write-only) when nothing is
/// there, else whatever is there opened `O_PATH | O_NOFOLLOW` (a symlink is
/// opened as itself, for the caller to refuse).
pub fn create_or_open_entry(dir: BorrowedFd<'_>, name: &std::ffi::OsStr, mode: u32) -> io::Result<OwnedFd> {
    let create = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY;
    let fd = match nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        create | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    ) {
        Err(nix::errno::Errno::EEXIST) => {
            let look = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            nix::fcntl::openat(Some(dir.as_raw_fd()), name, look, Mode::empty())?
        }
        other => other?,
    };
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    use super::*;

    fn root_of(dir: &Path) -> OwnedFd {
        std::fs::File::open(dir).map(OwnedFd::from).unwrap()
    }

    #[test]
    fn mkdir_all_makes_missing_parents() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_of(dir.path());
        mkdir_all_in_root(root.as_fd(), Path::new("/a/b/c"), 0o755).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        // Again: already there.
        mkdir_all_in_root(root.as_fd(), Path::new("a/b/c"), 0o755).unwrap();
    }

    #[test]
    fn dangling_symlinks_are_followed_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = format!("/tmp/{}-inroot-outside", dir.path().file_name().unwrap().to_str().unwrap());
        let root = root_of(dir.path());
        symlink(&outside, dir.path().join("abs")).unwrap();
        symlink(format!("../../../../..{outside}-rel"), dir.path().join("rel")).unwrap();
        // A chain: hop -> /abs (-> outside).
        symlink("/abs", dir.path().join("hop")).unwrap();
        mkdir_all_in_root(root.as_fd(), Path::new("/abs/x"), 0o755).unwrap();
        mkdir_all_in_root(root.as_fd(), Path::new("/rel/y"), 0o755).unwrap();
        mkdir_all_in_root(root.as_fd(), Path::new("/hop/z"), 0o755).unwrap();
        let inside = dir.path().join(outside.trim_start_matches('/'));
        assert!(inside.join("x").is_dir() && inside.join("z").is_dir());
        assert!(Path::new(&format!("{}-rel/y", inside.display())).is_dir());
        assert!(!Path::new(&outside).exists() && !Path::new(&format!("{outside}-rel")).exists());
    }

    #[test]
    fn symlink_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_of(dir.path());
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let err = mkdir_all_in_root(root.as_fd(), Path::new("/a/x"), 0o755).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
    }

    #[test]
    fn create_file_makes_a_file_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = root_of(dir.path());
        create_file_in_root(root.as_fd(), Path::new("/etc/hosts"), 0o644).unwrap();
        assert!(dir.path().join("etc/hosts").is_file());
        create_file_in_root(root.as_fd(), Path::new("/etc/hosts"), 0o644).unwrap();
    }
}
