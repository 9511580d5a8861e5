//! A hostile host around the container: a state record rewritten by someone who
//! can write `--root` (issue 10, point 8), and a cgroup that existed before the
//! container, as systemd lays services out on a v1 host (point 5). Each test
//! starts host processes and cgroups of its own, outside any container, checks
//! that the runtime neither signalled nor removed them, and takes them down
//! however it ends.
//!
//! runc fails these (it signals whatever pid and cgroup its state names, and
//! removes a cgroup it found), so they return early for any runtime but amphi.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Case, describe};

const SLEEP: &[&str] = &["--no-report", "--sleep", "0"];

/// A `sleep` the test started on the host, in no container; killed and reaped
/// however the test ends.
struct HostSleep(Child);

impl HostSleep {
    fn spawn() -> Self {
        Self(Command::new("sleep").arg("1000").spawn().expect("spawn sleep"))
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Whether it runs with no signal pending: a runtime's `kill` has returned
    /// by the time this is asked, and a signal it sent is then either pending
    /// or has ended the process (a zombie, or reaped here since it is this
    /// process's child), so no wait is needed to see it.
    fn untouched(&mut self) -> bool {
        if self.0.try_wait().expect("wait for sleep").is_some() {
            return false;
        }
        let pid = i64::from(self.pid());
        let state = support::proc_status(pid, "State");
        let pending = |key| u64::from_str_radix(&support::proc_status(pid, key), 16).expect("signal mask");
        !state.starts_with('Z') && pending("SigPnd") == 0 && pending("ShdPnd") == 0
    }

    /// Its start time, `/proc/<pid>/stat` field 22, as amphi records an init's.
    fn start_time(&self) -> u64 {
        let stat = support::proc_file(i64::from(self.pid()), "stat");
        let after_name = &stat[stat.rfind(')').expect("stat has a name") + 1..];
        after_name.split_whitespace().nth(22 - 3).and_then(|f| f.parse().ok()).expect("start time")
    }
}

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A cgroup the test made by hand at `rel` in some hierarchies; whatever is
/// left in it is killed and its directories removed however the test ends. A
/// parent it needed (`/amphi-e2e`) is left, shared as every test's cgroup parent.
struct HandMadeCgroup {
    dirs: Vec<PathBuf>,
}

impl HandMadeCgroup {
    fn make(rel: &str, hierarchies: &[PathBuf]) -> Self {
        let mut made = Self { dirs: Vec::new() };
        for hierarchy in hierarchies {
            let dir = hierarchy.join(rel.trim_start_matches('/'));
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            made.dirs.push(dir.clone());
            // A new v1 cpuset cgroup takes no process until it has cpus and mems.
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if dir.join(file).exists() {
                    let parent = fs::read_to_string(dir.parent().expect("parent").join(file)).expect("read cpuset");
                    fs::write(dir.join(file), parent.trim()).expect("write cpuset");
                }
            }
        }
        made
    }

    fn add(&self, pid: i32) {
        for dir in &self.dirs {
            fs::write(dir.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("put {pid} in {}: {e}", dir.display()));
        }
    }

    /// Asserts every directory the test made is still there.
    fn assert_intact(&self, after: &str) {
        for dir in &self.dirs {
            assert!(dir.is_dir(), "{after} removed {}, which the test made", dir.display());
        }
    }
}

