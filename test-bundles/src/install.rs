//! Putting files in place idempotently and atomically.
//!
//! Bundles are built once per test run but possibly by several test processes at
//! once, and a rootfs may be in use by a running container while it is refreshed.
//! So nothing is written in place: a file is written next to its destination
//! under a unique temporary name and renamed over it, and nothing is written at
//! all when the destination is already what it should be.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// A name next to `dest` that no other process or thread uses.
fn temporary_name(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_owned(), source }
}

/// Renames `tmp` over `dest`, removing `tmp` if that fails.
fn replace(tmp: &Path, dest: &Path) -> Result<(), Error> {
    fs::rename(tmp, dest).map_err(|source| {
        let _ = fs::remove_file(tmp);
        Error::Io { action: "rename into place", path: dest.to_owned(), source }
    })
}

/// Creates `path` and its parents, and gives `path` the permission bits `mode`.
pub fn dir(path: &Path, mode: u32) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(io_error("create directory", path))?;
    let meta = fs::metadata(path).map_err(io_error("stat", path))?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_error("chmod", path))?;
    }
    Ok(())
}

/// Copies `src` to `dest` with permission bits `mode`, unless `dest` already has
/// the same size, modification time and mode. The copy carries `src`'s
/// modification time, which is what makes the next call a no-op. Returns whether
/// it copied.
pub fn copy(src: &Path, dest: &Path, mode: u32) -> Result<bool, Error> {
    let src_meta = fs::metadata(src).map_err(io_error("stat", src))?;
    let modified = src_meta.modified().map_err(io_error("stat", src))?;
    if let Ok(dest_meta) = fs::symlink_metadata(dest)
        && dest_meta.is_file()
        && dest_meta.len() == src_meta.len()
        && dest_meta.modified().ok() == Some(modified)
        && dest_meta.permissions().mode() & 0o7777 == mode
    {
        return Ok(false);
    }
    let tmp = temporary_name(dest);
    let copied = (|| {
        fs::copy(src, &tmp)?;
        let file = File::options().write(true).open(&tmp)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.set_modified(modified)?;
        file.sync_all()
    })();
    if let Err(source) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Copy { from: src.to_owned(), to: dest.to_owned(), source });
    }
    replace(&tmp, dest)?;
    Ok(true)
}

/// Writes `content` to `path` with permission bits `mode`, unless it already
/// holds exactly that.
pub fn file(path: &Path, content: &[u8], mode: u32) -> Result<(), Error> {
    if let Ok(meta) = fs::symlink_metadata(path)
        && meta.is_file()
        && meta.permissions().mode() & 0o7777 == mode
        && fs::read(path).is_ok_and(|old| old == content)
    {
        return Ok(());
    }
    let tmp = temporary_name(path);
    let written = fs::write(&tmp, content).and_then(|()| fs::set_permissions(&tmp, Permissions::from_mode(mode)));
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Io { action: "write", path: path.to_owned(), source });
    }
    replace(&tmp, path)
}

/// Makes `link` a symlink to `target`, unless it already is one.
pub fn link(target: &Path, link: &Path) -> Result<(), Error> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let tmp = temporary_name(link);
    symlink(target, &tmp).map_err(io_error("create symlink", link))?;
    replace(&tmp, link)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn inode(path: &Path) -> u64 {
        fs::symlink_metadata(path).expect("stat").ino()
    }

    #[test]
    fn copy_skips_an_up_to_date_file_and_redoes_a_changed_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        let dest = tmp.path().join("dest");
        fs::write(&src, b"one").expect("write src");
        assert!(copy(&src, &dest, 0o755).expect("first copy"));
        assert_eq!(fs::read(&dest).expect("read"), b"one");
        assert_eq!(fs::metadata(&dest).expect("stat").permissions().mode() & 0o7777, 0o755);
        let first = inode(&dest);

        assert!(!copy(&src, &dest, 0o755).expect("second copy"));
        assert_eq!(inode(&dest), first, "an up-to-date file is left alone");

        fs::write(&src, b"two!").expect("rewrite src");
        assert!(copy(&src, &dest, 0o755).expect("third copy"));
        assert_eq!(fs::read(&dest).expect("read"), b"two!");
        assert!(copy(&src, &dest, 0o700).expect("mode change copies"));
        let names: Vec<_> = fs::read_dir(tmp.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file left behind: {names:?}");
    }

    #[test]
    fn copy_of_a_missing_source_names_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let error = copy(&tmp.path().join("nope"), &tmp.path().join("dest"), 0o644).expect_err("fails");
        assert!(error.to_string().starts_with(&format!("stat {}/nope: ", tmp.path().display())), "{error}");
    }

    #[test]
    fn file_and_link_are_idempotent_and_replace_what_differs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("f");
        file(&path, b"a", 0o644).expect("write");
        let first = inode(&path);
        file(&path, b"a", 0o644).expect("rewrite same");
        assert_eq!(inode(&path), first);
        file(&path, b"b", 0o644).expect("rewrite different");
        assert_eq!(fs::read(&path).expect("read"), b"b");

        let l = tmp.path().join("l");
        link(Path::new("f"), &l).expect("link");
        let first = inode(&l);
        link(Path::new("f"), &l).expect("link again");
        assert_eq!(inode(&l), first);
        link(Path::new("g"), &l).expect("relink");
        assert_eq!(fs::read_link(&l).expect("readlink"), Path::new("g"));
    }

    #[test]
    fn dir_sets_the_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("a/tmp");
        dir(&path, 0o1777).expect("dir");
        assert_eq!(fs::metadata(&path).expect("stat").permissions().mode() & 0o7777, 0o1777);
        dir(&path, 0o1777).expect("dir again");
    }
}
