//! # The container's cgroup
//!
//! A container owns one cgroup path (`/amphi/<id>` unless the spec names one), made
//! as a directory in **every** mounted hierarchy: each cgroup v1 hierarchy (named
//! ones like `name=systemd` included) and the cgroup2 tree. On a hybrid host, where
//! cgroup2 is mounted at `/sys/fs/cgroup/unified` without controllers, the
//! container gets a cgroup there too, as runc gives it one: `/proc/<pid>/cgroup`'s
//! `0::` line then names the container, and tools that only look at cgroup2 (or a
//! later `exec`) find it.
//!
//! ## The life of a cgroup
//!
//! 1. [`Cgroup::resolve_path`] turns `linux.cgroupsPath` (or the default) into a
//!    clean absolute path, never the root cgroup.
//! 2. [`Cgroup::create`] makes the directories, lets a new v1 `cpuset` cgroup
//!    inherit its parent's cpus and mems, enables the v2 controllers on the way
//!    down, and applies `linux.resources`. A directory that already exists is
//!    used only while it and every cgroup below it hold no process, checked in
//!    every hierarchy. Each directory is marked as the container's ([`ownership`]),
//!    saying whether amphi made it; [`Cgroup::created`] lists the hierarchies in
//!    which it did, for the record. Any failure removes exactly the directories
//!    this call made.
//! 3. The lead process places the container's init with [`Cgroup::add_process`],
//!    before the init runs anything of the container's.
//! 4. Later commands [`Cgroup::open`] the same path: `kill --all`
//!    ([`Cgroup::signal_all`]), `pause`/`resume` ([`Cgroup::freeze`],
//!    [`Cgroup::thaw`]), `update`, `ps`, `events`.
//! 5. `delete` calls [`Cgroup::remove`]: kill what is left, then `rmdir` every
//!    directory amphi made (children first), waiting for the killed to leave. A
//!    later command learns which ones those are from [`Cgroup::open_owned`]: the
//!    record's list, confirmed by each directory's mark.
//!
//! ## What comes from `libcgroups` and what does not
//!
//! `libcgroups` knows how each OCI resource maps onto v1 and v2 files (memory and
//! swap ordering, cpu, cpuset, pids, blkio/io, hugetlb, v1 devices, network,
//! unified) and how to read statistics: [`Cgroup::create`], [`Cgroup::update`] and
//! [`Cgroup::stats`] go through its managers. Everything about *where* the cgroup
//! is and what is in it (directories, processes, freezer, kill, removal) is done
//! here with a few file writes, because the v1 manager finds each controller's
//! mount with its own reads of `/proc/self/mountinfo` and `/proc/self/cgroup`
//! (about 1 ms per manager, so it is built only to apply resources and read
//! statistics), ignores named hierarchies and the hybrid host's cgroup2 tree, and
//! makes directories only when a process is added. Killing waits on pidfds rather
//! than sleeping. Device rules on a v2 host are an eBPF program ([`devices`]):
//! `libcgroups`' own needs libbpf and raises `RLIMIT_MEMLOCK`, which root without
//! `CAP_SYS_RESOURCE` cannot do.
//!
//! ## What this module must never do
//!
//! - Touch the root cgroup: a path that cleans to `/` is refused, since removing
//!   it would kill every process of the host.
//! - Take over a cgroup that holds a process, in any hierarchy (systemd on a v1
//!   host lays out a service in some hierarchies and not in others), or remove a
//!   directory it did not make, or kill what is in one ([`removal`]).
//! - Thaw a paused container on any signal but `SIGKILL`.
//! - Start a thread: waits are short sleeps in the calling thread.

mod devices;
mod freezer;
mod hierarchy;
mod oom;
pub mod ownership;
mod path;
mod removal;
mod resources;
#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use freezer::Freezer;
use hierarchy::Hierarchies;
pub use ownership::{Anchor, Mark};
use removal::remove_made;

pub use oom::OomWatch;

const CGROUP_PROCS: &str = "cgroup.procs";

