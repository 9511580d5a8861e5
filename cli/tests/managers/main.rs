//! amphi under real container managers: containerd (through its runc shim, as
//! Kubernetes reaches it) and podman, each started by the tests themselves with
//! a private config, driving the built `amphi` as their runtime. Every test
//! cleans up what it made and checks that nothing is left (tasks, containers,
//! snapshots, images, amphi's state, cgroups).
//!
//! They need root and Debian's `containerd` and `podman` (`.ci/setup` installs
//! them); without root or a manager they skip, unless `CI=true`.
//! `AMPHI_E2E_RUNTIME=runc` runs the native scenarios against runc.

mod containerd;
mod cri;
mod ctr;
mod kubernetes;
mod podman;
mod startup;
mod support;
