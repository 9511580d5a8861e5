//! OCI images without a registry: the test images that containerd imports
//! (`ctr images import`) so that its tests run amphi as their runtime.
//!
//! An [`Image`] is layers of entries (directories, files, symlinks) and the
//! config a container manager turns into `config.json` (entrypoint, cmd, env,
//! working dir, labels), plus the annotations its manifest carries.
//! [`Image::write_archive`] writes it as an OCI image layout in one tar file:
//! `oci-layout`, `index.json` (naming the image with containerd's
//! `io.containerd.image.name` and the image-spec's
//! `org.opencontainers.image.ref.name`), and under `blobs/sha256/` each layer
//! (an uncompressed tar), the config and the manifest. Every byte is
//! deterministic (entries dated at the epoch, owned by root, JSON with sorted
//! keys), so the same image always has the same digests.
//!
//! [`build_images`] makes the set the manager tests use: a native image (the
//! probe and a busybox shell), a wasm "compat" image (labels and annotations
//! `module.wasm.image/variant=compat`), the same wasm image with no annotation
//! at all (for selection by content), a component image, and a service image
//! (a `wasi:http` component as the entrypoint).

mod tar;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub use tar::Entry;

use crate::{BUSYBOX_APPLETS, PROBE_IN_ROOTFS, install};

/// The annotation and label a wasm "compat" image carries.
pub const WASM_VARIANT: &str = "module.wasm.image/variant";
/// containerd's annotation naming an image in an archive's `index.json`.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
/// The image-spec's annotation naming an image (its tag) in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an image could not be written. Each message names the path or entry.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("tar entry {path}: the path must be relative and not empty")]
    TarPath { path: String },
    #[error("tar entry {path}: the name does not fit a ustar header")]
    TarName { path: String },
    #[error("image {name}: {what}: {source}")]
    Spec { name: String, what: &'static str, source: oci_spec::OciSpecError },
    #[error("image {name}: serialise {what}: {source}")]
    Json { name: String, what: &'static str, source: serde_json::Error },
    #[error("image {name}: the reference has no tag (name:tag)")]
    NoTag { name: String },
    #[error(transparent)]
    Install(#[from] crate::Error),
}

/// One layer: its entries, applied in order over the layers below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    entries: Vec<Entry>,
}

impl Layer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory (mode `mode`) at `path` inside the image.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir { path: relative(path), mode });
        self
    }

    /// A file at `path` holding `contents`.
    pub fn bytes(mut self, path: &str, mode: u32, contents: Vec<u8>) -> Self {
        self.entries.push(Entry::File { path: relative(path), mode, contents });
        self
    }

    /// A file at `path` holding a copy of the host's file `source`.
    pub fn copy(self, path: &str, mode: u32, source: &Path) -> Result<Self, ImageError> {
        let contents =
            std::fs::read(source).map_err(|e| ImageError::Io { action: "read", path: source.to_owned(), source: e })?;
        Ok(self.bytes(path, mode, contents))
    }

    /// A symbolic link at `path` pointing at `target`.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink { path: relative(path), target: target.to_owned() });
        self
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

fn relative(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

/// An image: a name (`host/repo:tag`), layers, and the run config a container
/// manager reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub layers: Vec<Layer>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// The image config's `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// The manifest's `annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// An image written as an OCI layout archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    /// The tar file `ctr images import` takes.
    pub path: PathBuf,
    /// The image's name, as `ctr images ls` lists it after the import.
    pub name: String,
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
}

impl Image {
    /// Writes the image as an OCI layout tar at `path` (atomically; nothing is
    /// written when the file already holds these bytes).
    pub fn write_archive(&self, path: &Path) -> Result<ImageArchive, ImageError> {
        let (bytes, manifest_digest) = self.layout()?;
        install::file(path, &bytes, 0o644)?;
        Ok(ImageArchive { path: path.to_owned(), name: self.name.clone(), manifest_digest })
    }

