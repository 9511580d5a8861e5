//! A container's status and the transitions each verb may make.

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
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// `start` lifts the barrier of a created container, and only of one.
    pub fn can_start(self) -> bool {
        self == Status::Created
    }

    /// `kill` signals a container whose init still lives.
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }

    /// `delete` without `--force` removes a container that runs no workload: a
    /// stopped one, or a created one whose init never started (as runc does).
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Stopped | Status::Created)
    }

    pub fn can_pause(self) -> bool {
        self == Status::Running
    }

    pub fn can_resume(self) -> bool {
        self == Status::Paused
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

    #[test]
    fn only_created_starts() {
        let all = [Status::Creating, Status::Created, Status::Running, Status::Paused, Status::Stopped];
        let startable: Vec<_> = all.iter().filter(|s| s.can_start()).collect();
        assert_eq!(startable, [&Status::Created]);
    }

    #[test]
    fn kill_needs_a_live_init() {
        assert!(Status::Created.can_kill());
        assert!(Status::Running.can_kill());
        assert!(Status::Paused.can_kill());
        assert!(!Status::Stopped.can_kill());
        assert!(!Status::Creating.can_kill());
    }

    #[test]
    fn delete_without_force_spares_running_workloads() {
        assert!(Status::Stopped.can_delete());
        assert!(Status::Created.can_delete());
        assert!(!Status::Running.can_delete());
        assert!(!Status::Paused.can_delete());
    }

    #[test]
    fn serializes_lowercase() {
        assert_eq!(serde_json::to_string(&Status::Running).unwrap(), "\"running\"");
    }
}
