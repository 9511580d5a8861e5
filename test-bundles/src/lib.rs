//! # amphi-test-bundles: the bundles tests run
//!
//! The end-to-end tests, the demo and the benchmarks run real containers, and
//! each needs an OCI bundle. This crate makes them, with no network and nothing
//! but files already on the machine:
//!
//! - **probe** (`<out>/probe`): a rootfs holding only the static `amphi-probe`
//!   (this crate's binary, see its docs for the report it prints) and the
//!   default config of `amphi spec` running it. The probe reports what the
//!   container process sees (ids, capabilities, mounts, hostname, rlimits,
//!   cgroup, namespaces) as one JSON object, so a test can check the runtime
//!   from inside.
//! - **busybox** (`<out>/busybox`): the host's static busybox with its common
//!   applets, for tests that need a shell.
//!
//! ## How a test uses it
//! 1. Find the probe: it is built into the same target directory as `amphi`, so
//!    [`probe_path_next_to`]`(amphi_bin)`; build it with
//!    `cargo build -p amphi-test-bundles --bin amphi-probe`.
//! 2. [`build_all`]`(out, probe)` once per test run; it copies nothing that is
//!    already up to date, and writes atomically, so concurrent test processes
//!    can call it.
//! 3. For each test, [`Bundle::variant`] writes a new `config.json` changed by a
//!    closure, pointing at the shared rootfs by absolute path: a variant costs
//!    one small file.
//!
//! `amphi-bundles build --out DIR` does step 2 from the command line.
//!
//! ## Images
//! Container managers take images, not bundles. [`images`] writes OCI image
//! layout archives that `ctr images import` accepts, with no registry: a native
//! image (the probe, busybox), wasm images with and without the
//! `module.wasm.image/variant=compat` annotation, and a component image
//! ([`build_images`]; `amphi-images build --out DIR` from the command line).
//!
//! The benchmark harness builds its wasm bundles with [`bench::build_files`].
//!
//! ## What this crate must never do
//! - Touch the network or anything outside the directories it is given.
//! - Write a file in place: a running container may be executing it.
//! - Print: errors are returned; the binaries report them.

mod assemble;
pub mod bench;
mod bundle;
pub mod images;
mod install;

use std::path::PathBuf;

pub use assemble::{
    BUSYBOX_APPLETS, BUSYBOX_HOSTNAME, Bundles, ESCAPE_TARGET, HOST_BUSYBOX, PROBE_HOSTNAME, PROBE_IN_ROOTFS,
    PROBE_NAME, WASM_DIR_IN_ROOTFS, WASM_HOSTNAME, build_all, build_busybox, build_probe, build_wasm,
    probe_path_next_to,
};
pub use bundle::Bundle;
pub use images::{ImageArchive, ImageError, ImageSources, TestImages, build_images};

/// Why a bundle could not be built or read. Each message names the path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("copy {from} to {to}: {source}")]
    Copy { from: PathBuf, to: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("serialise {what}: {source}")]
    Serialise { what: &'static str, source: serde_json::Error },
    #[error("{path}: root.path is missing")]
    NoRoot { path: PathBuf },
    #[error("probe {path} does not exist; build it with `cargo build -p amphi-test-bundles --bin amphi-probe`")]
    ProbeMissing { path: PathBuf },
    #[error("busybox {path} does not exist; install Debian's busybox-static")]
    BusyboxMissing { path: PathBuf },
}
