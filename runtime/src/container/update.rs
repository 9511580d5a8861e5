//! `update`: new `linux.resources` for a live container.

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::Error;
use crate::id::ContainerId;
use crate::state::{Store, Verb};

/// runc's `update` flags, each overriding one field of the resources read from
/// `--resources` (memory values in bytes, `-1` for unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFlags {
    /// `--memory`.
    pub memory: Option<i64>,
    /// `--memory-swap`.
    pub memory_swap: Option<i64>,
    /// `--memory-reservation`.
    pub memory_reservation: Option<i64>,
    /// `--cpu-share`.
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota` (microseconds per period).
    pub cpu_quota: Option<i64>,
    /// `--cpu-period` (microseconds).
    pub cpu_period: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight`.
    pub blkio_weight: Option<u16>,
}

impl ResourceFlags {
    /// Writes every flag that is set into `resources`, leaving the rest alone.
    pub fn apply_to(&self, resources: &mut LinuxResources) {
        if self.memory.is_some() || self.memory_swap.is_some() || self.memory_reservation.is_some() {
            let mut memory = resources.memory().unwrap_or_default();
            set(&mut memory, self.memory, LinuxMemory::set_limit);
            set(&mut memory, self.memory_swap, LinuxMemory::set_swap);
            set(&mut memory, self.memory_reservation, LinuxMemory::set_reservation);
            resources.set_memory(Some(memory));
        }
        if self.cpu_shares.is_some()
            || self.cpu_quota.is_some()
            || self.cpu_period.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
        {
            let mut cpu = resources.cpu().clone().unwrap_or_default();
            set(&mut cpu, self.cpu_shares, LinuxCpu::set_shares);
            set(&mut cpu, self.cpu_quota, LinuxCpu::set_quota);
            set(&mut cpu, self.cpu_period, LinuxCpu::set_period);
            set(&mut cpu, self.cpuset_cpus.clone(), LinuxCpu::set_cpus);
            set(&mut cpu, self.cpuset_mems.clone(), LinuxCpu::set_mems);
            resources.set_cpu(Some(cpu));
        }
        if let Some(limit) = self.pids_limit {
            let mut pids = LinuxPids::default();
            pids.set_limit(limit);
            resources.set_pids(Some(pids));
        }
        if let Some(weight) = self.blkio_weight {
            let mut block_io = resources.block_io().clone().unwrap_or_default();
            block_io.set_weight(Some(weight));
            resources.set_block_io(Some(block_io));
        }
    }
}

/// Sets one optional field when the flag is given.
fn set<S, T>(target: &mut S, value: Option<T>, setter: impl FnOnce(&mut S, Option<T>) -> &mut S) {
    if value.is_some() {
        setter(target, value);
    }
}

/// Applies `resources` to container `id`'s cgroup. What `resources` leaves out
/// stays as it is. A stopped container cannot be updated.
pub fn update(store: &Store, id: &ContainerId, resources: &LinuxResources) -> Result<(), Error> {
    store.open(id, Verb::Update)?.cgroup(Verb::Update)?.update(resources)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_json_and_keep_the_rest() {
        let mut resources: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1000, "reservation": 10},
            "cpu": {"shares": 2, "cpus": "0"},
            "pids": {"limit": 5}
        }))
        .unwrap();
        let flags = ResourceFlags {
            memory: Some(4096),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            pids_limit: Some(9),
            blkio_weight: Some(300),
            ..Default::default()
        };
        flags.apply_to(&mut resources);
        let memory = resources.memory().unwrap();
        assert_eq!((memory.limit(), memory.reservation(), memory.swap()), (Some(4096), Some(10), None));
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!((cpu.shares(), cpu.quota(), cpu.period()), (Some(2), Some(50_000), Some(100_000)));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(resources.pids().unwrap().limit(), 9);
        assert_eq!(resources.block_io().as_ref().unwrap().weight(), Some(300));
    }

    #[test]
    fn no_flags_change_nothing() {
        let mut resources = LinuxResources::default();
        ResourceFlags::default().apply_to(&mut resources);
        assert_eq!(resources, LinuxResources::default());
    }
}
