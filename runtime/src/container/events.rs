//! `events`: a container's resource usage and OOM kills, as runc reports them.
//!
//! The JSON is runc's (`types.Event` and `types.Stats`), because containerd's
//! runc shim decodes it: `{"type":"stats","id":…,"data":{"cpu":…,"memory":…,
//! "pids":…,"blkio":…,"hugetlb":…}}` and `{"type":"oom","id":…}`. The numbers come
//! from [`crate::cgroups::Cgroup::stats`].
//!
//! The stream waits in one `poll(2)` on the init's pidfd (the container
//! stopped: the stream ends) and the cgroup's OOM descriptor
//! ([`crate::cgroups::OomWatch`]), with the interval as its timeout: no sleep
//! loop. It holds no lock while it waits.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use libcgroups::stats as lc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use super::Error;
use super::identity::Init;
use crate::id::ContainerId;
use crate::state::{Store, Verb};

/// One event, as runc prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The event's type (`stats`, `oom`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The container's id.
    pub id: String,
    /// The statistics of a `stats` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

/// runc's `types.Stats` (the parts a cgroup can tell).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// CPU usage and throttling.
    pub cpu: Cpu,
    /// Memory usage and limits.
    pub memory: Memory,
    /// The number of processes and their limit.
    pub pids: Pids,
    /// Block I/O counters.
    pub blkio: Blkio,
    /// Huge page usage, by page size.
    pub hugetlb: HashMap<String, Hugetlb>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub raw: HashMap<String, u64>,
}

/// Bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    /// The limit, in bytes.
    pub limit: u64,
    /// The usage now, in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// The highest usage seen, in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// How often the limit was hit.
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

/// One block I/O counter of a device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    /// The device's major number.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// The device's minor number.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// The operation (`Read`, `Write`…).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The count.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// The huge pages of one page size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hugetlb {
    /// Bytes in use.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// The highest use seen, in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// How often the limit was hit.
    pub failcnt: u64,
}

/// Go's `omitempty` for numbers.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&lc::Stats> for Stats {
    fn from(s: &lc::Stats) -> Self {
        let memory_entry = |m: &lc::MemoryData| MemoryEntry {
            limit: m.limit,
            usage: m.usage,
            max: m.max_usage,
            failcnt: m.fail_count,
        };
        let blkio = |list: &[lc::BlkioDeviceStat]| {
            list.iter()
                .map(|d| BlkioEntry {
                    major: d.major,
                    minor: d.minor,
                    op: d.op_type.clone().unwrap_or_default(),
                    value: d.value,
                })
                .collect()
        };
        Self {
            cpu: Cpu {
                usage: CpuUsage {
                    total: s.cpu.usage.usage_total,
                    percpu: s.cpu.usage.per_core_usage_total.clone(),
                    percpu_kernel: s.cpu.usage.per_core_usage_kernel.clone(),
                    percpu_user: s.cpu.usage.per_core_usage_user.clone(),
                    kernel: s.cpu.usage.usage_kernel,
                    user: s.cpu.usage.usage_user,
                },
                throttling: Throttling {
                    periods: s.cpu.throttling.periods,
                    throttled_periods: s.cpu.throttling.throttled_periods,
                    throttled_time: s.cpu.throttling.throttled_time,
                },
            },
            memory: Memory {
                cache: s.memory.cache,
                usage: memory_entry(&s.memory.memory),
                swap: memory_entry(&s.memory.memswap),
                kernel: memory_entry(&s.memory.kernel),
                kernel_tcp: memory_entry(&s.memory.kernel_tcp),
                raw: s.memory.stats.clone(),
            },
            pids: Pids { current: s.pids.current, limit: s.pids.limit },
            blkio: Blkio {
                io_service_bytes_recursive: blkio(&s.blkio.service_bytes),
                io_serviced_recursive: blkio(&s.blkio.serviced),
                io_queued_recursive: blkio(&s.blkio.queued),
                io_service_time_recursive: blkio(&s.blkio.service_time),
                io_wait_time_recursive: blkio(&s.blkio.wait_time),
                io_merged_recursive: blkio(&s.blkio.merged),
                io_time_recursive: blkio(&s.blkio.time),
                sectors_recursive: blkio(&s.blkio.sectors),
            },
            hugetlb: s
                .hugetlb
                .iter()
                .map(|(size, h)| (size.clone(), Hugetlb { usage: h.usage, max: h.max_usage, failcnt: h.fail_count }))
                .collect(),
        }
    }
}

/// Container `id`'s resource usage now (`events --stats`). A stopped container
/// has none.
pub fn stats(store: &Store, id: &ContainerId) -> Result<Event, Error> {
    let stats = store.open(id, Verb::Stats)?.cgroup(Verb::Stats)?.stats()?;
    Ok(Event { kind: "stats", id: id.to_string(), data: Some(Stats::from(&stats)) })
}

