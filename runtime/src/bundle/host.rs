//! Checks that must look at the host.
//!
//! Each runs only when the spec asks for what it checks, so a typical bundle
//! (new namespaces, no labels) costs one `stat` of the rootfs. A namespace to
//! join costs `open(O_PATH)`, `fstatfs` and a `readlink` of its `/proc/self/fd`
//! link: the file must be on nsfs and the link names its type (`net:[4026531840]`),
//! all without `unsafe`.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::sys::statfs::{self, FsType};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{BundleError, Errno, Shown};
use crate::sys::inroot::proc_fd_path;

type Result<T = ()> = std::result::Result<T, BundleError>;

/// What the host supports, asked only when the spec needs to know.
#[derive(Debug, Clone, Copy)]
pub(super) struct Host {
    pub selinux: fn() -> bool,
    pub apparmor: fn() -> bool,
    pub cgroup2_unified: fn() -> bool,
    /// Whether the kernel can make namespaces of this type.
    pub namespace: fn(LinuxNamespaceType) -> bool,
}

impl Host {
    pub const REAL: Host =
        Host { selinux: selinux_enabled, apparmor: apparmor_enabled, cgroup2_unified, namespace: namespace_supported };
}

fn selinux_enabled() -> bool {
    statfs::statfs("/sys/fs/selinux").is_ok_and(|s| s.filesystem_type() == statfs::SELINUX_MAGIC)
}

fn apparmor_enabled() -> bool {
    std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.starts_with(b"Y"))
}

fn cgroup2_unified() -> bool {
    statfs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.filesystem_type() == statfs::CGROUP2_SUPER_MAGIC)
}

/// The namespaces a kernel may lack (newer than user namespaces, 3.8) show in
/// `/proc/self`; the others are always there.
fn namespace_supported(typ: LinuxNamespaceType) -> bool {
    match typ {
        LinuxNamespaceType::User => Path::new("/proc/self/ns/user").exists(),
        LinuxNamespaceType::Cgroup => Path::new("/proc/self/ns/cgroup").exists(),
        LinuxNamespaceType::Time => Path::new("/proc/self/timens_offsets").exists(),
        _ => true,
    }
}

/// The type's name on nsfs (`readlink /proc/self/ns/net` is `net:[...]`).
fn nsfs_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub(super) fn check(spec: &Spec, rootfs: &Path, host: &Host) -> Result {
    match std::fs::metadata(rootfs) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(BundleError::field("root.path", format!("rootfs {} is not a directory", Shown(rootfs)))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BundleError::field("root.path", format!("rootfs {} does not exist", Shown(rootfs))));
        }
        Err(e) => {
            return Err(BundleError::field("root.path", format!("stat {}: {}", Shown(rootfs), Errno(&e))));
        }
    }
    if let Some(linux) = spec.linux() {
        let net_sysctl = linux
            .sysctl()
            .iter()
            .flat_map(|m| m.keys())
            .find(|k| crate::plan::sysctl::namespace(k) == Some(LinuxNamespaceType::Network));
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            match ns.path().as_deref().filter(|p| !p.as_os_str().is_empty()) {
                Some(path) => {
                    let host_net = namespace_file(i, ns.typ(), path, net_sysctl.is_some())?;
                    if let (true, Some(key)) = (host_net, net_sysctl) {
                        return Err(BundleError::field(
                            format!("linux.sysctl[{key:?}]"),
                            format!("needs a private network namespace, but {} is this host's", Shown(path)),
                        ));
                    }
                }
                None if !(host.namespace)(ns.typ()) => {
                    return Err(BundleError::field(
                        format!("linux.namespaces[{i}].type"),
                        format!("this kernel has no {} namespaces", nsfs_name(ns.typ())),
                    ));
                }
                None => {}
            }
        }
        if linux.resources().as_ref().and_then(|r| r.unified().as_ref()).is_some_and(|u| !u.is_empty())
            && !(host.cgroup2_unified)()
        {
            return Err(BundleError::field("linux.resources.unified", "needs a host in cgroup v2 unified mode"));
        }
    }
    if let Some(process) = spec.process() {
        if process.selinux_label().as_deref().is_some_and(|l| !l.is_empty()) && !(host.selinux)() {
            return Err(BundleError::field("process.selinuxLabel", "SELinux is not enabled on this host"));
        }
        if process.apparmor_profile().as_deref().is_some_and(|p| !p.is_empty()) && !(host.apparmor)() {
            return Err(BundleError::field("process.apparmorProfile", "AppArmor is not enabled on this host"));
        }
    }
    Ok(())
}

