//! What a container's `state.json` holds: everything a later command needs to find
//! and clean up the container without reading the bundle again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The stored record of one container. The status is not stored: it is derived from
/// the live process whenever the record is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    /// The init's pid in the host pid namespace.
    pub pid: i32,
    /// The init's start time (`/proc/<pid>/stat` field 22): a process found at
    /// `pid` with another start time is not the init but a reuse of its pid.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// RFC 3339, when `create` finished.
    pub created: String,
    /// The cgroup path relative to each hierarchy's root (`linux.cgroupsPath` or
    /// the default derived from the id). Read through [`Record::cgroup`].
    pub cgroup_path: PathBuf,
    /// The hierarchies in which `create` made the cgroup's directory (a v1
    /// hierarchy's controllers, or `unified`); the others existed, empty, and
    /// are left when the container goes. A later command believes this only
    /// where the directory's own mark agrees ([`crate::cgroups::ownership`]).
    #[serde(default)]
    pub cgroup_created: Vec<String>,
    /// Whether the container has a pid namespace of its own: when it does not,
    /// the init's death does not end the other processes, and `kill --all` and
    /// `delete` must reach them through the cgroup.
    #[serde(default)]
    pub own_pid_namespace: bool,
    /// Which executor runs the workload (`native`, `wasm`).
    #[serde(default)]
    pub executor: String,
    /// The uid that created the container (the OWNER column of `list`).
    #[serde(default)]
    pub owner: u32,
    /// Set by `pause`, cleared by `resume` (both under the container's lock).
    #[serde(default)]
    pub paused: bool,
    /// The spec's `poststart` and `poststop` hooks, which `start` and `delete`
    /// run (the other kinds run during `create` and in the init).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Set when `create` made no cgroup (rootless without a writable one): the
    /// container runs in its creator's cgroup, and no verb may act on
    /// `cgroup_path` ([`Record::cgroup`] is None).
    #[serde(default)]
    pub cgroup_skipped: bool,
    /// For a workload that runs inside the init (wasm): the number of the
    /// init's descriptor of the container's mount namespace (the init itself
    /// lives in the guest's view, which has no procfs). `exec` takes a copy
    /// through the init's pidfd and joins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_view_fd: Option<i32>,
}

/// The cgroup a record gives its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedCgroup<'a> {
    /// Relative to each hierarchy's root.
    pub path: &'a Path,
    /// The hierarchies whose directory `create` made.
    pub created: &'a [String],
}

impl Record {
    /// The container's own cgroup, as recorded; None when `create` made none
    /// (rootless without a writable cgroup). The one place a verb learns
    /// whether it may act on a cgroup, and on which.
    pub fn cgroup(&self) -> Option<RecordedCgroup<'_>> {
        (!self.cgroup_skipped).then_some(RecordedCgroup { path: &self.cgroup_path, created: &self.cgroup_created })
    }

    /// A record for tests.
    #[cfg(test)]
    pub fn sample(id: &str) -> Self {
        Self {
            oci_version: "1.2.0".into(),
            id: id.into(),
            pid: 42,
            start_time: 7,
            bundle: "/bundle".into(),
            rootfs: "/bundle/rootfs".into(),
            annotations: HashMap::from([("a".into(), "b".into())]),
            created: "2026-11-29T05:30:21.000000000Z".into(),
            cgroup_path: "/amphi/x".into(),
            cgroup_created: vec!["memory".into(), "unified".into()],
            own_pid_namespace: true,
            executor: "native".into(),
            owner: 0,
            paused: false,
            hooks: None,
            cgroup_skipped: false,
            container_view_fd: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_cgroup_is_none() {
        let record = Record::sample("c");
        let cgroup = record.cgroup().unwrap();
        assert_eq!(
            (cgroup.path, cgroup.created),
            (Path::new("/amphi/x"), &["memory".to_owned(), "unified".to_owned()][..])
        );
        assert_eq!(Record { cgroup_skipped: true, ..record }.cgroup(), None);
    }
}
