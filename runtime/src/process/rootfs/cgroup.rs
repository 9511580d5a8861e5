//! A `cgroup` mount: the container's view of the host's cgroup hierarchies.
//!
//! On a v2 host it is one `cgroup2` mount, or (without a cgroup namespace) a bind
//! of the container's own cgroup directory. On a v1 or hybrid host it is, like
//! runc's, a tmpfs at the destination holding one directory per hierarchy the
//! host mounts (named as on the host: `memory`, `cpu,cpuacct`, `systemd`,
//! `unified` for the cgroup2 of a hybrid host), with symlinks from each
//! controller of a merged hierarchy. With a new cgroup namespace each is a fresh
//! cgroup filesystem mount, whose root is the container's cgroup; without one,
//! each is a bind of the container's own cgroup directory of that hierarchy.
//! `ro` makes every part read-only.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::mounts::{finish, open_host, target};
use super::{RootfsError, errno_of};
use crate::plan::RootfsPlan;
use crate::plan::mounts::options::attr_from_flags;
use crate::plan::mounts::{MountPlan, SetAttr};
use crate::sys::inroot::open_in_root;
use crate::sys::mount::{MountAttr, ProcRoot, attach_tree, clone_tree, mount_setattr};

/// Where the host mounts its cgroup hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Flags every cgroup mount gets, as runc gives them.
const BASE_FLAGS: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

pub(super) fn mount(
    root: BorrowedFd<'_>,
    proc: &ProcRoot,
    m: &MountPlan,
    plan: &RootfsPlan,
) -> Result<(), RootfsError> {
    let dest = m.destination.as_path();
    let failed = |reason: String, errno: Option<Errno>| RootfsError::Cgroup { destination: dest.into(), reason, errno };
    let fs = nix::sys::statfs::statfs(CGROUP_ROOT).map_err(|e| {
        failed(format!("no cgroup filesystem at {CGROUP_ROOT} on the host: {}", super::cause(e)), Some(e))
    })?;
    if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        unified(root, proc, m, plan)
    } else {
        let mountinfo = read("/proc/self/mountinfo").map_err(|e| failed(e.0, Some(e.1)))?;
        let own = if plan.cgroup_ns {
            String::new()
        } else {
            read("/proc/self/cgroup").map_err(|e| failed(e.0, Some(e.1)))?
        };
        let hierarchies =
            hierarchies(&mountinfo, (!plan.cgroup_ns).then_some(own.as_str())).map_err(|r| failed(r, None))?;
        if hierarchies.is_empty() {
            return Err(failed("the host mounts no cgroup hierarchy".into(), None));
        }
        split(root, proc, m, &hierarchies)
    }
}

/// A v2 host: one mount at the destination.
fn unified(root: BorrowedFd<'_>, proc: &ProcRoot, m: &MountPlan, plan: &RootfsPlan) -> Result<(), RootfsError> {
    let dest = m.destination.as_path();
    let fail =
        |step: Option<&'static str>| move |errno: Errno| RootfsError::Mount { destination: dest.into(), step, errno };
    let target = target(root, dest, true).map_err(fail(Some("create target")))?;
    let flags = BASE_FLAGS | m.flags;
    if plan.cgroup_ns {
        match proc.mount_on(Some(Path::new("cgroup2")), target.as_fd(), Some("cgroup2"), flags, None) {
            Ok(()) => return finish(root, dest, &m.setattr),
            // A user namespace may not be allowed to mount cgroup2: bind instead.
            Err(Errno::EPERM | Errno::EBUSY) => {}
            Err(errno) => return Err(fail(None)(errno)),
        }
    }
    let source = if plan.cgroup_ns {
        Path::new(CGROUP_ROOT).join(plan.cgroup_path.strip_prefix("/").unwrap_or(&plan.cgroup_path))
    } else {
        let own = read("/proc/self/cgroup").map_err(|e| RootfsError::Cgroup {
            destination: dest.into(),
            reason: e.0,
            errno: Some(e.1),
        })?;
        let path = own_cgroup(&own, &[]).ok_or_else(|| RootfsError::Cgroup {
            destination: dest.into(),
            reason: "no cgroup2 entry in /proc/self/cgroup".into(),
            errno: None,
        })?;
        Path::new(CGROUP_ROOT).join(path.trim_start_matches('/'))
    };
    let bind_fail = fail(Some("bind the container's cgroup"));
    let source = open_host(&source).map_err(bind_fail)?;
    let tree = clone_tree(source.as_fd(), true).map_err(|e| bind_fail(errno_of(e)))?;
    attach_tree(tree.as_fd(), target.as_fd()).map_err(|e| bind_fail(errno_of(e)))?;
    let attr = SetAttr { recursive: false, attr: attr_from_flags(flags, MsFlags::empty()) };
    finish(root, dest, std::iter::once(&attr).chain(&m.setattr))
}

