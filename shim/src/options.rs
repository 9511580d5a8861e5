//! The shim's settings for a task, from the runtime options containerd
//! attaches to `Create`:
//! - containerd's runc shim options (`containerd.runc.v1.Options`, what
//!   `ctr --runc-root`/`--runc-systemd-cgroup` and a CRI handler of a runc
//!   type send): `Root` and `SystemdCgroup` are taken, `BinaryName` is
//!   ignored (this shim runs no binary per call);
//! - the generic options (`runtimeoptions.v1.Options`, what a CRI handler of
//!   this runtime type and `ctr --runtime-config-path` send): `ConfigPath`
//!   names a TOML file with the keys of [`Settings`].
//!
//! Without options the defaults hold. The runtime state of namespace `ns`
//! lives in `<root>/<ns>`, as containerd's runc shim keeps runc's.

use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{CodedInputStream, Message};
use serde::Deserialize;

use crate::error::{Result, ShimError};

/// The default state root (the namespace is added below it).
pub const DEFAULT_ROOT: &str = "/run/containerd/amphi";
/// The default wasm compile cache (root's, as for the `amphi` command).
pub const DEFAULT_CACHE: &str = "/var/lib/amphi/cache";

/// A task's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The runtime's state root; the namespace is added below it.
    pub root: PathBuf,
    /// `linux.cgroupsPath` is `slice:prefix:name` (systemd's form).
    pub systemd_cgroup: bool,
    /// The wasm compile cache; empty: none.
    pub cache_dir: PathBuf,
    /// The shim's log level (`error`, `warn`, `info`, `debug`, `trace`).
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            root: PathBuf::from(DEFAULT_ROOT),
            systemd_cgroup: false,
            cache_dir: PathBuf::from(DEFAULT_CACHE),
            log_level: "info".into(),
        }
    }
}

impl Settings {
    /// The settings `options` carry (the defaults without any).
    pub fn from_options(options: Option<&Any>) -> Result<Self> {
        let Some(any) = options.filter(|a| !a.type_url.is_empty()) else { return Ok(Self::default()) };
        if any.type_url.ends_with("containerd.runc.v1.Options") {
            let runc = containerd_shim::api::Options::parse_from_bytes(&any.value)
                .map_err(|e| ShimError::InvalidArgument(format!("options: not runc options: {e}")))?;
            let mut settings = Self { systemd_cgroup: runc.systemd_cgroup, ..Self::default() };
            if !runc.root.is_empty() {
                settings.root = PathBuf::from(runc.root);
            }
            return Ok(settings);
        }
        if any.type_url.ends_with("runtimeoptions.v1.Options") {
            let path = config_path(&any.value)?;
            return match path {
                Some(path) => Self::load(Path::new(&path)),
                None => Ok(Self::default()),
            };
        }
        Err(ShimError::InvalidArgument(format!("options: type {:?} is not one this shim reads", any.type_url)))
    }

    /// Reads a settings file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ShimError::InvalidArgument(format!("options ConfigPath {}: {e}", path.display())))?;
        Self::parse(&text)
            .map_err(|e| ShimError::InvalidArgument(format!("options ConfigPath {}: {e}", path.display())))
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        let settings: Self = toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        if !settings.root.is_absolute() {
            return Err(format!("root {:?}: not an absolute path", settings.root));
        }
        if !settings.cache_dir.as_os_str().is_empty() && !settings.cache_dir.is_absolute() {
            return Err(format!("cache_dir {:?}: not an absolute path", settings.cache_dir));
        }
        Ok(settings)
    }

    /// The runtime's state root for `namespace`.
    pub fn root_of(&self, namespace: &str) -> PathBuf {
        self.root.join(namespace)
    }

    /// The wasm cache, if any.
    pub fn cache(&self) -> Option<PathBuf> {
        (!self.cache_dir.as_os_str().is_empty()).then(|| self.cache_dir.clone())
    }
}

/// `ConfigPath` (field 2) of a `runtimeoptions.v1.Options` message.
fn config_path(bytes: &[u8]) -> Result<Option<String>> {
    let bad = |e: &dyn std::fmt::Display| ShimError::InvalidArgument(format!("options: not runtime options: {e}"));
    let mut input = CodedInputStream::from_bytes(bytes);
    let mut path = None;
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(|e| bad(&e))? {
        let (field, wire) = (tag >> 3, tag & 7);
        match (field, wire) {
            (2, 2) => path = Some(input.read_string().map_err(|e| bad(&e))?),
            (_, 0) => drop(input.read_raw_varint64().map_err(|e| bad(&e))?),
            (_, 2) => drop(input.read_bytes().map_err(|e| bad(&e))?),
            (_, 1) => drop(input.read_raw_little_endian64().map_err(|e| bad(&e))?),
            (_, 5) => drop(input.read_raw_little_endian32().map_err(|e| bad(&e))?),
            _ => return Err(bad(&format!("wire type {wire} of field {field}"))),
        }
    }
    Ok(path.filter(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use containerd_shim::protos::protobuf::CodedOutputStream;

    use super::*;

    #[test]
    fn a_settings_file_names_its_keys() {
        let s = Settings::parse("root = \"/run/x\"\nsystemd_cgroup = true\ncache_dir = \"\"\n").unwrap();
        assert_eq!(s.root, PathBuf::from("/run/x"));
        assert!(s.systemd_cgroup);
        assert_eq!(s.cache(), None);
        assert_eq!(s.log_level, "info");
        assert!(Settings::parse("rot = \"/x\"").unwrap_err().contains("rot"));
        assert!(Settings::parse("root = \"x\"").unwrap_err().contains("root"));
    }

    #[test]
    fn runc_options_give_root_and_systemd() {
        let runc = containerd_shim::api::Options {
            root: "/r".into(),
            systemd_cgroup: true,
            binary_name: "ignored".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: runc.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let s = Settings::from_options(Some(&any)).unwrap();
        assert_eq!(s.root_of("k8s.io"), PathBuf::from("/r/k8s.io"));
        assert!(s.systemd_cgroup);
    }

    #[test]
    fn runtime_options_name_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shim.toml");
        std::fs::write(&file, "root = \"/run/y\"\n").unwrap();
        let mut bytes = Vec::new();
        {
            let mut out = CodedOutputStream::vec(&mut bytes);
            out.write_string(1, "x").unwrap();
            out.write_string(2, file.to_str().unwrap()).unwrap();
            out.flush().unwrap();
        }
        let any = Any { type_url: "runtimeoptions.v1.Options".into(), value: bytes, ..Default::default() };
        assert_eq!(Settings::from_options(Some(&any)).unwrap().root, PathBuf::from("/run/y"));
        let other = Any { type_url: "x.Options".into(), value: vec![], ..Default::default() };
        assert!(Settings::from_options(Some(&other)).unwrap_err().to_string().contains("x.Options"));
    }
}
