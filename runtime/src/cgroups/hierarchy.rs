//! The cgroup hierarchies this process sees, found once per [`super::Cgroup`].
//!
//! `libcgroups`'s v1 manager looks up each controller's mount point with its own
//! read of `/proc/self/mountinfo` and `/proc/self/cgroup`; here one read of
//! `mountinfo` finds every hierarchy, named ones (`name=systemd`) included, and a
//! v2-only host needs no read at all.

use std::path::{Path, PathBuf};

use super::{CgroupError, Layout};

/// Where cgroup filesystems are mounted on a normal host.
pub const CGROUP_ROOT: &str = libcgroups::common::DEFAULT_CGROUP_ROOT;

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Where a hybrid host mounts its (controller-less) cgroup2 tree.
pub fn hybrid_unified() -> PathBuf {
    Path::new(CGROUP_ROOT).join("unified")
}

/// The name of the cgroup2 hierarchy in messages and records.
pub const UNIFIED: &str = "unified";

/// Every hierarchy a container's cgroup is made in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    /// cgroup v1 hierarchies (none on a v2-only host).
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount: the whole tree on v2, the controller-less
    /// `/sys/fs/cgroup/unified` on a hybrid host, none on pure v1.
    pub unified: Option<PathBuf>,
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub mount: PathBuf,
    /// Its controllers (`cpu`, `cpuacct`) or its name (`name=systemd`).
    pub subsystems: Vec<String>,
}

impl V1Hierarchy {
    pub fn has(&self, subsystem: &str) -> bool {
        self.subsystems.iter().any(|s| s == subsystem)
    }

    /// Its name in messages and records: its controllers, as mounted
    /// (`cpu,cpuacct`, `memory`, `name=systemd`).
    pub fn name(&self) -> String {
        self.subsystems.join(",")
    }
}

impl Hierarchies {
    pub fn discover(layout: Layout) -> Result<Self, CgroupError> {
        let root = Path::new(CGROUP_ROOT);
        match layout {
            Layout::V2 => Ok(Self { v1: Vec::new(), unified: Some(root.to_owned()) }),
            Layout::V1 | Layout::Hybrid => {
                let text = std::fs::read_to_string(MOUNTINFO)
                    .map_err(|source| CgroupError::Mountinfo { path: MOUNTINFO.into(), source })?;
                let v1 = v1_from_mountinfo(&text);
                if v1.is_empty() {
                    return Err(CgroupError::NoV1Hierarchy { path: MOUNTINFO.into() });
                }
                let unified = (layout == Layout::Hybrid).then(hybrid_unified);
                Ok(Self { v1, unified })
            }
        }
    }

    /// The v1 hierarchy that holds `subsystem`, if one is mounted.
    pub fn v1_with(&self, subsystem: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.has(subsystem))
    }
}

/// The v1 hierarchies in `mountinfo` text, the first mount of each one (a
/// hierarchy bind-mounted elsewhere later is the same hierarchy).
fn v1_from_mountinfo(text: &str) -> Vec<V1Hierarchy> {
    let mut found: Vec<V1Hierarchy> = Vec::new();
    for line in crate::mountinfo::parse(text).filter(|l| l.fs_type == "cgroup") {
        let subsystems: Vec<String> = line
            .super_options
            .split(',')
            .filter(|o| crate::mountinfo::is_cgroup_subsystem(o))
            .map(str::to_owned)
            .collect();
        if subsystems.is_empty() || found.iter().any(|h| h.subsystems == subsystems) {
            continue;
        }
        found.push(V1Hierarchy { mount: line.mount_point, subsystems });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd,release_agent=/x
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
90 23 0:31 / /tmp/my\\040dir rw,relatime - cgroup cgroup rw,cpuset,clone_children
91 23 0:39 / /mnt/net rw,relatime - cgroup cgroup rw,net_cls,net_prio
";

    #[test]
    fn finds_every_v1_hierarchy_once() {
        let found = v1_from_mountinfo(HYBRID);
        let summary: Vec<(String, Vec<String>)> =
            found.iter().map(|h| (h.mount.display().to_string(), h.subsystems.clone())).collect();
        let want = [
            ("/sys/fs/cgroup/cpu,cpuacct", vec!["cpu", "cpuacct"]),
            ("/sys/fs/cgroup/cpuset", vec!["cpuset"]),
            ("/sys/fs/cgroup/systemd", vec!["name=systemd"]),
            ("/mnt/net", vec!["net_cls", "net_prio"]),
        ];
        let want: Vec<(String, Vec<String>)> =
            want.iter().map(|(m, s)| (m.to_string(), s.iter().map(|s| s.to_string()).collect())).collect();
        assert_eq!(summary, want);
    }

    #[test]
    fn looks_up_a_hierarchy_by_controller() {
        let h = Hierarchies { v1: v1_from_mountinfo(HYBRID), unified: None };
        assert_eq!(h.v1_with("cpuacct").unwrap().mount, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(h.v1_with("freezer").is_none());
    }

    #[test]
    fn v2_needs_no_mountinfo() {
        let h = Hierarchies::discover(Layout::V2).unwrap();
        assert!(h.v1.is_empty());
        assert_eq!(h.unified.as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }
}