/// Streams container `id`'s events to `emit` until the container stops: its
/// stats every `interval`, and an `oom` event whenever the kernel's OOM killer
/// acts in its cgroup. An error of `emit` (stdout closed) ends the stream.
pub fn events(
    store: &Store,
    id: &ContainerId,
    interval: Duration,
    emit: &mut dyn FnMut(&Event) -> std::io::Result<()>,
) -> Result<(), Error> {
    let (record, cgroup, init) = {
        // A live init: the status says so (created, running or paused).
        let opened = store.open(id, Verb::Events)?;
        let cgroup = opened.cgroup(Verb::Stats)?;
        let Init::Alive(live) = opened.init else { unreachable!("the status says the init is alive") };
        (opened.record, cgroup, live.pidfd)
    };
    let mut oom = match cgroup.watch_oom() {
        Ok(watch) => Some(watch),
        Err(e) => {
            tracing::warn!(id = %id, "no oom events: {e}");
            None
        }
    };
    let io = |what: &str| {
        let (id, what) = (id.clone(), what.to_owned());
        move |source| Error::Io { id, what, source }
    };
    let mut next = Instant::now() + interval;
    loop {
        let left = next.saturating_duration_since(Instant::now());
        let mut fds = vec![PollFd::new(init.as_fd(), PollFlags::POLLIN)];
        if let Some(watch) = &oom {
            fds.push(PollFd::new(watch.fd(), PollFlags::POLLIN));
        }
        let ready = match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io("wait for events")(e.into())),
        };
        let stopped = fds[0].any().unwrap_or(false);
        let oom_ready = fds.get(1).is_some_and(|fd| fd.any().unwrap_or(false));
        drop(fds);
        if oom_ready && let Some(watch) = &mut oom {
            for _ in 0..watch.take()? {
                emit(&Event { kind: "oom", id: record.id.clone(), data: None }).map_err(io("write an event"))?;
            }
        }
        if stopped {
            return Ok(());
        }
        if ready == 0 {
            next += interval;
            let stats = match cgroup.stats() {
                Ok(stats) => stats,
                // The container stopped and was deleted between two ticks.
                Err(_) if init.wait_exit(Some(Duration::ZERO)).unwrap_or(true) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let event = Event { kind: "stats", id: record.id.clone(), data: Some(Stats::from(&stats)) };
            emit(&event).map_err(io("write an event"))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_runcs_field_names() {
        let mut s = lc::Stats::default();
        s.cpu.usage.usage_total = 900;
        s.cpu.usage.usage_user = 600;
        s.cpu.usage.usage_kernel = 300;
        s.cpu.usage.per_core_usage_total = vec![500, 400];
        s.cpu.throttling.throttled_periods = 2;
        s.memory.memory = lc::MemoryData { usage: 4096, max_usage: 8192, fail_count: 1, limit: 65536 };
        s.memory.cache = 12;
        s.memory.stats = HashMap::from([("rss".to_owned(), 77)]);
        s.pids = lc::PidStats { current: 3, limit: 0 };
        s.blkio.service_bytes =
            vec![lc::BlkioDeviceStat { major: 8, minor: 0, op_type: Some("Read".into()), value: 512 }];
        let event = Event { kind: "stats", id: "c1".into(), data: Some(Stats::from(&s)) };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "stats");
        assert_eq!(json["id"], "c1");
        let data = &json["data"];
        assert_eq!(data["cpu"]["usage"]["total"], 900);
        assert_eq!(data["cpu"]["usage"]["user"], 600);
        assert_eq!(data["cpu"]["usage"]["kernel"], 300);
        assert_eq!(data["cpu"]["usage"]["percpu"], serde_json::json!([500, 400]));
        assert!(data["cpu"]["usage"].get("percpu_kernel").is_none(), "empty lists are left out");
        assert_eq!(data["cpu"]["throttling"], serde_json::json!({"throttledPeriods": 2}));
        assert_eq!(
            data["memory"]["usage"],
            serde_json::json!({"limit": 65536, "usage": 4096, "max": 8192, "failcnt": 1})
        );
        assert_eq!(data["memory"]["swap"], serde_json::json!({"limit": 0, "failcnt": 0}));
        assert!(data["memory"].get("kernelTCP").is_some());
        assert_eq!(data["memory"]["cache"], 12);
        assert_eq!(data["memory"]["raw"]["rss"], 77);
        assert_eq!(data["pids"], serde_json::json!({"current": 3}));
        assert_eq!(
            data["blkio"]["ioServiceBytesRecursive"],
            serde_json::json!([{"major": 8, "op": "Read", "value": 512}])
        );
        assert!(data["blkio"].get("ioQueueRecursive").is_none());
        assert_eq!(data["hugetlb"], serde_json::json!({}));
    }

    #[test]
    fn an_oom_event_has_no_data() {
        let json = serde_json::to_value(Event { kind: "oom", id: "c1".into(), data: None }).unwrap();
        assert_eq!(json, serde_json::json!({"type": "oom", "id": "c1"}));
    }
}
