//! Loading a bundle: `config.json` and the rootfs it names.
//!
//! [`Bundle::load`] is the first thing `create` and `run` do, and it must refuse
//! every bundle that could be refused before a side effect, with one line that
//! names the file or the field at fault. This module does the I/O and asks the
//! host; the spec's rules are [`crate::plan`]'s. It works in three steps:
//!
//! 1. `parse`: read `config.json` once and deserialize it with plain
//!    `serde_json`. Only when that fails is it parsed again with
//!    `serde_path_to_error`, so the good path pays nothing for error paths, and a
//!    bad value is named by its JSON path with a short human reason.
//! 2. [`crate::plan::check`]: the spec's rules that need nothing but the spec
//!    (versions, required fields, values that the kernel would refuse later with
//!    a bare `EINVAL`, runc's sysctl rule), each owned by the plan module of its
//!    section. No syscalls.
//! 3. `host`: the few checks that must look at the host: the rootfs directory,
//!    namespace files to join, kernel and LSM support for what the spec asks. A
//!    typical bundle costs one `stat` here.
//!
//! What [`crate::plan::ContainerPlan::new`] checks when `create` builds the plan
//! (duplicate namespaces, id mappings, rlimit limits, hostname without a UTS
//! namespace, a relative cwd, bind-mount sources) is not checked here.

mod host;
mod parse;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

pub(crate) use host::open_namespace;

use crate::plan::{self, SpecError};

/// Why a bundle was refused. Each message is one line and names the file or field.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle directory cannot be used (it does not exist, is not a directory).
    #[error("bundle directory {}: {}", Shown(path), Errno(err))]
    Dir {
        /// The bundle directory.
        path: PathBuf,
        /// Why it cannot be used.
        err: io::Error,
    },
    /// `config.json` could not be opened or read; `op` is `open` or `read`.
    #[error("{op} {}: {}", Shown(path), Errno(err))]
    Io {
        /// The operation that failed: `open` or `read`.
        op: &'static str,
        /// The `config.json` path.
        path: PathBuf,
        /// Why it failed.
        err: io::Error,
    },
    /// `config.json` is empty.
    #[error("{}: the file is empty", Shown(path))]
    Empty {
        /// The `config.json` path.
        path: PathBuf,
    },
    /// `config.json` is not JSON (malformed or truncated).
    #[error("{}: line {line}, column {column}: {msg}", Shown(path))]
    Syntax {
        /// The `config.json` path.
        path: PathBuf,
        /// The line of the fault, from 1.
        line: usize,
        /// The column of the fault, from 1.
        column: usize,
        /// The parser's description of the fault.
        msg: String,
    },
    /// A field of `config.json`, named by its JSON path, is missing or wrong
    /// (the spec's rules, a value of the wrong type, what the host lacks).
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl BundleError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Spec(SpecError::new(field, reason))
    }
}

/// A path in a one-line message: as it is, or quoted and escaped when it holds a
/// control character, so that a newline in a path cannot split the line.
struct Shown<'a>(&'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string_lossy();
        if text.chars().any(char::is_control) { write!(f, "{text:?}") } else { f.write_str(&text) }
    }
}

/// An `io::Error` as a short lowercase reason: `no such file or directory`, not
/// `No such file or directory (os error 2)`.
struct Errno<'a>(&'a io::Error);

impl fmt::Display for Errno<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.raw_os_error() {
            Some(code) => {
                let desc = nix::errno::Errno::from_raw(code).desc();
                let mut chars = desc.chars();
                if let Some(first) = chars.next() {
                    write!(f, "{}", first.to_ascii_lowercase())?;
                }
                f.write_str(chars.as_str())
            }
            None => write!(f, "{}", self.0),
        }
    }
}

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The parsed and checked `config.json`.
    pub spec: Spec,
    /// `root.path` resolved against the bundle directory (absolute).
    pub rootfs: PathBuf,
}

/// Most `config.json` files fit, so reading one takes a single `read` and the EOF.
const READ_CAPACITY: usize = 16 * 1024;

impl Bundle {
    /// Loads `dir/config.json` and checks everything that can be checked before
    /// the container is made.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let dir = std::path::absolute(dir).map_err(|err| BundleError::Dir { path: dir.to_owned(), err })?;
        let path = dir.join("config.json");
        let bytes = read_config(&dir, &path)?;
        let spec = parse::spec(&path, &bytes)?;
        let root = plan::check(&spec)?;
        // `absolute` of an absolute path is lexical: it drops `.` components
        // without a syscall, so `./rootfs` reads as `/bundle/rootfs`.
        let rootfs = std::path::absolute(dir.join(root)).map_err(|err| BundleError::Dir { path: dir.clone(), err })?;
        host::check(&spec, &rootfs, &host::Host::REAL)?;
        Ok(Self { dir, spec, rootfs })
    }
}

fn read_config(dir: &Path, path: &Path) -> Result<Vec<u8>, BundleError> {
    let mut file = File::open(path).map_err(|err| {
        // Only on failure: say whether the bundle or the file is missing.
        match std::fs::metadata(dir) {
            Err(dir_err) => BundleError::Dir { path: dir.to_owned(), err: dir_err },
            Ok(meta) if !meta.is_dir() => {
                BundleError::Dir { path: dir.to_owned(), err: io::Error::from_raw_os_error(libc::ENOTDIR) }
            }
            Ok(_) => BundleError::Io { op: "open", path: path.to_owned(), err },
        }
    })?;
    let mut bytes = Vec::with_capacity(READ_CAPACITY);
    file.read_to_end(&mut bytes).map_err(|err| BundleError::Io { op: "read", path: path.to_owned(), err })?;
    Ok(bytes)
}
