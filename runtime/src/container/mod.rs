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

pub use create::{CreateOptions, Created, create};
pub use delete::delete;
pub use events::{BlkioEntry, Event, Hugetlb, MemoryEntry, Stats, events, stats};
pub use exec::{ChooseExecutor, ExecOptions, exec};
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
    /// A container id was refused.
    #[error(transparent)]
    Id(#[from] crate::id::IdError),
    /// The bundle was refused.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// The container's state directory or record failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A spec field (or an `exec` process) was refused.
    #[error(transparent)]
    Spec(#[from] crate::plan::SpecError),
    /// The container's cgroup could not be made, read or changed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// The container's process could not be made.
    #[error(transparent)]
    Spawn(#[from] crate::process::spawn::SpawnError),
    /// The seccomp profile could not be compiled or its listener reached.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The console socket or the terminal failed.
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    /// The container's status does not permit the verb.
    #[error("container {id} is {status}: cannot {verb} it{hint}")]
    BadStatus {
        /// The container.
        id: ContainerId,
        /// Its status, read from its live process.
        status: Status,
        /// The refused verb.
        verb: &'static str,
        /// A way past the refusal, if any (` without --force`), or empty.
        hint: &'static str,
    },
    /// An operation on the container failed.
    #[error("container {id}: {what}: {source}")]
    Io {
        /// The container.
        id: ContainerId,
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The record names a live process that is not the container's init.
    #[error(
        "container {id}: state.json names pid {pid}, which is not the container's init ({why}): refusing to signal it"
    )]
    NotTheInit {
        /// The container.
        id: ContainerId,
        /// The pid the record names.
        pid: i32,
        /// Why that process is not the init.
        why: String,
    },
    /// The record names a cgroup that a verb may not act on ([`identity`]).
    #[error("container {id}: cgroup {path} is not this container's to act on ({why}): refusing to touch it")]
    ForeignCgroup {
        /// The container.
        id: String,
        /// The cgroup the record names.
        path: PathBuf,
        /// Why it is not the container's.
        why: String,
    },
    /// A verb that acts through the cgroup, on a rootless container without one.
    #[error("container {id} has no cgroup of its own (rootless, none writable): cannot {verb} it")]
    NoCgroup {
        /// The container.
        id: ContainerId,
        /// The refused verb.
        verb: &'static str,
    },
    /// A flag of `exec` that cannot be carried out.
    #[error("exec: {0}")]
    Exec(String),
    /// The pid file could not be written.
    #[error("pid file {path}: {source}")]
    PidFile {
        /// The `--pid-file` path.
        path: PathBuf,
        /// Why it could not be written.
        source: std::io::Error,
    },
    /// The main failure, and a failure of the cleanup that followed it.
    #[error("{error} (and cleanup failed: {cleanup})")]
    WithCleanup {
        /// The main failure.
        error: Box<Error>,
        /// What the cleanup could not undo.
        cleanup: String,
    },
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
pub(crate) fn status_of(record: &Record, dir: &ContainerDir) -> Status {
    identity::inspect(record, dir).1
}