    /// The archive's bytes and the manifest's digest.
    fn layout(&self) -> Result<(Vec<u8>, String), ImageError> {
        let name = &self.name;
        let tag = name
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map(|(_, tag)| tag.to_owned())
            .ok_or_else(|| ImageError::NoTag { name: name.clone() })?;
        let spec_error = |what| move |source| ImageError::Spec { name: name.clone(), what, source };

        let mut blobs: Vec<Blob> = Vec::new();
        let mut layer_descriptors = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in &self.layers {
            let blob = Blob::new(tar::archive(&layer.entries)?);
            diff_ids.push(blob.digest.clone());
            layer_descriptors.push(blob.descriptor(MediaType::ImageLayer, None).map_err(spec_error("layer"))?);
            blobs.push(blob);
        }

        let mut run = ConfigBuilder::default();
        if !self.entrypoint.is_empty() {
            run = run.entrypoint(self.entrypoint.clone());
        }
        if !self.cmd.is_empty() {
            run = run.cmd(self.cmd.clone());
        }
        if !self.env.is_empty() {
            run = run.env(self.env.clone());
        }
        if let Some(dir) = &self.working_dir {
            run = run.working_dir(dir.clone());
        }
        if !self.labels.is_empty() {
            run = run.labels(hash_map(&self.labels));
        }
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .config(run.build().map_err(spec_error("config"))?)
            .rootfs(RootFsBuilder::default().typ("layers").diff_ids(diff_ids).build().map_err(spec_error("rootfs"))?)
            .build()
            .map_err(spec_error("image config"))?;
        let config_blob = Blob::new(self.json(&config, "image config")?);
        let config_descriptor =
            config_blob.descriptor(MediaType::ImageConfig, None).map_err(spec_error("config descriptor"))?;
        blobs.push(config_blob);

        let mut manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(config_descriptor)
            .layers(layer_descriptors);
        if !self.annotations.is_empty() {
            manifest = manifest.annotations(hash_map(&self.annotations));
        }
        let manifest = manifest.build().map_err(spec_error("manifest"))?;
        let manifest_blob = Blob::new(self.json(&manifest, "manifest")?);
        let names = BTreeMap::from([(CONTAINERD_IMAGE_NAME.to_owned(), name.clone()), (REF_NAME.to_owned(), tag)]);
        let mut manifest_descriptor =
            manifest_blob.descriptor(MediaType::ImageManifest, Some(&names)).map_err(spec_error("index entry"))?;
        manifest_descriptor.set_platform(Some(
            PlatformBuilder::default()
                .architecture(Arch::Amd64)
                .os(Os::Linux)
                .build()
                .map_err(spec_error("platform"))?,
        ));
        let manifest_digest = manifest_blob.digest.clone();
        blobs.push(manifest_blob);

        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![manifest_descriptor])
            .build()
            .map_err(spec_error("index"))?;

        let mut entries = vec![
            Entry::File {
                path: "oci-layout".into(),
                mode: 0o644,
                contents: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            },
            Entry::File { path: "index.json".into(), mode: 0o644, contents: self.json(&index, "index")? },
            Entry::Dir { path: "blobs/".into(), mode: 0o755 },
            Entry::Dir { path: "blobs/sha256/".into(), mode: 0o755 },
        ];
        let mut seen = std::collections::BTreeSet::new();
        for blob in blobs {
            // Two layers with the same content are one blob.
            if seen.insert(blob.digest.clone()) {
                let hex = blob.digest.trim_start_matches("sha256:").to_owned();
                entries.push(Entry::File { path: format!("blobs/sha256/{hex}"), mode: 0o644, contents: blob.bytes });
            }
        }
        Ok((tar::archive(&entries)?, manifest_digest))
    }

    /// `value` as JSON with sorted keys (through `serde_json::Value`, whose maps
    /// are ordered), so that hash maps in the typed structs cannot reorder it.
    fn json(&self, value: &impl Serialize, what: &'static str) -> Result<Vec<u8>, ImageError> {
        let json_error = |source| ImageError::Json { name: self.name.clone(), what, source };
        let value = serde_json::to_value(value).map_err(json_error)?;
        serde_json::to_vec(&value).map_err(json_error)
    }
}

fn hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A blob and its `sha256:` digest.
struct Blob {
    bytes: Vec<u8>,
    digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Self {
        let digest = format!("sha256:{}", hex(&Sha256::digest(&bytes)));
        Self { bytes, digest }
    }

