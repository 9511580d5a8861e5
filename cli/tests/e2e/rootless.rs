//! Rootless containers: an unprivileged user the test creates (`amphitest`)
//! runs a bundle written by `<runtime> spec --rootless`, whose user namespace
//! maps the user's own uid and gid to root. Checked from inside (the probe is
//! uid 0) and from outside (the process runs as the user's uid, in the user's
//! own cgroup; the state lives under the user's `$XDG_RUNTIME_DIR`; nothing is
//! left behind).
//!
//! Everything the user needs (the runtime binary, the rootfs, the runtime dir)
//! sits in a private directory under `/tmp` that the user owns: the build tree
//! may have parents the user cannot enter.
//!
//! Exceptions for runc: it has no fallback state root without
//! `$XDG_RUNTIME_DIR` (it would use `/run/runc`, which the user cannot write),
//! and its errors are worded its own way (only the refusal is checked).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, check, describe, probe_report, runtime};
use crate::terminal::{ConsoleSocket, read_to_end};

/// The unprivileged user the tests run containers as.
const USER: &str = "amphitest";

struct TestUser {
    uid: u32,
    gid: u32,
}

/// The test user, created on first use (`useradd --create-home`).
fn test_user() -> &'static TestUser {
    static USER_IDS: OnceLock<TestUser> = OnceLock::new();
    USER_IDS.get_or_init(|| {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, USER]).stderr(Stdio::null()).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        if id("-u").is_none() {
            let status = Command::new("useradd").args(["--create-home", USER]).status().expect("run useradd");
            // 9: made in the meantime by a concurrent test run.
            assert!(status.success() || status.code() == Some(9), "useradd {USER}: {status}");
        }
        TestUser { uid: id("-u").expect("the test user's uid"), gid: id("-g").expect("the test user's gid") }
    })
}

/// A private directory the test user owns, holding what its containers need.
struct World {
    dir: tempfile::TempDir,
    /// The runtime, as the user runs it.
    bin: PathBuf,
    /// The user's `$XDG_RUNTIME_DIR`.
    xdg: PathBuf,
    user: &'static TestUser,
    ids: std::cell::RefCell<Vec<String>>,
}

impl World {
    fn new() -> Self {
        let user = test_user();
        let dir = tempfile::Builder::new().prefix("amphi-rootless-").tempdir_in("/tmp").expect("world dir");
        let bin = if runtime().is_amphi {
            let bin = dir.path().join("amphi");
            link_or_copy(&runtime().bin, &bin);
            bin
        } else {
            runtime().bin.clone()
        };
        let xdg = dir.path().join("xdg");
        fs::create_dir(&xdg).expect("xdg dir");
        let world = Self { dir, bin, xdg, user, ids: Default::default() };
        world.give_to_user(world.dir.path());
        world.give_to_user(&world.xdg);
        world
    }

    fn give_to_user(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(self.user.uid), Some(self.user.gid)).expect("chown to the test user");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The runtime's name under `$XDG_RUNTIME_DIR` (`amphi`, `runc`).
    fn runtime_dir(&self) -> PathBuf {
        let name =
            if runtime().is_amphi { "amphi".into() } else { runtime().bin.file_name().expect("name").to_owned() };
        self.xdg.join(name)
    }

    /// The runtime run as the test user, with a clean environment: `PATH`,
    /// `HOME` and (with `xdg`) `XDG_RUNTIME_DIR`.
    fn cmd(&self, args: &[&str], xdg: bool) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg("--reuid")
            .arg(self.user.uid.to_string())
            .arg("--regid")
            .arg(self.user.gid.to_string())
            .args(["--clear-groups", "--", "env", "-i", "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
            .arg(format!("HOME={}", self.path().display()));
        if xdg {
            cmd.arg(format!("XDG_RUNTIME_DIR={}", self.xdg.display()));
        }
        cmd.arg(&self.bin).args(args).current_dir(self.path()).stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args, true).output().expect("run the runtime as the test user")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} as {USER}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `create` as the user, the container's stdio in files; returns the
    /// command's output with the files' contents.
    fn create(&self, bundle: &Path, id: &str, xdg: bool) -> Output {
        self.create_with(bundle, id, xdg, &[])
    }