/// Errors of the cgroup layer; each message is one line naming the cgroup or the
/// file that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup layout of {path}: {source}")]
    Layout { path: PathBuf, source: libcgroups::common::GetCgroupSetupError },
    #[error("read {path}: {source}")]
    Mountinfo { path: PathBuf, source: io::Error },
    #[error("{path} lists no cgroup v1 hierarchy")]
    NoV1Hierarchy { path: PathBuf },
    #[error("linux.cgroupsPath {path}: {reason}")]
    BadPath { path: PathBuf, reason: &'static str },
    #[error("--systemd-cgroup: systemd is not running (/run/systemd/system is missing)")]
    SystemdNotRunning,
    #[error("{op} {file}: {source}")]
    Io { op: &'static str, file: PathBuf, source: io::Error },
    #[error("linux.cgroupsPath {cgroup}: cgroup already holds processes ({hierarchy} hierarchy)")]
    NotEmpty { cgroup: PathBuf, hierarchy: String },
    #[error("cgroup {cgroup}: linux.resources: {}", resources::describe(.source))]
    Resources { cgroup: PathBuf, source: libcgroups::common::AnyManagerError },
    #[error("cgroup {cgroup}: linux.resources.unified needs cgroup v2, this host is {layout}")]
    UnifiedNeedsV2 { cgroup: PathBuf, layout: Layout },
    #[error("cgroup {cgroup}: linux.resources.devices: {source}")]
    Devices { cgroup: PathBuf, source: devices::DeviceFilterError },
    #[error("cgroup {cgroup}: stats: {}", resources::describe(.source))]
    Stats { cgroup: PathBuf, source: libcgroups::common::AnyManagerError },
    #[error("cgroup {cgroup}: no freezer hierarchy is mounted")]
    NoFreezer { cgroup: PathBuf },
    #[error("cgroup {cgroup}: no memory controller is mounted")]
    NoMemoryController { cgroup: PathBuf },
    #[error("cgroup {cgroup}: no devices controller is mounted")]
    NoDevicesController { cgroup: PathBuf },
    #[error("{file}: still {state} after {waited_ms} ms")]
    FreezeTimeout { file: PathBuf, state: String, waited_ms: u128 },
    #[error("rmdir {dir}: processes still inside after {waited_ms} ms")]
    Busy { dir: PathBuf, waited_ms: u128 },
    #[error("kill the processes of {dir}: still running after {waited_ms} ms")]
    KillTimeout { dir: PathBuf, waited_ms: u128 },
    #[error("{error}; removing what was made also failed: {cleanup}")]
    Cleanup { error: Box<CgroupError>, cleanup: Box<CgroupError> },
}

impl CgroupError {
    fn io(op: &'static str, file: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { op, file: file.into(), source }
    }
}

/// How the host mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1 only: one hierarchy per controller group under `/sys/fs/cgroup`.
    V1,
    /// cgroup v1 controllers plus a controller-less cgroup2 at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// cgroup v2 only, mounted at `/sys/fs/cgroup`.
    V2,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::V1 => "cgroup v1",
            Layout::Hybrid => "hybrid (cgroup v1 with an empty cgroup2)",
            Layout::V2 => "cgroup v2",
        })
    }
}

/// The host's cgroup layout, from `statfs` of `/sys/fs/cgroup` (and of
/// `/sys/fs/cgroup/unified`): two syscalls.
pub fn layout() -> Result<Layout, CgroupError> {
    use libcgroups::common::CgroupSetup;
    match libcgroups::common::get_cgroup_setup() {
        Ok(CgroupSetup::Legacy) => Ok(Layout::V1),
        Ok(CgroupSetup::Hybrid) => Ok(Layout::Hybrid),
        Ok(CgroupSetup::Unified) => Ok(Layout::V2),
        Err(source) => Err(CgroupError::Layout { path: hierarchy::CGROUP_ROOT.into(), source }),
    }
}

/// How a container process joins its cgroup without anyone writing its pid:
/// cloned into the cgroup2 directory (`clone3` with `CLONE_INTO_CGROUP`), and
/// writing `0` (itself, one thread) into the v1 hierarchies' `tasks` files.
/// Neither takes the threadgroup lock for writing, so neither waits for the RCU
/// grace period that [`Cgroup::add_process`] can cost. The process must be
/// single-threaded, which a freshly cloned stage is.
#[derive(Debug)]
pub struct SelfPlacement {
    /// The cgroup2 directory, for `CLONE_INTO_CGROUP`.
    pub unified: Option<std::os::fd::OwnedFd>,
    v1_tasks: Vec<PathBuf>,
}

