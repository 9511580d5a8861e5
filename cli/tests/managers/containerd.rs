//! A private containerd per test, and `ctr` against it, reaching amphi one of
//! two ways ([`Via`]): containerd's runc shim with amphi as its runc binary, or
//! amphi's own shim, `containerd-shim-amphi-v1`, which containerd finds on its
//! `PATH` (the test puts the directory of the built binaries first).
//!
//! [`Containerd::start`] writes a config of its own (`version = 2`, root, state,
//! gRPC and ttrpc sockets and the `opt` plugin's directory all under a
//! temporary directory, the CRI plugin disabled), starts `containerd` with it,
//! waits for its socket to answer, and stops it by its pid when dropped. Nothing
//! depends on a system containerd. Every `ctr` call names the socket and the
//! test's namespace, which is unique to the test and the test process: the runc
//! shim keeps the runtime's state in `/run/containerd/runc/<namespace>` and
//! amphi's shim in `/run/containerd/amphi/<namespace>`, whichever containerd
//! started it, so that directory is this test's alone.
//!
//! [`Containerd::finish`] removes what the test made (tasks, containers with
//! their snapshots, images with `--sync`, so the garbage collector has removed
//! their layers' snapshots) and then asserts that nothing is left: no task,
//! container, image or snapshot in the namespace, no runtime state in the
//! shim's root, no cgroup or process of the test's containers, no mount under
//! the test's directory, no shim process of this containerd.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use amphi_test_bundles::ImageArchive;

use crate::support::{self, describe};

/// Where containerd's runc shim keeps the runtime state of a namespace (it
/// passes `--root <this>/<namespace>` to the runtime).
pub const SHIM_RUNTIME_ROOT: &str = "/run/containerd/runc";

/// Where amphi's shim keeps the state of a namespace's containers by default
/// (the layout of `amphi --root <this>/<namespace>`).
pub const AMPHI_SHIM_ROOT: &str = "/run/containerd/amphi";

/// amphi's shim: its runtime type and its binary's name.
pub const AMPHI_SHIM_RUNTIME: &str = "io.containerd.amphi.v1";
pub const AMPHI_SHIM_BINARY: &str = "containerd-shim-amphi-v1";

/// The way into amphi a test's containerd takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// containerd's runc shim (`io.containerd.runc.v2`), the runtime under
    /// test as its runc binary (`ctr run --runc-binary`).
    RuncShim,
    /// amphi's own shim (`ctr run --runtime io.containerd.amphi.v1`).
    AmphiShim,
}

impl Via {
    /// Where the runtime state of the namespace `namespace` is kept.
    pub fn runtime_root(self, namespace: &str) -> PathBuf {
        let root = match self {
            Via::RuncShim => SHIM_RUNTIME_ROOT,
            Via::AmphiShim => AMPHI_SHIM_ROOT,
        };
        Path::new(root).join(namespace)
    }

    /// The file name of the shim's binary.
    pub fn shim_binary(self) -> &'static str {
        match self {
            Via::RuncShim => "containerd-shim-runc-v2",
            Via::AmphiShim => AMPHI_SHIM_BINARY,
        }
    }

    /// Whether this way applies to the runtime under test: amphi's shim runs
    /// amphi only, so against a peer runtime the test says so and passes.
    #[expect(clippy::print_stderr, reason = "a skipped test says why")]
    pub fn applies(self) -> bool {
        let applies = self == Via::RuncShim || support::runtime().is_amphi;
        if !applies {
            eprintln!("skipping: amphi's shim runs amphi only, and {} is not amphi", support::runtime().bin.display());
        }
        applies
    }
}

/// The directory of the built binaries, where `cargo build --workspace --bins`
/// puts `containerd-shim-amphi-v1` next to `amphi`.
pub fn shim_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_amphi")).parent().expect("amphi's directory").to_owned();
    let shim = dir.join(AMPHI_SHIM_BINARY);
    assert!(shim.is_file(), "{} is not built (cargo build --workspace --bins)", shim.display());
    dir
}

