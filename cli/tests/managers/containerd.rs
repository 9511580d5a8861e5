//! A private containerd per test, and `ctr` against it.
//!
//! [`Containerd::start`] writes a config of its own (`version = 2`, root, state,
//! gRPC and ttrpc sockets and the `opt` plugin's directory all under a
//! temporary directory, the CRI plugin disabled), starts `containerd` with it,
//! waits for its socket to answer, and stops it by its pid when dropped. Nothing
//! depends on a system containerd. Every `ctr` call names the socket and the
//! test's namespace, which is unique to the test and the test process: the runc
//! shim keeps the runtime's state in `/run/containerd/runc/<namespace>`
//! whichever containerd started it, so that directory is this test's alone.
//!
//! [`Containerd::finish`] removes what the test made (tasks, containers with
//! their snapshots, images with `--sync`, so the garbage collector has removed
//! their layers' snapshots) and then asserts that nothing is left: no task,
//! container, image or snapshot in the namespace, no runtime state in the
//! shim's root, no cgroup or process of the test's containers, no mount under
//! the test's directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use amphi_test_bundles::ImageArchive;

use crate::support::{self, describe};

/// Where containerd's runc shim keeps the runtime state of a namespace (it
/// passes `--root <this>/<namespace>` to the runtime).
pub const SHIM_RUNTIME_ROOT: &str = "/run/containerd/runc";

/// A running private containerd.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub address: PathBuf,
    pub namespace: String,
    child: Option<Child>,
    /// Container ids the test made: each is deleted on drop, and checked by
    /// [`Containerd::finish`].
    ids: std::sync::Mutex<Vec<String>>,
    finished: bool,
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
    /// Starts a containerd for the test `name` with the private config.
    pub fn start(name: &str) -> Containerd {
        Self::start_with(name, |dir| private_config(dir, ""))
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
        // A short base: the sockets' paths must fit in a sockaddr_un.
        let dir = tempfile::Builder::new().prefix("ctrd-").tempdir_in(support::scratch()).expect("containerd dir");
        let config_path = dir.path().join("config.toml");
        fs::write(&config_path, config(dir.path())).expect("write containerd config");
        let log = fs::File::create(dir.path().join("containerd.log")).expect("containerd log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start containerd (apt-get install containerd): {e}"));
        let containerd = Containerd {
            address: dir.path().join("c.sock"),
            namespace: namespace.to_owned(),
            dir,
            child: Some(child),
            ids: Default::default(),
            finished: false,
        };
        containerd.wait_ready();
        containerd
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

    /// Registers a container id made by someone else (the CRI plugin) for the
    /// checks.
    pub fn register(&self, id: &str) {
        self.ids.lock().expect("ids").push(id.to_owned());
    }

    /// `ctr run` with amphi (or the runtime under test) as the runc binary:
    /// `ctr run <flags> --runc-binary RUNTIME IMAGE ID [ARGS]`.
    pub fn run_command(&self, flags: &[&str], image: &str, id: &str, args: &[&str]) -> Command {
        let runtime = support::runtime().bin.to_str().expect("utf-8 path").to_owned();
        let fifos = self.fifo_dir();
        let mut all = vec!["run", "--fifo-dir", &fifos];
        all.extend_from_slice(flags);
        all.extend_from_slice(&["--runc-binary", &runtime, image, id]);
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
        let fifos = self.fifo_dir();
        let mut all = vec!["task", "exec", "--fifo-dir", &fifos, "--exec-id", exec_id, id];
        all.extend_from_slice(args);
        self.ctr(&all)
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
        Path::new(SHIM_RUNTIME_ROOT).join(&self.namespace)
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
        for id in self.ids.lock().expect("ids").iter() {
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

    /// The processes started for this containerd (its shims), found by the
    /// socket address on their command line.
    fn shims(&self) -> Vec<i32> {
        let address = self.address.to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.first().is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
                && args.contains(&address.as_bytes())
            {
                pids.push(pid);
            }
        }
        pids
    }
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
        for id in self.ids.lock().expect("ids").iter() {
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
