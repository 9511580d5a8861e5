//! The default `config.json` that `amphi spec` writes.
//!
//! [`default_spec`] is the document `runc spec` (runc 1.1) writes, field for field,
//! with two deliberate differences: the hostname is `amphi`, and the container
//! gets its own cgroup namespace (as runc 1.2's default does), so that
//! `/proc/self/cgroup` inside shows the container's cgroup as `/`.
//! [`rootless_spec`] is the same document after the changes `runc spec --rootless`
//! makes. Every field is set here explicitly rather than taken from `oci-spec`'s
//! `Default` impls, which differ from runc's (they add inheritable capabilities
//! and an empty `annotations`) and may change between releases.
//!
//! The capability sets are `HashSet`s in `oci-spec`, so their order in the
//! serialised JSON is not fixed; a reader must treat them as sets.

use std::path::PathBuf;

use oci_spec::runtime::{
    Capabilities, Capability, Linux, LinuxCapabilities, LinuxDeviceCgroup, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespace, LinuxNamespaceType, LinuxResources, Mount, PosixRlimitBuilder, PosixRlimitType, Process, Root,
    Spec, User,
};

/// The `ociVersion` written by [`default_spec`], the version runc 1.1 writes.
pub(crate) const OCI_VERSION: &str = "1.0.2-dev";

/// The hostname of the default spec.
pub(crate) const HOSTNAME: &str = "amphi";

/// The `PATH` of the default process environment.
pub(crate) const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths the default spec masks (bind-mounts `/dev/null` or an empty tmpfs over).
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// Paths the default spec remounts read-only.
pub(crate) const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The config of a container that runs `sh` on a terminal as root, with runc's
/// default isolation: new pid, network, ipc, uts, mount and cgroup namespaces,
/// three capabilities, no new privileges, a read-only `rootfs` and the standard
/// `/proc`, `/dev`, `/sys` mounts.
pub fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_owned())
        .set_process(Some(default_process()))
        .set_root(Some(default_root()))
        .set_hostname(Some(HOSTNAME.to_owned()))
        .set_domainname(None)
        .set_mounts(Some(default_mounts()))
        .set_hooks(None)
        .set_annotations(None)
        .set_linux(Some(default_linux()));
    spec
}

/// The config `runc spec --rootless` writes, for a container started by the user
/// `host_uid`:`host_gid` (the caller's effective ids): [`default_spec`] with a user
/// namespace mapping container root to that one user, no network namespace (an
/// unprivileged user could not configure it), `/sys` bind-mounted from the host
/// (sysfs cannot be mounted without owning the network namespace), no `gid=`
/// mount option (only one group is mapped) and no device cgroup rules (the
/// runtime could not apply them).
pub(crate) fn rootless_spec_for(host_uid: u32, host_gid: u32) -> Spec {
    let mut spec = default_spec();
    if let Some(mounts) = spec.mounts_mut() {
        for mount in mounts.iter_mut() {
            if mount.typ().as_deref() == Some("sysfs") {
                *mount = mount_entry("/sys", "none", "/sys", &["rbind", "nosuid", "noexec", "nodev", "ro"]);
            } else if let Some(options) = mount.options_mut() {
                options.retain(|o| !o.starts_with("gid="));
            }
        }
    }
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces = default_namespaces();
        namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
        namespaces.push(namespace(LinuxNamespaceType::User));
        linux
            .set_namespaces(Some(namespaces))
            .set_resources(None)
            .set_uid_mappings(Some(vec![one_id(host_uid)]))
            .set_gid_mappings(Some(vec![one_id(host_gid)]));
    }
    spec
}

/// [`rootless_spec_for`] the calling process's effective uid and gid, which is
/// what `runc spec --rootless` uses.
pub fn rootless_spec() -> Spec {
    rootless_spec_for(nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())
}

fn default_process() -> Process {
    let mut user = User::default();
    user.set_uid(0).set_gid(0).set_umask(None).set_additional_gids(None).set_username(None);

    let caps: Capabilities = [Capability::AuditWrite, Capability::Kill, Capability::NetBindService].into();
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps.clone()))
        .set_ambient(Some(caps))
        .set_inheritable(None);

    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(1024u64)
        .soft(1024u64)
        .build()
        .expect("every field of an rlimit has a default");

    let mut process = Process::default();
    process
        .set_terminal(Some(true))
        .set_console_size(None)
        .set_user(user)
        .set_args(Some(vec!["sh".to_owned()]))
        .set_env(Some(vec![DEFAULT_PATH.to_owned(), "TERM=xterm".to_owned()]))
        .set_cwd(PathBuf::from("/"))
        .set_capabilities(Some(capabilities))
        .set_rlimits(Some(vec![nofile]))
        .set_no_new_privileges(Some(true))
        .set_apparmor_profile(None)
        .set_oom_score_adj(None)
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);
    process
}

