//! The rootfs plan: which mounts, devices, masked and read-only paths, in order.
//!
//! Everything that can be known without the container's mount namespace is
//! decided and checked here, in the caller, before the first clone: the options
//! of each mount are parsed ([`options`]; what amphi does not know is the
//! filesystem's data, ignored with a debug line by a bind or cgroup mount, which
//! makes no new filesystem), a bind mount's source must exist (a
//! relative source is read against the bundle directory, as the runtime-spec
//! says) and tells whether its target is a file or a directory, destinations are
//! made absolute and clean, and nothing may be mounted inside `/proc` except the
//! few files that lxcfs-style tools emulate. [`crate::process::rootfs`] carries
//! the plan out in the container's init.
//!
//! The rootfs is built in the container's mount namespace: a new one, or one
//! joined by `path` (then, as runc does, the mounts and the `pivot_root` happen
//! in that namespace, which other processes may share: see
//! [`crate::plan::namespaces`]). A spec without a mount namespace leaves the
//! container in the runtime's own: nothing is mounted and the rootfs is entered
//! with `chroot`, under the rules of [`inherited`].

pub mod devices;
pub mod inherited;
pub mod options;

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{Linux, LinuxNamespaceType, Spec};

pub use devices::{DeviceKind, DevicePlan};
pub use options::{Bind, MountOptions};

use super::{SpecError, clean_absolute};
use crate::sys::mount::MountAttr;

/// What the mount plan depends on besides the spec.
#[derive(Debug, Clone)]
pub struct MountContext {
    /// The bundle directory: relative bind-mount sources are read against it.
    pub bundle: PathBuf,
    pub new_user_ns: bool,
    pub new_cgroup_ns: bool,
    /// The container's cgroup (relative to each hierarchy's root).
    pub cgroup_path: PathBuf,
    /// `--no-pivot`: chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// The rootfs plan.
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    /// The rootfs on the host (absolute, as the bundle resolved it).
    pub rootfs: PathBuf,
    /// `root.readonly`: `/` is made read-only last.
    pub readonly: bool,
    pub no_pivot: bool,
    /// No mount namespace of the container's own (none in `linux.namespaces`):
    /// nothing is mounted and the rootfs is entered with `chroot` through a
    /// descriptor ([`inherited`]). Every list below is empty then.
    pub inherits_mount_ns: bool,
    /// Applied to the whole mount tree before anything is mounted: `MS_SLAVE |
    /// MS_REC` (like runc) unless `linux.rootfsPropagation` says otherwise.
    pub propagation: MsFlags,
    /// `linux.rootfsPropagation` to apply again to the new `/` after the pivot
    /// (never a private type: the rootfs is private already).
    pub root_propagation: Option<MsFlags>,
    /// `mounts`, in spec order.
    pub mounts: Vec<MountPlan>,
    /// Whether `/dev` is the runtime's to fill: false when a mount binds `/dev`
    /// from the host.
    pub setup_dev: bool,
    /// `/dev` was asked read-only: it is made so after its devices are created.
    pub dev_readonly: bool,
    /// The default devices and `linux.devices` (none when `setup_dev` is false).
    pub devices: Vec<DevicePlan>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    /// The init runs in a user namespace (new or joined): `mknod` is not allowed,
    /// so device nodes are bind-mounted from the host.
    pub user_ns: bool,
    /// The init has a new cgroup namespace (unshared before the rootfs is
    /// prepared): cgroup filesystems are mounted, not bound.
    pub cgroup_ns: bool,
    /// The container's cgroup, relative to the hierarchy's root: what a v2 host
    /// binds when a cgroup namespace may not mount cgroup2 (inside the namespace
    /// `/proc/self/cgroup` no longer says where that is).
    pub cgroup_path: PathBuf,
}