/// The nsfs name of a `CLONE_NEW*` flag.
fn kind_name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        libc::CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

/// Checks that `path` is a namespace file of type `typ`. For a network namespace
/// with `compare_host_net`, returns whether it is this process's own.
fn namespace_file(i: usize, typ: LinuxNamespaceType, path: &Path, compare_host_net: bool) -> Result<bool> {
    let fail = |reason: String| BundleError::field(format!("linux.namespaces[{i}].path"), reason);
    let file = open_namespace(path, typ as libc::c_int).map_err(fail)?;
    if !(compare_host_net && typ == LinuxNamespaceType::Network) {
        return Ok(false);
    }
    let theirs = file.metadata().map_err(|e| fail(format!("stat {}: {}", Shown(path), Errno(&e))))?;
    let ours =
        std::fs::metadata("/proc/self/ns/net").map_err(|e| fail(format!("stat /proc/self/ns/net: {}", Errno(&e))))?;
    Ok(theirs.dev() == ours.dev() && theirs.ino() == ours.ino())
}

/// Opens the namespace file at `path`, ready for `setns`, checked to be a
/// namespace of type `flag` (`CLONE_NEW*`): what `create` checks up front and
/// what the intermediate stage joins (the path may have changed in between).
/// The reason names the path.
pub(crate) fn open_namespace(path: &Path, flag: libc::c_int) -> std::result::Result<std::fs::File, String> {
    // O_PATH first: no side effect of opening (a fifo would block); the ioctl
    // that names the type needs a real descriptor, opened once nsfs is sure.
    let file = OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("{} does not exist", Shown(path))
        } else {
            format!("open {}: {}", Shown(path), Errno(&e))
        }
    })?;
    let fs = statfs::fstatfs(&file).map_err(|e| format!("statfs {}: {}", Shown(path), Errno(&io::Error::from(e))))?;
    if fs.filesystem_type() != FsType(libc::NSFS_MAGIC as _) {
        return Err(format!("{} is not a namespace file", Shown(path)));
    }
    let ns = OpenOptions::new()
        .read(true)
        .open(proc_fd_path(&file))
        .map_err(|e| format!("open {}: {}", Shown(path), Errno(&e)))?;
    let found = crate::sys::ns::namespace_type(ns.as_fd())
        .map_err(|e| format!("namespace type of {}: {}", Shown(path), Errno(&e)))?;
    if found != flag {
        return Err(format!("{} is a {:?} namespace, not {:?}", Shown(path), kind_name(found), kind_name(flag)));
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTHING: Host =
        Host { selinux: || false, apparmor: || false, cgroup2_unified: || false, namespace: |_| false };
    const EVERYTHING: Host =
        Host { selinux: || true, apparmor: || true, cgroup2_unified: || true, namespace: |_| true };

    fn spec(json: serde_json::Value) -> Spec {
        let mut base =
            serde_json::json!({"ociVersion": "1.2.0", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}}});
        base.as_object_mut().unwrap().extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn refused(s: &Spec, host: &Host, field: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let err = check(s, dir.path(), host).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(err.starts_with(&format!("config.json: {field}: ")), "expected field {field}: {err}");
        err
    }

    fn passes(s: &Spec, host: &Host) {
        let dir = tempfile::tempdir().unwrap();
        check(s, dir.path(), host).unwrap();
    }

    #[test]
    fn missing_rootfs_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let err = check(&spec(serde_json::json!({})), &rootfs, &EVERYTHING).unwrap_err().to_string();
        assert_eq!(err, format!("config.json: root.path: rootfs {} does not exist", rootfs.display()));
    }

    #[test]
    fn rootfs_that_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::write(&rootfs, b"").unwrap();
        let err = check(&spec(serde_json::json!({})), &rootfs, &EVERYTHING).unwrap_err().to_string();
        assert_eq!(err, format!("config.json: root.path: rootfs {} is not a directory", rootfs.display()));
    }

    #[test]
    fn namespace_path_that_does_not_exist() {
        let s =
            spec(serde_json::json!({"linux": {"namespaces": [{"type": "network", "path": "/nonexistent/ns/net"}]}}));
        let err = refused(&s, &EVERYTHING, "linux.namespaces[0].path");
        assert!(err.ends_with("/nonexistent/ns/net does not exist"), "{err}");
    }

    #[test]
    fn namespace_path_that_is_not_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("netns");
        std::fs::write(&file, b"").unwrap();
        let s = spec(serde_json::json!({"linux": {"namespaces": [{"type": "network", "path": file}]}}));
        let err = refused(&s, &EVERYTHING, "linux.namespaces[0].path");
        assert!(err.ends_with("is not a namespace file"), "{err}");
    }

    #[test]
    fn namespace_path_of_the_wrong_type() {
        let s = spec(
            serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/proc/self/ns/ipc"}]}}),
        );
        let err = refused(&s, &EVERYTHING, "linux.namespaces[1].path");
        assert!(err.ends_with(r#"/proc/self/ns/ipc is a "ipc" namespace, not "net""#), "{err}");
    }

    #[test]
    fn namespace_paths_of_the_right_type_pass() {
        let s = spec(serde_json::json!({"linux": {"namespaces": [
            {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "mount", "path": "/proc/self/ns/mnt"},
            {"type": "pid", "path": "/proc/self/ns/pid_for_children"},
            {"type": "uts", "path": "/proc/self/ns/uts"}
        ]}}));
        passes(&s, &NOTHING);
    }

    #[test]
    fn net_sysctl_in_the_hosts_network_namespace() {
        let s = spec(serde_json::json!({"linux": {
            "namespaces": [{"type": "network", "path": "/proc/self/ns/net"}],
            "sysctl": {"net.ipv4.ip_forward": "1"}
        }}));
        let err = refused(&s, &EVERYTHING, "linux.sysctl[\"net.ipv4.ip_forward\"]");
        assert!(err.contains("is this host's"), "{err}");
    }

    #[test]
    fn namespace_the_kernel_lacks() {
        let s = spec(serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "time"}]}}));
        let err = refused(&s, &NOTHING, "linux.namespaces[0].type");
        assert!(err.contains("no pid namespaces"), "{err}");
        passes(&s, &Host::REAL);
    }

    #[test]
    fn lsm_labels_need_the_lsm() {
        let s = spec(
            serde_json::json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "selinuxLabel": "system_u:system_r:container_t:s0"}}),
        );
        refused(&s, &NOTHING, "process.selinuxLabel");
        passes(&s, &EVERYTHING);
        let s = spec(
            serde_json::json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "apparmorProfile": "docker-default"}}),
        );
        refused(&s, &NOTHING, "process.apparmorProfile");
        passes(&s, &EVERYTHING);
    }

    #[test]
    fn unified_needs_cgroup2() {
        let s = spec(serde_json::json!({"linux": {"resources": {"unified": {"cpu.max": "max"}}}}));
        refused(&s, &NOTHING, "linux.resources.unified");
        passes(&s, &EVERYTHING);
    }

    #[test]
    fn real_probes_agree_with_the_host() {
        assert_eq!(
            (Host::REAL.cgroup2_unified)(),
            statfs::statfs("/sys/fs/cgroup").unwrap().filesystem_type() == statfs::CGROUP2_SUPER_MAGIC
        );
        assert!((Host::REAL.namespace)(LinuxNamespaceType::User));
        assert_eq!((Host::REAL.selinux)(), Path::new("/sys/fs/selinux/enforce").exists());
    }
}