fn default_root() -> Root {
    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs")).set_readonly(Some(true));
    root
}

fn default_mounts() -> Vec<Mount> {
    vec![
        mount_entry("/proc", "proc", "proc", &[]),
        mount_entry("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount_entry(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount_entry("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        mount_entry("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount_entry("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        mount_entry("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
    ]
}

/// One mount; `options` empty means no `options` field, as runc writes `/proc`.
fn mount_entry(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let options = (!options.is_empty()).then(|| options.iter().map(|&o| o.to_owned()).collect());
    let mut mount = Mount::default();
    mount
        .set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.to_owned()))
        .set_source(Some(PathBuf::from(source)))
        .set_options(options)
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    mount
}

fn default_linux() -> Linux {
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false).set_typ(None).set_major(None).set_minor(None).set_access(Some("rwm".to_owned()));
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(vec![deny_all]));

    let mut linux = Linux::default();
    linux
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None)
        .set_resources(Some(resources))
        .set_cgroups_path(None)
        .set_namespaces(Some(default_namespaces()))
        .set_devices(None)
        .set_seccomp(None)
        .set_rootfs_propagation(None)
        .set_masked_paths(Some(MASKED_PATHS.iter().map(|&p| p.to_owned()).collect()))
        .set_readonly_paths(Some(READONLY_PATHS.iter().map(|&p| p.to_owned()).collect()))
        .set_mount_label(None);
    linux
}

fn default_namespaces() -> Vec<LinuxNamespace> {
    [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(namespace)
    .collect()
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ).set_path(None);
    ns
}

/// Maps container id 0 to `host_id`, one id wide.
fn one_id(host_id: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(host_id)
        .size(1u32)
        .build()
        .expect("every field of an id mapping has a default")
}

/// `spec` as JSON with every capability set sorted: oci-spec keeps capabilities
/// in hash sets, whose order would otherwise change from run to run.
pub fn to_stable_json(spec: &Spec) -> serde_json::Value {
    let mut config = serde_json::to_value(spec).unwrap_or_default();
    sort_capabilities(&mut config);
    config
}