/// A v1 or hybrid host: a tmpfs of hierarchies.
fn split(root: BorrowedFd<'_>, proc: &ProcRoot, m: &MountPlan, hierarchies: &[Hierarchy]) -> Result<(), RootfsError> {
    let dest = m.destination.as_path();
    let fail =
        |step: Option<&'static str>| move |errno: Errno| RootfsError::Mount { destination: dest.into(), step, errno };
    let target = target(root, dest, true).map_err(fail(Some("create target")))?;
    proc.mount_on(Some(Path::new("tmpfs")), target.as_fd(), Some("tmpfs"), BASE_FLAGS, Some("mode=755"))
        .map_err(fail(Some("mount the tmpfs")))?;
    let top =
        open_in_root(root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| fail(Some("open"))(errno_of(e)))?;
    let flags = BASE_FLAGS | m.flags;
    for h in hierarchies {
        let at = dest.join(&h.name);
        let fail = |step: Option<&'static str>| {
            let at = at.clone();
            move |errno: Errno| RootfsError::Mount { destination: at, step, errno }
        };
        nix::sys::stat::mkdirat(Some(top.as_raw_fd()), h.name.as_str(), Mode::from_bits_truncate(0o755))
            .map_err(fail(Some("create target")))?;
        // The directory was just made in amphi's own tmpfs (and mkdirat would
        // have failed on anything already there).
        let sub = open_in_root(top.as_fd(), Path::new(&h.name), OFlag::O_PATH | OFlag::O_DIRECTORY)
            .map_err(|e| fail(Some("open target"))(errno_of(e)))?;
        match &h.source {
            None => {
                let (source, data) = match h.fstype {
                    "cgroup2" => ("cgroup2", None),
                    _ => ("cgroup", Some(h.options.as_str())),
                };
                proc.mount_on(Some(Path::new(source)), sub.as_fd(), Some(h.fstype), flags, data).map_err(fail(None))?;
            }
            Some(source) => {
                let source = open_host(source).map_err(fail(None))?;
                let tree = clone_tree(source.as_fd(), true).map_err(|e| fail(None)(errno_of(e)))?;
                mount_setattr(tree.as_fd(), false, &attr_from_flags(flags, MsFlags::empty()))
                    .map_err(|e| fail(Some("set mount attributes"))(errno_of(e)))?;
                attach_tree(tree.as_fd(), sub.as_fd()).map_err(|e| fail(None)(errno_of(e)))?;
            }
        }
    }
    // `cpu,cpuacct` is reached as `cpu` and as `cpuacct` too.
    for h in hierarchies.iter().filter(|h| h.name.contains(',')) {
        for link in h.name.split(',') {
            match nix::unistd::symlinkat(h.name.as_str(), Some(top.as_raw_fd()), link) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(RootfsError::Symlink { path: dest.join(link), errno }),
            }
        }
    }
    if m.flags.contains(MsFlags::MS_RDONLY) {
        let ro = MountAttr { set: libc::MOUNT_ATTR_RDONLY, ..MountAttr::default() };
        mount_setattr(top.as_fd(), false, &ro).map_err(|e| fail(Some("make read-only"))(errno_of(e)))?;
    }
    finish(root, dest, &m.setattr)
}

fn read(path: &str) -> Result<String, (String, Errno)> {
    std::fs::read_to_string(path).map_err(|e| {
        let errno = errno_of(e);
        (format!("read {path}: {}", super::cause(errno)), errno)
    })
}

/// One hierarchy to show in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hierarchy {
    /// The directory name under the destination: the host mount point's name.
    pub name: String,
    /// `cgroup` or `cgroup2`.
    pub fstype: &'static str,
    /// The mount data naming the hierarchy (`cpu,cpuacct`, `name=systemd`).
    pub options: String,
    /// Without a cgroup namespace: the host directory of the container's own
    /// cgroup in this hierarchy, to bind.
    pub source: Option<PathBuf>,
}

