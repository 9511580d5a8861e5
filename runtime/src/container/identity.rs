//! Which process is a container's init and which cgroup is its: what a verb may
//! act on, given that the record under `--root` may have been rewritten.
//!
//! Whoever can write `--root` can rewrite a container's record whole: its pid,
//! the init's start time, its cgroup path, the hierarchies amphi made. Trusted,
//! such a record would have `kill` signal any process of the host and `delete`
//! kill and remove any cgroup. What amphi can check without the record:
//!
//! - **A pidfd names one process.** The pidfd is opened first, `/proc/<pid>/stat`
//!   read second, and the pidfd asked third whether its process is still
//!   unreaped ([`PidFd::is_alive`]): if it is, the pid could not have been reused
//!   in between, so the stat read was that process's. Its start time (field 22)
//!   must be the one `create` recorded; a pid reused after the init died has
//!   another.
//! - **The kernel says where a process is** (`/proc/<pid>/cgroup`), and the
//!   container's cgroup directory carries a mark that names the container's
//!   state directory, set by `create` as an extended attribute that a writer of
//!   `--root` can neither set nor read ([`crate::cgroups::ownership`]).
//!
//! ## The rule
//!
//! 1. **The init** is the process at the record's pid only if its start time is
//!    the recorded one and, for a container with a cgroup, the kernel places it
//!    in the record's cgroup (or below it) and that cgroup carries this
//!    container's mark; where the kernel keeps no marks, the cgroup's path must
//!    instead be the one the container's config gives. Otherwise the init is gone
//!    (status `stopped`) and that pid is never signalled; a live process with the
//!    recorded start time outside the container's cgroup means the record was
//!    rewritten, and `kill` says so ([`Init::Foreign`]).
//! 2. **The cgroup** of a container whose init is verified is the cgroup that
//!    holds it ([`container_cgroup`]). Without a verified init (stopped, or the
//!    record names another process), a verb acts on the recorded cgroup only if
//!    its path is one the container's config.json gives (derived again) and its
//!    mark names this container; a signal or a removal needs more: amphi
//!    *created* the directory for this container, which the record lists and the
//!    directory's mark confirms. Otherwise the verb refuses with one line and
//!    signals nothing.
//!
//! What stays open: where the kernel keeps no extended attributes on cgroupfs,
//! the config copy in `--root` is as writable as the record, so only its
//! consistency with the record is checked; and a rootless container without a
//! cgroup of its own has only the pidfd and start time, which a writer of
//! `--root` can copy from any process, though only among the processes the
//! rootless user may signal anyway.

use std::path::PathBuf;

use nix::unistd::Pid;

use super::Error;
use crate::cgroups::{Anchor, Cgroup, Mark};
use crate::id::ContainerId;
use crate::process::barrier;
use crate::state::{ContainerDir, Record, Status};
use crate::sys::pidfd::PidFd;
use crate::sys::proc::ProcStat;

/// The container's init, verified: the pidfd names it for as long as it is held.
#[derive(Debug)]
pub(crate) struct LiveInit {
    pub pidfd: PidFd,
    pub pid: Pid,
}

/// What the record's pid turned out to be.
#[derive(Debug)]
pub(crate) enum Init {
    Alive(LiveInit),
    /// No process, or another one (a later reuse of the pid).
    Gone,
    /// A live process with the recorded start time that is not in the
    /// container's cgroup: the record was rewritten.
    Foreign {
        pid: i32,
        why: String,
    },
}

/// The container's init and the status it gives, read from the live process
/// (module docs, rule 1). `dir` is the container's state directory.
pub(crate) fn inspect(record: &Record, dir: &ContainerDir) -> (Init, Status) {
    if record.pid <= 0 {
        return (Init::Gone, Status::Creating);
    }
    let init = find_init(record, dir);
    let status = match init {
        Init::Alive(_) if barrier::is_up(&dir.barrier()) => Status::Created,
        Init::Alive(_) if record.paused => Status::Paused,
        Init::Alive(_) => Status::Running,
        Init::Gone | Init::Foreign { .. } => Status::Stopped,
    };
    (init, status)
}