    fn descriptor(
        &self,
        media_type: MediaType,
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Descriptor, oci_spec::OciSpecError> {
        let digest: oci_spec::image::Digest = self.digest.parse()?;
        let mut builder =
            DescriptorBuilder::default().media_type(media_type).digest(digest).size(self.bytes.len() as u64);
        if let Some(annotations) = annotations {
            builder = builder.annotations(hash_map(annotations));
        }
        builder.build()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the test images find their files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSources {
    /// The static `amphi-probe`.
    pub probe: PathBuf,
    /// A static busybox (Debian's `busybox-static`: `/bin/busybox`).
    pub busybox: PathBuf,
    /// The directory of built wasm fixtures (`amphi_wasm_fixtures::dir()`).
    pub wasm: PathBuf,
}

impl ImageSources {
    /// The probe at `probe`, the host's busybox and the built wasm fixtures.
    pub fn with_probe(probe: PathBuf) -> Self {
        Self { probe, busybox: PathBuf::from(crate::HOST_BUSYBOX), wasm: amphi_wasm_fixtures::dir() }
    }
}

/// The images [`build_images`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImages {
    /// `amphi.test/native:latest`: busybox with its applets in `/bin`, the probe
    /// at `/bin/amphi-probe`, wasm tools in `/wasm/` (`hello.wasm`,
    /// `exit-code.wasm`), `/etc/passwd`; cmd `/bin/amphi-probe`.
    pub native: ImageArchive,
    /// `amphi.test/wasm-compat:latest`: the wasm files in `/` (see
    /// [`WASM_FILES`]) and busybox (`/bin/busybox`, `sh`, `echo`, `cat`,
    /// `sleep`) for native execs; entrypoint `/hello.wasm`; label and manifest
    /// annotation `module.wasm.image/variant=compat`.
    pub wasm_compat: ImageArchive,
    /// `amphi.test/wasm-plain:latest`: the same layer and entrypoint, no label
    /// and no annotation.
    pub wasm_plain: ImageArchive,
    /// `amphi.test/component:latest`: `/hello-component.wasm` (the entrypoint)
    /// and `/exit-with-code-component.wasm`.
    pub component: ImageArchive,
    /// `amphi.test/pause:latest`: a pod sandbox image, the probe alone waiting
    /// for a signal (`/bin/amphi-probe --no-report --wait-signal`).
    pub pause: ImageArchive,
    /// `amphi.test/wasm-service:latest`: `/hello-service.wasm` (the
    /// entrypoint), a `wasi:http` service that amphi serves on
    /// `WASMTIME_HTTP_PROXY_SOCKET_ADDR`, which the image leaves unset (the
    /// default, `0.0.0.0:8080`).
    pub service: ImageArchive,
}

impl TestImages {
    pub fn all(&self) -> [&ImageArchive; 6] {
        [&self.native, &self.wasm_compat, &self.wasm_plain, &self.component, &self.pause, &self.service]
    }
}

/// The wasm fixtures the wasm images hold at `/`.
pub const WASM_FILES: &[&str] = &[
    "hello.wasm",
    "hello.wat",
    "loop-forever.wasm",
    "exit-code.wasm",
    "proc-exit.wasm",
    "probe.wasm",
    "no-start.wasm",
    "missing-import.wasm",
    "cat.wasm",
];

/// The busybox applets the wasm images link in `/bin` (for native execs).
pub const WASM_IMAGE_APPLETS: &[&str] = &["sh", "echo", "cat", "sleep", "ls"];

/// Writes the test images as `<out>/<name>.tar`.
pub fn build_images(out: &Path, sources: &ImageSources) -> Result<TestImages, ImageError> {
    install::dir(out, 0o755)?;
    let env = vec!["PATH=/bin".to_owned()];

    let mut busybox = Layer::new().dir("bin", 0o755).copy("bin/busybox", 0o755, &sources.busybox)?;
    for applet in BUSYBOX_APPLETS {
        busybox = busybox.symlink(&format!("bin/{applet}"), "busybox");
    }
    let busybox = busybox
        .dir("etc", 0o755)
        .bytes("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n".to_vec())
        .bytes("etc/group", 0o644, b"root:x:0:\n".to_vec())
        .dir("tmp", 0o1777);
    let tools = Layer::new()
        .dir("bin", 0o755)
        .copy(PROBE_IN_ROOTFS, 0o755, &sources.probe)?
        .dir("wasm", 0o755)
        .copy("wasm/hello.wasm", 0o644, &sources.wasm.join("hello.wasm"))?
        .copy("wasm/exit-code.wasm", 0o644, &sources.wasm.join("exit-code.wasm"))?;
    let native = Image {
        name: "amphi.test/native:latest".into(),
        layers: vec![busybox, tools],
        cmd: vec![PROBE_IN_ROOTFS.into()],
        env: env.clone(),
        ..Image::default()
    };

    let mut wasm_layer = Layer::new().dir("bin", 0o755).copy("bin/busybox", 0o755, &sources.busybox)?;
    for applet in WASM_IMAGE_APPLETS {
        wasm_layer = wasm_layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    wasm_layer = wasm_layer.dir("tmp", 0o1777);
    for file in WASM_FILES {
        wasm_layer = wasm_layer.copy(file, 0o644, &sources.wasm.join(file))?;
    }
    let compat = BTreeMap::from([(WASM_VARIANT.to_owned(), "compat".to_owned())]);
    let wasm_compat = Image {
        name: "amphi.test/wasm-compat:latest".into(),
        layers: vec![wasm_layer.clone()],
        entrypoint: vec!["/hello.wasm".into()],
        env: env.clone(),
        labels: compat.clone(),
        annotations: compat,
        ..Image::default()
    };
    let wasm_plain = Image { name: "amphi.test/wasm-plain:latest".into(), ..wasm_compat.clone() };
    let wasm_plain = Image { labels: BTreeMap::new(), annotations: BTreeMap::new(), ..wasm_plain };

    let component_layer = Layer::new()
        .copy("hello-component.wasm", 0o644, &sources.wasm.join("hello-component.wasm"))?
        .copy("exit-with-code-component.wasm", 0o644, &sources.wasm.join("exit-with-code-component.wasm"))?;
    let component = Image {
        name: "amphi.test/component:latest".into(),
        layers: vec![component_layer],
        entrypoint: vec!["/hello-component.wasm".into()],
        env: env.clone(),
        ..Image::default()
    };

    let service = Image {
        name: "amphi.test/wasm-service:latest".into(),
        layers: vec![Layer::new().copy("hello-service.wasm", 0o644, &sources.wasm.join("hello-service.wasm"))?],
        entrypoint: vec!["/hello-service.wasm".into()],
        env,
        ..Image::default()
    };

    let pause = Image {
        name: "amphi.test/pause:latest".into(),
        layers: vec![Layer::new().dir("bin", 0o755).copy(PROBE_IN_ROOTFS, 0o755, &sources.probe)?],
        entrypoint: vec![PROBE_IN_ROOTFS.into(), "--no-report".into(), "--wait-signal".into()],
        ..Image::default()
    };

    Ok(TestImages {
        native: native.write_archive(&out.join("native.tar"))?,
        wasm_compat: wasm_compat.write_archive(&out.join("wasm-compat.tar"))?,
        wasm_plain: wasm_plain.write_archive(&out.join("wasm-plain.tar"))?,
        component: component.write_archive(&out.join("component.tar"))?,
        pause: pause.write_archive(&out.join("pause.tar"))?,
        service: service.write_archive(&out.join("wasm-service.tar"))?,
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use serde_json::Value;

    use super::*;

    fn sample() -> Image {
        Image {
            name: "amphi.test/sample:v1".into(),
            layers: vec![
                Layer::new().dir("bin", 0o755).bytes("bin/hello", 0o755, b"#!/bin/sh\necho hi\n".to_vec()),
                Layer::new().symlink("bin/hi", "hello"),
            ],
            entrypoint: vec!["/bin/hello".into()],
            cmd: vec!["--loud".into()],
            env: vec!["PATH=/bin".into()],
            working_dir: Some("/".into()),
            labels: BTreeMap::from([(WASM_VARIANT.into(), "compat".into())]),
            annotations: BTreeMap::from([(WASM_VARIANT.into(), "compat".into())]),
        }
    }

    /// Unpacks the archive with the system tar and returns the layout dir.
    fn unpack(archive: &Path, into: &Path) -> PathBuf {
        let dir = into.join("layout");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let status = Command::new("tar").arg("-xf").arg(archive).arg("-C").arg(&dir).status().expect("tar");
        assert!(status.success());
        dir
    }

    fn blob(layout: &Path, digest: &str) -> Vec<u8> {
        let bytes = std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:")))
            .unwrap_or_else(|e| panic!("blob {digest}: {e}"));
        assert_eq!(format!("sha256:{}", hex(&Sha256::digest(&bytes))), digest, "the blob matches its digest");
        bytes
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("json")
    }

    #[test]
    fn an_archive_is_an_oci_layout_whose_blobs_match_their_digests() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let archive = sample().write_archive(&tmp.path().join("sample.tar")).expect("write");
        assert_eq!(archive.name, "amphi.test/sample:v1");
        let layout = unpack(&archive.path, tmp.path());
        assert_eq!(json(&std::fs::read(layout.join("oci-layout")).expect("oci-layout"))["imageLayoutVersion"], "1.0.0");

        let index = json(&std::fs::read(layout.join("index.json")).expect("index.json"));
        assert_eq!(index["schemaVersion"], 2);
        let entry = &index["manifests"][0];
        assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(entry["digest"], archive.manifest_digest.as_str());
        assert_eq!(entry["annotations"][CONTAINERD_IMAGE_NAME], "amphi.test/sample:v1");
        assert_eq!(entry["annotations"][REF_NAME], "v1");
        assert_eq!(entry["platform"]["os"], "linux");

        let manifest_bytes = blob(&layout, &archive.manifest_digest);
        assert_eq!(entry["size"], manifest_bytes.len());
        let manifest = json(&manifest_bytes);
        assert_eq!(manifest["annotations"][WASM_VARIANT], "compat");
        assert_eq!(manifest["layers"].as_array().expect("layers").len(), 2);
        let config = json(&blob(&layout, manifest["config"]["digest"].as_str().expect("config digest")));
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
        assert_eq!(config["config"]["Entrypoint"][0], "/bin/hello");
        assert_eq!(config["config"]["Cmd"][0], "--loud");
        assert_eq!(config["config"]["Labels"][WASM_VARIANT], "compat");
        assert_eq!(config["architecture"], "amd64");

        // An uncompressed layer's diff id is its own digest; the first layer
        // holds the script.
        for (n, layer) in manifest["layers"].as_array().expect("layers").iter().enumerate() {
            assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
            assert_eq!(config["rootfs"]["diff_ids"][n], layer["digest"]);
        }
        let first = layout.join("first.tar");
        std::fs::write(&first, blob(&layout, manifest["layers"][0]["digest"].as_str().expect("digest"))).expect("w");
        let listing = Command::new("tar").arg("-tvf").arg(&first).output().expect("tar -t");
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("rwxr-xr-x root/root") && listing.contains("bin/hello"), "{listing}");
    }

    #[test]
    fn the_same_image_makes_the_same_digest_and_a_change_a_new_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let first = sample().write_archive(&tmp.path().join("a.tar")).expect("write");
        let second = sample().write_archive(&tmp.path().join("b.tar")).expect("write");
        assert_eq!(first.manifest_digest, second.manifest_digest);
        assert_eq!(std::fs::read(&first.path).expect("a"), std::fs::read(&second.path).expect("b"));
        let changed = Image { cmd: vec!["--quiet".into()], ..sample() };
        let third = changed.write_archive(&tmp.path().join("c.tar")).expect("write");
        assert_ne!(first.manifest_digest, third.manifest_digest);
    }

    #[test]
    fn an_image_name_needs_a_tag() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let image = Image { name: "localhost:5000/sample".into(), ..sample() };
        let error = image.write_archive(&tmp.path().join("x.tar")).expect_err("no tag");
        assert_eq!(error.to_string(), "image localhost:5000/sample: the reference has no tag (name:tag)");
        assert!(!tmp.path().join("x.tar").exists());
    }

    #[test]
    fn a_missing_source_file_is_named() {
        let error = Layer::new().copy("bin/x", 0o755, Path::new("/nonexistent/x")).expect_err("missing");
        assert!(error.to_string().starts_with("read /nonexistent/x: "), "{error}");
    }
}