    /// [`World::create`] with `extra` flags.
    fn create_with(&self, bundle: &Path, id: &str, xdg: bool, extra: &[&str]) -> Output {
        self.ids.borrow_mut().push(id.to_owned());
        let stdout = fs::File::create(self.stdout_path(id)).expect("stdout file");
        let stderr = fs::File::create(self.path().join(format!("{id}.stderr"))).expect("stderr file");
        let mut args = vec!["create", "--bundle", bundle.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(id);
        let status = self.cmd(&args, xdg).stdout(stdout).stderr(stderr).status().expect("create");
        Output {
            status,
            stdout: fs::read(self.stdout_path(id)).unwrap_or_default(),
            stderr: fs::read(self.path().join(format!("{id}.stderr"))).unwrap_or_default(),
        }
    }

    fn stdout_path(&self, id: &str) -> PathBuf {
        self.path().join(format!("{id}.stdout"))
    }

    /// A bundle written by `<runtime> spec --rootless` as the user, running the
    /// probe with `args` on a rootfs of its own, then changed by `edit`.
    fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.path().join(format!("bundle-{name}"));
        let rootfs = dir.join("rootfs");
        for sub in ["bin", "proc", "dev", "sys", "tmp"] {
            fs::create_dir_all(rootfs.join(sub)).expect("rootfs dir");
        }
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod /tmp");
        let probe_in_root = amphi_test_bundles::PROBE_IN_ROOTFS.trim_start_matches('/');
        link_or_copy(&support::bundles().probe.rootfs().join(probe_in_root), &rootfs.join(probe_in_root));
        for path in [&dir, &rootfs] {
            self.give_to_user(path);
        }
        self.ok(&["spec", "--rootless", "--bundle", dir.to_str().unwrap()]);
        let config_path = dir.join("config.json");
        let mut config: Value = serde_json::from_slice(&fs::read(&config_path).expect("config")).expect("JSON");
        let mut argv = vec![Value::from(amphi_test_bundles::PROBE_IN_ROOTFS)];
        argv.extend(args.iter().map(|a| Value::from(*a)));
        config["process"]["args"] = Value::Array(argv);
        config["process"]["terminal"] = json!(false);
        config["root"]["path"] = json!("rootfs");
        edit(&mut config);
        fs::write(&config_path, serde_json::to_vec_pretty(&config).expect("JSON")).expect("write config");
        dir
    }

    /// Asserts that container `id` left nothing: no state dir under either
    /// state root, no process.
    fn assert_gone(&self, id: &str, pid: Option<i64>) {
        let dir = self.runtime_dir().join(id);
        assert!(!dir.exists(), "state dir {} left behind", dir.display());
        let fallback = fallback_root(self.user).join(id);
        assert!(!fallback.exists(), "state dir {} left behind", fallback.display());
        if let Some(pid) = pid {
            wait_gone(pid);
        }
    }
}

impl Drop for World {
    /// A failed test must not leave the user's containers running.
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            for xdg in [true, false] {
                let _ = self.cmd(&["delete", "--force", id], xdg).stdout(Stdio::null()).stderr(Stdio::null()).status();
            }
        }
    }
}

/// amphi's state root for a user without `$XDG_RUNTIME_DIR`.
fn fallback_root(user: &TestUser) -> PathBuf {
    PathBuf::from(format!("/tmp/amphi-{}", user.uid))
}

/// A hard link of `from` at `to` (same filesystem), else a copy.
fn link_or_copy(from: &Path, to: &Path) {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    }
}

/// Waits (up to 10 s) until process `pid` is gone or a zombie.
fn wait_gone(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(stat) if stat.contains(") Z ") => return,
            Ok(_) => {}
        }
        assert!(Instant::now() < deadline, "process {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn rootless_create_start_exec_and_delete() {
    let Some(case) = support::case("rootless_lifecycle") else { return };
    let world = World::new();
    let user = world.user;
    let id = case.id("c");
    let bundle = world.bundle("c", &["--sleep", "0"], |_| {});
    let out = world.create(&bundle, &id, true);
    assert!(out.status.success(), "create as {USER}: {}", describe(&out));
    if runtime().is_amphi {
        // This host has no delegated cgroup v2: the container gets none, and says so.
        assert!(String::from_utf8_lossy(&out.stderr).contains("no cgroup"), "{}", describe(&out));
    }
    let state_dir = world.runtime_dir().join(&id);
    assert!(state_dir.is_dir(), "no state dir {}", state_dir.display());

    let state: Value = serde_json::from_str(&world.ok(&["state", &id])).expect("state JSON");
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().expect("pid");
    // Outside: the user's own ids, its own one-id maps, its own cgroup.
    let host_ids = |key| support::proc_status(pid, key).split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(host_ids("Uid"), vec![user.uid.to_string(); 4]);
    assert_eq!(host_ids("Gid"), vec![user.gid.to_string(); 4]);
    assert_eq!(words(&support::proc_file(pid, "uid_map")), ["0", &user.uid.to_string(), "1"]);
    assert_eq!(words(&support::proc_file(pid, "gid_map")), ["0", &user.gid.to_string(), "1"]);
    let own_cgroup = fs::read_to_string("/proc/self/cgroup").expect("own cgroup");
    assert_eq!(support::proc_file(pid, "cgroup"), own_cgroup, "the container is in its creator's cgroup");
    for hierarchy in support::cgroup_hierarchies() {
        for parent in ["amphi", ""] {
            let dir = hierarchy.join(parent).join(&id);
            assert!(!dir.exists(), "cgroup {} was made", dir.display());
        }
    }

    world.ok(&["start", &id]);
    let report = support::wait_for_report(&world.stdout_path(&id));
    for key in ["uid", "euid", "gid", "egid"] {
        assert_eq!(report[key], 0, "{key} inside");
    }
    let exec = world.run(&["exec", &id, amphi_test_bundles::PROBE_IN_ROOTFS, "--no-report", "--exit", "5"]);
    assert_eq!(exec.status.code(), Some(5), "exec as {USER}: {}", describe(&exec));

    world.ok(&["delete", "--force", &id]);
    world.assert_gone(&id, Some(pid));
}

