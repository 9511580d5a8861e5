//! End-to-end tests: real containers made by the built `amphi` binary (or, with
//! `AMPHI_E2E_RUNTIME=runc`, by runc), looked at from inside (the probe) and from
//! outside (`/proc`, cgroup files, the state dir). They need root.

mod bad_input;
#[path = "../common/mod.rs"]
mod common;
mod exec;
mod home;
mod hook_order;
mod hostile_cwd;
mod hostile_exe;
mod hostile_paths;
mod hostile_state;
mod hostile_wasm;
mod isolation;
mod lifecycle;
mod namespaces;
mod oci;
mod rootless;
mod seccomp;
mod service;
mod support;
mod terminal;
mod wasm;
mod wasm_init;
