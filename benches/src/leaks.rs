//! After the run: is every container the harness made gone? State directories
//! under each runtime's `--root`, cgroups named after its ids, processes whose
//! root or command line belongs to the run, mounts under the work directory
//! (in the host's mount namespace and in each view).

use std::path::{Path, PathBuf};

use crate::runtime::Bench;

/// What one runtime left behind.
#[derive(Debug, Default)]
pub struct LeakReport {
    pub runtime: String,
    pub state_dirs: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    pub processes: Vec<String>,
    pub mounts: Vec<String>,
}

impl LeakReport {
    pub fn clean(&self) -> bool {
        self.state_dirs.is_empty() && self.cgroups.is_empty() && self.processes.is_empty() && self.mounts.is_empty()
    }

    /// One line for the summary.
    pub fn describe(&self) -> String {
        if self.clean() {
            return format!("{}: clean (no state dir, cgroup, process or mount left)", self.runtime);
        }
        let mut parts = Vec::new();
        if !self.state_dirs.is_empty() {
            parts.push(format!("state dirs {}", self.state_dirs.join(", ")));
        }
        if !self.cgroups.is_empty() {
            parts.push(format!(
                "cgroups {}",
                self.cgroups.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !self.processes.is_empty() {
            parts.push(format!("processes {}", self.processes.join(", ")));
        }
        if !self.mounts.is_empty() {
            parts.push(format!("mounts {}", self.mounts.join(" | ")));
        }
        format!("{}: LEFT BEHIND: {}", self.runtime, parts.join("; "))
    }
}

pub fn check(bench: &Bench) -> anyhow::Result<Vec<LeakReport>> {
    crate::process::reap_orphans();
    let cgroups = find_cgroups(Path::new("/sys/fs/cgroup"), &bench.id_prefix, 0);
    let processes = find_processes(bench);
    let mut reports = Vec::new();
    for (index, runtime) in bench.runtimes.iter().enumerate() {
        if !runtime.is_oci() {
            continue;
        }
        let owns = |name: &str| owner(name, &bench.id_prefix) == Some(runtime.name.as_str());
        let state_dirs = std::fs::read_dir(&runtime.root)
            .map(|entries| {
                entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| owns(n)).collect()
            })
            .unwrap_or_default();
        let mounts = bench.in_view(index, |_| {
            let state = bench.work.join("state");
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    l.split(' ')
                        .nth(4)
                        .is_some_and(|point| Path::new(point).starts_with(&bench.work) && Path::new(point) != state)
                })
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })?;
        reports.push(LeakReport {
            runtime: runtime.name.clone(),
            state_dirs,
            cgroups: cgroups
                .iter()
                .filter(|p| p.file_name().is_some_and(|n| owns(&n.to_string_lossy())))
                .cloned()
                .collect(),
            processes: processes.iter().filter(|(_, id)| owns(id)).map(|(p, _)| p.clone()).collect(),
            mounts: if runtime.view.is_some() || runtime.is_amphi() { mounts } else { Vec::new() },
        });
    }
    let unattributed: Vec<String> = processes
        .iter()
        .filter(|(_, id)| !bench.runtimes.iter().any(|r| owner(id, &bench.id_prefix) == Some(r.name.as_str())))
        .map(|(p, _)| p.clone())
        .collect();
    if !unattributed.is_empty() {
        reports.push(LeakReport {
            runtime: "(no runtime named)".into(),
            processes: unattributed,
            ..Default::default()
        });
    }
    Ok(reports)
}

/// The runtime named in a container id `<prefix><runtime>-<n>`.
fn owner<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = name.split(prefix).nth(1)?;
    let (runtime, n) = rest.rsplit_once('-')?;
    n.chars().all(|c| c.is_ascii_digit()).then_some(runtime)
}

/// Cgroup directories (any hierarchy, up to 6 levels down) whose name holds an
/// id of this run.
fn find_cgroups(dir: &Path, prefix: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if depth > 6 {
        return found;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else { continue };
        if !kind.is_dir() {
            continue;
        }
        let path = entry.path();
        if entry.file_name().to_string_lossy().contains(prefix) {
            found.push(path);
        } else {
            found.extend(find_cgroups(&path, prefix, depth + 1));
        }
    }
    found
}

/// Processes (other than the harness) running in the run's rootfs or naming one
/// of its ids: `(description, id or "")`.
fn find_processes(bench: &Bench) -> Vec<(String, String)> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
            .unwrap_or_default();
        let root = std::fs::read_link(entry.path().join("root")).unwrap_or_default();
        let id = cmdline.split_whitespace().find(|w| w.contains(&bench.id_prefix)).unwrap_or("").to_owned();
        if root.starts_with(&bench.work) || !id.is_empty() {
            found.push((format!("{pid} ({cmdline})"), id));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_read_from_the_id() {
        assert_eq!(owner("ab123-amphi-7", "ab123-"), Some("amphi"));
        assert_eq!(owner("/sys/fs/cgroup/pids/ab123-my-runtime-12", "ab123-"), Some("my-runtime"));
        assert_eq!(owner("ab999-amphi-7", "ab123-"), None);
        assert_eq!(owner("ab123-amphi-x", "ab123-"), None);
    }

    #[test]
    fn cgroups_are_found_by_name_at_any_depth() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("memory/amphi/ab1-amphi-3")).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("pids/other")).expect("mkdir");
        let found = find_cgroups(tmp.path(), "ab1-", 0);
        assert_eq!(found, vec![tmp.path().join("memory/amphi/ab1-amphi-3")]);
    }
}
