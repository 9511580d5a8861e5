//! A container's OCI state: one shape, [`OciState`] (the runtime-spec `state`),
//! and the JSON each of its readers expects, made from it.
//!
//! | reader | JSON |
//! |---|---|
//! | hooks, on stdin | the runtime-spec state ([`OciState::to_json`]): `pid` absent before the init exists and once it has stopped, `annotations` absent when empty |
//! | `state`, `list --format json`, a seccomp listener | runc's ([`ContainerState`]): the same fields in runc's order, `pid` 0 once stopped, and `rootfs`, `created`, `owner` |
//!
//! containerd's runc shim decodes runc's shape, so its field names and the
//! `pid` of a stopped container stay as runc prints them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::{Record, Status};

/// The runtime-spec state of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    /// The runtime-spec version of the bundle.
    pub oci_version: String,
    /// The container's id.
    pub id: String,
    /// The container's status, read from its live process.
    pub status: Status,
    /// The init's pid in the runtime's pid namespace; None before the init
    /// exists and once it has stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// The spec's annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl OciState {
    /// The state of a recorded container with `status`.
    pub(crate) fn of(record: &Record, status: Status) -> Self {
        Self {
            oci_version: record.oci_version.clone(),
            id: record.id.clone(),
            status,
            pid: (status != Status::Stopped).then_some(record.pid),
            bundle: record.bundle.clone(),
            annotations: record.annotations.clone(),
        }
    }

    /// A state for tests: `creating`, pid 42, one annotation.
    #[cfg(test)]
    pub(crate) fn sample() -> Self {
        Self {
            oci_version: "1.2.1".into(),
            id: "c1".into(),
            status: Status::Creating,
            pid: Some(42),
            bundle: "/b".into(),
            annotations: HashMap::from([("k".into(), "v".into())]),
        }
    }

    /// The runtime-spec JSON, as hooks read it on stdin.
    pub(crate) fn to_json(&self) -> String {
        // A struct of strings, numbers and a string map always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The OCI state with what runc adds: what `state` prints, `list` lists and a
/// seccomp listener receives. Serialized as runc does (the module docs).
#[derive(Debug, Clone)]
pub struct ContainerState {
    /// The runtime-spec state.
    pub state: OciState,
    /// The container's rootfs, absolute.
    pub rootfs: PathBuf,
    /// RFC 3339, when `create` finished.
    pub created: String,
    /// The creator's user name, or its uid where `/etc/passwd` has none.
    pub owner: String,
}

impl ContainerState {
    /// The state of a recorded container with `status`.
    pub(crate) fn of(record: &Record, status: Status) -> Self {
        Self {
            state: OciState::of(record, status),
            rootfs: record.rootfs.clone(),
            created: record.created.clone(),
            owner: owner_name(record.owner),
        }
    }

    /// The pid as runc reports it: 0 once the container has stopped.
    pub fn pid(&self) -> i32 {
        self.state.pid.unwrap_or(0)
    }
}

impl Serialize for ContainerState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RuncState {
            oci_version: &self.state.oci_version,
            id: &self.state.id,
            status: self.state.status,
            pid: self.pid(),
            bundle: &self.state.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.state.annotations,
        }
        .serialize(serializer)
    }
}

/// runc's state JSON, field by field in runc's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuncState<'a> {
    oci_version: &'a str,
    id: &'a str,
    status: Status,
    pid: i32,
    bundle: &'a Path,
    rootfs: &'a Path,
    created: &'a str,
    owner: &'a str,
    #[serde(skip_serializing_if = "no_annotations")]
    annotations: &'a HashMap<String, String>,
}

fn no_annotations(annotations: &&HashMap<String, String>) -> bool {
    annotations.is_empty()
}

/// The user name for a uid, from /etc/passwd, or the number.
fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id.parse() == Ok(uid)).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hooks_state_follows_the_runtime_spec() {
        let json: serde_json::Value = serde_json::from_str(&OciState::sample().to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ociVersion": "1.2.1", "id": "c1", "status": "creating", "pid": 42,
                               "bundle": "/b", "annotations": {"k": "v"}})
        );
        let stopped =
            OciState { pid: None, status: Status::Stopped, annotations: HashMap::new(), ..OciState::sample() };
        let json: serde_json::Value = serde_json::from_str(&stopped.to_json()).unwrap();
        assert!(json.get("pid").is_none() && json.get("annotations").is_none(), "{json}");
    }

    #[test]
    fn the_state_command_prints_runcs_fields_in_runcs_order() {
        let record = Record::sample("c2");
        let running = serde_json::to_string(&ContainerState::of(&record, Status::Running)).unwrap();
        let keys = ["ociVersion", "id", "status", "pid", "bundle", "rootfs", "created", "owner", "annotations"];
        let at: Vec<usize> = keys.iter().map(|k| running.find(&format!("\"{k}\":")).expect(k)).collect();
        assert!(at.is_sorted(), "{running}");
        let json: serde_json::Value = serde_json::from_str(&running).unwrap();
        assert_eq!((&json["pid"], &json["status"]), (&serde_json::json!(42), &serde_json::json!("running")));
        assert_eq!(json["owner"], owner_name(record.owner));
        let stopped = ContainerState::of(&Record { annotations: HashMap::new(), ..record }, Status::Stopped);
        let json = serde_json::to_value(&stopped).unwrap();
        assert_eq!(json["pid"], 0, "runc prints pid 0 once stopped");
        assert!(json.get("annotations").is_none(), "{json}");
    }
}
