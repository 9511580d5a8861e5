//! The runtimes under test and the baselines, how their commands are built, and
//! the mount-namespace view a peer runs in when it cannot use the host's cgroup
//! layout.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use nix::sched::{CloneFlags, setns};

use crate::cli::{Plan, find_program};
use crate::process::ErrLog;

/// How a runtime is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// runc's command line: `--root DIR create|start|state|kill|delete|run|list`.
    Oci,
    /// util-linux `unshare -fmnuip --root ROOTFS PROGRAM`: new namespaces, chroot,
    /// exec; no runtime, no cgroup. Only `run`.
    Floor,
    /// `wasmtime run`: the wasm program with no container. Only `run`.
    Wasmtime,
}

/// One runtime or baseline.
#[derive(Debug)]
pub struct Runtime {
    /// `amphi`, `runc`, `crun`, `youki`, `floor`, `wasmtime` or a --runtime name.
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
    /// The first line of `--version`.
    pub version: String,
    /// The state root given as `--root` (OCI runtimes).
    pub root: PathBuf,
    /// A mount namespace the harness enters before spawning this runtime's
    /// commands, and why.
    pub view: Option<(OwnedFd, String)>,
    /// Why the runtime is left out of the whole run, if it is.
    pub skipped: Option<String>,
}

impl Runtime {
    pub fn is_amphi(&self) -> bool {
        self.name == "amphi"
    }

    /// amphi, or another build of it given as `--runtime amphi-NAME=PATH` for
    /// an A/B run: it takes amphi's flags (the wasm cache), so that its cold
    /// and warm runs are what they say.
    pub fn is_amphi_build(&self) -> bool {
        self.is_amphi() || self.name.starts_with("amphi-")
    }

    pub fn is_oci(&self) -> bool {
        self.kind == Kind::Oci
    }

    pub fn active(&self) -> bool {
        self.skipped.is_none()
    }

    /// `PATH --root ROOT GLOBALS… ARGS…` for an OCI runtime.
    pub fn oci<A: AsRef<std::ffi::OsStr>>(&self, globals: &[OsString], args: impl IntoIterator<Item = A>) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root").arg(&self.root).args(globals).args(args);
        cmd.stdout(Stdio::null());
        cmd
    }
}

/// Everything a measurement needs: the runtimes, where things go, the host's
/// mount namespace (to come back to from a view), the error log, id numbering.
#[derive(Debug)]
pub struct Bench {
    pub runtimes: Vec<Runtime>,
    pub work: PathBuf,
    pub keep_work: bool,
    pub err: ErrLog,
    host_mnt: OwnedFd,
    cwd: PathBuf,
    next_id: u64,
    /// Every id prefix starts with this: `ab<pid>-`.
    pub id_prefix: String,
    /// Notes for the summary (how peers were run, what was skipped and why).
    pub notes: Vec<String>,
}

impl Bench {
    /// Finds the runtimes, reads their versions, makes the work directory.
    pub fn prepare(plan: &Plan) -> anyhow::Result<Self> {
        if !nix::unistd::Uid::effective().is_root() {
            bail!("the harness makes real containers and needs root");
        }
        std::fs::create_dir_all(&plan.work).with_context(|| format!("create {}", plan.work.display()))?;
        let err = ErrLog::create(&plan.work.join("stderr.log"))?;
        let mut notes = Vec::new();
        if plan.state_on_tmpfs {
            state_tmpfs(&plan.work.join("state"))?;
            notes.push(
                "state roots (`--root`) were on a tmpfs, as /run is on most hosts, in a mount namespace private to \
                 the harness and the runtimes it ran (--state-on-disk turns this off)"
                    .to_owned(),
            );
        }
        // The harness's own mount namespace (private, with the state tmpfs):
        // where it comes back to from a peer's view.
        let host_mnt = File::open("/proc/self/ns/mnt").context("open /proc/self/ns/mnt")?.into();
        let mut bench = Self {
            runtimes: Vec::new(),
            work: plan.work.clone(),
            keep_work: plan.keep_work,
            err,
            host_mnt,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            next_id: 0,
            id_prefix: format!("ab{}-", std::process::id()),
            notes,
        };
        bench.add("amphi", &plan.amphi, Kind::Oci)?;
        let mut peers = plan.peers.clone();
        if plan.auto_peers {
            for name in ["crun", "runc", "youki"] {
                if !peers.iter().any(|(n, _)| n == name) {
                    match find_program(name) {
                        Some(path) => peers.push((name.to_owned(), path)),
                        None => bench.notes.push(format!("{name}: not installed (not on PATH or in ~/.cargo/bin)")),
                    }
                }
            }
        }
        for (name, path) in &peers {
            bench.add(name, path, Kind::Oci)?;
        }
        match find_program("unshare") {
            Some(unshare) => bench.add("floor", &unshare, Kind::Floor)?,
            None => bench.notes.push("floor: util-linux `unshare` is not installed".to_owned()),
        }
        match &plan.wasmtime {
            Some(wasmtime) => bench.add("wasmtime", wasmtime, Kind::Wasmtime)?,
            None => bench
                .notes
                .push("wasmtime: no wasmtime CLI given or found; the wasmtime baselines are skipped".to_owned()),
        }
        Ok(bench)
    }

