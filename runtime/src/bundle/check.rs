//! Checks of the spec alone, without a syscall.
//!
//! Each check refuses what the spec forbids or what the kernel would refuse later
//! with a bare `EINVAL`, and names the field. The sysctl rule is runc's: only keys
//! in a namespace the container has of its own may be set.

use std::path::{Component, Path};

use oci_spec::runtime::{
    Hooks, Linux, LinuxDeviceType, LinuxNamespaceType, LinuxSchedulerPolicy, Process, Scheduler, Spec,
};

use super::BundleError;

type Result<T = ()> = std::result::Result<T, BundleError>;

fn field(name: impl Into<String>, reason: impl Into<String>) -> BundleError {
    BundleError::field(name, reason)
}

/// Checks `spec` and returns its `root.path`.
pub(super) fn spec(spec: &Spec) -> Result<&Path> {
    version(spec.version())?;
    let root = spec.root().as_ref().ok_or_else(|| field("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(field("root.path", "missing"));
    }
    let process = spec.process().as_ref().ok_or_else(|| field("process", "missing (create needs a process to run)"))?;
    self::process(process)?;
    if let Some(linux) = spec.linux() {
        self::linux(linux, spec.hostname().as_deref().is_some_and(|h| !h.is_empty()))?;
    }
    if let Some(hooks) = spec.hooks() {
        self::hooks(hooks)?;
    }
    if spec.annotations().as_ref().is_some_and(|a| a.contains_key("")) {
        return Err(field("annotations", "a key is empty"));
    }
    Ok(root.path())
}

fn version(v: &str) -> Result {
    if v.is_empty() {
        return Err(field("ociVersion", "missing"));
    }
    match semver_major(v) {
        None => Err(field("ociVersion", format!("{v:?} is not a semantic version like \"1.2.0\""))),
        Some(1) => Ok(()),
        Some(_) => Err(field("ociVersion", format!("version {v:?} is not supported (the major version must be 1)"))),
    }
}

/// The major version of a SemVer 2.0.0 string, or `None` if it is not one.
fn semver_major(v: &str) -> Option<u64> {
    let (rest, build) = match v.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    if !build.is_none_or(|b| identifiers(b, false)) || !pre.is_none_or(|p| identifiers(p, true)) {
        return None;
    }
    let mut parts = core.split('.');
    let major = number(parts.next()?)?;
    number(parts.next()?)?;
    number(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some(major)
}

/// A SemVer numeric identifier: digits, no leading zero.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Dot-separated SemVer identifiers; pre-release numeric ones have no leading zero.
fn identifiers(s: &str, pre_release: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(pre_release && id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn process(p: &Process) -> Result {
    let args = p.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        return Err(field("process.args", "must not be empty"));
    }
    if args[0].is_empty() {
        return Err(field("process.args[0]", "the program name must not be empty"));
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(field(format!("process.args[{i}]"), "contains a NUL byte"));
    }
    env("process.env", p.env().as_deref().unwrap_or_default())?;
    if let Some(adj) = p.oom_score_adj()
        && !(-1000..=1000).contains(&adj)
    {
        return Err(field("process.oomScoreAdj", format!("{adj} is not between -1000 and 1000")));
    }
    if let Some(s) = p.scheduler() {
        scheduler(s)?;
    }
    if let Some(io) = p.io_priority()
        && !(0..=7).contains(&io.priority())
    {
        return Err(field("process.ioPriority.priority", format!("{} is not between 0 and 7", io.priority())));
    }
    Ok(())
}

/// `KEY=VALUE` entries, as `execve` and the WASI context need them.
fn env(name: &str, entries: &[String]) -> Result {
    for (i, entry) in entries.iter().enumerate() {
        let reason = match entry.split_once('=') {
            None => format!("{entry:?} is not KEY=VALUE (no \"=\")"),
            Some(("", _)) => format!("{entry:?} has an empty name"),
            Some(_) if entry.contains('\0') => "contains a NUL byte".into(),
            Some(_) => continue,
        };
        return Err(field(format!("{name}[{i}]"), reason));
    }
    Ok(())
}

/// `sched_setattr(2)`'s rules, checked before the container exists.
fn scheduler(s: &Scheduler) -> Result {
    use LinuxSchedulerPolicy::{SchedDeadline, SchedFifo, SchedRr};
    if let Some(nice) = *s.nice()
        && !(-20..=19).contains(&nice)
    {
        return Err(field("process.scheduler.nice", format!("{nice} is not between -20 and 19")));
    }
    let policy = *s.policy();
    let priority = s.priority().unwrap_or(0);
    if matches!(policy, SchedFifo | SchedRr) {
        if !(1..=99).contains(&priority) {
            return Err(field(
                "process.scheduler.priority",
                format!("{priority} is not between 1 and 99, as SCHED_FIFO and SCHED_RR need"),
            ));
        }
    } else if priority != 0 {
        return Err(field("process.scheduler.priority", "only SCHED_FIFO and SCHED_RR take a priority"));
    }
    let (runtime, deadline, period) = (s.runtime().unwrap_or(0), s.deadline().unwrap_or(0), s.period().unwrap_or(0));
    if policy != SchedDeadline {
        for (name, value) in [("runtime", runtime), ("deadline", deadline), ("period", period)] {
            if value != 0 {
                return Err(field(
                    format!("process.scheduler.{name}"),
                    "only SCHED_DEADLINE takes a runtime, deadline or period",
                ));
            }
        }
        return Ok(());
    }
    if runtime < 1024 {
        return Err(field("process.scheduler.runtime", "SCHED_DEADLINE needs a runtime of at least 1024 ns"));
    }
    if deadline < runtime {
        return Err(field("process.scheduler.deadline", format!("{deadline} is below the runtime {runtime}")));
    }
    if period != 0 && period < deadline {
        return Err(field("process.scheduler.period", format!("{period} is below the deadline {deadline}")));
    }
    Ok(())
}

/// Which namespaces the container has of its own (new or joined), as a set of
/// `CLONE_NEW*` flags.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Namespaces(i32);

impl Namespaces {
    pub(super) fn of(linux: &Linux) -> Self {
        Self(linux.namespaces().iter().flatten().fold(0, |set, ns| set | ns.typ() as i32))
    }

    pub(super) fn has(self, typ: LinuxNamespaceType) -> bool {
        self.0 & typ as i32 != 0
    }
}

fn linux(linux: &Linux, hostname: bool) -> Result {
    let ns = Namespaces::of(linux);
    for (i, n) in linux.namespaces().iter().flatten().enumerate() {
        if let Some(path) = n.path()
            && !path.as_os_str().is_empty()
            && !path.is_absolute()
        {
            return Err(field(format!("linux.namespaces[{i}].path"), format!("{path:?} is not an absolute path")));
        }
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        sysctl(key, ns, hostname).map_err(|reason| field(format!("linux.sysctl[{key:?}]"), reason))?;
    }
    // What a container without a mount namespace may ask for is the rootfs
    // plan's rule (`plan::mounts::inherited`).
    if let Some(p) = linux.rootfs_propagation().as_deref().filter(|p| !p.is_empty())
        && !PROPAGATIONS.contains(&p)
    {
        return Err(field(
            "linux.rootfsPropagation",
            format!("unknown propagation {p:?} (expected one of {})", PROPAGATIONS.join(", ")),
        ));
    }
    if let Some(p) = linux.cgroups_path()
        && p.components().any(|c| c == Component::ParentDir)
    {
        return Err(field("linux.cgroupsPath", format!("{p:?} must not contain \"..\"")));
    }
    if let Some(r) = linux.resources() {
        super::resources::check(r)?;
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(field(format!("linux.devices[{i}].path"), format!("{:?} is not an absolute path", d.path())));
        }
        if d.typ() == LinuxDeviceType::A {
            return Err(field(format!("linux.devices[{i}].type"), "a device node must be of type c, b, u or p"));
        }
    }
    if let Some(id) = linux.intel_rdt().as_ref().and_then(|r| r.clos_id().as_deref())
        && (id == "." || id == ".." || id.contains('/'))
    {
        return Err(field("linux.intelRdt.closID", format!("{id:?} is not a plain name")));
    }
    Ok(())
}

const PROPAGATIONS: [&str; 8] =
    ["shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"];

/// runc's rule: a sysctl may be set only where the container has its own copy.
fn sysctl(key: &str, ns: Namespaces, hostname: bool) -> std::result::Result<(), String> {
    // sysctl(8) accepts `net/ipv4/ip_forward` as well as `net.ipv4.ip_forward`;
    // which separator comes first decides. In the `/` form a `.` is part of a name.
    let slashed = key.find(['.', '/']).is_some_and(|i| key.as_bytes()[i] == b'/');
    let swap = |c: char| match c {
        '.' => '/',
        '/' => '.',
        c => c,
    };
    let (dotted, path): (String, String) = if slashed {
        (key.chars().map(swap).collect(), key.to_owned())
    } else {
        (key.to_owned(), key.chars().map(swap).collect())
    };
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("is not a sysctl name".into());
    }
    let needs = |typ, what: &str| if ns.has(typ) { Ok(()) } else { Err(format!("needs a private {what} namespace")) };
    let ipc = ["kernel.msg", "kernel.shm", "fs.mqueue."].iter().any(|p| dotted.starts_with(p))
        || dotted == "kernel.sem"
        || dotted == "kernel.sem_next_id";
    if ipc {
        needs(LinuxNamespaceType::Ipc, "IPC")
    } else if dotted.starts_with("net.") {
        needs(LinuxNamespaceType::Network, "network")
    } else if dotted == "kernel.domainname" {
        needs(LinuxNamespaceType::Uts, "UTS")
    } else if dotted == "kernel.hostname" {
        needs(LinuxNamespaceType::Uts, "UTS")?;
        if hostname { Err("conflicts with the hostname field".into()) } else { Ok(()) }
    } else {
        Err("is not namespaced, so setting it would change the host".into())
    }
}

fn hooks(h: &Hooks) -> Result {
    let lists = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (name, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(field(
                    format!("hooks.{name}[{i}].path"),
                    format!("{:?} is not an absolute path", hook.path()),
                ));
            }
            if let Some(t) = hook.timeout()
                && t <= 0
            {
                return Err(field(
                    format!("hooks.{name}[{i}].timeout"),
                    format!("{t} is not a positive number of seconds"),
                ));
            }
            env(&format!("hooks.{name}[{i}].env"), hook.env().as_deref().unwrap_or_default())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec that passes, with `patch` merged into it (JSON merge, one level deep
    /// per object) so each test states only what it breaks.
    fn spec_with(patch: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"], "env": ["PATH=/bin"]},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]}
        });
        merge(&mut base, patch);
        serde_json::from_value(base).unwrap()
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        b.remove(&k);
                    } else {
                        merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
            (b, p) => *b = p,
        }
    }

    /// The error for `patch`, checked to be one line naming `field`.
    fn refused(patch: serde_json::Value, field: &str) -> String {
        let s = spec_with(patch);
        let err = spec(&s).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "not one line: {err}");
        assert!(err.starts_with(&format!("config.json: {field}: ")), "expected field {field}: {err}");
        err
    }

    #[test]
    fn good_spec_passes() {
        assert_eq!(spec(&spec_with(serde_json::json!({}))).unwrap(), Path::new("rootfs"));
    }

    #[test]
    fn missing_or_empty_oci_version() {
        refused(serde_json::json!({"ociVersion": null}), "ociVersion");
        refused(serde_json::json!({"ociVersion": ""}), "ociVersion");
    }

    #[test]
    fn oci_version_must_be_semver() {
        for v in ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1.a.0", "latest"] {
            let err = refused(serde_json::json!({"ociVersion": v}), "ociVersion");
            assert!(err.contains("not a semantic version"), "{v}: {err}");
        }
        for v in ["1.0.0", "1.0.2-dev", "1.2.1+build.5", "1.0.0-rc.1", "1.0.0-0.3.7"] {
            assert!(spec(&spec_with(serde_json::json!({"ociVersion": v}))).is_ok(), "{v}");
        }
    }

    #[test]
    fn oci_version_major_must_be_1() {
        let err = refused(serde_json::json!({"ociVersion": "2.0.0"}), "ociVersion");
        assert!(err.contains("major version must be 1"), "{err}");
        refused(serde_json::json!({"ociVersion": "0.5.0"}), "ociVersion");
    }

    #[test]
    fn missing_root_and_root_path() {
        refused(serde_json::json!({"root": null}), "root");
        refused(serde_json::json!({"root": {"path": ""}}), "root.path");
    }

    #[test]
    fn missing_process() {
        let err = refused(serde_json::json!({"process": null}), "process");
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn empty_args() {
        refused(serde_json::json!({"process": {"args": []}}), "process.args");
        refused(serde_json::json!({"process": {"args": null}}), "process.args");
        refused(serde_json::json!({"process": {"args": [""]}}), "process.args[0]");
        refused(serde_json::json!({"process": {"args": ["sh", "a\u{0}b"]}}), "process.args[1]");
    }

    #[test]
    fn env_entries_need_an_equals_sign_and_a_name() {
        let err = refused(serde_json::json!({"process": {"env": ["PATH=/bin", "FOO"]}}), "process.env[1]");
        assert!(err.contains("\"FOO\" is not KEY=VALUE"), "{err}");
        refused(serde_json::json!({"process": {"env": ["=x"]}}), "process.env[0]");
        refused(serde_json::json!({"process": {"env": ["A=\u{0}"]}}), "process.env[0]");
        assert!(spec(&spec_with(serde_json::json!({"process": {"env": ["EMPTY=", "A=b=c"]}}))).is_ok());
    }

    #[test]
    fn oom_score_adj_range() {
        refused(serde_json::json!({"process": {"oomScoreAdj": 1001}}), "process.oomScoreAdj");
        assert!(spec(&spec_with(serde_json::json!({"process": {"oomScoreAdj": -1000}}))).is_ok());
    }

    #[test]
    fn scheduler_rules() {
        let s = |v| serde_json::json!({"process": {"scheduler": v}});
        refused(s(serde_json::json!({"policy": "SCHED_OTHER", "nice": 20})), "process.scheduler.nice");
        refused(s(serde_json::json!({"policy": "SCHED_OTHER", "priority": 5})), "process.scheduler.priority");
        refused(s(serde_json::json!({"policy": "SCHED_FIFO"})), "process.scheduler.priority");
        refused(s(serde_json::json!({"policy": "SCHED_RR", "priority": 100})), "process.scheduler.priority");
        refused(s(serde_json::json!({"policy": "SCHED_BATCH", "runtime": 5})), "process.scheduler.runtime");
        refused(s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 10})), "process.scheduler.runtime");
        refused(
            s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 1000})),
            "process.scheduler.deadline",
        );
        refused(
            s(serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 3000, "period": 2500})),
            "process.scheduler.period",
        );
        for ok in [
            serde_json::json!({"policy": "SCHED_FIFO", "priority": 10}),
            serde_json::json!({"policy": "SCHED_OTHER", "nice": -5}),
            serde_json::json!({"policy": "SCHED_DEADLINE", "runtime": 2000, "deadline": 3000, "period": 4000}),
        ] {
            assert!(spec(&spec_with(s(ok.clone()))).is_ok(), "{ok}");
        }
    }

    #[test]
    fn io_priority_range() {
        refused(
            serde_json::json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}}),
            "process.ioPriority.priority",
        );
    }

    #[test]
    fn relative_namespace_path() {
        let err = refused(
            serde_json::json!({"linux": {"namespaces": [{"type": "network", "path": "netns/x"}]}}),
            "linux.namespaces[0].path",
        );
        assert!(err.contains("not an absolute path"), "{err}");
    }

    #[test]
    fn ipc_sysctls_need_an_ipc_namespace() {
        let no_ipc = serde_json::json!([{"type": "pid"}, {"type": "mount"}]);
        for key in ["kernel.msgmax", "kernel.shmmax", "kernel.sem", "fs.mqueue.queues_max", "kernel/shm_rmid_forced"] {
            let err = refused(
                serde_json::json!({"linux": {"namespaces": no_ipc, "sysctl": {key: "1"}}}),
                &format!("linux.sysctl[{key:?}]"),
            );
            assert!(err.contains("IPC namespace"), "{err}");
            assert!(spec(&spec_with(serde_json::json!({"linux": {"sysctl": {key: "1"}}}))).is_ok(), "{key}");
        }
    }

    #[test]
    fn net_sysctls_need_a_network_namespace() {
        let key = "net.ipv4.ip_forward";
        let err = refused(
            serde_json::json!({"linux": {"namespaces": [{"type": "mount"}], "sysctl": {key: "1"}}}),
            "linux.sysctl[\"net.ipv4.ip_forward\"]",
        );
        assert!(err.contains("network namespace"), "{err}");
        // `/` form, with a `.` inside an interface name.
        assert!(
            spec(&spec_with(serde_json::json!({"linux": {"sysctl": {"net/ipv4/conf/eth0.100/rp_filter": "1"}}})))
                .is_ok()
        );
    }

    #[test]
    fn uts_sysctls_need_a_uts_namespace() {
        let no_uts = serde_json::json!([{"type": "mount"}]);
        for key in ["kernel.domainname", "kernel.hostname"] {
            refused(
                serde_json::json!({"linux": {"namespaces": no_uts, "sysctl": {key: "x"}}}),
                &format!("linux.sysctl[{key:?}]"),
            );
            assert!(spec(&spec_with(serde_json::json!({"linux": {"sysctl": {key: "x"}}}))).is_ok(), "{key}");
        }
        let err = refused(
            serde_json::json!({"hostname": "box", "linux": {"sysctl": {"kernel.hostname": "x"}}}),
            "linux.sysctl[\"kernel.hostname\"]",
        );
        assert!(err.contains("conflicts with the hostname field"), "{err}");
    }

    #[test]
    fn host_wide_sysctls_are_refused() {
        for key in ["kernel.panic", "vm.overcommit_memory", "fs.file-max"] {
            let err = refused(serde_json::json!({"linux": {"sysctl": {key: "1"}}}), &format!("linux.sysctl[{key:?}]"));
            assert!(err.contains("not namespaced"), "{err}");
        }
    }

    #[test]
    fn sysctl_keys_cannot_climb_out_of_proc_sys() {
        for key in ["net/../../../etc/x", "net..ipv4", "net.", "net/./x"] {
            let err = refused(serde_json::json!({"linux": {"sysctl": {key: "1"}}}), &format!("linux.sysctl[{key:?}]"));
            assert!(err.contains("not a sysctl name"), "{key}: {err}");
        }
    }

    #[test]
    fn rootfs_propagation_must_be_known() {
        let err = refused(serde_json::json!({"linux": {"rootfsPropagation": "rshard"}}), "linux.rootfsPropagation");
        assert!(err.contains("\"rshard\""), "{err}");
        assert!(spec(&spec_with(serde_json::json!({"linux": {"rootfsPropagation": "rslave"}}))).is_ok());
    }

    #[test]
    fn cgroups_path_cannot_climb() {
        refused(serde_json::json!({"linux": {"cgroupsPath": "/a/../../b"}}), "linux.cgroupsPath");
    }

    #[test]
    fn device_nodes() {
        refused(
            serde_json::json!({"linux": {"devices": [{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}]}}),
            "linux.devices[0].path",
        );
        refused(
            serde_json::json!({"linux": {"devices": [{"path": "/dev/x", "type": "a", "major": 1, "minor": 1}]}}),
            "linux.devices[0].type",
        );
    }

    #[test]
    fn intel_rdt_clos_id() {
        refused(serde_json::json!({"linux": {"intelRdt": {"closID": "../x"}}}), "linux.intelRdt.closID");
    }

    #[test]
    fn hooks_need_absolute_paths_and_positive_timeouts() {
        refused(serde_json::json!({"hooks": {"createRuntime": [{"path": "hook"}]}}), "hooks.createRuntime[0].path");
        refused(
            serde_json::json!({"hooks": {"poststop": [{"path": "/bin/true"}, {"path": "/bin/true", "timeout": 0}]}}),
            "hooks.poststop[1].timeout",
        );
        refused(
            serde_json::json!({"hooks": {"prestart": [{"path": "/bin/true", "env": ["X"]}]}}),
            "hooks.prestart[0].env[0]",
        );
    }

    #[test]
    fn empty_annotation_key() {
        refused(serde_json::json!({"annotations": {"": "x"}}), "annotations");
    }
}