/// The hierarchies the host mounts, from the text of `/proc/self/mountinfo`, in
/// its order, one per name. With `own` (the text of `/proc/self/cgroup`), each
/// gets the directory of this process's cgroup to bind; a hierarchy this process
/// is not in is left out.
pub(super) fn hierarchies(mountinfo: &str, own: Option<&str>) -> Result<Vec<Hierarchy>, String> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in crate::mountinfo::parse(mountinfo) {
        let fstype = match line.fs_type {
            "cgroup" => "cgroup",
            "cgroup2" => "cgroup2",
            _ => continue,
        };
        let Some(name) = line.mount_point.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if out.iter().any(|h| h.name == name) {
            continue;
        }
        let controllers: Vec<&str> = if fstype == "cgroup2" {
            Vec::new()
        } else {
            line.super_options.split(',').filter(|o| crate::mountinfo::is_cgroup_subsystem(o)).collect()
        };
        if fstype == "cgroup" && controllers.is_empty() {
            continue;
        }
        let source = match own {
            None => None,
            Some(own) => {
                let Some(path) = own_cgroup(own, &controllers) else { continue };
                let rel = Path::new(path).strip_prefix(&line.root).map_err(|_| {
                    format!(
                        "the cgroup {path} is outside the hierarchy mounted at {} (root {})",
                        line.mount_point.display(),
                        line.root.display()
                    )
                })?;
                Some(line.mount_point.join(rel))
            }
        };
        out.push(Hierarchy { name, fstype, options: controllers.join(","), source });
    }
    Ok(out)
}

/// The cgroup path of this process in the hierarchy with exactly `controllers`
/// (none: the cgroup2 hierarchy), from the text of `/proc/self/cgroup`.
pub(super) fn own_cgroup<'a>(proc_cgroup: &'a str, controllers: &[&str]) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_id, list, path) = (fields.next()?, fields.next()?, fields.next()?);
        let listed: Vec<&str> = list.split(',').filter(|c| !c.is_empty()).collect();
        let same = listed.len() == controllers.len() && listed.iter().all(|c| controllers.contains(c));
        same.then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 27 0:29 / /other/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
";

    const PROC_CGROUP: &str = "\
9:name=systemd:/
4:memory:/process_api/abc
2:cpuacct,cpu:/c1
0::/u1
";

    #[test]
    fn hybrid_hierarchies_with_a_cgroup_namespace() {
        let h = hierarchies(HYBRID, None).unwrap();
        let names: Vec<_> = h.iter().map(|h| (h.name.as_str(), h.fstype, h.options.as_str())).collect();
        assert_eq!(
            names,
            [
                ("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                ("memory", "cgroup", "memory"),
                ("systemd", "cgroup", "name=systemd"),
                ("unified", "cgroup2", ""),
            ]
        );
        assert!(h.iter().all(|h| h.source.is_none()));
    }

    #[test]
    fn hybrid_hierarchies_bind_the_own_cgroup() {
        let h = hierarchies(HYBRID, Some(PROC_CGROUP)).unwrap();
        let sources: Vec<_> = h.iter().map(|h| h.source.clone().unwrap()).collect();
        assert_eq!(
            sources,
            [
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1"),
                PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"),
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/sys/fs/cgroup/unified/u1"),
            ]
        );
    }

    #[test]
    fn mount_root_is_taken_off_the_own_path() {
        let info = "35 31 0:32 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let h = hierarchies(info, Some("4:memory:/process_api/abc\n")).unwrap();
        assert_eq!(h[0].source.as_deref(), Some(Path::new("/sys/fs/cgroup/memory/abc")));
        let err = hierarchies(info, Some("4:memory:/elsewhere\n")).unwrap_err();
        assert!(err.contains("/elsewhere"), "{err}");
    }

    #[test]
    fn own_cgroup_matches_controller_sets() {
        assert_eq!(own_cgroup(PROC_CGROUP, &["cpu", "cpuacct"]), Some("/c1"));
        assert_eq!(own_cgroup(PROC_CGROUP, &[]), Some("/u1"));
        assert_eq!(own_cgroup(PROC_CGROUP, &["name=systemd"]), Some("/"));
        assert_eq!(own_cgroup(PROC_CGROUP, &["pids"]), None);
    }

    #[test]
    fn this_hosts_hierarchies_parse() {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let with = hierarchies(&info, Some(&own)).unwrap();
        let without = hierarchies(&info, None).unwrap();
        assert_eq!(with.len(), without.len());
    }
}
