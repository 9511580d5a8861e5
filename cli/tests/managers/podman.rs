//! podman with amphi as its runtime (`podman --runtime <amphi>`), on a rootfs
//! directory (`--rootfs`): a native run, a wasm module under
//! `run.oci.handler=wasm`, `podman exec` both ways, `podman stop` whose
//! SIGTERM ends a wasm guest, and a wasm service reached in the container's
//! network namespace.
//!
//! Each test writes its own configuration into a temporary directory and points
//! podman at it (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`, `--root`,
//! `--runroot`): vfs storage, the cgroupfs manager, a file events log, no
//! network, and `default_ulimits` pinned under this machine's hard limits
//! (podman asks for nofile and nproc of 1048576 otherwise, which root without
//! CAP_SYS_RESOURCE cannot grant: the runtime's setrlimit fails, as runc's
//! would). podman calls the runtime without `--root`, so amphi keeps its state
//! in its default `/run/amphi`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::http;
use crate::support::{self, can_run, describe, runs_wasm, stdout};

/// amphi's default state root, which podman's calls use.
const DEFAULT_ROOT: &str = "/run/amphi";

/// A private podman setup.
struct Podman {
    dir: tempfile::TempDir,
    /// Full ids of the containers the test made.
    ids: std::cell::RefCell<Vec<String>>,
    finished: bool,
}

impl Podman {
    fn new() -> Option<Podman> {
        if !can_run("podman") {
            return None;
        }
        let dir = tempfile::Builder::new().prefix("podman-").tempdir_in(support::scratch()).expect("podman dir");
        let d = dir.path().display();
        fs::write(
            dir.path().join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"
"#
            ),
        )
        .expect("containers.conf");
        fs::write(
            dir.path().join("storage.conf"),
            format!("[storage]\ndriver = \"vfs\"\ngraphroot = \"{d}/graph\"\nrunroot = \"{d}/run\"\n"),
        )
        .expect("storage.conf");
        Some(Podman { dir, ids: Default::default(), finished: false })
    }

    /// `podman --root … --runroot … --runtime <amphi> ARGS` with this setup's
    /// configuration.
    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("graph"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--runtime")
            .arg(&support::runtime().bin)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run podman")
    }

    fn podman_ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(out.status.success(), "podman {args:?}: {}", describe(&out));
        stdout(&out)
    }

    /// A rootfs of this test's own (podman writes into it): busybox and its
    /// applets, and the wasm fixtures `wasm` at `/`.
    fn rootfs(&self, name: &str, wasm: &[&str]) -> PathBuf {
        let rootfs = self.dir.path().join(format!("rootfs-{name}"));
        let bin = rootfs.join("bin");
        fs::create_dir_all(&bin).expect("rootfs");
        for dir in ["proc", "dev", "sys", "tmp", "etc"] {
            fs::create_dir_all(rootfs.join(dir)).expect("rootfs dir");
        }
        fs::copy(amphi_test_bundles::HOST_BUSYBOX, bin.join("busybox")).expect("copy busybox");
        for applet in amphi_test_bundles::BUSYBOX_APPLETS {
            symlink("busybox", bin.join(applet)).expect("applet link");
        }
        for file in wasm {
            fs::copy(amphi_wasm_fixtures::path(file), rootfs.join(file)).expect("copy wasm fixture");
        }
        rootfs
    }

    /// `podman run --rm --rootfs ROOTFS FLAGS ARGS`, remembering the id.
    fn run_rm(&self, flags: &[&str], rootfs: &Path, args: &[&str]) -> Output {
        let cidfile = self.dir.path().join(format!("cid-{}", self.ids.borrow().len()));
        let mut all = vec!["run", "--rm", "--network", "none", "--cidfile", cidfile.to_str().expect("utf-8")];
        all.extend_from_slice(flags);
        all.extend_from_slice(&["--rootfs", rootfs.to_str().expect("utf-8")]);
        all.extend_from_slice(args);
        let out = self.podman(&all);
        if let Ok(id) = fs::read_to_string(&cidfile) {
            self.ids.borrow_mut().push(id.trim().to_owned());
        }
        out
    }

    /// `podman run -d --name NAME …`; returns the container's full id.
    fn run_detached(&self, name: &str, flags: &[&str], rootfs: &Path, args: &[&str]) -> String {
        let mut all = vec!["run", "-d", "--name", name, "--network", "none"];
        all.extend_from_slice(flags);
        all.extend_from_slice(&["--rootfs", rootfs.to_str().expect("utf-8")]);
        all.extend_from_slice(args);
        let id = self.podman_ok(&all).trim().to_owned();
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// The container's init pid, as podman knows it.
    fn pid(&self, name: &str) -> i64 {
        self.podman_ok(&["inspect", "--format", "{{.State.Pid}}", name]).trim().parse().expect("pid")
    }

    /// Asserts that podman and amphi kept nothing of the test's containers.
    fn finish(mut self) {
        assert_eq!(self.podman_ok(&["ps", "-a", "-q"]).trim(), "", "containers left");
        for id in self.ids.borrow().iter() {
            let state = Path::new(DEFAULT_ROOT).join(id);
            assert!(!state.exists(), "amphi state {} left behind", state.display());
            let rel = format!("/libpod_parent/libpod-{id}");
            for hierarchy in support::cgroup_hierarchies() {
                let dir = hierarchy.join(rel.trim_start_matches('/'));
                assert!(!dir.exists(), "cgroup {} left behind", dir.display());
            }
            assert!(support::processes_in_cgroup(&rel).is_empty(), "processes left in {rel}");
        }
        let mounts = support::mounts_mentioning(self.dir.path());
        assert!(mounts.is_empty(), "mounts left under {}: {mounts:?}", self.dir.path().display());
        self.finished = true;
    }
}

