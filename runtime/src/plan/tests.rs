//! [`super::check`]: every section's rules are reached, in a fixed order, and
//! each refusal is one line naming the field.

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use super::check;

/// A spec that passes, with `patch` merged into it (JSON merge; `null` removes a
/// key) so each test states only what it breaks.
fn spec_with(patch: Value) -> Spec {
    let mut base = json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"], "env": ["PATH=/bin"]},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]}
    });
    merge(&mut base, patch);
    serde_json::from_value(base).unwrap()
}

/// Merges `patch` into `base` (a null removes the key): how the spec tests
/// of this crate write a spec as a default one plus a change.
pub(crate) fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// The error for `patch`, checked to be one line naming `field`.
fn refused(patch: Value, field: &str) -> String {
    let err = check(&spec_with(patch)).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with(&format!("config.json: {field}: ")), "expected field {field}: {err}");
    err
}

#[test]
fn good_spec_passes_and_names_its_root() {
    assert_eq!(check(&spec_with(json!({}))).unwrap(), Path::new("rootfs"));
}

#[test]
fn document_fields() {
    refused(json!({"ociVersion": null}), "ociVersion");
    refused(json!({"ociVersion": "2.0.0"}), "ociVersion");
    refused(json!({"root": null}), "root");
    refused(json!({"root": {"path": ""}}), "root.path");
    let err = refused(json!({"process": null}), "process");
    assert!(err.contains("missing"), "{err}");
    refused(json!({"annotations": {"": "x"}}), "annotations");
}

#[test]
fn every_section_is_reached() {
    refused(json!({"process": {"args": []}}), "process.args");
    refused(json!({"process": {"env": ["FOO"]}}), "process.env[0]");
    refused(json!({"linux": {"namespaces": [{"type": "network", "path": "netns/x"}]}}), "linux.namespaces[0].path");
    refused(json!({"linux": {"sysctl": {"kernel.panic": "1"}}}), "linux.sysctl[\"kernel.panic\"]");
    let err = refused(json!({"linux": {"rootfsPropagation": "rshard"}}), "linux.rootfsPropagation");
    assert_eq!(
        err,
        "config.json: linux.rootfsPropagation: unknown propagation \"rshard\" (expected one of shared, slave, \
         private, unbindable, rshared, rslave, rprivate, runbindable)"
    );
    refused(json!({"linux": {"cgroupsPath": "/a/../../b"}}), "linux.cgroupsPath");
    refused(json!({"linux": {"resources": {"memory": {"swappiness": 101}}}}), "linux.resources.memory.swappiness");
    refused(json!({"linux": {"devices": [{"path": "/dev/x", "type": "a"}]}}), "linux.devices[0].type");
    refused(json!({"linux": {"intelRdt": {"closID": "../x"}}}), "linux.intelRdt.closID");
    refused(json!({"hooks": {"createRuntime": [{"path": "hook"}]}}), "hooks.createRuntime[0].path");
    assert!(check(&spec_with(json!({"linux": {"rootfsPropagation": "rslave"}}))).is_ok());
}

#[test]
fn the_first_fault_is_reported_in_section_order() {
    // Each fault alone is refused; together, the earlier section names itself.
    let faults = [
        (json!({"ociVersion": "2.0.0"}), "ociVersion"),
        (json!({"process": {"env": ["FOO"]}}), "process.env[0]"),
        (json!({"linux": {"namespaces": [{"type": "pid", "path": "rel"}]}}), "linux.namespaces[0].path"),
        (json!({"linux": {"sysctl": {"vm.swappiness": "1"}}}), "linux.sysctl[\"vm.swappiness\"]"),
        (json!({"linux": {"rootfsPropagation": "sideways"}}), "linux.rootfsPropagation"),
        (json!({"linux": {"cgroupsPath": "../x"}}), "linux.cgroupsPath"),
        (
            json!({"linux": {"devices": [{"path": "dev/x", "type": "c", "major": 1, "minor": 1}]}}),
            "linux.devices[0].path",
        ),
        (json!({"linux": {"intelRdt": {"closID": "a/b"}}}), "linux.intelRdt.closID"),
        (json!({"hooks": {"poststop": [{"path": "/bin/true", "timeout": 0}]}}), "hooks.poststop[0].timeout"),
        (json!({"annotations": {"": "x"}}), "annotations"),
    ];
    for (n, (_, first)) in faults.iter().enumerate() {
        let mut patch = json!({});
        for (fault, _) in &faults[n..] {
            merge(&mut patch, fault.clone());
        }
        refused(patch, first);
    }
}
