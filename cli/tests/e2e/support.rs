//! What every end-to-end test shares: the runtime under test, the bundles, a
//! private state root per test, and the check that a container left nothing.
//! What the manager tests need too lives in `common` (re-exported here).
//!
//! The runtime is the built `amphi`, or any binary with runc's command line named
//! by `AMPHI_E2E_RUNTIME` (`runc`, a path): the same tests run against runc, and a
//! test that runc fails is suspect first. Each test gets its own `--root`, its own
//! container ids and its own cgroup (`/amphi-e2e/<id>`), so tests run in parallel.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use amphi_test_bundles::{Bundle, Bundles};
use serde_json::Value;

pub use crate::common::{cgroup_hierarchies, describe, probe_report, processes_in_cgroup, runtime, wait_in_sigwait};
use crate::common::{mounts_mentioning, reap_cgroup};

/// The bundles, built once per test binary under the cargo target dir.
pub fn bundles() -> &'static Bundles {
    static BUNDLES: OnceLock<Bundles> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        let amphi = Path::new(env!("CARGO_BIN_EXE_amphi"));
        let probe = amphi_test_bundles::probe_path_next_to(amphi);
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-bundles");
        amphi_test_bundles::build_all(&out, &probe).unwrap_or_else(|e| {
            panic!("building the test bundles: {e} (build the probe first: cargo build -p amphi-test-bundles --bins)")
        })
    })
}

/// Whether this process may run containers. Under `CI=true` a missing root is a
/// failure, never a skip.
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
pub fn can_run_containers() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("end-to-end tests need root (CI=true)");
    }
    eprintln!("skipping: end-to-end tests need root");
    false
}

/// One test's world: a state root, a work dir, and the containers it made.
pub struct Case {
    pub name: String,
    pub root: tempfile::TempDir,
    pub work: tempfile::TempDir,
    ids: std::cell::RefCell<BTreeSet<String>>,
}