/// Sorts every capability set of a config.json value in place.
pub fn sort_capabilities(config: &mut serde_json::Value) {
    let Some(sets) = config.pointer_mut("/process/capabilities").and_then(serde_json::Value::as_object_mut) else {
        return;
    };
    for set in sets.values_mut() {
        if let Some(items) = set.as_array_mut() {
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sort_capabilities_orders_every_set() {
        let mut config =
            serde_json::json!({"process": {"capabilities": {"bounding": ["CAP_KILL", "CAP_AUDIT_WRITE"]}}});
        sort_capabilities(&mut config);
        assert_eq!(config["process"]["capabilities"]["bounding"], serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL"]));
        let mut no_process = serde_json::json!({"root": {"path": "rootfs"}});
        sort_capabilities(&mut no_process);
        assert_eq!(no_process, serde_json::json!({"root": {"path": "rootfs"}}));
    }

    use serde_json::{Value, json};

    use super::*;

    /// The spec as JSON, parsed back through `oci-spec` first so a field that does
    /// not survive the round trip fails here.
    fn round_trip(spec: &Spec) -> Value {
        let text = serde_json::to_string_pretty(spec).expect("spec serialises");
        let parsed: Spec = serde_json::from_str(&text).expect("serialised spec parses back");
        assert_eq!(&parsed, spec, "spec changed in a JSON round trip");
        let mut value = serde_json::from_str(&text).expect("serialised spec is JSON");
        sort_capabilities(&mut value);
        value
    }

    fn sorted_strings(value: &Value) -> Vec<String> {
        let mut items: Vec<String> =
            value.as_array().expect("an array").iter().map(|v| v.as_str().expect("a string").to_owned()).collect();
        items.sort();
        items
    }

    fn namespace_types(config: &Value) -> Vec<&str> {
        config["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|ns| ns["type"].as_str().expect("type"))
            .collect()
    }

    #[test]
    fn default_spec_matches_runc_spec() {
        let config = round_trip(&default_spec());
        assert_eq!(config["ociVersion"], "1.0.2-dev");
        assert_eq!(config["hostname"], "amphi");
        assert_eq!(config["root"], json!({"path": "rootfs", "readonly": true}));
        assert!(config.get("annotations").is_none(), "runc writes no annotations");

        let process = &config["process"];
        assert_eq!(process["terminal"], true);
        assert_eq!(process["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(process["args"], json!(["sh"]));
        assert_eq!(process["env"], json!([DEFAULT_PATH, "TERM=xterm"]));
        assert_eq!(process["cwd"], "/");
        assert_eq!(process["noNewPrivileges"], true);
        assert_eq!(process["rlimits"], json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]));
        let caps = &process["capabilities"];
        for set in ["bounding", "effective", "permitted", "ambient"] {
            assert_eq!(
                sorted_strings(&caps[set]),
                ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "capabilities.{set}"
            );
        }
        assert!(caps.get("inheritable").is_none(), "runc sets no inheritable capabilities");

        let mounts = config["mounts"].as_array().expect("mounts");
        let destinations: Vec<&str> = mounts.iter().map(|m| m["destination"].as_str().expect("destination")).collect();
        assert_eq!(destinations, ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]);
        assert_eq!(mounts[0], json!({"destination": "/proc", "type": "proc", "source": "proc"}));
        assert_eq!(
            mounts[2]["options"],
            json!(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])
        );
        assert_eq!(mounts[5]["type"], "sysfs");

        let linux = &config["linux"];
        assert_eq!(linux["resources"], json!({"devices": [{"allow": false, "access": "rwm"}]}));
        assert_eq!(namespace_types(&config), ["pid", "network", "ipc", "uts", "mount", "cgroup"]);
        assert_eq!(linux["maskedPaths"], json!(MASKED_PATHS));
        assert_eq!(linux["readonlyPaths"], json!(READONLY_PATHS));
        assert!(linux.get("uidMappings").is_none());
    }

    #[test]
    fn rootless_spec_maps_the_caller_and_drops_what_it_cannot_do() {
        let config = round_trip(&rootless_spec_for(1000, 1001));
        let linux = &config["linux"];
        assert_eq!(linux["uidMappings"], json!([{"containerID": 0, "hostID": 1000, "size": 1}]));
        assert_eq!(linux["gidMappings"], json!([{"containerID": 0, "hostID": 1001, "size": 1}]));
        assert_eq!(namespace_types(&config), ["pid", "ipc", "uts", "mount", "cgroup", "user"]);
        assert!(linux.get("resources").is_none(), "no device rules without root");

        let mounts = config["mounts"].as_array().expect("mounts");
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").expect("/sys mount");
        assert_eq!(sys["type"], "none");
        assert_eq!(sys["source"], "/sys");
        assert_eq!(sys["options"], json!(["rbind", "nosuid", "noexec", "nodev", "ro"]));
        let pts = mounts.iter().find(|m| m["destination"] == "/dev/pts").expect("/dev/pts mount");
        assert_eq!(pts["options"], json!(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]));
        // Everything else is the default spec's.
        assert_eq!(config["process"], round_trip(&default_spec())["process"]);
    }

    /// The JSON with every capability set sorted, so two documents compare as sets.
    fn normalised(mut config: Value) -> Value {
        if let Some(caps) = config.pointer_mut("/process/capabilities").and_then(Value::as_object_mut) {
            for set in caps.values_mut() {
                *set = json!(sorted_strings(set));
            }
        }
        config
    }

    /// Compares with the installed runc's own output, when there is one.
    #[expect(clippy::print_stderr, reason = "a skipped test says why")]
    fn compare_with_runc(args: &[&str], ours: Spec) {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = match std::process::Command::new("runc").args(args).current_dir(dir.path()).output() {
            Ok(output) => output,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipped: runc is not installed");
                return;
            }
            Err(err) => panic!("run runc {args:?}: {err}"),
        };
        assert!(output.status.success(), "runc {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        let text = std::fs::read_to_string(dir.path().join("config.json")).expect("runc wrote config.json");
        let mut theirs: Value = serde_json::from_str(&text).expect("runc's config.json is JSON");
        // Our two deliberate differences.
        theirs["hostname"] = json!(HOSTNAME);
        let namespaces = theirs["linux"]["namespaces"].as_array_mut().expect("runc's namespaces");
        if !namespaces.iter().any(|ns| ns["type"] == "cgroup") {
            let at = namespaces.iter().position(|ns| ns["type"] == "user").unwrap_or(namespaces.len());
            namespaces.insert(at, json!({"type": "cgroup"}));
        }
        assert_eq!(normalised(round_trip(&ours)), normalised(theirs));
    }

    #[test]
    fn default_spec_equals_installed_runc_spec() {
        compare_with_runc(&["spec"], default_spec());
    }

    #[test]
    fn rootless_spec_equals_installed_runc_spec_rootless() {
        compare_with_runc(&["spec", "--rootless"], rootless_spec());
    }

    #[test]
    fn rootless_spec_uses_the_effective_ids() {
        let config = round_trip(&rootless_spec());
        assert_eq!(config["linux"]["uidMappings"][0]["hostID"], nix::unistd::geteuid().as_raw());
        assert_eq!(config["linux"]["gidMappings"][0]["hostID"], nix::unistd::getegid().as_raw());
    }
}