/// One entry of `mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Where the entry is in `mounts`, for messages (`mounts[3].options`).
    pub index: usize,
    /// Absolute and clean; read inside the rootfs.
    pub destination: PathBuf,
    pub kind: MountKind,
    /// `mount(2)` flags of a filesystem mount; for `cgroup`, those of each
    /// hierarchy. Never `MS_BIND`/`MS_REC` (see [`MountKind::Bind`]).
    pub flags: MsFlags,
    /// Filesystem data, one option each, in the spec's order (`mode=755`,
    /// `size=65536k`, `newinstance`); empty but for a filesystem mount.
    pub data: Vec<String>,
    /// `mount_setattr` calls on the new mount, in order: a bind's flags, the
    /// recursive attributes, the propagation types.
    pub setattr: Vec<SetAttr>,
}

/// One `mount_setattr(2)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAttr {
    /// With `AT_RECURSIVE`: every mount of the tree.
    pub recursive: bool,
    pub attr: MountAttr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// `bind`/`rbind` or type `bind`.
    Bind {
        /// Absolute path on the host (checked to exist when the bundle is
        /// loaded). Inside the rootfs, it is resolved inside it when mounted;
        /// the target is made a directory or a file to match what it opens.
        source: PathBuf,
        recursive: bool,
    },
    /// Type `cgroup`: the container's view of the cgroup hierarchies, shaped at
    /// run time after the host's (v2, or v1/hybrid as a tmpfs of hierarchies).
    Cgroup,
    /// Any other filesystem (`proc`, `sysfs`, `tmpfs`, `devpts`, `mqueue`,
    /// `cgroup2`, `overlay`, ...), mounted with its source and data.
    Filesystem { fstype: String, source: PathBuf },
}

/// The only places inside `/proc` a mount may cover: files that tools such as
/// lxcfs emulate. Anything else could hide what the masked paths protect.
const PROC_MOUNTS_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/pressure/cpu",
    "/proc/pressure/io",
    "/proc/pressure/memory",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

impl RootfsPlan {
    pub fn new(spec: &Spec, rootfs: PathBuf, ctx: &MountContext) -> Result<Self, SpecError> {
        let readonly = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
        let linux = spec.linux().as_ref();
        let namespaces = linux.and_then(|l| l.namespaces().as_deref()).unwrap_or_default();
        let is_new = |p: &Option<PathBuf>| p.as_ref().is_none_or(|p| p.as_os_str().is_empty());
        let inherits_mount_ns = !namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Mount);
        if inherits_mount_ns {
            inherited::check(spec)?;
        }
        let joins_user = namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::User && !is_new(n.path()));

        let (propagation, root_propagation) = match linux.map(rootfs_propagation).transpose()?.flatten() {
            None => (MsFlags::MS_SLAVE | MsFlags::MS_REC, None),
            Some(flags) => {
                if flags.contains(MsFlags::MS_UNBINDABLE) {
                    // An unbindable tree could not bind the rootfs onto itself:
                    // keep runc's default until the pivot, then apply it to `/`.
                    (MsFlags::MS_SLAVE | MsFlags::MS_REC, Some(flags))
                } else {
                    (flags, (!flags.contains(MsFlags::MS_PRIVATE)).then_some(flags))
                }
            }
        };

        let mut mounts = Vec::new();
        for (i, m) in spec.mounts().iter().flatten().enumerate() {
            mounts.push(plan_mount(i, m, ctx)?);
        }
        let setup_dev = !inherits_mount_ns
            && !mounts.iter().any(|m| m.destination == Path::new("/dev") && matches!(m.kind, MountKind::Bind { .. }));
        let mut dev_readonly = false;
        if setup_dev {
            // Devices are made after the mounts: a read-only /dev becomes so later.
            for m in mounts.iter_mut().filter(|m| m.destination == Path::new("/dev")) {
                if m.flags.contains(MsFlags::MS_RDONLY) {
                    m.flags.remove(MsFlags::MS_RDONLY);
                    dev_readonly = true;
                }
            }
        }

        // Checked always, made only into a /dev of the runtime's own: a /dev bound
        // from the host is never written to.
        let spec_devices = devices::plan(linux.and_then(|l| l.devices().as_deref()).unwrap_or_default())?;
        let devices = if setup_dev { devices::with_defaults(spec_devices) } else { Vec::new() };

        let masked_paths =
            absolute_paths("linux.maskedPaths", linux.and_then(|l| l.masked_paths().as_deref()).unwrap_or_default())?;
        let readonly_paths = absolute_paths(
            "linux.readonlyPaths",
            linux.and_then(|l| l.readonly_paths().as_deref()).unwrap_or_default(),
        )?;

        Ok(Self {
            rootfs,
            readonly,
            no_pivot: ctx.no_pivot,
            inherits_mount_ns,
            propagation,
            root_propagation,
            mounts,
            setup_dev,
            dev_readonly,
            devices,
            masked_paths,
            readonly_paths,
            user_ns: ctx.new_user_ns || joins_user,
            cgroup_ns: ctx.new_cgroup_ns,
            cgroup_path: ctx.cgroup_path.clone(),
        })
    }

    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Whether the tree's propagation leaves no shared mount behind (`rslave` or
    /// `rprivate`): then the rootfs's parent needs no change for `pivot_root`,
    /// and unmounting the old root cannot reach the host.
    pub fn nothing_shared(&self) -> bool {
        self.propagation.contains(MsFlags::MS_REC)
            && self.propagation.intersects(MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE)
    }
}