fn find_init(record: &Record, dir: &ContainerDir) -> Init {
    let pid = Pid::from_raw(record.pid);
    let Ok(pidfd) = PidFd::open(pid) else { return Init::Gone };
    // Opened first, read second, still unreaped third: the stat was this
    // process's, not a later holder of the pid.
    let same = ProcStat::read(pid).is_ok_and(|stat| stat.start_time == record.start_time && !stat.is_exited());
    if !same || !pidfd.is_alive().unwrap_or(false) {
        return Init::Gone;
    }
    let Some(recorded) = record.cgroup() else { return Init::Alive(LiveInit { pidfd, pid }) };
    let cgroup = match Anchor::of(recorded.path) {
        Ok(anchor) => anchor,
        Err(e) => return Init::Foreign { pid: record.pid, why: e.to_string() },
    };
    let shown = cgroup.path().display();
    match cgroup.holds(pid) {
        Ok(true) => {}
        Ok(false) => return Init::Foreign { pid: record.pid, why: format!("it is not in cgroup {shown}") },
        // It has just exited: /proc/<pid>/cgroup is gone with it.
        Err(_) => return Init::Gone,
    }
    match cgroup.mark_of(&dir.mark()) {
        Mark::Ours(_) => Init::Alive(LiveInit { pidfd, pid }),
        Mark::Unsupported if config_paths(record, dir).iter().any(|p| p == cgroup.path()) => {
            Init::Alive(LiveInit { pidfd, pid })
        }
        Mark::Unsupported => {
            Init::Foreign { pid: record.pid, why: format!("its cgroup {shown} is not the one config.json gives") }
        }
        Mark::NotOurs => Init::Foreign { pid: record.pid, why: format!("cgroup {shown} is not this container's") },
    }
}

/// The cgroup verb `verb` may act on (module docs, rule 2), given what
/// [`inspect`] found. Without a verified init, the caller must also check
/// [`Cgroup::procs_created`] before it signals anything.
pub(crate) fn container_cgroup(
    record: &Record,
    dir: &ContainerDir,
    init: &Init,
    verb: &'static str,
) -> Result<Cgroup, Error> {
    let Some(recorded) = record.cgroup() else {
        return Err(Error::NoCgroup { id: ContainerId::new(&record.id)?, verb });
    };
    let owner = dir.mark();
    let cgroup = Cgroup::open_owned(recorded.path, &owner, Some(recorded.created))?;
    if let Init::Alive(_) = init {
        // find_init saw the init in it and the container's mark on it.
        return Ok(cgroup);
    }
    let foreign = |why: String| Error::ForeignCgroup { id: record.id.clone(), path: cgroup.path().to_owned(), why };
    let given = config_paths(record, dir);
    if !given.iter().any(|p| p == cgroup.path()) {
        let why = match given.first() {
            Some(path) => format!("config.json gives {}", path.display()),
            None => format!("no config.json in {} names it", dir.path().display()),
        };
        return Err(foreign(why));
    }
    if cgroup.exists() && cgroup.mark_of(&owner) == Mark::NotOurs {
        return Err(foreign("it carries no mark of this container".into()));
    }
    Ok(cgroup)
}

/// The error for a cgroup that is the container's but that amphi did not make:
/// a verb without a verified init signals nothing in it.
pub(crate) fn not_created(record: &Record, cgroup: &Cgroup) -> Error {
    Error::ForeignCgroup {
        id: record.id.clone(),
        path: cgroup.path().to_owned(),
        why: "amphi did not create it: it existed before the container".into(),
    }
}

