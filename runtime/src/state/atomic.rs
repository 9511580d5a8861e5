//! Replacing a file atomically: written whole under a temporary name in the same
//! directory, then renamed over the target, so a reader sees the old file or the
//! new one, never a part. No `fsync`: the default state root is a tmpfs
//! (`/run`), and neither a record nor a pid file outlives its containers, which
//! a crash of the machine ends.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How the temporary file may be found before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tmp {
    /// A name only one writer uses at a time (under the container's lock): one
    /// left over by a writer that died is truncated and reused.
    Reused,
    /// A name unique to this process in a directory others may write: it must
    /// not exist (a file or link planted there is refused, never written
    /// through).
    Fresh,
}

/// Writes `bytes` to `tmp` (created with `mode`), then renames it to `path`.
/// When the write or the rename fails, the temporary file is removed again.
pub(crate) fn replace(path: &Path, tmp: &Path, kind: Tmp, mode: u32, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).mode(mode).custom_flags(libc::O_CLOEXEC);
    match kind {
        Tmp::Reused => options.create(true).truncate(true),
        Tmp::Fresh => options.create_new(true),
    };
    let mut file = options.open(tmp)?;
    let written = file.write_all(bytes).and_then(|()| fs::rename(tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_the_target_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tmp) = (dir.path().join("f"), dir.path().join(".f.tmp"));
        fs::write(&path, b"old").unwrap();
        replace(&path, &tmp, Tmp::Fresh, 0o640, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(!tmp.exists());
    }

    #[test]
    fn a_fresh_tmp_refuses_what_is_there_and_a_reused_one_overwrites_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tmp) = (dir.path().join("f"), dir.path().join(".f.tmp"));
        fs::write(&tmp, b"left over").unwrap();
        let err = replace(&path, &tmp, Tmp::Fresh, 0o600, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&tmp).unwrap(), b"left over", "not ours: left as it was");
        assert!(!path.exists());
        replace(&path, &tmp, Tmp::Reused, 0o600, b"x").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn a_failed_rename_removes_the_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tmp) = (dir.path().join("a-dir"), dir.path().join(".f.tmp"));
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"").unwrap();
        assert!(replace(&path, &tmp, Tmp::Reused, 0o600, b"x").is_err());
        assert!(!tmp.exists());
    }
}