/// `linux.rootfsPropagation` as `mount(2)` flags (`None` when unset or empty).
pub fn rootfs_propagation(linux: &Linux) -> Result<Option<MsFlags>, SpecError> {
    let Some(name) = linux.rootfs_propagation().as_deref().filter(|p| !p.is_empty()) else { return Ok(None) };
    options::propagation(name).map(Some).ok_or_else(|| {
        let names: Vec<_> = options::PROPAGATIONS.iter().map(|(name, _)| *name).collect();
        SpecError::new(
            "linux.rootfsPropagation",
            format!("unknown propagation {name:?} (expected one of {})", names.join(", ")),
        )
    })
}

fn plan_mount(i: usize, m: &oci_spec::runtime::Mount, ctx: &MountContext) -> Result<MountPlan, SpecError> {
    let field = |name: &str| format!("mounts[{i}].{name}");
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        return Err(SpecError::new(field("uidMappings"), "id-mapped mounts are not supported"));
    }
    if m.destination().as_os_str().is_empty() {
        return Err(SpecError::new(field("destination"), "missing"));
    }
    let destination = clean_absolute(m.destination());
    if destination == Path::new("/") {
        return Err(SpecError::new(field("destination"), "cannot mount over the container's root"));
    }
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|reason| SpecError::new(field("options"), reason))?;
    let typ = m.typ().as_deref().unwrap_or("");
    let is_bind = opts.bind.is_some() || typ == "bind";

    let kind = if is_bind {
        let source = m.source().as_ref().filter(|s| !s.as_os_str().is_empty());
        let source = source.ok_or_else(|| SpecError::new(field("source"), "a bind mount needs a source"))?;
        let source = if source.is_absolute() { source.clone() } else { ctx.bundle.join(source) };
        std::fs::metadata(&source).map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => format!("{} does not exist", source.display()),
                _ => format!("{}: {e}", source.display()),
            };
            SpecError::new(field("source"), reason)
        })?;
        MountKind::Bind { source, recursive: opts.bind == Some(Bind::Recursive) }
    } else if typ.is_empty() {
        return Err(SpecError::new(field("type"), "missing (and the options name no bind)"));
    } else if typ == "cgroup" {
        MountKind::Cgroup
    } else {
        let source = m.source().clone().filter(|s| !s.as_os_str().is_empty()).unwrap_or_else(|| typ.into());
        MountKind::Filesystem { fstype: typ.to_owned(), source }
    };
    if !matches!(kind, MountKind::Filesystem { .. }) && !opts.data.is_empty() {
        // A bind copies a mount that exists and a cgroup mount is shaped after
        // the host's: no filesystem is made that could take data (runc and
        // crun ignore it too).
        tracing::debug!(
            field = %field("options"),
            destination = %destination.display(),
            data = %opts.data.join(","),
            "filesystem options ignored: this mount makes no new filesystem"
        );
    }
    check_proc_destination(&destination, &kind).map_err(|reason| SpecError::new(field("destination"), reason))?;

    let mut setattr = Vec::new();
    if matches!(kind, MountKind::Bind { .. }) {
        let attr = opts.bind_attr();
        if !attr.is_empty() {
            setattr.push(SetAttr { recursive: false, attr });
        }
    }
    if !opts.recursive.is_empty() {
        setattr.push(SetAttr { recursive: true, attr: opts.recursive });
    }
    for (n, flags) in opts.propagation.iter().enumerate() {
        let recursive = flags.contains(MsFlags::MS_REC);
        let propagation: u64 = (*flags - MsFlags::MS_REC).bits();
        // A lone propagation type rides along with the attribute call of the same
        // reach, saving a syscall; several keep their order in calls of their own.
        let alone = opts.propagation.len() == 1 && n == 0;
        match setattr.iter_mut().find(|s| alone && s.recursive == recursive) {
            Some(step) => step.attr.propagation = propagation,
            None => setattr.push(SetAttr { recursive, attr: MountAttr { propagation, ..MountAttr::default() } }),
        }
    }

    let (flags, data) = match kind {
        MountKind::Bind { .. } => (MsFlags::empty(), Vec::new()),
        MountKind::Cgroup => (opts.flags, Vec::new()),
        MountKind::Filesystem { .. } => (opts.flags, opts.data),
    };
    Ok(MountPlan { index: i, destination, kind, flags, data, setattr })
}

