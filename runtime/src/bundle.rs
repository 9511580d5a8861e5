//! Loading a bundle: `config.json` and the rootfs it names.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// Why a bundle was refused. Each message names the file or field.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("config.json: {field}: {reason}")]
    Field { field: String, reason: String },
}

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    pub spec: Spec,
    /// `root.path` resolved against the bundle directory.
    pub rootfs: PathBuf,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let dir = std::path::absolute(dir).map_err(|source| BundleError::Dir { path: dir.to_owned(), source })?;
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| BundleError::Read { path: path.clone(), source })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let spec: Spec = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| BundleError::Parse { path: path.clone(), msg: e.to_string() })?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| BundleError::Field { field: "root".into(), reason: "missing".into() })?;
        let rootfs = dir.join(root.path());
        Ok(Self { dir, spec, rootfs })
    }
}