impl SelfPlacement {
    /// Moves `pid` into the cgroup2 directory the slow way, for a child that
    /// could not be cloned into it ([`crate::sys::clone::clone_fork_into`]).
    pub fn place_in_unified(&self, pid: Pid) -> Result<(), CgroupError> {
        match &self.unified {
            Some(dir) => {
                let file =
                    PathBuf::from(format!("/proc/self/fd/{}/{CGROUP_PROCS}", std::os::fd::AsRawFd::as_raw_fd(dir)));
                write_file(&file, &pid.to_string())
            }
            None => Ok(()),
        }
    }

    /// Moves the calling (single-threaded) process into the v1 hierarchies.
    /// Errors name the file.
    pub fn join_v1(&self) -> Result<(), CgroupError> {
        for file in &self.v1_tasks {
            write_file(file, "0")?;
        }
        Ok(())
    }
}

/// A container's cgroup: one path, a directory in every hierarchy.
#[derive(Debug)]
pub struct Cgroup {
    /// Absolute and clean, never `/`.
    path: PathBuf,
    layout: Layout,
    hierarchies: Hierarchies,
    /// The hierarchies (by name, [`Cgroup::created`]) whose directory amphi made
    /// for the container: the only ones [`Cgroup::remove`] removes.
    created: Vec<String>,
    /// The container's mark ([`ownership`]): its state directory, when known.
    owner: Option<String>,
}

impl Cgroup {
    /// `linux.cgroupsPath` if given (absolute, or relative: read from the hierarchy
    /// root, as runc's cgroupfs driver does), else `/amphi/<id>`. `..` cannot climb
    /// above the root, and a path that names the root cgroup is refused.
    ///
    /// With `systemd` (`--systemd-cgroup`) systemd must be running; the path is
    /// then `slice:prefix:name` (default `system.slice:amphi:<id>`) and is
    /// translated to the cgroupfs path systemd gives that unit
    /// (`/system.slice/amphi-<id>.scope`). No scope unit is registered with
    /// systemd: amphi has no D-Bus client.
    pub fn resolve_path(spec_path: Option<&Path>, id: &str, systemd: bool) -> Result<PathBuf, CgroupError> {
        path::resolve(spec_path, id, systemd)
    }

    /// Every path [`Cgroup::resolve_path`] could have given for `spec_path` and
    /// `id`, with or without `--systemd-cgroup`.
    pub fn candidate_paths(spec_path: Option<&Path>, id: &str) -> Vec<PathBuf> {
        path::candidates(spec_path, id)
    }

    /// Makes the cgroup in every hierarchy, marked as `owner`'s (the container's
    /// state directory), and applies `resources`. On any failure the directories
    /// this call made are removed before the error is returned. An existing
    /// directory is used only while it holds no process, nor does any cgroup
    /// below it, in every hierarchy.
    pub fn create(path: &Path, resources: Option<&LinuxResources>, owner: &str) -> Result<Self, CgroupError> {
        let mut cgroup = Self::open(path)?;
        cgroup.owner = Some(owner.to_owned());
        let mut made = Vec::new();
        let result = cgroup.make_dirs(&mut made, owner).and_then(|()| match resources {
            Some(resources) => resources::apply(&cgroup, resources, resources::Purpose::Create),
            None => Ok(()),
        });
        match result {
            Ok(()) => Ok(cgroup),
            Err(error) => match remove_made(&made) {
                Ok(()) => Err(error),
                Err(cleanup) => Err(CgroupError::Cleanup { error: Box::new(error), cleanup: Box::new(cleanup) }),
            },
        }
    }

    /// The cgroup at `path` (as [`Cgroup::resolve_path`] made it), without
    /// checking that it exists: [`Cgroup::remove`] of a cgroup that is already
    /// gone succeeds, other calls fail naming the missing file.
    pub fn open(path: &Path) -> Result<Self, CgroupError> {
        let clean = path::clean(path);
        if clean == Path::new("/") {
            return Err(CgroupError::BadPath { path: path.to_owned(), reason: "names the root cgroup" });
        }
        let layout = layout()?;
        let hierarchies = Hierarchies::discover(layout)?;
        Ok(Self { path: clean, layout, hierarchies, created: Vec::new(), owner: None })
    }

    /// The cgroup path, as seen from the root of each hierarchy.
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// How a new container process joins this cgroup by itself
    /// ([`SelfPlacement`]), the cheap way for a process amphi clones.
    pub fn self_placement(&self) -> Result<SelfPlacement, CgroupError> {
        let unified = match &self.hierarchies.unified {
            Some(mount) => {
                let dir = mount.join(self.relative());
                let file = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                    .open(&dir)
                    .map_err(CgroupError::io("open", &dir))?;
                Some(std::os::fd::OwnedFd::from(file))
            }
            None => None,
        };
        let relative = self.relative();
        let v1_tasks = self.hierarchies.v1.iter().map(|h| h.mount.join(relative).join("tasks")).collect();
        Ok(SelfPlacement { unified, v1_tasks })
    }

