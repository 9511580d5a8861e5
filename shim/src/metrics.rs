//! `Stats`: amphi's cgroup statistics ([`amphi_runtime::container::Stats`],
//! runc's `types.Stats`) as containerd's metrics messages: cgroup v1's
//! `io.containerd.cgroups.v1.Metrics` where the container's cgroup is v1
//! (a hybrid host like this one included), v2's where the host is unified.

use amphi_runtime::container::Stats;
use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::protobuf::well_known_types::any::Any;

/// Whether the host's cgroups are v2 only (unified at `/sys/fs/cgroup`).
pub fn unified() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// `stats` as the metrics message of the host's cgroup version, in an `Any`
/// named as containerd decodes it.
pub fn metrics(stats: &Stats) -> Any {
    let (type_url, value) = if unified() {
        ("io.containerd.cgroups.v2.Metrics", to_v2(stats).write_to_bytes())
    } else {
        ("io.containerd.cgroups.v1.Metrics", to_v1(stats).write_to_bytes())
    };
    Any { type_url: type_url.into(), value: value.unwrap_or_default(), ..Default::default() }
}

fn raw(stats: &Stats, key: &str) -> u64 {
    stats.memory.raw.get(key).copied().unwrap_or(0)
}

/// The huge page counters, in the order of their page sizes' names.
fn by_page_size(stats: &Stats) -> Vec<(&String, &amphi_runtime::container::Hugetlb)> {
    let mut pages: Vec<_> = stats.hugetlb.iter().collect();
    pages.sort_by(|a, b| a.0.cmp(b.0));
    pages
}

