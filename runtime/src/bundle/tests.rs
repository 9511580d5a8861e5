//! `Bundle::load` on real bundle directories: every refusal is one line that names
//! the file or the field.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::plan::ContainerPlan;
use crate::plan::tests::merge;

/// `config.json` as `runc spec` (1.1) writes it: a typical bundle.
const RUNC_SPEC: &str = include_str!("testdata/runc-spec.json");

struct TestBundle {
    dir: tempfile::TempDir,
}

impl TestBundle {
    /// A bundle with `config.json` = `json` and an empty `rootfs/`.
    fn new(json: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        Self { dir }
    }

    /// The runc spec with `patch` merged in (`null` removes a key).
    fn patched(patch: Value) -> Self {
        let mut spec: Value = serde_json::from_str(RUNC_SPEC).unwrap();
        merge(&mut spec, patch);
        Self::new(&spec.to_string())
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn error(&self) -> String {
        let err = Bundle::load(self.path()).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        err
    }

    /// Asserts that loading fails on `field` and returns the message.
    fn refused(&self, field: &str) -> String {
        let err = self.error();
        assert!(err.starts_with(&format!("config.json: {field}: ")), "expected field {field}: {err}");
        err
    }
}

#[test]
fn runc_spec_bundle_loads() {
    let b = TestBundle::new(RUNC_SPEC);
    let bundle = Bundle::load(b.path()).unwrap();
    assert_eq!(bundle.dir, b.path());
    assert_eq!(bundle.rootfs, b.path().join("rootfs"));
    assert_eq!(bundle.spec.process().as_ref().unwrap().args().as_deref(), Some(&["sh".to_string()][..]));
    // And the plan accepts what the bundle accepted.
    ContainerPlan::new(&bundle.spec, bundle.dir.clone(), bundle.rootfs.clone(), PathBuf::from("/amphi/x"), false)
        .unwrap();
}

#[test]
fn relative_bundle_dir_becomes_absolute() {
    let b = TestBundle::new(RUNC_SPEC);
    // The bundle as a path relative to the cwd, without changing the cwd (tests
    // run in parallel threads of one process).
    let cwd = std::env::current_dir().unwrap();
    let mut rel = PathBuf::new();
    for _ in cwd.components().skip(1) {
        rel.push("..");
    }
    rel.push(b.path().strip_prefix("/").unwrap());
    let bundle = Bundle::load(&rel).unwrap();
    assert!(bundle.dir.is_absolute(), "{}", bundle.dir.display());
    assert!(bundle.rootfs.is_absolute(), "{}", bundle.rootfs.display());
    assert_eq!(std::fs::canonicalize(&bundle.rootfs).unwrap(), std::fs::canonicalize(b.path().join("rootfs")).unwrap());
}

#[test]
fn root_path_is_read_against_the_bundle_dir() {
    let b = TestBundle::patched(json!({"root": {"path": "./rootfs"}}));
    assert_eq!(Bundle::load(b.path()).unwrap().rootfs, b.path().join("rootfs"));
    let elsewhere = tempfile::tempdir().unwrap();
    let b = TestBundle::patched(json!({"root": {"path": elsewhere.path()}}));
    assert_eq!(Bundle::load(b.path()).unwrap().rootfs, elsewhere.path());
}

#[test]
fn missing_bundle_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Bundle::load(&missing).unwrap_err().to_string();
    assert_eq!(err, format!("bundle directory {}: no such file or directory", missing.display()));
}

#[test]
fn bundle_dir_that_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = Bundle::load(&file).unwrap_err().to_string();
    assert_eq!(err, format!("bundle directory {}: not a directory", file.display()));
}

#[test]
fn missing_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let err = Bundle::load(dir.path()).unwrap_err().to_string();
    assert_eq!(err, format!("open {}: no such file or directory", dir.path().join("config.json").display()));
}

#[test]
fn config_json_that_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config.json")).unwrap();
    let err = Bundle::load(dir.path()).unwrap_err().to_string();
    assert_eq!(err, format!("read {}: is a directory", dir.path().join("config.json").display()));
}

