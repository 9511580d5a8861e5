//! `containerd-shim-amphi-v1`: containerd's shim v2 (task API v2, runtime type
//! `io.containerd.amphi.v1`) over amphi's runtime and executors, for native
//! and wasm containers alike. One process serves a pod's containers, or one
//! container outside a pod.
//!
//! - [`shim`]: `start` (grouping by pod), serving, `delete` after a dead shim;
//! - [`helper`] and [`worker`]: the single-threaded process, forked before the
//!   shim's first thread, that clones every container stage;
//! - [`service`] and [`task`]: the task API and the tasks' processes, exits and
//!   waits; [`stdio`]: FIFOs, terminals and log URIs; [`events`]: events to
//!   containerd; [`metrics`]: `Stats`; [`options`]: the runtime options.

mod error;
mod events;
mod helper;
mod logging;
mod metrics;
mod options;
mod service;
mod shim;
mod stdio;
mod task;
mod worker;

/// containerd's name for this runtime.
const RUNTIME_ID: &str = "io.containerd.amphi.v1";

fn main() {
    let action = action();
    if action == Some(Action::Serve)
        && let Err(e) = run_from_sealed_image()
    {
        logging::early(&e);
        std::process::exit(1);
    }
    // The helper is forked here, before containerd's shim library installs
    // its signal handlers or starts a thread: the helper and every container
    // it makes begin with the default signal dispositions and none of the
    // shim's signal-library state (a wasm service installs its own SIGTERM
    // handler through that library's registry).
    if action == Some(Action::Serve) || (action == Some(Action::Delete) && shim::delete_needs_helper()) {
        shim::fork_helper();
    }
    containerd_shim::run::<shim::Shim>(RUNTIME_ID, None);
}

/// What this process is asked to do, of what needs a helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Serve the task API (no action): the one process whose helper clones
    /// container stages, and so the one that must run from a sealed image
    /// (`amphi_runtime::run_from_sealed_image`, CVE-2019-5736).
    Serve,
    /// `delete` after a dead shim: its helper deletes the container.
    Delete,
}

fn action() -> Option<Action> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let flags = containerd_shim::parse(&args).ok().filter(|f| !f.version && !f.info)?;
    match flags.action.as_str() {
        "" => Some(Action::Serve),
        "delete" => Some(Action::Delete),
        _ => None,
    }
}

fn run_from_sealed_image() -> Result<(), String> {
    use std::os::unix::ffi::OsStringExt;
    let argv = std::env::args_os()
        .map(|arg| std::ffi::CString::new(arg.into_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "an argument holds a NUL byte".to_owned())?;
    amphi_runtime::run_from_sealed_image(&argv).map(drop).map_err(|e| e.to_string())
}