/// A running private containerd.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub address: PathBuf,
    pub namespace: String,
    pub via: Via,
    child: Option<Child>,
    /// Container ids the test made: each is deleted on drop, and checked by
    /// [`Containerd::finish`].
    ids: std::sync::Mutex<Vec<String>>,
    finished: bool,
}

/// Starts `containerd --config <dir>/config.toml`, logging to
/// `<dir>/containerd.log` (appended to, so a restart keeps the first run's
/// lines); for amphi's shim, the built binaries' directory first on its
/// `PATH`.
fn spawn(dir: &Path, via: Via) -> Child {
    let log =
        fs::OpenOptions::new().create(true).append(true).open(dir.join("containerd.log")).expect("containerd log");
    let mut command = Command::new("containerd");
    command.arg("--config").arg(dir.join("config.toml"));
    if via == Via::AmphiShim {
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", shim_dir().display()));
    }
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start containerd (apt-get install containerd): {e}"))
}

/// The config every test containerd runs with: only what `ctr` needs.
fn private_config(dir: &Path, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/c.sock"

[ttrpc]
  address = "{d}/c.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
{extra}"#
    )
}

impl Containerd {
    /// Starts a containerd for the test `name` with the private config, whose
    /// `ctr run` goes `via` that shim.
    pub fn start_via(name: &str, via: Via) -> Containerd {
        let short: String = name.chars().filter(char::is_ascii_alphanumeric).take(20).collect();
        let tag = match via {
            Via::RuncShim => "",
            Via::AmphiShim => "s",
        };
        Self::start_in_via(&format!("amphi-{short}{tag}-{}", std::process::id()), via, |dir| private_config(dir, ""))
    }

    /// Starts a containerd whose config is `config(dir)`, where `dir` is the
    /// test's temporary directory and the config must put its gRPC socket at
    /// `<dir>/c.sock`.
    pub fn start_with(name: &str, config: impl FnOnce(&Path) -> String) -> Containerd {
        let short: String = name.chars().filter(char::is_ascii_alphanumeric).take(20).collect();
        Self::start_in(&format!("amphi-{short}-{}", std::process::id()), config)
    }

    /// [`Containerd::start_with`] whose `ctr` calls and checks use the
    /// namespace `namespace` (the CRI plugin's is `k8s.io`).
    pub fn start_in(namespace: &str, config: impl FnOnce(&Path) -> String) -> Containerd {
        Self::start_in_via(namespace, Via::RuncShim, config)
    }

    /// [`Containerd::start_in`] for tasks that go `via` that shim (for the CRI
    /// plugin, the shim of the runtime handler the test uses).
    pub fn start_in_via(namespace: &str, via: Via, config: impl FnOnce(&Path) -> String) -> Containerd {
        // A short base: the sockets' paths must fit in a sockaddr_un.
        let dir = tempfile::Builder::new().prefix("ctrd-").tempdir_in(support::scratch()).expect("containerd dir");
        fs::write(dir.path().join("config.toml"), config(dir.path())).expect("write containerd config");
        let child = spawn(dir.path(), via);
        let containerd = Containerd {
            address: dir.path().join("c.sock"),
            namespace: namespace.to_owned(),
            via,
            dir,
            child: Some(child),
            ids: Default::default(),
            finished: false,
        };
        containerd.wait_ready();
        containerd
    }

    /// Stops containerd with SIGTERM, as a host's service manager restarts
    /// it, and starts it again with the same config, root and state; returns
    /// once it answers. The shims and their tasks keep running meanwhile.
    pub fn restart(&mut self) {
        let mut child = self.child.take().expect("containerd runs");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM containerd");
        let status = child.wait().expect("wait for containerd");
        assert!(status.success() || status.code().is_none(), "containerd ended with {status}:\n{}", self.log());
        self.child = Some(spawn(self.dir.path(), self.via));
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.address.exists() && self.ctr(&["version"]).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "containerd never answered; its log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// containerd's own log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address <socket> --namespace <ns> ARGS`.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.address).arg("--namespace").arg(&self.namespace).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args).output().expect("run ctr")
    }