impl Drop for HandMadeCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in &self.dirs {
            while dir.exists() && fs::remove_dir(dir).is_err() && Instant::now() < deadline {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Hierarchies other than the one whose processes a runtime lists and kills
/// (freezer): where systemd on a v1 host puts a service that has no freezer
/// cgroup. On a v2-only host, the one hierarchy there is.
fn side_hierarchies() -> Vec<PathBuf> {
    let all = support::cgroup_hierarchies();
    let side: Vec<PathBuf> = all.iter().filter(|h| h.ends_with("memory") || h.ends_with("pids")).cloned().collect();
    if side.is_empty() { all } else { side }
}

/// Rewrites the JSON file `name` in container `id`'s state directory as an
/// attacker who can write `--root` would; returns what it held.
fn rewrite(case: &Case, id: &str, name: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let path = case.root.path().join(id).join(name);
    let before = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut value: Value = serde_json::from_slice(&before).expect("state is JSON");
    edit(&mut value);
    fs::write(&path, serde_json::to_vec(&value).expect("JSON")).expect("rewrite the state");
    before
}

/// A refusal must be one line on stderr.
fn assert_one_line(args: &[&str], out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: not one line: {}", describe(out));
}

fn gone(pid: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

#[test]
fn a_rewritten_pid_never_signals_the_host_process() {
    let Some(case) = support::case("hostile_pid") else { return };
    if !support::runtime().is_amphi {
        return; // runc signals the pid its state names (issue 10, point 8).
    }
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));
    let init = case.state(&id)["pid"].as_i64().expect("pid");

    // The record names the host's sleep, with its true start time.
    let mut host = HostSleep::spawn();
    let (pid, start_time) = (host.pid(), host.start_time());
    rewrite(&case, &id, "state.json", |record| {
        record["pid"] = Value::from(pid);
        record["startTime"] = Value::from(start_time);
    });
    for args in [&["kill", &id, "KILL"][..], &["kill", "--all", &id, "KILL"], &["delete", "--force", &id]] {
        let out = case.run(args);
        assert!(host.untouched(), "{args:?} signalled the host process {pid}: {}", describe(&out));
        if !out.status.success() {
            assert_one_line(args, &out);
        }
    }
    // delete --force took the real container down, whole.
    assert!(!case.root.path().join(&id).exists(), "delete --force left the state of {id}");
    assert!(gone(init), "the container's init {init} still runs");
    case.assert_all_gone();
}

#[test]
fn a_rewritten_cgroup_path_never_touches_the_foreign_cgroup() {
    let Some(case) = support::case("hostile_cgroup") else { return };
    if !support::runtime().is_amphi {
        return; // runc kills and removes the cgroup its state names (issue 10, point 8).
    }
    let id = case.id("c");
    let bundle = case.probe_bundle(&id, SLEEP, |_| {});
    let out = case.create(&bundle, &id, &[]);
    assert!(out.status.success(), "create: {}", describe(&out));

    let foreign_path = format!("/amphi-e2e-foreign-{id}");
    let foreign = HandMadeCgroup::make(&foreign_path, &support::cgroup_hierarchies());
    let mut host = HostSleep::spawn();
    foreign.add(host.pid());
    // Both the record and the config copied beside it name the foreign cgroup.
    let state = rewrite(&case, &id, "state.json", |r| r["cgroupPath"] = Value::from(foreign_path.as_str()));
    let config = rewrite(&case, &id, "config.json", |c| c["linux"]["cgroupsPath"] = Value::from(foreign_path.as_str()));
    for args in [&["kill", "--all", &id, "KILL"][..], &["delete", "--force", &id]] {
        let out = case.run(args);
        assert!(host.untouched(), "{args:?} signalled the host process in {foreign_path}: {}", describe(&out));
        foreign.assert_intact(&format!("{args:?}"));
        let inside = support::processes_in_cgroup(&foreign_path);
        assert_eq!(inside, [host.pid()], "{args:?} changed what is in {foreign_path}");
        if !out.status.success() {
            assert_one_line(args, &out);
        }
    }
    // Put the record back: the real container is then deleted, whole.
    let dir = case.root.path().join(&id);
    if dir.exists() {
        fs::write(dir.join("state.json"), state).expect("restore state.json");
        fs::write(dir.join("config.json"), config).expect("restore config.json");
        case.delete_force(&id);
    }
    case.assert_all_gone();
}

#[test]
fn a_populated_cgroup_amphi_did_not_create_is_refused() {
    let Some(case) = support::case("foreign_busy_cgroup") else { return };
    if !support::runtime().is_amphi {
        return; // runc takes the cgroup over and kills what is in it on delete.
    }
    let id = case.id("c");
    let rel = Case::cgroup_path(&id);
    let side = side_hierarchies();
    let existing = HandMadeCgroup::make(&rel, &side);
    let mut host = HostSleep::spawn();
    existing.add(host.pid());
    let bundle = case.probe_bundle(&id, &["--no-report", "--exit", "0"], |_| {});
    let args = ["run", "--bundle", bundle.dir().to_str().expect("utf-8"), &id];
    let out = case.run(&args);
    assert!(!out.status.success(), "run in a cgroup that holds a host process succeeded: {}", describe(&out));
    assert_one_line(&args, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&rel), "the refusal does not name the cgroup {rel}: {stderr}");
    assert!(host.untouched(), "run signalled the host process in {rel}");
    existing.assert_intact("run");
    assert_eq!(support::processes_in_cgroup(&rel), [host.pid()], "run left a process in {rel}");
    assert!(!case.root.path().join(&id).exists(), "run left the state of {id}");
    for hierarchy in support::cgroup_hierarchies().iter().filter(|h| !side.contains(h)) {
        let dir = hierarchy.join(rel.trim_start_matches('/'));
        assert!(!dir.exists(), "run left {}", dir.display());
    }
}

#[test]
fn an_empty_cgroup_amphi_did_not_create_is_used_and_left() {
    let Some(case) = support::case("foreign_empty_cgroup") else { return };
    if !support::runtime().is_amphi {
        return; // runc removes a cgroup it found, as if it had made it.
    }
    let id = case.id("c");
    let rel = Case::cgroup_path(&id);
    let side = side_hierarchies();
    let existing = HandMadeCgroup::make(&rel, &side);
    let bundle = case.probe_bundle(&id, &["--no-report", "--exit", "0"], |_| {});
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().expect("utf-8"), &id]);
    assert_eq!(out.status.code(), Some(0), "run in an empty cgroup that existed: {}", describe(&out));
    existing.assert_intact("run");
    for hierarchy in support::cgroup_hierarchies().iter().filter(|h| !side.contains(h)) {
        let dir = hierarchy.join(rel.trim_start_matches('/'));
        assert!(!dir.exists(), "run left {}, which it made", dir.display());
    }
    drop(existing);
    case.assert_all_gone();
}
