//! A container's directory under the state root, and the names of the files in
//! it: the one place they are written down.

use std::path::{Path, PathBuf};

/// The record ([`super::Record`]), replaced atomically.
const RECORD: &str = "state.json";
/// Where the record is written before it is renamed into place.
const RECORD_TMP: &str = ".state.json.tmp";
/// The bundle's config as `create` found it: what `exec` builds processes from
/// and what the cgroup checks derive paths from, whatever happens to the bundle.
const CONFIG: &str = "config.json";
/// The start barrier's fifo ([`crate::process::barrier`]): there while the
/// container is `created`.
const BARRIER: &str = "exec.fifo";

/// A container's directory, `<root>/<id>`. Holding one says nothing about its
/// existence or its lock: [`super::Locked`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDir {
    path: PathBuf,
}

impl ContainerDir {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `state.json`, the record.
    pub fn record(&self) -> PathBuf {
        self.path.join(RECORD)
    }

    pub(super) fn record_tmp(&self) -> PathBuf {
        self.path.join(RECORD_TMP)
    }

    /// `config.json`, the copy of the bundle's config made at create.
    pub fn config(&self) -> PathBuf {
        self.path.join(CONFIG)
    }

    /// `exec.fifo`, the start barrier.
    pub fn barrier(&self) -> PathBuf {
        self.path.join(BARRIER)
    }

    /// The container's mark on its cgroup ([`crate::cgroups::ownership`]): this
    /// directory's absolute path.
    pub fn mark(&self) -> String {
        std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone()).to_string_lossy().into_owned()
    }
}
