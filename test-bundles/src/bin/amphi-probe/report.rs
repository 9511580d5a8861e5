//! The report: one JSON object with what the process sees. Each item is
//! gathered on its own; an item that cannot be read becomes `{"error": "…"}`
//! and the rest of the report goes on.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::resource::{Resource, getrlimit};
use nix::unistd::{self, Pid};
use serde_json::{Map, Value, json};

use crate::procfs;

/// The namespaces under `/proc/self/ns`.
const NAMESPACES: [&str; 10] =
    ["cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"];

/// The sixteen rlimits, by the names the OCI spec gives them.
const RLIMITS: [(&str, Resource); 16] = [
    ("RLIMIT_CPU", Resource::RLIMIT_CPU),
    ("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE),
    ("RLIMIT_DATA", Resource::RLIMIT_DATA),
    ("RLIMIT_STACK", Resource::RLIMIT_STACK),
    ("RLIMIT_CORE", Resource::RLIMIT_CORE),
    ("RLIMIT_RSS", Resource::RLIMIT_RSS),
    ("RLIMIT_NPROC", Resource::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", Resource::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", Resource::RLIMIT_AS),
    ("RLIMIT_LOCKS", Resource::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", Resource::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", Resource::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", Resource::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", Resource::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", Resource::RLIMIT_RTTIME),
];

/// Turns an item's result into its place in the report.
fn item(result: Result<Value, String>) -> Value {
    result.unwrap_or_else(|error| json!({ "error": error }))
}

fn read(path: &str) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {path}: {e}"))
}

/// Gathers the whole report. `checks` are the `--check` results, `writes` the
/// `--write` results (left out when there were none).
pub fn gather(checks: Vec<Value>, writes: Vec<Value>) -> Value {
    let status = read("/proc/self/status");
    let mut report = Map::new();
    let mut put = |key: &str, value: Value| {
        report.insert(key.to_owned(), value);
    };

    put("pid", json!(std::process::id()));
    put("ppid", json!(std::os::unix::process::parent_id()));
    put("pgid", json!(unistd::getpgrp().as_raw()));
    put("sid", item(unistd::getsid(None).map(|p: Pid| json!(p.as_raw())).map_err(|e| format!("getsid: {e}"))));
    match unistd::getresuid() {
        Ok(ids) => {
            put("uid", json!(ids.real.as_raw()));
            put("euid", json!(ids.effective.as_raw()));
            put("suid", json!(ids.saved.as_raw()));
        }
        Err(e) => put("uid", item(Err(format!("getresuid: {e}")))),
    }
    match unistd::getresgid() {
        Ok(ids) => {
            put("gid", json!(ids.real.as_raw()));
            put("egid", json!(ids.effective.as_raw()));
            put("sgid", json!(ids.saved.as_raw()));
        }
        Err(e) => put("gid", item(Err(format!("getresgid: {e}")))),
    }
    put(
        "groups",
        item(
            unistd::getgroups()
                .map(|groups| json!(groups.iter().map(|g| g.as_raw()).collect::<Vec<_>>()))
                .map_err(|e| format!("getgroups: {e}")),
        ),
    );
    put("capabilities", item(capabilities(&status)));
    put(
        "no_new_privs",
        item(
            nix::sys::prctl::get_no_new_privs().map(Value::Bool).map_err(|e| format!("prctl PR_GET_NO_NEW_PRIVS: {e}")),
        ),
    );
    put("seccomp", item(status_number(&status, "Seccomp")));
    put("seccomp_filters", item(status_number(&status, "Seccomp_filters")));
    put("umask", item(umask(&status)));
    put(
        "hostname",
        item(unistd::gethostname().map(|h| json!(h.to_string_lossy())).map_err(|e| format!("gethostname: {e}"))),
    );
    put("domainname", item(read("/proc/sys/kernel/domainname").map(|d| json!(d.trim_end_matches('\n')))));
    put("mounts", item(read("/proc/self/mountinfo").map(|text| json!(procfs::mountinfo(&text)))));
    put("rlimits", rlimits());
    put("cwd", item(std::env::current_dir().map(|d| json!(d.to_string_lossy())).map_err(|e| format!("getcwd: {e}"))));
    put("env", json!(std::env::vars_os().map(|(k, v)| format!("{}={}", k.display(), v.display())).collect::<Vec<_>>()));
    put("args", json!(std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>()));
    put(
        "oom_score_adj",
        item(read("/proc/self/oom_score_adj").and_then(|text| {
            text.trim().parse::<i64>().map(|n| json!(n)).map_err(|e| format!("/proc/self/oom_score_adj: {e}"))
        })),
    );
    put("cgroup", item(read("/proc/self/cgroup").map(|text| json!(text.lines().collect::<Vec<_>>()))));
    put("namespaces", namespaces());
    put("tty", tty());
    put("fds", item(fds()));
    put("checks", json!(checks));
    if !writes.is_empty() {
        put("writes", json!(writes));
    }
    Value::Object(report)
}

fn status_number(status: &Result<String, String>, key: &str) -> Result<Value, String> {
    let status = status.as_ref().map_err(Clone::clone)?;
    let field = procfs::status_field(status, key).ok_or_else(|| format!("/proc/self/status: no {key} field"))?;
    field.parse::<u64>().map(|n| json!(n)).map_err(|e| format!("/proc/self/status: {key} {field:?}: {e}"))
}

fn capabilities(status: &Result<String, String>) -> Result<Value, String> {
    let status = status.as_ref().map_err(Clone::clone)?;
    let mut sets = Map::new();
    for (field, name) in procfs::CAPABILITY_SETS {
        let set = procfs::status_field(status, field)
            .ok_or_else(|| format!("/proc/self/status: no {field} field"))
            .and_then(procfs::capability_set);
        sets.insert(name.to_owned(), item(set));
    }
    Ok(Value::Object(sets))
}

/// The umask from `/proc/self/status`; where that is unreadable (no `/proc`),
/// from `umask(2)`, set back at once (the probe has one thread).
fn umask(status: &Result<String, String>) -> Result<Value, String> {
    if let Ok(status) = status
        && let Some(field) = procfs::status_field(status, "Umask")
    {
        return procfs::octal(field).map(|mask| json!(mask));
    }
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    nix::sys::stat::umask(mask);
    Ok(json!(mask.bits()))
}

/// Every rlimit as `{"soft": n, "hard": n}`, `null` meaning unlimited.
fn rlimits() -> Value {
    let limit = |value: u64| if value == nix::libc::RLIM_INFINITY { Value::Null } else { json!(value) };
    let mut limits = Map::new();
    for (name, resource) in RLIMITS {
        let value = getrlimit(resource)
            .map(|(soft, hard)| json!({ "soft": limit(soft), "hard": limit(hard) }))
            .map_err(|e| format!("getrlimit {name}: {e}"));
        limits.insert(name.to_owned(), item(value));
    }
    Value::Object(limits)
}

/// `readlink /proc/self/ns/<name>` for each namespace, as `"net:[4026531840]"`.
fn namespaces() -> Value {
    let mut out = Map::new();
    for name in NAMESPACES {
        let path = format!("/proc/self/ns/{name}");
        let link =
            fs::read_link(&path).map(|t| json!(t.to_string_lossy())).map_err(|e| format!("readlink {path}: {e}"));
        out.insert(name.to_owned(), item(link));
    }
    Value::Object(out)
}

/// Whether stdin, stdout and stderr are terminals.
fn tty() -> Value {
    let is_tty = |fd| unistd::isatty(fd).unwrap_or(false);
    json!({ "stdin": is_tty(0), "stdout": is_tty(1), "stderr": is_tty(2) })
}

/// The open file descriptors and what they point to, read from `/proc/self/fd`
/// (the descriptor of that directory itself left out).
fn fds() -> Result<Value, String> {
    let dir = Path::new("/proc/self/fd");
    let entries = fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    let mut fds = Map::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", dir.display()))?;
        let target = match fs::read_link(entry.path()) {
            Ok(target) => target,
            // The directory's own descriptor is gone by the time it is read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("readlink {}: {e}", entry.path().display())),
        };
        let bytes = target.as_os_str().as_bytes();
        if bytes.starts_with(b"/proc/") && bytes.ends_with(b"/fd") {
            continue;
        }
        fds.insert(entry.file_name().to_string_lossy().into_owned(), json!(target.to_string_lossy()));
    }
    Ok(Value::Object(fds))
}