#[test]
fn truncated_config_json_names_the_file_and_position() {
    // Cut the runc spec in the middle of its mounts.
    let cut = RUNC_SPEC.find("\"/dev/pts\"").unwrap();
    let b = TestBundle::new(&RUNC_SPEC[..cut]);
    let err = b.error();
    let line = RUNC_SPEC[..cut].lines().count();
    let file = b.path().join("config.json");
    assert!(err.starts_with(&format!("{}: line {line}, column ", file.display())), "{err}");
    assert!(err.contains("unexpected end of file"), "{err}");
}

#[test]
fn malformed_config_json_names_the_file_and_position() {
    let b = TestBundle::new(&RUNC_SPEC.replacen("\"terminal\": true,", "\"terminal\": true,,", 1));
    let err = b.error();
    assert_eq!(err, format!("{}: line 4, column 20: key must be a string", b.path().join("config.json").display()));
}

#[test]
fn empty_config_json() {
    let b = TestBundle::new("");
    assert_eq!(b.error(), format!("{}: the file is empty", b.path().join("config.json").display()));
}

#[test]
fn missing_oci_version() {
    TestBundle::patched(json!({"ociVersion": null})).refused("ociVersion");
}

#[test]
fn oci_version_not_semver() {
    let err = TestBundle::patched(json!({"ociVersion": "1.0"})).refused("ociVersion");
    assert!(err.contains("\"1.0\" is not a semantic version"), "{err}");
}

#[test]
fn oci_version_major_not_1() {
    let err = TestBundle::patched(json!({"ociVersion": "2.0.0"})).refused("ociVersion");
    assert!(err.contains("\"2.0.0\""), "{err}");
}

#[test]
fn missing_process() {
    TestBundle::patched(json!({"process": null})).refused("process");
}

#[test]
fn missing_root() {
    TestBundle::patched(json!({"root": null})).refused("root");
}

#[test]
fn missing_root_path() {
    TestBundle::patched(json!({"root": {"path": null}})).refused("root.path");
}

#[test]
fn missing_process_user() {
    let err = TestBundle::patched(json!({"process": {"user": null}})).refused("process.user");
    assert!(err.ends_with(": missing"), "{err}");
}

#[test]
fn relative_cwd_is_refused_by_the_plan() {
    // ContainerPlan::new owns this check; it runs right after load in create.
    let b = TestBundle::patched(json!({"process": {"cwd": "work"}}));
    let bundle = Bundle::load(b.path()).unwrap();
    let err = ContainerPlan::new(&bundle.spec, bundle.dir, bundle.rootfs, PathBuf::from("/amphi/x"), false)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "config.json: process.cwd: \"work\" is not an absolute path");
}

#[test]
fn empty_args() {
    let err = TestBundle::patched(json!({"process": {"args": []}})).refused("process.args");
    assert!(err.ends_with("must not be empty"), "{err}");
}

#[test]
fn unknown_namespace_type() {
    let err = TestBundle::patched(json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "nett"}]}}))
        .refused("linux.namespaces[1].type");
    assert!(err.contains("unknown namespace type \"nett\""), "{err}");
}

#[test]
fn namespace_path_that_does_not_exist() {
    let err = TestBundle::patched(
        json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": "/proc/0/ns/net"}]}}),
    )
    .refused("linux.namespaces[1].path");
    assert!(err.ends_with("/proc/0/ns/net does not exist"), "{err}");
}

#[test]
fn namespace_path_that_is_not_a_namespace() {
    let plain = tempfile::NamedTempFile::new().unwrap();
    let err = TestBundle::patched(
        json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": plain.path()}]}}),
    )
    .refused("linux.namespaces[1].path");
    assert!(err.ends_with(&format!("{} is not a namespace file", plain.path().display())), "{err}");
}