#[test]
fn rootless_run_exits_with_the_container_status() {
    let Some(case) = support::case("rootless_run") else { return };
    let world = World::new();
    let id = case.id("r");
    let bundle = world.bundle("r", &["--exit", "3"], |_| {});
    world.ids.borrow_mut().push(id.clone());
    let out = world.run(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(3), "run as {USER}: {}", describe(&out));
    let report = probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(report["uid"], 0, "uid inside");
    world.assert_gone(&id, None);
}

#[test]
fn rootless_terminal_through_a_console_socket() {
    let Some(case) = support::case("rootless_terminal") else { return };
    let world = World::new();
    let id = case.id("t");
    let bundle = world.bundle("t", &["--check", "/dev/tty"], |config| {
        config["process"]["terminal"] = json!(true);
    });
    let socket = ConsoleSocket::new();
    socket.give_to(world.user.uid, world.user.gid);
    let out = world.create_with(&bundle, &id, true, &["--console-socket", socket.arg()]);
    assert!(out.status.success(), "create as {USER}: {}", describe(&out));
    let (_, master) = socket.receive();
    world.ok(&["start", &id]);
    let report = probe_report(&read_to_end(&master));
    assert_eq!(report["uid"], 0, "uid inside");
    assert_eq!(report["tty"], json!({"stdin": true, "stdout": true, "stderr": true}), "stdio on the pty");
    assert_eq!(check(&report, "/dev/tty")["readable"], true, "a controlling terminal");
    world.ok(&["delete", "--force", &id]);
    world.assert_gone(&id, None);
}

#[test]
fn rootless_state_falls_back_to_tmp_without_xdg_runtime_dir() {
    let Some(case) = support::case("rootless_fallback_root") else { return };
    if !runtime().is_amphi {
        // Exception: runc has no fallback (it would use /run/runc).
        return;
    }
    let world = World::new();
    let id = case.id("f");
    let bundle = world.bundle("f", &["--sleep", "0"], |_| {});
    let out = world.create(&bundle, &id, false);
    assert!(out.status.success(), "create as {USER}: {}", describe(&out));
    let root = fallback_root(world.user);
    assert!(root.join(&id).is_dir(), "no state dir under {}", root.display());
    let meta = fs::metadata(&root).expect("fallback root");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{} is private", root.display());
    assert!(!world.runtime_dir().join(&id).exists(), "XDG_RUNTIME_DIR was not set");
    let pid_out = world.cmd(&["state", &id], false).output().expect("state");
    let state: Value = serde_json::from_slice(&pid_out.stdout).expect("state JSON");
    let pid = state["pid"].as_i64().expect("pid");
    let deleted = world.cmd(&["delete", "--force", &id], false).output().expect("delete");
    assert!(deleted.status.success(), "delete: {}", describe(&deleted));
    world.assert_gone(&id, Some(pid));
}

#[test]
fn rootless_mapping_of_another_uid_is_refused() {
    let Some(case) = support::case("rootless_foreign_mapping") else { return };
    let world = World::new();
    let id = case.id("m");
    // Container root mapped to the host's root: not the caller's own uid.
    let bundle = world.bundle("m", &[], |config| {
        config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    });
    let out = world.create(&bundle, &id, true);
    assert!(!out.status.success(), "create with a foreign mapping succeeded: {}", describe(&out));
    if runtime().is_amphi {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.contains("linux.uidMappings[0]") && stderr.contains("host uid 0"), "{stderr}");
        assert!(stderr.contains(&format!("its own uid {}", world.user.uid)), "{stderr}");
    }
    world.assert_gone(&id, None);
}

#[test]
fn rootless_without_a_user_namespace_is_refused() {
    let Some(case) = support::case("rootless_without_userns") else { return };
    let world = World::new();
    let id = case.id("n");
    let bundle = world.bundle("n", &[], |config| {
        let namespaces = config["linux"]["namespaces"].as_array_mut().expect("namespaces");
        namespaces.retain(|ns| ns["type"] != "user");
        config["linux"].as_object_mut().expect("linux").remove("uidMappings");
        config["linux"].as_object_mut().expect("linux").remove("gidMappings");
    });
    let out = world.create(&bundle, &id, true);
    assert!(!out.status.success(), "create without a user namespace succeeded: {}", describe(&out));
    if runtime().is_amphi {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("linux.namespaces") && stderr.contains("user namespace"), "{stderr}");
    }
    world.assert_gone(&id, None);
}
