//! What the shim knows of its tasks: each container's init and exec
//! processes, their streams, and their exits.
//!
//! Every exit is reported once: the reaper thread ([`Tasks::reap`]) takes the
//! shim library's exit notifications (it `waitpid`s every child the shim, a
//! subreaper, inherits), finds the process by pid, records the status and
//! time, wakes its waiters and publishes `TaskExit`. A pid is registered
//! before its process can become the shim's child ([`crate::helper`]), so no
//! exit comes for a pid the shim does not know yet.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use containerd_shim::monitor::{Subject, Topic, monitor_subscribe};
use containerd_shim::protos::events::task::TaskExit;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::topics::TASK_EXIT_EVENT_TOPIC;

use crate::events::Events;
use crate::helper::Place;
use crate::stdio::{Io, IoSpec};

/// Locks, shrugging off a poisoned lock (a panicked call left plain data).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A process's exit.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Its status (128+N for signal N).
    pub status: u32,
    /// When the shim reaped it.
    pub at: Timestamp,
}

/// Where a process is in its life.
#[derive(Debug, Clone, Default)]
pub enum Life {
    /// Made (the init at its barrier), or an exec not started yet.
    #[default]
    Created,
    /// Running, with this pid.
    Running,
    /// Exited.
    Exited(Exit),
}

/// A container's init or one of its exec processes.
#[derive(Debug)]
pub struct Process {
    /// The container.
    pub container_id: String,
    /// The exec id; empty for the init.
    pub exec_id: String,
    /// What containerd asked for its streams.
    pub io_spec: IoSpec,
    /// The exec's process (containerd's spec); `None` for the init.
    pub spec: Option<oci_spec::runtime::Process>,
    state: Mutex<ProcessState>,
    exited: Condvar,
}

#[derive(Debug, Default)]
struct ProcessState {
    pid: u32,
    life: Life,
    io: Option<Io>,
}

impl Process {
    /// A process not made yet.
    pub fn new(container_id: &str, exec_id: &str, io_spec: IoSpec, spec: Option<oci_spec::runtime::Process>) -> Self {
        Self {
            container_id: container_id.to_owned(),
            exec_id: exec_id.to_owned(),
            io_spec,
            spec,
            state: Mutex::new(ProcessState::default()),
            exited: Condvar::new(),
        }
    }

    /// Its pid (0 before it exists).
    pub fn pid(&self) -> u32 {
        lock(&self.state).pid
    }

    /// Where it is in its life.
    pub fn life(&self) -> Life {
        lock(&self.state).life.clone()
    }

    /// Its exit, if it has exited.
    pub fn exit(&self) -> Option<Exit> {
        match lock(&self.state).life {
            Life::Exited(ref exit) => Some(exit.clone()),
            _ => None,
        }
    }

    /// It exists, with `pid` (at the barrier for an init, running for an exec).
    pub fn made(&self, pid: u32, io: Io, running: bool) {
        let mut state = lock(&self.state);
        state.pid = pid;
        state.io = Some(io);
        if running && matches!(state.life, Life::Created) {
            state.life = Life::Running;
        }
    }

    /// The init was started.
    pub fn started(&self) {
        let mut state = lock(&self.state);
        if matches!(state.life, Life::Created) {
            state.life = Life::Running;
        }
    }

    /// Records its exit and wakes its waiters; `false` if it had one already.
    fn exited(&self, exit: Exit) -> bool {
        let mut state = lock(&self.state);
        if matches!(state.life, Life::Exited(_)) {
            return false;
        }
        state.life = Life::Exited(exit);
        if let Some(io) = &state.io {
            io.exited();
        }
        crate::stdio::release_stdin(&self.io_spec.stdin);
        self.exited.notify_all();
        true
    }

    /// It could not be made, or never will be (its container went first):
    /// it ends with status 255, so that `Wait` returns, as with containerd's
    /// runc shim. `false` if it had started.
    pub fn never_ran(&self) -> bool {
        if lock(&self.state).pid != 0 {
            return false;
        }
        self.exited(Exit { status: 255, at: now() })
    }

    /// Waits for its exit, up to `limit` (forever without one).
    pub fn wait(&self, limit: Option<Duration>) -> Option<Exit> {
        let mut state = lock(&self.state);
        let deadline = limit.map(|l| std::time::Instant::now() + l);
        loop {
            if let Life::Exited(exit) = &state.life {
                return Some(exit.clone());
            }
            state = match deadline {
                None => self.exited.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.exited.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    /// Runs `f` on its streams, if it has them.
    pub fn with_io<T>(&self, f: impl FnOnce(&Io) -> T) -> Option<T> {
        lock(&self.state).io.as_ref().map(f)
    }
}

/// A container of this shim.
#[derive(Debug)]
pub struct Container {
    /// Where its state lives.
    pub place: Place,
    /// Its bundle.
    pub bundle: PathBuf,
    /// Its init.
    pub init: Arc<Process>,
    /// Its exec processes, by exec id.
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// The freezer says so (`Pause` until `Resume`).
    pub paused: Mutex<bool>,
}

/// Every container of this shim, and its processes by pid.
#[derive(Debug, Default)]
pub struct Tasks {
    /// The containers, by id.
    pub containers: Mutex<HashMap<String, Arc<Container>>>,
    by_pid: Mutex<HashMap<u32, Arc<Process>>>,
}

impl Tasks {
    /// Registers `process` as `pid` before it can be reaped.
    pub fn register(&self, pid: u32, process: &Arc<Process>) {
        lock(&self.by_pid).insert(pid, process.clone());
    }

    /// The container `id`.
    pub fn container(&self, id: &str) -> Option<Arc<Container>> {
        lock(&self.containers).get(id).cloned()
    }

    /// Starts the reaper thread: every exit the shim library reaps becomes a
    /// process's exit and one `TaskExit`.
    pub fn reap(self: &Arc<Self>, events: Events) -> std::io::Result<()> {
        let subscription = monitor_subscribe(Topic::Pid).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tasks = self.clone();
        std::thread::Builder::new().name("exits".into()).stack_size(128 * 1024).spawn(move || {
            for event in subscription.rx.iter() {
                let Subject::Pid(pid) = event.subject else { continue };
                let Ok(pid) = u32::try_from(pid) else { continue };
                let Some(process) = lock(&tasks.by_pid).remove(&pid) else { continue };
                let exit = Exit { status: u32::try_from(event.exit_code).unwrap_or(255), at: now() };
                if process.exited(exit.clone()) {
                    tracing::debug!(id = %process.container_id, exec = %process.exec_id, pid, status = exit.status, "exited");
                    events.send(
                        TASK_EXIT_EVENT_TOPIC,
                        TaskExit {
                            container_id: process.container_id.clone(),
                            id: if process.exec_id.is_empty() {
                                process.container_id.clone()
                            } else {
                                process.exec_id.clone()
                            },
                            pid,
                            exit_status: exit.status,
                            exited_at: Some(exit.at).into(),
                            ..Default::default()
                        },
                    );
                }
            }
        })?;
        Ok(())
    }
}

/// Now, as a protobuf timestamp.
pub fn now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
        ..Default::default()
    }
}