impl Podman {
    /// Waits (up to 10 s) until no process names this setup's directory on its
    /// command line: conmon, and the `podman container cleanup` it runs after a
    /// container exits, would otherwise write into the directory after it is
    /// removed.
    fn wait_for_helpers(&self) {
        let mine = self.dir.path().to_string_lossy().into_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        let busy = || {
            fs::read_dir("/proc").into_iter().flatten().flatten().any(|entry| {
                let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains(&mine)
            })
        };
        while busy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        if self.finished {
            self.wait_for_helpers();
            return;
        }
        let _ = self.command(&["rm", "--force", "--all", "--time", "0"]).output();
        for id in self.ids.borrow().iter() {
            support::reap_cgroup(&format!("/libpod_parent/libpod-{id}"));
        }
        // podman's own mounts (the shm tmpfs of a container it could not remove).
        let mine = self.dir.path().to_string_lossy().into_owned();
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in text.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&mine)) {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
        self.wait_for_helpers();
    }
}

#[test]
fn podman_runs_a_native_rootfs() {
    let Some(podman) = Podman::new() else { return };
    let rootfs = podman.rootfs("native", &[]);
    let out = podman.run_rm(&[], &rootfs, &["/bin/sh", "-c", "echo hello from podman; hostname"]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.starts_with("hello from podman\n"), "{text:?}");
    let out = podman.run_rm(&[], &rootfs, &["/bin/sh", "-c", "exit 9"]);
    assert_eq!(out.status.code(), Some(9), "{}", describe(&out));
    podman.finish();
}

