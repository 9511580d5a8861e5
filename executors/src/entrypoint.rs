//! Finding `process.args[0]` inside the container's rootfs.
//!
//! The rules are those of `execvp` and Go's `exec.LookPath`, which runc uses: a
//! name with a `/` is a path (relative to the process's cwd); a bare name is
//! looked up in the container's `PATH` (from `process.env`, never the runtime's
//! own). Every candidate is resolved inside the rootfs, so a symlink in the
//! rootfs cannot lead out of it, and opened with [`open_verified_in_root`]:
//! looked at `O_PATH` first, so that only a regular file is ever opened for
//! reading (a fifo would block the open forever, a device could act on it), and
//! the file opened is the one that was looked at.

use std::fs::File;
use std::path::{Path, PathBuf};

use amphi_runtime::executor::PrepareContext;
use amphi_runtime::inroot::{FileKind, VerifiedOpenError, open_verified_in_root};
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;

/// The PATH used when `process.env` has none (runc's default `spec` PATH).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A resolved entrypoint: its path as the container sees it, and the file open
/// for reading (a regular file, the one the path led to when it was checked).
#[derive(Debug)]
pub struct Entrypoint {
    pub path: PathBuf,
    pub file: File,
}

/// Why the entrypoint could not be found (messages as runc words them).
#[derive(Debug, thiserror::Error)]
pub enum EntrypointError {
    #[error("config.json: process.args is empty")]
    NoArgs,
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotInPath(String),
    #[error("exec: {path:?}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("exec: {0:?}: permission denied")]
    NotExecutable(PathBuf),
    #[error("exec: {0:?}: is a directory")]
    IsDirectory(PathBuf),
    /// A fifo, socket, device or anything else that is not a regular file.
    #[error("exec: {path:?}: not a regular file (a {found})")]
    NotRegular { path: PathBuf, found: String },
    #[error("exec: {0:?}: replaced while it was being opened")]
    Replaced(PathBuf),
}

/// What a candidate file must be for the caller to accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require {
    /// A native program: a regular file with an execute bit.
    Executable,
    /// Any regular file (a wasm module needs no execute bit).
    Readable,
}

/// Resolves `process.args[0]` inside the rootfs of `ctx`.
pub fn resolve(ctx: &PrepareContext<'_>, require: Require) -> Result<Entrypoint, EntrypointError> {
    let args = ctx.process.args().as_deref().unwrap_or_default();
    let name = args.first().filter(|a| !a.is_empty()).ok_or(EntrypointError::NoArgs)?;
    let cwd = ctx.process.cwd();
    if name.contains('/') {
        let path = cwd.join(name);
        return open_candidate(ctx, &path, require);
    }
    let path_var = env_value(ctx.process.env().as_deref().unwrap_or_default(), "PATH").unwrap_or(DEFAULT_PATH);
    // What stood in the way, when nothing is found: a file of the name that
    // is no regular file says more than "not found".
    let mut refused = None;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(dir) };
        let candidate = cwd.join(dir).join(name);
        match open_candidate(ctx, &candidate, require) {
            Ok(found) => return Ok(found),
            Err(e @ (EntrypointError::NotRegular { .. } | EntrypointError::Replaced(_))) => {
                refused.get_or_insert(e);
            }
            // As execvp does, keep looking past what is missing or unusable.
            Err(_) => continue,
        }
    }
    Err(refused.unwrap_or_else(|| EntrypointError::NotInPath(name.clone())))
}

fn open_candidate(ctx: &PrepareContext<'_>, path: &Path, require: Require) -> Result<Entrypoint, EntrypointError> {
    let (fd, kind) = open_regular(ctx, path)?;
    if require == Require::Executable && kind.mode & 0o111 == 0 {
        return Err(EntrypointError::NotExecutable(path.to_owned()));
    }
    Ok(Entrypoint { path: normalize(path), file: File::from(fd) })
}

/// Opens `path` (a path of the container) inside the rootfs for reading, if
/// and only if it is a regular file: anything else fails, unopened, with an
/// error naming the path and what it is.
pub fn open_regular(
    ctx: &PrepareContext<'_>,
    path: &Path,
) -> Result<(std::os::fd::OwnedFd, FileKind), EntrypointError> {
    open_verified_in_root(ctx.rootfs_fd, path, OFlag::O_RDONLY, FileKind::is_regular).map_err(|e| match e {
        VerifiedOpenError::Io(source) => EntrypointError::Open { path: path.to_owned(), source },
        VerifiedOpenError::Refused(kind) if kind.file_type() == SFlag::S_IFDIR => {
            EntrypointError::IsDirectory(path.to_owned())
        }
        VerifiedOpenError::Refused(kind) => {
            EntrypointError::NotRegular { path: path.to_owned(), found: kind.describe() }
        }
        VerifiedOpenError::Replaced => EntrypointError::Replaced(path.to_owned()),
    })
}

/// The value of `key` in a list of `KEY=value` strings (the last one wins, as
/// in a shell).
pub fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|entry| entry.strip_prefix(key)?.strip_prefix('='))
}

/// Drops `.` components so the path execve gets is tidy; `..` is kept (the
/// kernel resolves it inside the new root after pivot_root).
fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_env_entry_wins() {
        let env = vec!["PATH=/a".to_owned(), "X=1".to_owned(), "PATH=/b".to_owned()];
        assert_eq!(env_value(&env, "PATH"), Some("/b"));
        assert_eq!(env_value(&env, "PAT"), None);
        assert_eq!(env_value(&env, "Y"), None);
    }

    #[test]
    fn normalize_drops_dots() {
        assert_eq!(normalize(Path::new("/./bin/./sh")), PathBuf::from("/bin/sh"));
    }
}