/// Starts a test case, or returns None when containers cannot run here.
pub fn case(name: &str) -> Option<Case> {
    if !can_run_containers() {
        return None;
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = tempfile::Builder::new().prefix("e2e-root-").tempdir_in(base).expect("state root");
    let work = tempfile::Builder::new().prefix(&format!("e2e-{name}-")).tempdir_in(base).expect("work dir");
    Some(Case { name: name.to_owned(), root, work, ids: Default::default() })
}

impl Case {
    /// A container id unique to this test run, registered for the leak check.
    pub fn id(&self, suffix: &str) -> String {
        let short: String = self.name.chars().filter(|c| c.is_ascii_alphanumeric()).take(24).collect();
        let id = format!("{short}-{suffix}-{}", std::process::id());
        self.ids.borrow_mut().insert(id.clone());
        id
    }

    /// The cgroup a test container lives in (set in every bundle variant).
    pub fn cgroup_path(id: &str) -> String {
        format!("/amphi-e2e/{id}")
    }

    /// A runtime command with this case's `--root`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let rt = runtime();
        let mut cmd = Command::new(&rt.bin);
        cmd.arg("--root").arg(self.root.path()).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs a runtime command to completion, capturing its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run the runtime")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `create` with the container's stdio sent to files in the work dir (a pipe
    /// would stay open as long as the container runs).
    pub fn create(&self, bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
        self.create_in(bundle.dir(), id, extra, &[])
    }

    /// [`Case::create`] of the bundle directory `dir` (which may hold a config no
    /// [`Bundle`] would open), with `env` added to the runtime's environment. The
    /// output's stdout and stderr are the container's files' contents.
    pub fn create_in(&self, dir: &Path, id: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let stdout = fs::File::create(self.stdout_path(id)).expect("stdout file");
        let stderr = fs::File::create(self.stderr_path(id)).expect("stderr file");
        let bundle_dir = dir.to_str().expect("utf-8 path");
        let mut args = vec!["create", "--bundle", bundle_dir];
        args.extend_from_slice(extra);
        args.push(id);
        let mut cmd = self.cmd(&args);
        cmd.envs(env.iter().copied());
        let status = cmd.stdout(stdout).stderr(stderr).status().expect("run create");
        Output {
            status,
            stdout: fs::read(self.stdout_path(id)).unwrap_or_default(),
            stderr: fs::read(self.stderr_path(id)).unwrap_or_default(),
        }
    }

    pub fn stdout_path(&self, id: &str) -> PathBuf {
        self.work.path().join(format!("{}.stdout", file_name_for(id)))
    }

    pub fn stderr_path(&self, id: &str) -> PathBuf {
        self.work.path().join(format!("{}.stderr", file_name_for(id)))
    }

    /// The container's stdout so far (for create/start flows).
    pub fn container_stdout(&self, id: &str) -> String {
        fs::read_to_string(self.stdout_path(id)).unwrap_or_default()
    }

    /// `state` as JSON.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to 10 s) until the container reaches `status` (it may not
    /// exist yet when a `run` was just spawned).
    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.run(&["state", id]);
            let now = if out.status.success() {
                let state: Value = serde_json::from_slice(&out.stdout).expect("state is JSON");
                state["status"].as_str().unwrap_or_default().to_owned()
            } else {
                String::from_utf8_lossy(&out.stderr).trim().to_owned()
            };
            if now == status {
                return;
            }
            assert!(Instant::now() < deadline, "container {id} stayed {now:?}, wanted {status:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A variant of `base` for container `id`: its own cgroup, then `edit`.
    pub fn bundle(&self, base: &Bundle, id: &str, edit: impl FnOnce(&mut Value)) -> Bundle {
        base.variant(&self.work.path().join(format!("bundle-{id}")), |config| {
            config["linux"]["cgroupsPath"] = Value::String(Self::cgroup_path(id));
            edit(config);
        })
        .expect("write bundle variant")
    }

    /// A probe bundle for `id` running the probe with `args`.
    pub fn probe_bundle(&self, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        self.bundle(&bundles().probe, id, |config| {
            let mut argv = vec![Value::from(amphi_test_bundles::PROBE_IN_ROOTFS)];
            argv.extend(args.iter().map(|a| Value::from(*a)));
            config["process"]["args"] = Value::Array(argv);
            edit(config);
        })
    }

    /// A busybox bundle for `id` running `args`.
    pub fn busybox_bundle(&self, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        self.bundle(&bundles().busybox, id, |config| {
            config["process"]["args"] = Value::Array(args.iter().map(|a| Value::from(*a)).collect());
            edit(config);
        })
    }

    /// Asserts that container `id` left nothing behind: no state dir (and so no
    /// fifo), no cgroup in any hierarchy, no process in its cgroup, no mount under
    /// this test's work dir.
    pub fn assert_gone(&self, id: &str) {
        let state_dir = self.root.path().join(id);
        assert!(!state_dir.exists(), "state dir {} left behind", state_dir.display());
        let rel = Self::cgroup_path(id);
        for hierarchy in cgroup_hierarchies() {
            let dir = hierarchy.join(rel.trim_start_matches('/'));
            assert!(!dir.exists(), "cgroup {} left behind", dir.display());
        }
        let procs = processes_in_cgroup(&rel);
        assert!(procs.is_empty(), "processes left in cgroup {rel}: {procs:?}");
        let mounts = mounts_mentioning(self.work.path());
        assert!(mounts.is_empty(), "mounts left under {}: {mounts:?}", self.work.path().display());
    }

    /// Asserts every container this case made is gone.
    pub fn assert_all_gone(&self) {
        let ids: Vec<String> = self.ids.borrow().iter().cloned().collect();
        for id in ids {
            self.assert_gone(&id);
        }
    }
}

impl Drop for Case {
    /// A failed test must not leave containers running for the next one: each is
    /// deleted, and whatever a failed delete left (processes in the container's
    /// cgroup, the cgroup) is removed by hand.
    fn drop(&mut self) {
        let ids: Vec<String> = self.ids.borrow().iter().cloned().collect();
        for id in ids {
            if self.root.path().join(&id).exists() {
                let _ = self.cmd(&["delete", "--force", &id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
            }
            reap_cgroup(&Self::cgroup_path(&id));
        }
    }
}

/// A file name made from a container id, which may be a bad one (empty, with a
/// `/`).
fn file_name_for(id: &str) -> String {
    if id.is_empty() { "(empty)".to_owned() } else { id.replace('/', "%") }
}

/// Waits until `path` holds something (up to 10 s).
pub fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(Instant::now() < deadline, "{} stayed empty", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A container that was created and started, whose probe has reported and now
/// sleeps: its id, its init's host pid and the report.
pub struct Running {
    pub id: String,
    pub pid: i64,
    pub report: Value,
}

impl Case {
    /// Creates and starts `bundle` as `id` and waits for the probe's report. The
    /// probe must be told to stay (`--sleep 0` or `--wait-signal`) so that the
    /// container can be looked at from outside; `create` must succeed.
    pub fn start(&self, bundle: &Bundle, id: &str) -> Running {
        self.start_with(bundle, id, &[], &[])
    }

    /// [`Case::start`] with extra `create` flags and runtime environment.
    pub fn start_with(&self, bundle: &Bundle, id: &str, extra: &[&str], env: &[(&str, &str)]) -> Running {
        let out = self.create_in(bundle.dir(), id, extra, env);
        assert!(out.status.success(), "create {id}: {}", describe(&out));
        self.ok(&["start", id]);
        let report = wait_for_report(&self.stdout_path(id));
        let pid = self.state(id)["pid"].as_i64().expect("state has a pid");
        Running { id: id.to_owned(), pid, report }
    }

    /// `delete --force`, which must succeed.
    pub fn delete_force(&self, id: &str) {
        self.ok(&["delete", "--force", id]);
    }

    /// A fresh rootfs of this case's own (`<work>/rootfs-<name>`) holding the probe
    /// (a hard link to the shared bundle's, so nothing is copied) and the empty
    /// `proc`, `dev`, `sys` and `tmp`: for tests that change the rootfs or whose
    /// mount points must not be created in the shared one.
    pub fn private_rootfs(&self, name: &str) -> PathBuf {
        let rootfs = self.work.path().join(format!("rootfs-{name}"));
        for dir in ["bin", "proc", "dev", "sys", "tmp"] {
            fs::create_dir_all(rootfs.join(dir)).expect("rootfs dir");
        }
        fs::set_permissions(rootfs.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).expect("chmod");
        let probe_in_root = amphi_test_bundles::PROBE_IN_ROOTFS.trim_start_matches('/');
        fs::hard_link(bundles().probe.rootfs().join(probe_in_root), rootfs.join(probe_in_root))
            .expect("link the probe");
        rootfs
    }

    /// [`Case::probe_bundle`] on a [`Case::private_rootfs`] named after `id`.
    pub fn private_probe_bundle(&self, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        let rootfs = self.private_rootfs(id);
        self.probe_bundle(id, args, |config| {
            config["root"]["path"] = Value::String(rootfs.to_string_lossy().into_owned());
            edit(config);
        })
    }
}

/// Waits (up to 10 s) until `path` holds a whole probe report and returns it.
pub fn wait_for_report(path: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        // A line is whole once its newline is written.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        if let Some(report) =
            whole.lines().find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(Value::is_object))
        {
            return report;
        }
        assert!(Instant::now() < deadline, "no probe report in {}: {text:?}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `readlink /proc/<pid>/ns/<name>`, as `net:[4026531840]`.
pub fn ns_link(pid: i64, name: &str) -> String {
    let path = format!("/proc/{pid}/ns/{name}");
    fs::read_link(&path).unwrap_or_else(|e| panic!("readlink {path}: {e}")).to_string_lossy().into_owned()
}

/// The value of `key` in `/proc/<pid>/status`, trimmed (`Uid` → `0\t0\t0\t0`).
pub fn proc_status(pid: impl std::fmt::Display, key: &str) -> String {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| *k == key).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("{path} has no {key}"))
}

/// A `/proc/<pid>` file's content.
pub fn proc_file(pid: i64, name: &str) -> String {
    let path = format!("/proc/{pid}/{name}");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// One line of a mountinfo file, as seen from outside.
#[derive(Debug, Clone)]
pub struct MountLine {
    pub mount_id: u64,
    pub parent_id: u64,
    pub root: String,
    pub mount_point: String,
    pub options: Vec<String>,
    pub optional: Vec<String>,
    pub fs_type: String,
    pub super_options: Vec<String>,
}

/// `/proc/<pid>/mountinfo` parsed (escapes of spaces are left as they are).
pub fn mountinfo(pid: i64) -> Vec<MountLine> {
    let text = proc_file(pid, "mountinfo");
    let split = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    text.lines()
        .map(|line| {
            let (before, after) = line.split_once(" - ").unwrap_or_else(|| panic!("mountinfo line {line:?}"));
            let fields: Vec<&str> = before.split(' ').collect();
            let after: Vec<&str> = after.split(' ').collect();
            MountLine {
                mount_id: fields[0].parse().expect("mount id"),
                parent_id: fields[1].parse().expect("parent id"),
                root: fields[3].to_owned(),
                mount_point: fields[4].to_owned(),
                options: split(fields[5]),
                optional: fields[6..].iter().map(|s| (*s).to_owned()).collect(),
                fs_type: after[0].to_owned(),
                super_options: after.get(2).map(|s| split(s)).unwrap_or_default(),
            }
        })
        .collect()
}

/// The mount the probe reports at `point` (the topmost, when several are stacked).
pub fn mount_at<'a>(report: &'a Value, point: &str) -> &'a Value {
    report["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .rev()
        .find(|m| m["mount_point"] == point)
        .unwrap_or_else(|| panic!("no mount at {point} in {}", mount_points(report)))
}

/// Whether the probe reports a mount at `point`.
pub fn has_mount(report: &Value, point: &str) -> bool {
    report["mounts"].as_array().expect("mounts").iter().any(|m| m["mount_point"] == point)
}

/// The mount points the probe reports, for messages.
pub fn mount_points(report: &Value) -> String {
    let points: Vec<&str> =
        report["mounts"].as_array().into_iter().flatten().filter_map(|m| m["mount_point"].as_str()).collect();
    points.join(" ")
}

/// Whether a JSON array of strings (a mount's options) holds `item`.
pub fn holds(list: &Value, item: &str) -> bool {
    list.as_array().is_some_and(|l| l.iter().any(|v| v == item))
}

/// The probe's `--check` result for `path`.
pub fn check<'a>(report: &'a Value, path: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no check of {path} in the report"))
}

/// The names in one of the probe's capability sets, sorted.
pub fn cap_names(report: &Value, set: &str) -> Vec<String> {
    let mut names: Vec<String> = report["capabilities"][set]["names"]
        .as_array()
        .unwrap_or_else(|| panic!("capability set {set}: {}", report["capabilities"]))
        .iter()
        .map(|n| n.as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}