#[test]
fn podman_runs_a_wasm_module_under_the_handler_annotation() {
    if !runs_wasm() {
        return;
    }
    let Some(podman) = Podman::new() else { return };
    let rootfs = podman.rootfs("wasm", &["hello.wasm", "exit-code.wasm"]);
    let out = podman.run_rm(&["--annotation", "run.oci.handler=wasm"], &rootfs, &["/hello.wasm"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    let out = podman.run_rm(&["--annotation", "run.oci.handler=wasm"], &rootfs, &["/exit-code.wasm", "12"]);
    assert_eq!(out.status.code(), Some(12), "{}", describe(&out));
    podman.finish();
}

#[test]
fn podman_exec_into_a_native_container() {
    let Some(podman) = Podman::new() else { return };
    let rootfs = podman.rootfs("execn", &["hello.wasm"]);
    podman.run_detached("host", &[], &rootfs, &["/bin/sleep", "1000"]);
    let out = podman.podman(&["exec", "host", "/bin/echo", "exec", "works"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "exec works\n");
    let out = podman.podman(&["exec", "host", "/bin/sh", "-c", "exit 6"]);
    assert_eq!(out.status.code(), Some(6), "{}", describe(&out));
    if runs_wasm() {
        let out = podman.podman(&["exec", "host", "/hello.wasm"]);
        assert!(out.status.success(), "a wasm tool into a native container: {}", describe(&out));
        assert_eq!(stdout(&out), "hello from wasm\n");
    }
    podman.podman_ok(&["rm", "--force", "--time", "0", "host"]);
    podman.finish();
}

#[test]
fn podman_exec_native_into_a_wasm_container() {
    if !runs_wasm() {
        return;
    }
    let Some(podman) = Podman::new() else { return };
    let rootfs = podman.rootfs("execw", &["loop-forever.wasm", "hello.wasm"]);
    podman.run_detached("looper", &["--annotation", "run.oci.handler=wasm"], &rootfs, &["/loop-forever.wasm"]);
    let out = podman.podman(&["exec", "looper", "/hello.wasm"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hello from wasm\n");
    // A native debugging tool in a container annotated as wasm: the exec'd
    // process is chosen for itself (issue 3, point 8).
    let out = podman.podman(&["exec", "looper", "/bin/echo", "native", "beside", "wasm"]);
    let _ = podman.podman(&["rm", "--force", "--time", "0", "looper"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "native beside wasm\n");
    podman.finish();
}

#[test]
fn podman_stop_ends_a_wasm_guest_with_sigterm() {
    if !runs_wasm() {
        return;
    }
    let Some(podman) = Podman::new() else { return };
    let rootfs = podman.rootfs("stop", &["loop-forever.wasm"]);
    podman.run_detached("looper", &["--annotation", "run.oci.handler=wasm"], &rootfs, &["/loop-forever.wasm"]);
    let pid = podman.pid("looper");
    support::wait_until("the guest spins", || support::proc_state(pid) == 'R');
    let started = Instant::now();
    // SIGKILL would only come after 60 s: an earlier stop is SIGTERM's doing.
    podman.podman_ok(&["stop", "--time", "60", "looper"]);
    assert!(started.elapsed() < Duration::from_secs(20), "podman stop waited {:?}", started.elapsed());
    let code = podman.podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", "looper"]);
    assert_eq!(code.trim(), "143", "SIGTERM ends the guest with 128+15");
    podman.podman_ok(&["rm", "looper"]);
    podman.finish();
}

/// `podman run -d` of a wasm service (chosen by content: a component
/// exporting `wasi:http/incoming-handler`), with podman's `--network none`: the
/// container has a network namespace of its own, where the service listens on
/// the default `0.0.0.0:8080` and a client joining that namespace reaches it
/// (publishing a port with `-p` would have podman set up a bridge and firewall
/// rules on the host, which these tests leave alone); `podman stop`'s SIGTERM
/// ends it with 0.
#[test]
fn podman_runs_a_wasm_service_reached_in_its_network_namespace() {
    if !runs_wasm() {
        return;
    }
    let Some(podman) = Podman::new() else { return };
    let rootfs = podman.rootfs("service", &["hello-service.wasm"]);
    podman.run_detached("web", &[], &rootfs, &["/hello-service.wasm"]);
    let netns = PathBuf::from(format!("/proc/{}/ns/net", podman.pid("web")));
    // podman's `none` network leaves the namespace's loopback down.
    let net = format!("--net={}", netns.display());
    let out = Command::new("nsenter").args([net.as_str(), "ip", "link", "set", "lo", "up"]).output().expect("nsenter");
    assert!(out.status.success(), "nsenter {net} ip link set lo up: {}", describe(&out));
    let addr = "127.0.0.1:8080".parse().expect("address");
    let response = http::get_ok(Some(&netns), addr, "/", &[("x-echo", "through podman")]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, "hello from a wasm service\n");
    assert_eq!(response.header("x-echo"), Some("through podman"), "{response:?}");

    let started = Instant::now();
    podman.podman_ok(&["stop", "--time", "60", "web"]);
    assert!(started.elapsed() < Duration::from_secs(20), "podman stop waited {:?}", started.elapsed());
    let code = podman.podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", "web"]);
    assert_eq!(code.trim(), "0", "SIGTERM ends a service with 0");
    podman.podman_ok(&["rm", "web"]);
    podman.finish();
}
