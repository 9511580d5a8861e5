//! amphi under real container managers: containerd (through its runc shim, as
//! Kubernetes reaches it) and podman, each started by the tests themselves with
//! a private config, driving the built `amphi` as their runtime. Every test
//! cleans up what it made and checks that nothing is left (tasks, containers,
//! snapshots, images, amphi's state, shim sockets, cgroups, mounts).
//!
//! - `ctr`: containerd's runc shim with `--runc-binary <amphi>`.
//! - `kubernetes`: the documented CRI config, and pods run through the CRI
//!   plugin's `amphi` runtime handler by `cri`, a small CRI client.
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
//! `AMPHI_E2E_RUNTIME=runc` runs the native scenarios against runc.

#[path = "../common/mod.rs"]
mod common;
mod containerd;
mod cri;
mod ctr;
mod http;
mod kubernetes;
mod podman;
mod support;
