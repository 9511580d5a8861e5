//! A container's status, and which verb may act on a container in which status.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The runtime-spec statuses, plus `paused` (as runc reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `create` is still building the container.
    Creating,
    /// The init waits at the start barrier.
    Created,
    /// The workload runs.
    Running,
    /// The workload is frozen.
    Paused,
    /// The init has exited.
    Stopped,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// Whether `verb` may act on a container with this status.
    pub(crate) fn permits(self, verb: Verb) -> bool {
        use Status::*;
        match verb {
            Verb::State | Verb::Ps | Verb::ForceDelete => true,
            // `start` lifts the barrier of a created container, and only of one.
            Verb::Start => self == Created,
            // A live init: created, running or paused.
            Verb::Kill | Verb::Update | Verb::Stats | Verb::Events => matches!(self, Created | Running | Paused),
            // As runc's, `kill --all` also reaches what is left in the cgroup
            // once the init has exited: containerd's shim calls it then for a
            // container that shares another's pid namespace.
            Verb::KillAll => matches!(self, Created | Running | Paused | Stopped),
            // Without `--force`, a container that runs no workload: a stopped
            // one, or a created one whose init never started (as runc does).
            Verb::Delete => matches!(self, Stopped | Created),
            Verb::Pause => self == Running,
            Verb::Resume => self == Paused,
            Verb::Exec => matches!(self, Created | Running),
        }
    }
}

/// What a command does to one container, as far as its status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    State,
    Start,
    Kill,
    /// `kill --all`.
    KillAll,
    /// `delete` without `--force`.
    Delete,
    ForceDelete,
    Pause,
    Resume,
    Update,
    Ps,
    Exec,
    /// `events --stats`.
    Stats,
    Events,
}

impl Verb {
    /// The verb in "cannot … it".
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verb::State => "read the state of",
            Verb::Start => "start",
            Verb::Kill | Verb::KillAll => "kill",
            Verb::Delete | Verb::ForceDelete => "delete",
            Verb::Pause => "pause",
            Verb::Resume => "resume",
            Verb::Update => "update",
            Verb::Ps => "list the processes of",
            Verb::Exec => "exec in",
            Verb::Stats => "read the stats of",
            Verb::Events => "watch the events of",
        }
    }

    /// What the refusal adds after "cannot … it".
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Verb::Delete => " without --force",
            _ => "",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 5] = [Status::Creating, Status::Created, Status::Running, Status::Paused, Status::Stopped];

    fn permitted(verb: Verb) -> Vec<Status> {
        ALL.into_iter().filter(|s| s.permits(verb)).collect()
    }

    #[test]
    fn only_created_starts() {
        assert_eq!(permitted(Verb::Start), [Status::Created]);
    }

    #[test]
    fn kill_needs_a_live_init() {
        assert_eq!(permitted(Verb::Kill), [Status::Created, Status::Running, Status::Paused]);
        assert_eq!(permitted(Verb::KillAll), [Status::Created, Status::Running, Status::Paused, Status::Stopped]);
    }

    #[test]
    fn delete_without_force_spares_running_workloads() {
        assert_eq!(permitted(Verb::Delete), [Status::Created, Status::Stopped]);
        assert_eq!(permitted(Verb::ForceDelete), ALL);
        assert_eq!(Verb::Delete.hint(), " without --force");
    }

    #[test]
    fn pause_resume_exec_and_the_cgroup_verbs() {
        assert_eq!(permitted(Verb::Pause), [Status::Running]);
        assert_eq!(permitted(Verb::Resume), [Status::Paused]);
        assert_eq!(permitted(Verb::Exec), [Status::Created, Status::Running]);
        for verb in [Verb::Update, Verb::Stats, Verb::Events] {
            assert_eq!(permitted(verb), permitted(Verb::Kill), "{verb:?}");
        }
        assert_eq!(permitted(Verb::State), ALL);
        assert_eq!(permitted(Verb::Ps), ALL);
    }

    #[test]
    fn serializes_lowercase() {
        assert_eq!(serde_json::to_string(&Status::Running).unwrap(), "\"running\"");
    }
}