    fn add(&mut self, name: &str, path: &Path, kind: Kind) -> anyhow::Result<()> {
        let version = version_of(path);
        let root = self.work.join("state").join(name);
        if kind == Kind::Oci {
            std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
        }
        self.runtimes.push(Runtime {
            name: name.to_owned(),
            path: path.to_owned(),
            kind,
            version,
            root,
            view: None,
            skipped: None,
        });
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Runtime> {
        self.runtimes.iter().find(|r| r.name == name && r.active())
    }

    /// A new container id: `ab<pid>-<runtime>-<n>`.
    pub fn new_id(&mut self, runtime: &str) -> String {
        self.next_id += 1;
        format!("{}{runtime}-{}", self.id_prefix, self.next_id)
    }

    /// Runs `f` with the mount namespace of runtime `index` (its view, if it has
    /// one), and comes back to the host's. `f` may start threads, provided they
    /// are joined before it returns: `setns` of a mount namespace needs a
    /// single-threaded caller.
    pub fn in_view<T>(&self, index: usize, f: impl FnOnce(&Runtime) -> T) -> anyhow::Result<T> {
        let runtime = &self.runtimes[index];
        let Some((view, _)) = &runtime.view else { return Ok(f(runtime)) };
        enter(view).with_context(|| format!("enter the mount namespace of {}", runtime.name))?;
        let result = f(runtime);
        enter(&self.host_mnt).context("return to the host's mount namespace")?;
        std::env::set_current_dir(&self.cwd).with_context(|| format!("chdir {}", self.cwd.display()))?;
        Ok(result)
    }

    /// Gives runtime `index` a view of the cgroups it can use, for a peer that
    /// refuses the host's hybrid layout, and says which.
    pub fn give_view(&mut self, index: usize, view: View, reason: &str) -> anyhow::Result<()> {
        let unified = cgroup2_mount()?;
        let fd = make_view(view, &unified)?;
        let how = match view {
            View::HideCgroup2 => format!(
                "the cgroup2 mount {} unmounted, so that it sees the host's cgroup v1 hierarchies alone (the \
                 controllers runc and amphi use here)",
                unified.display()
            ),
            View::Cgroup2Only => {
                format!("/sys/fs/cgroup replaced by a bind mount of the cgroup2 mount {}", unified.display())
            }
        };
        let note = format!(
            "{}: refuses this host's cgroup layout ({reason}); it ran in a private mount namespace with {how}, \
             entered by the harness with setns before each of its commands (no extra process per command)",
            self.runtimes[index].name,
        );
        self.runtimes[index].view = Some((fd, note));
        Ok(())
    }

    /// Drops the view of runtime `index` (it did not help).
    pub fn drop_view(&mut self, index: usize) {
        self.runtimes[index].view = None;
    }

    /// Removes the work directory, unless the user named it.
    pub fn cleanup(&self) {
        // The state tmpfs, if any (its mount namespace is the harness's own).
        let _ = nix::mount::umount2(&self.work.join("state"), nix::mount::MntFlags::MNT_DETACH);
        if !self.keep_work {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

/// Moves the harness into a mount namespace of its own (private propagation,
/// so nothing reaches the host) and mounts a tmpfs at `dir`. Every process the
/// harness starts inherits the namespace; the mount ends with the harness.
fn state_tmpfs(dir: &Path) -> anyhow::Result<()> {
    use nix::mount::{MsFlags, mount};
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).context("unshare the mount namespace")?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .context("make / private in the harness's mount namespace")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0700"))
        .with_context(|| format!("mount a tmpfs at {}", dir.display()))
}

/// The first line of `PATH --version` (or `-v`).
fn version_of(path: &Path) -> String {
    let output = Command::new(path).arg("--version").stdin(Stdio::null()).stderr(Stdio::null()).output();
    match output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).lines().next().map(str::trim).unwrap_or("").to_owned()
        }
        _ => "(unknown: --version failed)".to_owned(),
    }
}

/// Where the host's cgroup2 hierarchy is mounted (from /proc/self/mountinfo).
pub fn cgroup2_mount() -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    text.lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            (right.split_whitespace().next() == Some("cgroup2")).then(|| PathBuf::from(mount_point))
        })
        .context("the host has no cgroup2 mount")
}

/// A view of the host's cgroups for a peer that refuses the hybrid layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The cgroup2 mount hidden: a cgroup v1 host.
    HideCgroup2,
    /// /sys/fs/cgroup is the cgroup2 mount: a cgroup v2 host.
    Cgroup2Only,
}

/// A new private mount namespace arranged as `view`. A holder process makes it
/// and is ended once the harness has the namespace open.
fn make_view(view: View, unified: &Path) -> anyhow::Result<OwnedFd> {
    let unified = unified.display().to_string().replace('\'', "");
    let script = match view {
        View::HideCgroup2 => format!("umount -l '{unified}' && echo ready && exec sleep 3600"),
        View::Cgroup2Only => format!("mount --bind '{unified}' /sys/fs/cgroup && echo ready && exec sleep 3600"),
    };
    let mut holder = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("run unshare --mount")?;
    let mut line = String::new();
    if let Some(out) = holder.stdout.take() {
        BufReader::new(out).read_line(&mut line).context("read from the namespace holder")?;
    }
    let opened = if line.trim() == "ready" {
        File::open(format!("/proc/{}/ns/mnt", holder.id())).map(OwnedFd::from).context("open the holder's namespace")
    } else {
        Err(anyhow::anyhow!("the namespace holder failed to arrange the cgroup mounts ({view:?})"))
    };
    let _ = holder.kill();
    let _ = holder.wait();
    opened
}

/// `setns` into the mount namespace `ns`. It fails with EINVAL while another
/// thread shares our filesystem context, which a thread `f` joined may still
/// do for a moment after the join (it leaves the kernel after waking its
/// joiner): retried briefly then.
fn enter(ns: &OwnedFd) -> nix::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match setns(ns, CloneFlags::CLONE_NEWNS) {
            Err(nix::errno::Errno::EINVAL) if std::time::Instant::now() < deadline => std::thread::yield_now(),
            other => return other,
        }
    }
}