#[test]
fn namespace_path_of_the_wrong_type() {
    let err = TestBundle::patched(
        json!({"linux": {"namespaces": [{"type": "mount"}, {"type": "uts", "path": "/proc/self/ns/net"}]}}),
    )
    .refused("linux.namespaces[1].path");
    assert!(err.contains("is a \"net\" namespace, not \"uts\""), "{err}");
}

#[test]
fn missing_rootfs_names_the_path() {
    let b = TestBundle::patched(json!({"root": {"path": "nothere"}}));
    let err = b.refused("root.path");
    assert_eq!(err, format!("config.json: root.path: rootfs {} does not exist", b.path().join("nothere").display()));
}

#[test]
fn rootfs_that_is_not_a_directory() {
    let b = TestBundle::patched(json!({"root": {"path": "config.json"}}));
    let err = b.refused("root.path");
    assert!(err.ends_with("config.json is not a directory"), "{err}");
}

#[test]
fn unknown_rlimit_type() {
    let b = TestBundle::patched(json!({"process": {"rlimits": [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]}}));
    assert_eq!(b.error(), r#"config.json: process.rlimits[0].type: unknown rlimit type "RLIMIT_FOO""#);
}

#[test]
fn unknown_capability() {
    let b = TestBundle::patched(json!({"process": {"capabilities": {"effective": ["CAP_KILL", "CAP_TELEPORT"]}}}));
    assert_eq!(b.error(), r#"config.json: process.capabilities.effective[1]: unknown capability "CAP_TELEPORT""#);
}

#[test]
fn env_without_equals() {
    let err = TestBundle::patched(json!({"process": {"env": ["PATH=/bin", "TERM"]}})).refused("process.env[1]");
    assert!(err.contains("\"TERM\""), "{err}");
}

#[test]
fn sysctl_not_namespaced() {
    let err = TestBundle::patched(json!({"linux": {"sysctl": {"vm.swappiness": "10"}}}))
        .refused("linux.sysctl[\"vm.swappiness\"]");
    assert!(err.contains("not namespaced"), "{err}");
}

#[test]
fn net_sysctl_without_network_namespace() {
    let b = TestBundle::patched(json!({"linux": {
        "namespaces": [{"type": "pid"}, {"type": "mount"}],
        "sysctl": {"net.ipv4.ip_forward": "1"}
    }}));
    b.refused("linux.sysctl[\"net.ipv4.ip_forward\"]");
}

#[test]
fn resources_oddity() {
    let b = TestBundle::patched(json!({"linux": {"resources": {"memory": {"limit": 1048576, "swap": 1024}}}}));
    b.refused("linux.resources.memory.swap");
}

#[test]
fn every_error_is_one_line_even_with_newlines_in_values() {
    let err = TestBundle::patched(json!({"process": {"env": ["A\nB"]}})).refused("process.env[0]");
    assert!(err.contains("\\n"), "{err}");
}

/// How long `Bundle::load` of the runc spec takes, for the report:
/// `cargo test -p amphi-runtime load_timing -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
#[expect(clippy::print_stderr, reason = "the measurement is the output")]
fn load_timing() {
    let b = TestBundle::new(RUNC_SPEC);
    let runs = 20_000u32;
    for _ in 0..1000 {
        Bundle::load(b.path()).unwrap();
    }
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(Bundle::load(b.path()).unwrap());
    }
    let load = start.elapsed() / runs;
    let bytes = std::fs::read(b.path().join("config.json")).unwrap();
    let start = std::time::Instant::now();
    for _ in 0..runs {
        std::hint::black_box(serde_json::from_slice::<oci_spec::runtime::Spec>(&bytes).unwrap());
    }
    let parse = start.elapsed() / runs;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        std::hint::black_box(serde_path_to_error::deserialize::<_, oci_spec::runtime::Spec>(&mut de).unwrap());
    }
    let tracked = start.elapsed() / runs;
    eprintln!(
        "Bundle::load of the runc spec: {load:?}; of which plain parse {parse:?} (path-tracked parse would be {tracked:?})"
    );
}