    /// Moves `pid` into the cgroup in every hierarchy.
    ///
    /// Moving another process (or a whole thread group) takes the kernel's
    /// threadgroup lock for writing, which waits for an RCU grace period after
    /// a quiet spell: 5 to 15 ms on a small VM. A process amphi makes joins by
    /// itself instead ([`Cgroup::self_placement`]).
    #[cfg(test)]
    pub fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        let text = pid.to_string();
        for dir in self.dirs() {
            write_file(&dir.join(CGROUP_PROCS), &text)?;
        }
        Ok(())
    }

    /// Every process in the cgroup and in any cgroup below it, sorted.
    pub fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        let mut pids = Vec::new();
        collect_pids(&self.procs_dir(), &mut pids)?;
        pids.sort_unstable_by_key(|p| p.as_raw());
        pids.dedup();
        Ok(pids)
    }

    /// Sends `sig` to every process in the cgroup. `SIGKILL` cannot be escaped by
    /// forking (`cgroup.kill` on v2, rounds of kills elsewhere), thaws a frozen
    /// cgroup once the signals are pending (a v1-frozen process acts on SIGKILL
    /// only when thawed), and returns once the processes have exited. Other
    /// signals leave a paused container paused.
    pub fn signal_all(&self, sig: Signal) -> Result<(), CgroupError> {
        if sig == Signal::SIGKILL {
            return self.kill_all();
        }
        for pid in self.pids()? {
            send(pid, sig)?;
        }
        Ok(())
    }

    /// Freezes every process in the cgroup, waiting until they are frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.freezer()?.freeze()
    }

    /// Lets the processes of a frozen cgroup run again.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.freezer()?.thaw()
    }

    /// Whether the cgroup is frozen (or freezing). A cgroup that does not exist
    /// is not frozen.
    #[cfg(test)]
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        self.freezer()?.is_frozen()
    }

    /// Applies new `linux.resources` (`amphi update`). What `resources` leaves
    /// out is left as it is; on v2 the device filter is replaced only when
    /// `resources.devices` is given.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        resources::apply(self, resources, resources::Purpose::Update)
    }

    /// A descriptor that becomes readable when the kernel's OOM killer acts in
    /// the cgroup (`amphi events`). Fails when no memory controller is mounted.
    pub fn watch_oom(&self) -> Result<OomWatch, CgroupError> {
        match (self.layout, &self.hierarchies.unified) {
            (Layout::V2, Some(unified)) => OomWatch::v2(&unified.join(self.relative())),
            _ => match self.hierarchies.v1_with("memory") {
                Some(h) => OomWatch::v1(&h.mount.join(self.relative())),
                None => Err(CgroupError::NoMemoryController { cgroup: self.path.clone() }),
            },
        }
    }

    /// Resource usage, from `libcgroups`' readers.
    pub fn stats(&self) -> Result<libcgroups::stats::Stats, CgroupError> {
        resources::stats(self)
    }

    /// The cgroup's directory in every hierarchy: v1 ones first, cgroup2 last.
    pub(crate) fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.named_dirs().map(|(_, dir)| dir)
    }

    /// [`Cgroup::dirs`], each with its hierarchy's name ([`Cgroup::created`]).
    fn named_dirs(&self) -> impl Iterator<Item = (String, PathBuf)> + '_ {
        let relative = self.relative();
        let v1 = self.hierarchies.v1.iter().map(|h| (h.name(), &h.mount));
        v1.chain(self.hierarchies.unified.iter().map(|m| (hierarchy::UNIFIED.to_owned(), m)))
            .map(move |(name, mount)| (name, mount.join(relative)))
    }

    /// The path without its leading `/`, to join onto a mount point.
    fn relative(&self) -> &Path {
        self.path.strip_prefix("/").unwrap_or(&self.path)
    }

    /// The directory whose `cgroup.procs` lists the container's processes: the
    /// cgroup2 one on v2, else the v1 freezer's (what `pause` acts on), else the
    /// first v1 hierarchy's.
    fn procs_dir(&self) -> PathBuf {
        let mount = match (self.layout, &self.hierarchies.unified) {
            (Layout::V2, Some(unified)) => unified,
            _ => self.hierarchies.v1_with("freezer").or(self.hierarchies.v1.first()).map_or(
                // Hierarchies::discover never returns a v1 layout without one.
                Path::new(hierarchy::CGROUP_ROOT),
                |h| h.mount.as_path(),
            ),
        };
        mount.join(self.relative())
    }

    fn freezer(&self) -> Result<Freezer, CgroupError> {
        match (self.layout, &self.hierarchies.unified) {
            (Layout::V2, Some(unified)) => Ok(Freezer::V2(unified.join(self.relative()))),
            _ => match self.hierarchies.v1_with("freezer") {
                Some(h) => Ok(Freezer::V1(h.mount.join(self.relative()))),
                None => Err(CgroupError::NoFreezer { cgroup: self.path.clone() }),
            },
        }
    }

    /// Makes the cgroup's directory in every hierarchy, recording each directory
    /// it made in `made` (parents before children) and each hierarchy in which it
    /// made the cgroup's own in `self.created`, and marks them as `owner`'s. A
    /// directory that exists already must hold no process, nor any cgroup below it.
    fn make_dirs(&mut self, made: &mut Vec<PathBuf>, owner: &str) -> Result<(), CgroupError> {
        let relative = self.relative().to_owned();
        let mut leaves = Vec::new();
        for h in &self.hierarchies.v1 {
            let cpuset = h.has("cpuset");
            let mut dir = h.mount.clone();
            let mut components = relative.components().peekable();
            while let Some(component) = components.next() {
                dir.push(component);
                let new = mkdir(&dir, made)?;
                if components.peek().is_none() {
                    self.check_empty(&dir, new, &h.name())?;
                    leaves.push((h.name(), dir.clone(), new));
                }
                if cpuset {
                    resources::inherit_cpuset(&dir)?;
                }
            }
        }
        if let Some(unified) = &self.hierarchies.unified {
            let mut dir = unified.clone();
            let mut components = relative.components().peekable();
            while let Some(component) = components.next() {
                if self.layout == Layout::V2 {
                    resources::enable_controllers(&dir)?;
                }
                dir.push(component);
                let new = mkdir(&dir, made)?;
                if components.peek().is_none() {
                    self.check_empty(&dir, new, hierarchy::UNIFIED)?;
                    leaves.push((hierarchy::UNIFIED.to_owned(), dir.clone(), new));
                }
            }
        }
        for (name, dir, new) in leaves {
            ownership::set(&dir, if new { ownership::Kind::Created } else { ownership::Kind::Adopted }, owner)?;
            if new {
                self.created.push(name);
            }
        }
        Ok(())
    }
}