/// Mounts inside `/proc` could hide the masked paths; only `proc` itself (or a
/// bind) at `/proc`, and binds of the emulated files below it, are allowed.
fn check_proc_destination(destination: &Path, kind: &MountKind) -> Result<(), String> {
    if destination == Path::new("/proc") {
        return match kind {
            MountKind::Filesystem { fstype, .. } if fstype != "proc" => {
                Err(format!("/proc can only be a proc mount, not {fstype}"))
            }
            MountKind::Cgroup => Err("/proc can only be a proc mount, not cgroup".into()),
            _ => Ok(()),
        };
    }
    if destination.starts_with("/proc") && !PROC_MOUNTS_ALLOWED.iter().any(|p| destination == Path::new(p)) {
        return Err(format!("{} is inside /proc", destination.display()));
    }
    Ok(())
}

fn absolute_paths(field: &str, paths: &[String]) -> Result<Vec<PathBuf>, SpecError> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if Path::new(p).is_absolute() {
                Ok(clean_absolute(Path::new(p)))
            } else {
                Err(SpecError::new(format!("{field}[{i}]"), format!("{p:?} is not an absolute path")))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(bundle: &Path) -> MountContext {
        MountContext {
            bundle: bundle.to_path_buf(),
            new_user_ns: false,
            new_cgroup_ns: false,
            cgroup_path: PathBuf::from("/amphi/test"),
            no_pivot: false,
        }
    }

    /// A spec with a new mount namespace and the given `mounts` and `linux` extras.
    fn spec(mounts: &str, linux_extra: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.2.0","mounts":[{mounts}],
            "linux":{{"namespaces":[{{"type":"mount"}},{{"type":"pid"}}]{linux_extra}}}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn plan(mounts: &str, linux_extra: &str) -> Result<RootfsPlan, SpecError> {
        RootfsPlan::new(&spec(mounts, linux_extra), "/rootfs".into(), &ctx(Path::new("/")))
    }

    #[test]
    fn default_mounts_keep_spec_order_and_data() {
        let p = plan(
            r#"{"destination":"/proc","type":"proc","source":"proc"},
               {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
               {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620","gid=5"]},
               {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}"#,
            "",
        )
        .unwrap();
        let dests: Vec<_> = p.mounts.iter().map(|m| m.destination.to_str().unwrap()).collect();
        assert_eq!(dests, ["/proc", "/dev", "/dev/pts", "/sys/fs/cgroup"]);
        assert_eq!(p.mounts[1].data, ["mode=755", "size=65536k"]);
        assert_eq!(p.mounts.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(p.mounts[1].flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(p.mounts[2].data, ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
        assert_eq!(p.mounts[3].kind, MountKind::Cgroup);
        assert!(p.mounts[3].flags.contains(MsFlags::MS_RDONLY));
        assert!(p.mounts.iter().all(|m| m.setattr.is_empty()));
        assert!(p.setup_dev);
        assert_eq!(p.devices.len(), 6);
        assert!(p.devices.iter().any(|d| d.path == Path::new("/dev/tty") && (d.major, d.minor) == (5, 0)));
        assert_eq!(p.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert!(p.nothing_shared());
        assert_eq!(p.root_propagation, None);
    }

    #[test]
    fn bind_source_is_read_against_the_bundle() {
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("data")).unwrap();
        std::fs::write(bundle.path().join("file"), "x").unwrap();
        let s = spec(
            r#"{"destination":"data","source":"data","options":["rbind","ro","nosuid"]},
               {"destination":"/etc/f","type":"bind","source":"file"}"#,
            "",
        );
        let p = RootfsPlan::new(&s, "/rootfs".into(), &ctx(bundle.path())).unwrap();
        assert_eq!(p.mounts[0].destination, Path::new("/data"), "a relative destination is read from /");
        assert_eq!(p.mounts[0].kind, MountKind::Bind { source: bundle.path().join("data"), recursive: true });
        assert_eq!(
            p.mounts[0].setattr,
            vec![SetAttr {
                recursive: false,
                attr: MountAttr { set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID, ..MountAttr::default() }
            }]
        );
        assert_eq!(p.mounts[1].kind, MountKind::Bind { source: bundle.path().join("file"), recursive: false });
        assert!(p.mounts[1].setattr.is_empty(), "a bind without options is one mount call");
    }

    #[test]
    fn missing_bind_source_names_the_field() {
        let err =
            plan(r#"{"destination":"/x"},{"destination":"/data","source":"/nonexistent/src","options":["bind"]}"#, "")
                .unwrap_err()
                .to_string();
        // The first entry has no type and no bind option.
        assert!(err.contains("mounts[0].type"), "{err}");
        let err = plan(r#"{"destination":"/data","source":"/nonexistent/src","options":["bind"]}"#, "")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "config.json: mounts[0].source: /nonexistent/src does not exist");
    }

    #[test]
    fn data_options_of_a_bind_or_cgroup_mount_are_ignored() {
        let p = plan(
            r#"{"destination":"/d","type":"bind","source":"/","options":["rbind","mode=755","ro"]},
               {"destination":"/sys/fs/cgroup","type":"cgroup","options":["ro","nsdelegate"]}"#,
            "",
        )
        .unwrap();
        assert!(p.mounts[0].data.is_empty() && p.mounts[1].data.is_empty());
        assert_eq!(p.mounts[0].setattr[0].attr.set, libc::MOUNT_ATTR_RDONLY, "the flags still count");
        assert_eq!(p.mounts[1].flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn malformed_options_name_the_field() {
        let err = plan(r#"{"destination":"/d","type":"tmpfs","options":["nosuid","ro=1"]}"#, "").unwrap_err();
        assert_eq!(err.to_string(), r#"config.json: mounts[0].options: option "ro=1": "ro" takes no value"#);
        let err =
            plan(r#"{"destination":"/a","type":"tmpfs"},{"destination":"/d","type":"bind","source":"/","options":["rbind",""]}"#, "")
                .unwrap_err();
        assert_eq!(err.to_string(), "config.json: mounts[1].options: option 1 is empty");
        let err = plan(r#"{"destination":"/d","type":"tmpfs","options":["tmpcopyup"]}"#, "").unwrap_err();
        assert_eq!(err.field, "mounts[0].options");
        let p = plan(r#"{"destination":"/d","type":"tmpfs","options":["nr_inodes=1k","huge=never"]}"#, "").unwrap();
        assert_eq!(p.mounts[0].data, ["nr_inodes=1k", "huge=never"]);
    }

    #[test]
    fn destinations_are_cleaned_and_root_is_refused() {
        let p = plan(r#"{"destination":"/a/./b/../c//","type":"tmpfs"}"#, "").unwrap();
        assert_eq!(p.mounts[0].destination, Path::new("/a/c"));
        let err = plan(r#"{"destination":"/x/..","type":"tmpfs"}"#, "").unwrap_err();
        assert_eq!(err.field, "mounts[0].destination");
    }

    #[test]
    fn nothing_but_proc_inside_proc() {
        let err = plan(r#"{"destination":"/proc/sys","type":"tmpfs"}"#, "").unwrap_err();
        assert!(err.reason.contains("inside /proc"), "{err}");
        let err = plan(r#"{"destination":"/proc","type":"tmpfs"}"#, "").unwrap_err();
        assert_eq!(err.field, "mounts[0].destination");
        plan(r#"{"destination":"/proc/meminfo","type":"bind","source":"/proc/meminfo"}"#, "").unwrap();
        plan(r#"{"destination":"/proc","type":"proc"}"#, "").unwrap();
    }

    #[test]
    fn a_lone_propagation_rides_with_the_attributes() {
        let p =
            plan(r#"{"destination":"/d","type":"bind","source":"/","options":["rbind","ro","rprivate"]}"#, "").unwrap();
        // ro is non-recursive, rprivate recursive: two calls.
        assert_eq!(p.mounts[0].setattr.len(), 2);
        assert!(p.mounts[0].setattr[1].recursive);
        assert_eq!(p.mounts[0].setattr[1].attr.propagation, libc::MS_PRIVATE);
        let p =
            plan(r#"{"destination":"/d","type":"bind","source":"/","options":["rbind","ro","private"]}"#, "").unwrap();
        assert_eq!(p.mounts[0].setattr.len(), 1);
        assert_eq!(p.mounts[0].setattr[0].attr.propagation, libc::MS_PRIVATE);
        assert_eq!(p.mounts[0].setattr[0].attr.set, libc::MOUNT_ATTR_RDONLY);
        let p = plan(r#"{"destination":"/d","type":"tmpfs","options":["rshared","slave"]}"#, "").unwrap();
        let props: Vec<_> = p.mounts[0].setattr.iter().map(|s| (s.recursive, s.attr.propagation)).collect();
        assert_eq!(props, [(true, libc::MS_SHARED), (false, libc::MS_SLAVE)]);
    }

    #[test]
    fn bound_dev_means_no_devices() {
        let p = plan(
            r#"{"destination":"/dev","type":"bind","source":"/dev","options":["rbind"]}"#,
            r#","devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]"#,
        )
        .unwrap();
        assert!(!p.setup_dev);
        assert!(p.devices.is_empty());
    }

    #[test]
    fn read_only_dev_is_deferred() {
        let p = plan(r#"{"destination":"/dev","type":"tmpfs","options":["ro","nosuid"]}"#, "").unwrap();
        assert!(p.dev_readonly);
        assert_eq!(p.mounts[0].flags, MsFlags::MS_NOSUID);
    }

    #[test]
    fn propagation_of_the_rootfs() {
        let p = plan("", r#","rootfsPropagation":"rshared""#).unwrap();
        assert_eq!(p.propagation, MsFlags::MS_SHARED | MsFlags::MS_REC);
        assert_eq!(p.root_propagation, Some(MsFlags::MS_SHARED | MsFlags::MS_REC));
        assert!(!p.nothing_shared());
        let p = plan("", r#","rootfsPropagation":"rprivate""#).unwrap();
        assert_eq!(p.root_propagation, None);
        assert!(p.nothing_shared());
        let p = plan("", r#","rootfsPropagation":"slave""#).unwrap();
        assert!(!p.nothing_shared(), "a non-recursive slave leaves the rest as it was");
        let p = plan("", r#","rootfsPropagation":"runbindable""#).unwrap();
        assert_eq!(p.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC, "the rootfs must stay bindable until the pivot");
        assert_eq!(p.root_propagation, Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC));
        let err = plan("", r#","rootfsPropagation":"sideways""#).unwrap_err();
        assert_eq!(err.field, "linux.rootfsPropagation");
    }

    #[test]
    fn masked_and_readonly_paths_must_be_absolute() {
        let p = plan("", r#","maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"]"#).unwrap();
        assert_eq!(p.masked_paths, [PathBuf::from("/proc/kcore")]);
        assert_eq!(p.readonly_paths, [PathBuf::from("/proc/sys")]);
        let err = plan("", r#","maskedPaths":["/ok","proc/kcore"]"#).unwrap_err();
        assert_eq!(err.field, "linux.maskedPaths[1]");
    }

    #[test]
    fn without_a_mount_namespace_nothing_is_mounted() {
        let s: Spec =
            serde_json::from_str(r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"pid"}]}}"#).unwrap();
        let p = RootfsPlan::new(&s, "/r".into(), &ctx(Path::new("/"))).unwrap();
        assert!(p.inherits_mount_ns);
        assert!(!p.setup_dev, "no /dev of the runtime's own");
        assert!(p.devices.is_empty() && p.mounts.is_empty() && p.masked_paths.is_empty());
        assert!(!plan("", "").unwrap().inherits_mount_ns);
        // Whatever needs a mount is refused, naming the field.
        let s: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/tmp","type":"tmpfs"}],"linux":{"namespaces":[]}}"#,
        )
        .unwrap();
        assert_eq!(RootfsPlan::new(&s, "/r".into(), &ctx(Path::new("/"))).unwrap_err().field, "mounts[0]");
    }

    #[test]
    fn a_joined_mount_namespace_is_built_like_a_new_one() {
        let s: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.2.0","mounts":[{"destination":"/proc","type":"proc"}],
            "linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"}],"maskedPaths":["/proc/kcore"]}}"#,
        )
        .unwrap();
        let p = RootfsPlan::new(&s, "/r".into(), &ctx(Path::new("/"))).unwrap();
        assert!(!p.inherits_mount_ns);
        assert!(p.setup_dev);
        assert_eq!(p.mounts.len(), 1);
        assert_eq!(p.masked_paths, [PathBuf::from("/proc/kcore")]);
    }

    #[test]
    fn joined_user_namespace_counts_as_user_namespace() {
        let s: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}]}}"#,
        )
        .unwrap();
        assert!(RootfsPlan::new(&s, "/r".into(), &ctx(Path::new("/"))).unwrap().user_ns);
        assert!(!plan("", "").unwrap().user_ns);
    }

    #[test]
    fn id_mapped_mounts_are_refused() {
        let err = plan(
            r#"{"destination":"/d","type":"bind","source":"/","options":["rbind"],
                "uidMappings":[{"containerID":0,"hostID":1,"size":1}],"gidMappings":[{"containerID":0,"hostID":1,"size":1}]}"#,
            "",
        )
        .unwrap_err();
        assert_eq!(err.field, "mounts[0].uidMappings");
    }
}
