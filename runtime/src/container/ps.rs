//! `ps`: the processes of a container, as host pids from its cgroup.

use super::Error;
use crate::id::ContainerId;
use crate::state::{Store, Verb};

/// The host pids of every process in container `id`'s cgroup (and the cgroups
/// below it), sorted: what `ps --format json` prints and containerd reads.
pub fn ps(store: &Store, id: &ContainerId) -> Result<Vec<i32>, Error> {
    // Any status: a stopped container whose cgroup is still there lists what
    // is left in it (nothing, or the processes of a shared pid namespace).
    let opened = store.open(id, Verb::Ps)?;
    let pids = opened.cgroup(Verb::Ps)?.pids()?;
    Ok(pids.into_iter().map(|p| p.as_raw()).collect())
}
