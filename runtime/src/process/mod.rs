//! The stages that build a container process, and the messages between them.
//!
//! ```text
//! caller (amphi create)        intermediate (only to join      init (pid 1 of the container)
//!                              namespaces by path / timens)
//! clone(CLONE_NEW*) ─────────────────────────────────────────▶ waits for Go
//! cgroup add, uid/gid maps, Go ──────────────────────────────▶ cgroupns, rootfs, prepare, pivot,
//!                                                              identity, seccomp, arm ─▶ Ready
//! state.json, pid file, Commit ──────────────────────────────▶ waits at the start barrier
//! exit                                                         (start) ─▶ Executor::exec
//! ```
//! With an intermediate, the caller forks it; it joins namespaces (`setns`),
//! asks for id maps if it made a user namespace, makes a time namespace, and
//! clones the init with `CLONE_PARENT`, so the init is still the caller's child.
//!
//! When the spec has a prestart, createRuntime or createContainer hook (and only
//! then), the init stops after its mounts, before `pivot_root`, with
//! [`FromInit::RunHooks`]; the caller runs prestart and createRuntime and answers
//! [`ToInit::HooksDone`] with the state, for the init's createContainer hooks.
//! With startContainer hooks the commit is [`ToInit::CommitWithState`].
//!
//! Every message type has exactly one sender role and one receiver role
//! ([`channel`]). A failing stage sends a [`StageFailure`] and exits; the caller
//! kills and reaps what it made and reports the failure's one-line message.

pub mod barrier;
pub mod channel;
pub mod exe_guard;
pub mod exec;
mod guest_view;
mod home;
pub mod identity;
mod init;
mod intermediate;
mod orphans;
pub mod rootfs;
pub mod spawn;
mod steps;
mod terminal;
mod workload;

use serde::{Deserialize, Serialize};

/// Which stage failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Intermediate,
    Init,
}

/// A failure inside a stage, carried to the caller across the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{msg}")]
pub struct StageFailure {
    pub stage: Stage,
    /// A short name of the step (`rootfs`, `prepare`, `hostname`...).
    pub step: String,
    pub errno: Option<i32>,
    /// The one-line message the user sees, naming the field or file.
    pub msg: String,
}

impl StageFailure {
    pub fn new(stage: Stage, step: impl Into<String>, errno: Option<i32>, msg: impl Into<String>) -> Self {
        Self { stage, step: step.into(), errno, msg: msg.into() }
    }
}

/// Caller → intermediate.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToIntermediate {
    /// The intermediate is in the container's cgroup (so its children will be):
    /// go on.
    Go,
    /// The intermediate's uid/gid maps are written.
    MapsWritten,
}

/// Intermediate → caller.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromIntermediate {
    /// The intermediate made a user namespace and needs its id maps written.
    NeedMaps,
    /// The init exists, with this pid in the caller's pid namespace.
    InitPid(i32),
    Failed(StageFailure),
}

/// Caller → init.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToInit {
    /// The init is in its cgroup and its id maps are written: build the container.
    Go,
    /// The state is written: wait at the start barrier.
    Commit,
    /// [`ToInit::Commit`] for a spec with `startContainer` hooks: the state JSON
    /// they get after the barrier.
    CommitWithState { state: String },
    /// The runtime's hooks ran (answer to [`FromInit::RunHooks`]): run the
    /// createContainer hooks with this state JSON, then go on.
    HooksDone { state: String },
    /// Answer to [`FromInit::NeedCacheDir`]: with `path`, the directory's
    /// descriptor travels with the message; without, there is no cache.
    CacheDir { path: Option<std::path::PathBuf> },
    /// Answer to [`FromInit::NeedCacheDir`]: the caller could not open it.
    CacheDirRefused { reason: String },
}

/// Init → caller.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromInit {
    /// The container is built; the init waits for Commit. `executor` names the
    /// executor the workload's content chose.
    Ready {
        executor: String,
        /// With a workload that runs in this process: the number of the init's
        /// descriptor of the container's mount namespace (the init itself lives
        /// in the guest's view, [`guest_view`]); `exec` joins through it.
        #[serde(default)]
        container_view_fd: Option<i32>,
    },
    /// The rootfs is mounted and `pivot_root` is next: the runtime runs the
    /// prestart and createRuntime hooks now. Sent only when the spec has a hook
    /// of the create phase ([`crate::hooks::pauses_before_pivot`]).
    RunHooks,
    /// The executor needs its compile-cache directory (in `prepare`, once it
    /// read a wasm entrypoint): the caller opens it on the host and sends it.
    NeedCacheDir,
    Failed(StageFailure),
}