/// Makes `dir`, recording it in `made`; returns whether it was made (false when
/// it existed).
fn mkdir(dir: &Path, made: &mut Vec<PathBuf>) -> Result<bool, CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => {
            made.push(dir.to_owned());
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(CgroupError::Io { op: "mkdir", file: dir.to_owned(), source }),
    }
}

fn proc_dir(pid: Pid) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}"))
}
/// Appends the pids in `dir/cgroup.procs` and in every cgroup below `dir`.
fn collect_pids(dir: &Path, pids: &mut Vec<Pid>) -> Result<(), CgroupError> {
    let file = dir.join(CGROUP_PROCS);
    let text = fs::read_to_string(&file).map_err(CgroupError::io("read", &file))?;
    for line in text.lines() {
        let pid = line.trim().parse::<i32>().map_err(|e| CgroupError::Io {
            op: "read",
            file: file.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, format!("bad pid {line:?}: {e}")),
        })?;
        pids.push(Pid::from_raw(pid));
    }
    for entry in fs::read_dir(dir).map_err(CgroupError::io("list", dir))? {
        let entry = entry.map_err(CgroupError::io("list", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// Sends `sig` to `pid`; a process that has already gone is not an error.
fn send(pid: Pid, sig: Signal) -> Result<(), CgroupError> {
    match nix::sys::signal::kill(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(CgroupError::Io { op: "signal", file: proc_dir(pid), source: io::Error::from(e) }),
    }
}

/// Writes `data` to an existing cgroup file, in one `write(2)` as the kernel
/// expects, without creating or truncating it.
fn write_file(file: &Path, data: &str) -> Result<(), CgroupError> {
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .map_err(CgroupError::io("write", file))
}
