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
    if serves()
        && let Err(e) = run_from_sealed_image()
    {
        logging::early(&e);
        std::process::exit(1);
    }
    containerd_shim::run::<shim::Shim>(RUNTIME_ID, None);
}

/// Whether this process is a serving shim (no action): the one whose helper
/// clones container stages, and so the one that must run from a sealed image
/// (`amphi_runtime::run_from_sealed_image`, CVE-2019-5736).
fn serves() -> bool {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    containerd_shim::parse(&args).is_ok_and(|flags| flags.action.is_empty() && !flags.version && !flags.info)
}

fn run_from_sealed_image() -> Result<(), String> {
    use std::os::unix::ffi::OsStringExt;
    let argv = std::env::args_os()
        .map(|arg| std::ffi::CString::new(arg.into_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "an argument holds a NUL byte".to_owned())?;
    amphi_runtime::run_from_sealed_image(&argv).map(drop).map_err(|e| e.to_string())
}