    /// A `ctr` call that must succeed; its stdout.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(out.status.success(), "ctr {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports the archives.
    pub fn import(&self, archives: &[&ImageArchive]) {
        for archive in archives {
            self.ctr_ok(&["images", "import", archive.path.to_str().expect("utf-8 path")]);
        }
    }

    /// A container id for this test, registered for clean-up and the checks.
    pub fn id(&self, suffix: &str) -> String {
        let id = format!("{suffix}-{}", std::process::id());
        self.ids.lock().expect("ids").push(id.clone());
        id
    }

    /// The registered container ids.
    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The socket file of the shim of container `id` (the runc shim leaves
    /// it behind when it is killed).
    pub fn remove_shim_socket(&self, id: &str) {
        let _ = fs::remove_file(self.shim_socket(id));
    }

    /// Registers a container id made by someone else (the CRI plugin) for the
    /// checks.
    pub fn register(&self, id: &str) {
        self.ids.lock().expect("ids").push(id.to_owned());
    }

    /// `ctr run` with amphi (or the runtime under test) as the runc binary,
    /// `ctr run <flags> --runc-binary RUNTIME IMAGE ID [ARGS]`, or through
    /// amphi's shim, `ctr run <flags> --runtime io.containerd.amphi.v1 IMAGE
    /// ID [ARGS]`.
    pub fn run_command(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Command {
        let runtime = support::runtime().bin.to_str().expect("utf-8 path").to_owned();
        let fifos = self.fifo_dir();
        let mut all = vec!["run", "--fifo-dir", &fifos];
        all.extend_from_slice(flags);
        match self.via {
            Via::RuncShim => all.extend_from_slice(&["--runc-binary", &runtime]),
            Via::AmphiShim => all.extend_from_slice(&["--runtime", AMPHI_SHIM_RUNTIME]),
        }
        all.extend_from_slice(&[image, id]);
        all.extend_from_slice(args);
        self.ctr_command(&all)
    }

    /// Where ctr makes its stdio fifos: the test's own directory, not the
    /// shared `/run/containerd/fifo` (a ctr killed by a failed test leaves
    /// them).
    fn fifo_dir(&self) -> String {
        self.dir.path().join("fifo").to_str().expect("utf-8 path").to_owned()
    }

    /// `ctr task exec --exec-id EXEC_ID ID ARGS`.
    pub fn exec(&self, id: &str, exec_id: &str, args: &[&str]) -> Output {
        self.exec_command(&[], id, exec_id, args).output().expect("run ctr")
    }

    /// `ctr task exec <flags> --exec-id EXEC_ID ID ARGS`, to be run.
    pub fn exec_command(&self, flags: &[&str], id: &str, exec_id: &str, args: &[&str]) -> Command {
        let fifos = self.fifo_dir();
        let mut all = vec!["task", "exec", "--fifo-dir", &fifos];
        all.extend_from_slice(flags);
        all.extend_from_slice(&["--exec-id", exec_id, id]);
        all.extend_from_slice(args);
        self.ctr_command(&all)
    }

    /// The shim's socket for the container `id`: containerd 1.6 names it
    /// `/run/containerd/s/<sha256 of "<address>/<namespace>/<id>">`.
    fn shim_socket(&self, id: &str) -> PathBuf {
        use sha2::Digest as _;
        let key = format!("{}/{}/{id}", self.address.display(), self.namespace);
        let hex: String = sha2::Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        Path::new("/run/containerd/s").join(hex)
    }

    pub fn run(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Output {
        self.run_command(flags, image, id, args).output().expect("run ctr")
    }

    /// A detached task running `args` in `image`; returns its host pid.
    pub fn run_detached(&self, image: &str, id: &str, args: &[&str]) -> i64 {
        self.run_detached_with(&[], image, id, args)
    }

    pub fn run_detached_with(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> i64 {
        let mut all = vec!["-d"];
        all.extend_from_slice(flags);
        let out = self.run(&all, image, id, args);
        assert!(out.status.success(), "ctr run -d {id}: {}", describe(&out));
        let (pid, status) = self.task(id).unwrap_or_else(|| panic!("no task {id} after ctr run -d"));
        assert_eq!(status, "RUNNING", "task {id}");
        pid
    }

    /// The task `id`'s pid and status, from `ctr task ls`.
    pub fn task(&self, id: &str) -> Option<(i64, String)> {
        let list = self.ctr_ok(&["task", "ls"]);
        list.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.first() == Some(&id)).then(|| (fields[1].parse().expect("pid"), fields[2].to_owned()))
        })
    }

    /// Waits (up to 10 s) until the task `id` has `status`.
    pub fn wait_task(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.task(id).map(|(_, s)| s).unwrap_or_default();
            if now == status {
                return;
            }
            assert!(Instant::now() < deadline, "task {id} stayed {now:?}, wanted {status:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deletes the stopped task `id` and its container (and the container's
    /// snapshot); returns `ctr task delete`'s output, whose stderr carries the
    /// exit status when it is not 0.
    pub fn delete(&self, id: &str) -> Output {
        let out = self.ctr(&["task", "delete", id]);
        assert!(out.status.success(), "ctr task delete {id}: {}", describe(&out));
        self.ctr_ok(&["containers", "rm", id]);
        out
    }

    /// The `config.json` containerd wrote for the container `id` (its bundle
    /// lives in containerd's state dir while the task exists).
    pub fn bundle_config(&self, id: &str) -> serde_json::Value {
        let path = self
            .dir
            .path()
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(id)
            .join("config.json");
        let text = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_slice(&text).expect("config.json is JSON")
    }

    /// The runtime's state dir for this namespace.
    pub fn runtime_root(&self) -> PathBuf {
        self.via.runtime_root(&self.namespace)
    }

    fn listing(&self, args: &[&str]) -> Vec<String> {
        let out = self.ctr_ok(args);
        out.lines().skip(1).filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
    }

    /// Removes every task, container and image of the namespace, then asserts
    /// that nothing of the test is left anywhere.
    pub fn finish(mut self) {
        self.clean_up();
        assert_eq!(self.listing(&["task", "ls"]), Vec::<String>::new(), "tasks left");
        assert_eq!(self.listing(&["containers", "ls"]), Vec::<String>::new(), "containers left");
        assert_eq!(self.listing(&["images", "ls"]), Vec::<String>::new(), "images left");
        assert_eq!(self.listing(&["snapshots", "ls"]), Vec::<String>::new(), "snapshots left");
        let root = self.runtime_root();
        let left: Vec<String> = fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "runtime state left in {}: {left:?}", root.display());
        let _ = fs::remove_dir(&root);
        // A shim exits once containerd has deleted its last task.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.shims().is_empty() {
            assert!(Instant::now() < deadline, "shims left running: {:?}\n{}", self.shims(), self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        for id in &self.ids() {
            let socket = self.shim_socket(id);
            assert!(!socket.exists(), "shim socket {} left behind", socket.display());
            let rel = format!("/{}/{id}", self.namespace);
            for hierarchy in support::cgroup_hierarchies() {
                let dir = hierarchy.join(rel.trim_start_matches('/'));
                assert!(!dir.exists(), "cgroup {} left behind", dir.display());
            }
            let procs = support::processes_in_cgroup(&rel);
            assert!(procs.is_empty(), "processes left in cgroup {rel}: {procs:?}");
        }
        // The runtime removes a container's cgroup; `/<namespace>`, which ctr's
        // cgroup paths put it in, is left to its maker (runc leaves it too),
        // and must now be empty.
        for hierarchy in support::cgroup_hierarchies() {
            let parent = hierarchy.join(&self.namespace);
            if parent.exists() {
                fs::remove_dir(&parent).unwrap_or_else(|e| panic!("remove {}: {e}", parent.display()));
            }
        }
        let mounts = support::mounts_mentioning(self.dir.path());
        assert!(mounts.is_empty(), "mounts left under {}: {mounts:?}", self.dir.path().display());
        self.finished = true;
    }

    /// Kills and deletes every task, removes every container and image.
    fn clean_up(&self) {
        for line in self.listing(&["task", "ls"]) {
            let id = line.split_whitespace().next().unwrap_or_default().to_owned();
            let _ = self.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.task(&id).is_some_and(|(_, s)| s != "STOPPED") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.ctr(&["task", "delete", "--force", &id]);
        }
        for line in self.listing(&["containers", "ls"]) {
            let id = line.split_whitespace().next().unwrap_or_default().to_owned();
            let _ = self.ctr(&["containers", "rm", &id]);
        }
        let images: Vec<String> = self
            .listing(&["images", "ls"])
            .iter()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        if !images.is_empty() {
            let mut args = vec!["images", "rm", "--sync"];
            args.extend(images.iter().map(String::as_str));
            let _ = self.ctr(&args);
        }
    }

    /// The shim processes started for this containerd (with amphi's shim's
    /// helper child), found by their binary (`/proc/PID/exe`, or the command's
    /// first word: `comm` is cut to `containerd-shim`) and the socket address
    /// on their command line.
    pub fn shims(&self) -> Vec<i32> {
        let address = self.address.to_string_lossy().into_owned();
        let binary = self.via.shim_binary();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let exe = fs::read_link(entry.path().join("exe")).unwrap_or_default();
            let is_shim = exe.file_name().is_some_and(|n| n == binary)
                || args.first().is_some_and(|a| a.ends_with(binary.as_bytes()));
            if is_shim && args.contains(&address.as_bytes()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// The shims serving this containerd's tasks: [`Containerd::shims`] but
    /// the helper children of amphi's shims (whose parent is a shim too).
    pub fn shim_servers(&self) -> Vec<i32> {
        let all = self.shims();
        all.iter().copied().filter(|pid| !all.contains(&parent_of(i64::from(*pid)).unwrap_or(0))).collect()
    }
}

/// The parent of process `pid`, from `/proc/PID/status`.
pub fn parent_of(pid: i64) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|p| p.trim().parse().ok())
}

impl Drop for Containerd {
    /// Stops containerd (by its pid) and, after a failed test, whatever it left.
    fn drop(&mut self) {
        if !self.finished {
            self.clean_up();
        }
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // A shim outlives containerd only when a test failed half-way.
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        if !self.finished {
            self.clean_up_after_failure();
        }
    }
}

impl Containerd {
    /// What a test that failed half-way may have left, with containerd and its
    /// shims gone: the runtime's containers (deleted by the runtime), their
    /// processes and cgroups, the rootfs mounts under the test's directory.
    fn clean_up_after_failure(&self) {
        let root = self.runtime_root();
        for id in &self.ids() {
            if root.join(id).exists() {
                let _ = Command::new(&support::runtime().bin)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            support::reap_cgroup(&format!("/{}/{id}", self.namespace));
            let _ = fs::remove_file(self.shim_socket(id));
        }
        let _ = fs::remove_dir(&root);
        for hierarchy in support::cgroup_hierarchies() {
            let _ = fs::remove_dir(hierarchy.join(&self.namespace));
        }
        let mine = self.dir.path().to_string_lossy().into_owned();
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in text.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&mine)) {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Makes each scenario `fn NAME(via: Via)` of the calling module two tests:
/// `runc_shim::NAME` and `amphi_shim::NAME`.
macro_rules! through_both_shims {
    ($($scenario:ident),* $(,)?) => {
        mod runc_shim {
            $( #[test] fn $scenario() { super::$scenario(crate::containerd::Via::RuncShim) } )*
        }
        mod amphi_shim {
            $( #[test] fn $scenario() { super::$scenario(crate::containerd::Via::AmphiShim) } )*
        }
    };
}
pub(crate) use through_both_shims;
