//! The lifecycle verbs, one file per verb: what the CLI calls.
//!
//! Every verb that acts on one container takes its lock ([`crate::state`]), reads
//! its record, derives the status from the live process ([`status_of`]) and checks
//! the transition on [`Status`] before it acts. No verb trusts a stored status,
//! nor the record's pid or cgroup: [`identity`] verifies the init (pidfd, start
//! time, its cgroup) and decides which cgroup a verb may act on.

mod create;
mod delete;
mod events;
mod exec;
pub mod features;
mod identity;
mod kill;
mod list;
mod open;
mod pause;
mod ps;
mod resume;
mod rootless;
mod run;
mod start;
mod state;
mod update;

use std::path::PathBuf;

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
pub use state::state;

pub use crate::state::ContainerState;
pub use update::{ResourceFlags, update};

/// `kill`'s signal, as runc's command line takes it: `TERM`, `SIGTERM`,
/// `sigterm` or `15`.
pub use crate::sys::signal::parse_signal;

use crate::id::ContainerId;
use crate::state::{ContainerDir, Record, Status, Verb};

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
    Spec(#[from] crate::plan::SpecError),
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
    /// The record names a live process that is not the container's init.
    #[error(
        "container {id}: state.json names pid {pid}, which is not the container's init ({why}): refusing to signal it"
    )]
    NotTheInit { id: ContainerId, pid: i32, why: String },
    /// The record names a cgroup that a verb may not act on ([`identity`]).
    #[error("container {id}: cgroup {path} is not this container's to act on ({why}): refusing to touch it")]
    ForeignCgroup { id: String, path: PathBuf, why: String },
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

impl Error {
    /// The refusal of `verb` for a container in `status`.
    pub(crate) fn bad_status(id: ContainerId, status: Status, verb: Verb) -> Self {
        Error::BadStatus { id, status, verb: verb.as_str(), hint: verb.hint() }
    }
}

/// The status of a container, read from its live process: its init alive (the
/// same process, verified as [`identity`] says) or not, the start barrier up or
/// not. `dir` is the container's state directory.
pub fn status_of(record: &Record, dir: &ContainerDir) -> Status {
    identity::inspect(record, dir).1
}
