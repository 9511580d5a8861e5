//! A bundle on disk, and cheap variants of it.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::Value;

use crate::{Error, install};

/// An OCI bundle directory: a `config.json` and the rootfs its `root.path` names
/// (relative to the bundle, or absolute for a variant that shares another
/// bundle's rootfs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    dir: PathBuf,
    rootfs: PathBuf,
}

impl Bundle {
    /// Opens the bundle at `dir`, reading its `config.json` to find the rootfs.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let dir =
            std::path::absolute(dir).map_err(|source| Error::Io { action: "resolve", path: dir.into(), source })?;
        let config = read_config(&dir.join("config.json"))?;
        let rootfs = rootfs_of(&dir, &config)?;
        Ok(Self { dir, rootfs })
    }

    /// The bundle directory (absolute): what `amphi create --bundle` takes.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The rootfs directory (absolute), possibly shared with other bundles.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The config as JSON.
    pub fn config(&self) -> Result<Value, Error> {
        read_config(&self.config_path())
    }

    /// The config as an OCI spec.
    pub fn spec(&self) -> Result<Spec, Error> {
        let path = self.config_path();
        serde_json::from_value(self.config()?).map_err(|source| Error::Json { path, source })
    }

    /// A new bundle at `dir` whose config is this one's changed by `edit`, sharing
    /// this bundle's rootfs: `root.path` is set to the rootfs's absolute path before
    /// `edit` runs, so only `config.json` is written. An `edit` that changes
    /// `root.path` gets the rootfs it names (relative to `dir`). Writing the same
    /// variant again is a no-op.
    ///
    /// ```no_run
    /// # fn f(bundles: amphi_test_bundles::Bundles, tmp: &std::path::Path) -> Result<(), amphi_test_bundles::Error> {
    /// let sleeper = bundles.probe.variant(&tmp.join("sleeper"), |config| {
    ///     config["process"]["args"] = serde_json::json!(["/bin/amphi-probe", "--sleep", "0"]);
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn variant(&self, dir: &Path, edit: impl FnOnce(&mut Value)) -> Result<Bundle, Error> {
        let mut config = self.config()?;
        config["root"]["path"] = Value::String(self.rootfs.to_string_lossy().into_owned());
        edit(&mut config);
        write_bundle(dir, &config)
    }

    /// [`Bundle::variant`] with the config as an OCI spec, for edits that are easier
    /// typed.
    pub fn variant_spec(&self, dir: &Path, edit: impl FnOnce(&mut Spec)) -> Result<Bundle, Error> {
        let mut spec = self.spec()?;
        if let Some(root) = spec.root_mut() {
            root.set_path(self.rootfs.clone());
        }
        edit(&mut spec);
        let config =
            serde_json::to_value(&spec).map_err(|source| Error::Json { path: dir.join("config.json"), source })?;
        write_bundle(dir, &config)
    }
}

/// Writes `config` as `<dir>/config.json` (creating `dir`) and opens the bundle.
/// The capability sets are sorted first, so that the same config always makes
/// the same file.
pub(crate) fn write_bundle(dir: &Path, config: &Value) -> Result<Bundle, Error> {
    install::dir(dir, 0o755)?;
    let path = dir.join("config.json");
    let mut config = config.clone();
    amphi_runtime::default_spec::sort_capabilities(&mut config);
    let mut text = serde_json::to_vec_pretty(&config).map_err(|source| Error::Json { path: path.clone(), source })?;
    text.push(b'\n');
    install::file(&path, &text, 0o644)?;
    Bundle::open(dir)
}

fn read_config(path: &Path) -> Result<Value, Error> {
    let text = fs::read(path).map_err(|source| Error::Io { action: "read", path: path.to_owned(), source })?;
    serde_json::from_slice(&text).map_err(|source| Error::Json { path: path.to_owned(), source })
}

fn rootfs_of(dir: &Path, config: &Value) -> Result<PathBuf, Error> {
    let root = config
        .pointer("/root/path")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::NoRoot { path: dir.join("config.json") })?;
    Ok(dir.join(root))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn open_refuses_a_config_without_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("config.json"), b"{}").expect("write");
        let error = Bundle::open(tmp.path()).expect_err("no root");
        assert_eq!(error.to_string(), format!("{}/config.json: root.path is missing", tmp.path().display()));
    }
}