/// cgroup v1's message.
pub fn to_v1(stats: &Stats) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    m.pids = Some(v1::PidsStat { current: stats.pids.current, limit: stats.pids.limit, ..Default::default() }).into();
    let usage = &stats.cpu.usage;
    let throttling = &stats.cpu.throttling;
    m.cpu = Some(v1::CPUStat {
        usage: Some(v1::CPUUsage {
            total: usage.total,
            kernel: usage.kernel,
            user: usage.user,
            per_cpu: usage.percpu.clone(),
            ..Default::default()
        })
        .into(),
        throttling: Some(v1::Throttle {
            periods: throttling.periods,
            throttled_periods: throttling.throttled_periods,
            throttled_time: throttling.throttled_time,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
    .into();
    let entry = |e: &amphi_runtime::container::MemoryEntry| {
        Some(v1::MemoryEntry { limit: e.limit, usage: e.usage, max: e.max, failcnt: e.failcnt, ..Default::default() })
            .into()
    };
    let memory = &stats.memory;
    m.memory = Some(v1::MemoryStat {
        cache: memory.cache,
        rss: raw(stats, "rss"),
        rss_huge: raw(stats, "rss_huge"),
        mapped_file: raw(stats, "mapped_file"),
        dirty: raw(stats, "dirty"),
        writeback: raw(stats, "writeback"),
        pg_pg_in: raw(stats, "pgpgin"),
        pg_pg_out: raw(stats, "pgpgout"),
        pg_fault: raw(stats, "pgfault"),
        pg_maj_fault: raw(stats, "pgmajfault"),
        inactive_anon: raw(stats, "inactive_anon"),
        active_anon: raw(stats, "active_anon"),
        inactive_file: raw(stats, "inactive_file"),
        active_file: raw(stats, "active_file"),
        unevictable: raw(stats, "unevictable"),
        hierarchical_memory_limit: raw(stats, "hierarchical_memory_limit"),
        hierarchical_swap_limit: raw(stats, "hierarchical_memsw_limit"),
        total_cache: raw(stats, "total_cache"),
        total_rss: raw(stats, "total_rss"),
        total_rss_huge: raw(stats, "total_rss_huge"),
        total_mapped_file: raw(stats, "total_mapped_file"),
        total_dirty: raw(stats, "total_dirty"),
        total_writeback: raw(stats, "total_writeback"),
        total_pg_pg_in: raw(stats, "total_pgpgin"),
        total_pg_pg_out: raw(stats, "total_pgpgout"),
        total_pg_fault: raw(stats, "total_pgfault"),
        total_pg_maj_fault: raw(stats, "total_pgmajfault"),
        total_inactive_anon: raw(stats, "total_inactive_anon"),
        total_active_anon: raw(stats, "total_active_anon"),
        total_inactive_file: raw(stats, "total_inactive_file"),
        total_active_file: raw(stats, "total_active_file"),
        total_unevictable: raw(stats, "total_unevictable"),
        usage: entry(&memory.usage),
        swap: entry(&memory.swap),
        kernel: entry(&memory.kernel),
        kernel_tcp: entry(&memory.kernel_tcp),
        ..Default::default()
    })
    .into();
    let blk = |entries: &[amphi_runtime::container::BlkioEntry]| {
        entries
            .iter()
            .map(|e| v1::BlkIOEntry {
                op: e.op.clone(),
                major: e.major,
                minor: e.minor,
                value: e.value,
                ..Default::default()
            })
            .collect::<Vec<_>>()
    };
    let b = &stats.blkio;
    m.blkio = Some(v1::BlkIOStat {
        io_service_bytes_recursive: blk(&b.io_service_bytes_recursive),
        io_serviced_recursive: blk(&b.io_serviced_recursive),
        io_queued_recursive: blk(&b.io_queued_recursive),
        io_service_time_recursive: blk(&b.io_service_time_recursive),
        io_wait_time_recursive: blk(&b.io_wait_time_recursive),
        io_merged_recursive: blk(&b.io_merged_recursive),
        io_time_recursive: blk(&b.io_time_recursive),
        sectors_recursive: blk(&b.sectors_recursive),
        ..Default::default()
    })
    .into();
    m.hugetlb = by_page_size(stats)
        .into_iter()
        .map(|(size, h)| v1::HugetlbStat {
            usage: h.usage,
            max: h.max,
            failcnt: h.failcnt,
            pagesize: size.clone(),
            ..Default::default()
        })
        .collect();
    m
}

/// cgroup v2's message.
pub fn to_v2(stats: &Stats) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    m.pids = Some(v2::PidsStat { current: stats.pids.current, limit: stats.pids.limit, ..Default::default() }).into();
    let usage = &stats.cpu.usage;
    let throttling = &stats.cpu.throttling;
    m.cpu = Some(v2::CPUStat {
        usage_usec: usage.total / 1000,
        user_usec: usage.user / 1000,
        system_usec: usage.kernel / 1000,
        nr_periods: throttling.periods,
        nr_throttled: throttling.throttled_periods,
        throttled_usec: throttling.throttled_time / 1000,
        ..Default::default()
    })
    .into();
    let memory = &stats.memory;
    m.memory = Some(v2::MemoryStat {
        anon: raw(stats, "anon"),
        file: raw(stats, "file"),
        kernel_stack: raw(stats, "kernel_stack"),
        slab: raw(stats, "slab"),
        sock: raw(stats, "sock"),
        shmem: raw(stats, "shmem"),
        file_mapped: raw(stats, "file_mapped"),
        file_dirty: raw(stats, "file_dirty"),
        file_writeback: raw(stats, "file_writeback"),
        anon_thp: raw(stats, "anon_thp"),
        inactive_anon: raw(stats, "inactive_anon"),
        active_anon: raw(stats, "active_anon"),
        inactive_file: raw(stats, "inactive_file"),
        active_file: raw(stats, "active_file"),
        unevictable: raw(stats, "unevictable"),
        slab_reclaimable: raw(stats, "slab_reclaimable"),
        slab_unreclaimable: raw(stats, "slab_unreclaimable"),
        pgfault: raw(stats, "pgfault"),
        pgmajfault: raw(stats, "pgmajfault"),
        usage: memory.usage.usage,
        usage_limit: memory.usage.limit,
        max_usage: memory.usage.max,
        swap_usage: memory.swap.usage,
        swap_limit: memory.swap.limit,
        swap_max_usage: memory.swap.max,
        ..Default::default()
    })
    .into();
    m.hugetlb = by_page_size(stats)
        .into_iter()
        .map(|(size, h)| v2::HugeTlbStat { current: h.usage, max: h.max, pagesize: size.clone(), ..Default::default() })
        .collect();
    m
}

#[cfg(test)]
mod tests {
    use containerd_shim::protos::protobuf::MessageDyn;

    use super::*;

    #[test]
    fn v1_metrics_carry_the_numbers() {
        let mut s = Stats::default();
        s.cpu.usage.total = 900;
        s.cpu.usage.percpu = vec![500, 400];
        s.memory.usage.usage = 4096;
        s.memory.usage.limit = 65536;
        s.memory.raw.insert("rss".into(), 77);
        s.memory.raw.insert("total_rss".into(), 78);
        s.pids.current = 3;
        let m = to_v1(&s);
        assert_eq!(m.cpu.usage.total, 900);
        assert_eq!(m.cpu.usage.per_cpu, vec![500, 400]);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 65536);
        assert_eq!((m.memory.rss, m.memory.total_rss), (77, 78));
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.descriptor_dyn().full_name(), "io.containerd.cgroups.v1.Metrics");
    }

    #[test]
    fn v2_metrics_are_in_microseconds() {
        let mut s = Stats::default();
        s.cpu.usage.total = 9_000;
        s.memory.raw.insert("anon".into(), 5);
        let m = to_v2(&s);
        assert_eq!(m.cpu.usage_usec, 9);
        assert_eq!(m.memory.anon, 5);
        assert_eq!(m.descriptor_dyn().full_name(), "io.containerd.cgroups.v2.Metrics");
    }

    #[test]
    fn the_any_names_the_hosts_version() {
        let any = metrics(&Stats::default());
        let expected = if unified() { "io.containerd.cgroups.v2.Metrics" } else { "io.containerd.cgroups.v1.Metrics" };
        assert_eq!(any.type_url, expected);
    }
}
