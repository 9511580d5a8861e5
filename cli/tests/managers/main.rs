//! amphi under real container managers: containerd (through its runc shim, as
//! Kubernetes reaches it, and through amphi's own shim,
//! `containerd-shim-amphi-v1`) and podman, each started by the tests themselves
//! with a private config, driving the built `amphi` as their runtime. Every
//! test cleans up what it made and checks that nothing is left (tasks,
//! containers, snapshots, images, amphi's state, shim sockets and processes,
//! cgroups, mounts).
//!
//! - `ctr`: containerd's runc shim with `--runc-binary <amphi>` and amphi's
//!   shim (`--runtime io.containerd.amphi.v1`), each scenario both ways
//!   (`ctr::runc_shim::*`, `ctr::amphi_shim::*`); so are `ctr_exec` (an exec's
//!   stdio and terminal), `faults` (OOM, containerd restarted, a shim killed)
//!   and `bad_input`.
//! - `kubernetes`: the documented CRI config, and pods run through the CRI
//!   plugin's `amphi` (runc shim) and `amphi-shim` (amphi's shim) runtime
//!   handlers by `cri`, a small CRI client; `cri_update` updates a running
//!   container's resources through each.
//! - `podman`: `podman --runtime <amphi>` on rootfs directories.
//!
//! Each manager also runs a wasm service (`hello-service.wasm`, a `wasi:http`
//! component), reached over HTTP by `http`'s client: `ctr run` in a network
//! namespace the test makes, a CRI pod on the node's network, and podman in
//! the container's own network namespace.
//!
//! Start-up through containerd is measured by the benchmark harness
//! (`amphi-bench --only containerd`), not here.
//!
//! They need root and Debian's `containerd` and `podman` (`.ci/setup` installs
//! them); without root or a manager they skip, unless `CI=true`.
//! `AMPHI_E2E_RUNTIME=runc` runs the native scenarios against runc (through
//! the runc shim; amphi's shim runs amphi only, so its tests skip). amphi's
//! shim must be built next to amphi (`cargo build --workspace --bins`).

mod bad_input;
#[path = "../common/mod.rs"]
mod common;
mod containerd;
mod cri;
mod cri_update;
mod ctr;
mod ctr_exec;
mod faults;
mod http;
mod kubernetes;
mod podman;
mod support;
