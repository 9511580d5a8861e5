//! `state`: the OCI state of one container.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::{Error, status_of};
use crate::id::ContainerId;
use crate::state::{Record, Status, Store};

/// The runtime-spec state, plus what runc adds (`rootfs`, `created`, `owner`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    /// 0 once the container has stopped (runc reports it so).
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl ContainerState {
    pub fn from_record(record: Record, status: Status) -> Self {
        let pid = if status == Status::Stopped { 0 } else { record.pid };
        Self {
            oci_version: record.oci_version,
            id: record.id,
            status,
            pid,
            bundle: record.bundle,
            rootfs: record.rootfs,
            created: record.created,
            owner: owner_name(record.owner),
            annotations: record.annotations,
        }
    }
}

/// Reads container `id`'s state, with its status taken from the live process.
pub fn state(store: &Store, id: &ContainerId) -> Result<ContainerState, Error> {
    let locked = store.lock(id)?;
    let record = locked.read()?;
    let status = status_of(&record, locked.dir());
    Ok(ContainerState::from_record(record, status))
}

/// The user name for a uid, from /etc/passwd, or the number.
pub(crate) fn owner_name(uid: u32) -> String {
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
