//! The machine the numbers were measured on, and the page-cache switch.

use std::process::Command;

use anyhow::Context;

use crate::runtime::Bench;

/// What the summary says about the machine.
#[derive(Debug)]
pub struct Machine {
    pub host: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub os: String,
    pub cgroups: String,
    pub date: String,
}

impl Machine {
    pub fn describe(_bench: &Bench) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            host: hostname(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            kernel: command_line("uname", &["-srm"]),
            os,
            cgroups: cgroup_layout(),
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }
}

/// The host's cgroup layout: v2 (unified), v1, or hybrid.
fn cgroup_layout() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let types: Vec<&str> = mountinfo.lines().filter_map(|l| l.split_once(" - ")?.1.split_whitespace().next()).collect();
    let v1 = types.contains(&"cgroup");
    let v2 = mountinfo.lines().find(|l| l.split_once(" - ").is_some_and(|(_, r)| r.starts_with("cgroup2 ")));
    match (v1, v2) {
        (true, Some(line)) => format!("hybrid (v1, with cgroup2 at {})", line.split(' ').nth(4).unwrap_or("?")),
        (true, None) => "v1".into(),
        (false, Some(_)) => "v2 (unified)".into(),
        (false, None) => "none".into(),
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "host".into())
}

/// Today's date, `YYYY-MM-DD` (UTC).
pub fn today() -> String {
    command_line("date", &["-u", "+%Y-%m-%d"])
}

/// `sync`, then drop the page cache, dentries and inodes.
pub fn drop_caches() -> anyhow::Result<()> {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", b"3").context("write /proc/sys/vm/drop_caches")
}
