//! The lifecycle verbs, one file per verb: what the CLI calls.
//!
//! Every verb that acts on one container takes its lock ([`crate::state`]), reads
//! its record, derives the status from the live process ([`status_of`]) and checks
//! the transition on [`Status`] before it acts. No verb trusts a stored status.

mod create;
mod delete;
mod events;
mod exec;
pub mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod resume;
mod rootless;
mod run;
mod start;
mod state;
mod update;

use std::path::{Path, PathBuf};

use nix::unistd::Pid;

pub use create::{CreateOptions, Created, add_listen_fds_env, create};
pub use delete::delete;
pub use events::{Event, Stats, events, stats};
pub use exec::{ChooseExecutor, ExecOptions, exec, exec_process};
pub use kill::kill;
pub use list::{ListEntry, list};
pub use pause::pause;
pub use ps::ps;
pub use resume::resume;
pub use run::{RunOptions, run};
pub use start::start;
pub use state::{ContainerState, state};
pub use update::{ResourceFlags, update};

use crate::id::ContainerId;
use crate::process::barrier;
use crate::state::{Record, Status};
use crate::sys::proc::ProcStat;

/// Any error of a lifecycle verb; each message names the container, field or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Id(#[from] crate::id::IdError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Spawn(#[from] crate::process::spawn::SpawnError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error("container {id} is {status}: cannot {verb} it{hint}")]
    BadStatus { id: ContainerId, status: Status, verb: &'static str, hint: &'static str },
    #[error("container {id}: {what}: {source}")]
    Io { id: ContainerId, what: String, source: std::io::Error },
    /// A verb that acts through the cgroup, on a rootless container without one.
    #[error("container {id} has no cgroup of its own (rootless, none writable): cannot {verb} it")]
    NoCgroup { id: ContainerId, verb: &'static str },
    /// A flag of `exec` that cannot be carried out.
    #[error("exec: {0}")]
    Exec(String),
    #[error("pid file {path}: {source}")]
    PidFile { path: PathBuf, source: std::io::Error },
    /// The main failure, and a failure of the cleanup that followed it.
    #[error("{error} (and cleanup failed: {cleanup})")]
    WithCleanup { error: Box<Error>, cleanup: String },
}

/// The cgroup of the container `record` describes, for a verb that acts
/// through it; a rootless container that runs without a cgroup of its own has
/// none to act on.
pub(crate) fn cgroup_of(record: &Record, verb: &'static str) -> Result<crate::cgroups::Cgroup, Error> {
    if record.cgroup_skipped {
        let id = ContainerId::new(&record.id)?;
        return Err(Error::NoCgroup { id, verb });
    }
    Ok(crate::cgroups::Cgroup::open(&record.cgroup_path)?)
}

/// The status of a container, read from its live process: its init alive (and
/// the same process: same start time) or not, the start barrier up or not.
pub fn status_of(record: &Record, dir: &Path) -> Status {
    if record.pid <= 0 {
        return Status::Creating;
    }
    match ProcStat::read(Pid::from_raw(record.pid)) {
        Ok(stat) if stat.start_time == record.start_time && !stat.is_exited() => {
            if barrier::is_up(dir) {
                Status::Created
            } else if record.paused {
                Status::Paused
            } else {
                Status::Running
            }
        }
        _ => Status::Stopped,
    }
}
