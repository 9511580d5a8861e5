//! Bundles for the benchmark harness (`amphi-bench`): a rootfs holding a few given
//! files (a wasm module, a host program), with the host's `/usr` bound in when the
//! program is a dynamically linked host binary.
//!
//! The busybox workloads (`/bin/true`, `echo`, `sleep`) are [`Bundle::variant`]s
//! of the busybox bundle; this module makes the ones that need other files.

use std::path::Path;

use serde_json::{Value, json};

use crate::assemble::skeleton;
use crate::bundle::write_bundle;
use crate::{Bundle, Error, install};

/// The annotation that marks a bundle as wasm for every wasm-aware runtime
/// (crun's and youki's wasm handlers read it, and amphi does).
pub const WASM_VARIANT_ANNOTATION: (&str, &str) = ("module.wasm.image/variant", "compat");

/// What goes into a bench bundle.
#[derive(Debug, Clone, Copy)]
pub struct FilesBundle<'a> {
    /// `(host file, absolute path in the rootfs)`: each is copied in, mode 0755.
    pub files: &'a [(&'a Path, &'a str)],
    /// `process.args`.
    pub args: &'a [&'a str],
    /// Annotations added to the config.
    pub annotations: &'a [(&'a str, &'a str)],
    /// Bind the host's `/usr` read-only at `/usr`, with `/lib` and `/lib64` as
    /// symlinks into it (Debian's merged /usr): what a dynamically linked host
    /// program needs to run.
    pub host_usr: bool,
    /// The hostname.
    pub hostname: &'a str,
}

/// Builds the bundle at `dir`: the usual skeleton (`bin`, `proc`, `dev`, `sys`,
/// `tmp`), the files, and `amphi spec`'s default config with no terminal and
/// the args, annotations and mounts asked for. Quick when nothing changed.
pub fn build_files(dir: &Path, bundle: &FilesBundle<'_>) -> Result<Bundle, Error> {
    let rootfs = dir.join("rootfs");
    skeleton(&rootfs)?;
    for (host, inside) in bundle.files {
        let dest = rootfs.join(inside.trim_start_matches('/'));
        if let Some(parent) = dest.parent() {
            install::dir(parent, 0o755)?;
        }
        install::copy(host, &dest, 0o755)?;
    }
    let mut config = crate::assemble::config(bundle.args, bundle.hostname)?;
    if !bundle.annotations.is_empty() {
        let annotations: serde_json::Map<String, Value> =
            bundle.annotations.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        config["annotations"] = Value::Object(annotations);
    }
    if bundle.host_usr {
        install::dir(&rootfs.join("usr"), 0o755)?;
        install::link(Path::new("usr/lib"), &rootfs.join("lib"))?;
        install::link(Path::new("usr/lib64"), &rootfs.join("lib64"))?;
        let usr = json!({
            "destination": "/usr",
            "type": "bind",
            "source": "/usr",
            "options": ["rbind", "ro", "nosuid", "nodev"],
        });
        match config["mounts"].as_array_mut() {
            Some(mounts) => mounts.push(usr),
            None => config["mounts"] = json!([usr]),
        }
    }
    write_bundle(dir, &config)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn files_bundle_has_its_files_annotations_and_usr() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let module = tmp.path().join("hello.wasm");
        fs::write(&module, b"\0asm\x01\0\0\0").expect("write module");
        let bundle = build_files(
            &tmp.path().join("wasm"),
            &FilesBundle {
                files: &[(&module, "/hello.wasm")],
                args: &["/hello.wasm"],
                annotations: &[WASM_VARIANT_ANNOTATION],
                host_usr: true,
                hostname: "bench",
            },
        )
        .expect("build");
        assert_eq!(fs::read(bundle.rootfs().join("hello.wasm")).expect("copied"), b"\0asm\x01\0\0\0");
        assert_eq!(fs::read_link(bundle.rootfs().join("lib")).expect("lib link"), Path::new("usr/lib"));
        let config = bundle.config().expect("config");
        assert_eq!(config["process"]["args"], json!(["/hello.wasm"]));
        assert_eq!(config["annotations"]["module.wasm.image/variant"], "compat");
        let mounts = config["mounts"].as_array().expect("mounts");
        assert!(mounts.iter().any(|m| m["destination"] == "/usr" && m["source"] == "/usr"), "{mounts:?}");
        let loaded = amphi_runtime::Bundle::load(bundle.dir()).expect("amphi loads the bundle");
        assert_eq!(loaded.rootfs, bundle.rootfs());
    }

    #[test]
    fn files_bundle_without_usr_binds_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let module = tmp.path().join("m.wasm");
        fs::write(&module, b"\0asm").expect("write module");
        let bundle = build_files(
            &tmp.path().join("b"),
            &FilesBundle {
                files: &[(&module, "/app/m.wasm")],
                args: &["/app/m.wasm"],
                annotations: &[],
                host_usr: false,
                hostname: "bench",
            },
        )
        .expect("build");
        assert!(bundle.rootfs().join("app/m.wasm").is_file());
        assert!(!bundle.rootfs().join("usr").exists());
        let config = bundle.config().expect("config");
        assert!(config.get("annotations").is_none());
        let mounts = config["mounts"].as_array().expect("mounts");
        assert!(mounts.iter().all(|m| m["destination"] != "/usr"));
    }
}