/// The cgroup paths the container's config (copied into its state directory at
/// create) can give.
fn config_paths(record: &Record, dir: &ContainerDir) -> Vec<PathBuf> {
    let Ok(spec) = oci_spec::runtime::Spec::load(dir.config()) else { return Vec::new() };
    let given = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    Cgroup::candidate_paths(given.as_deref(), &record.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::tests::{Sleeper, root_or_skip, test_path};

    /// A cgroup made for the container whose state directory is `dir`, removed
    /// (with the test's parent directory) however the test ends.
    struct Made(Cgroup);

    impl Made {
        fn new(name: &str, dir: &ContainerDir) -> Self {
            Self(Cgroup::create(&test_path(name), None, &dir.mark()).unwrap())
        }
    }

    impl Drop for Made {
        fn drop(&mut self) {
            let _ = self.0.remove();
            let parent = self.0.path().parent().unwrap().to_owned();
            for dir in Cgroup::open(&parent).unwrap().dirs() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    /// A record of the container whose init is `pid`, in `cgroup`, whose config
    /// (in `dir`) names that cgroup.
    fn record_of(pid: Pid, cgroup: &Cgroup, dir: &ContainerDir) -> Record {
        let config = serde_json::json!({"ociVersion": "1.2.0", "linux": {"cgroupsPath": cgroup.path()}});
        std::fs::write(dir.config(), config.to_string()).unwrap();
        let mut record = Record::sample("x");
        record.pid = pid.as_raw();
        record.start_time = ProcStat::read(pid).unwrap().start_time;
        record.cgroup_path = cgroup.path().to_owned();
        record.cgroup_created = cgroup.created().to_vec();
        record
    }

    #[test]
    fn only_a_process_in_the_containers_marked_cgroup_is_its_init() {
        if !root_or_skip("only_a_process_in_the_containers_marked_cgroup_is_its_init") {
            return;
        }
        let (tmp, other_tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (dir, other_dir) = (ContainerDir::new(tmp.path().into()), ContainerDir::new(other_tmp.path().into()));
        let (ours, theirs) = (Made::new("identity", &dir), Made::new("identity-other", &other_dir));
        let (init, host, other) = (Sleeper::spawn(), Sleeper::spawn(), Sleeper::spawn());
        ours.0.add_process(init.pid()).unwrap();
        theirs.0.add_process(other.pid()).unwrap();
        if ours.0.mark_of(&dir.mark()) == Mark::Unsupported {
            return; // No attributes on this kernel's cgroupfs: the config alone says.
        }

        let record = record_of(init.pid(), &ours.0, &dir);
        assert!(matches!(inspect(&record, &dir), (Init::Alive(_), Status::Running)));
        // A host process, with its own true start time, is not the init.
        let (found, status) = inspect(&record_of(host.pid(), &ours.0, &dir), &dir);
        assert!(matches!(found, Init::Foreign { .. }), "{found:?}");
        assert_eq!(status, Status::Stopped);
        // The right pid with another start time: a reuse; the init is gone.
        let reused = Record { start_time: record.start_time + 1, ..record.clone() };
        assert!(matches!(inspect(&reused, &dir), (Init::Gone, Status::Stopped)));
        // Another container's init and cgroup, config included: its mark says no.
        let borrowed = record_of(other.pid(), &theirs.0, &dir);
        assert!(matches!(inspect(&borrowed, &dir).0, Init::Foreign { .. }));
        let refused = container_cgroup(&borrowed, &dir, &Init::Gone, "kill");
        assert!(matches!(refused, Err(Error::ForeignCgroup { .. })), "{refused:?}");
        // Its own cgroup, once the init is not verified: made by amphi for it.
        let record = record_of(init.pid(), &ours.0, &dir);
        let cgroup = container_cgroup(&record, &dir, &Init::Gone, "kill").unwrap();
        assert!(cgroup.procs_created());
        // A record that names a path its config does not give is refused.
        let moved = Record { cgroup_path: theirs.0.path().to_owned(), ..record };
        let refused = container_cgroup(&moved, &dir, &Init::Gone, "kill");
        assert!(matches!(refused, Err(Error::ForeignCgroup { .. })), "{refused:?}");
    }
}
