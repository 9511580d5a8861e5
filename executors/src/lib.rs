//! # amphi-executors: what runs inside the container
//!
//! [`amphi_runtime::Executor`] is the plug between the Linux container and the
//! workload. This crate holds its implementations and the choice between them:
//!
//! - [`native`]: finds the entrypoint inside the rootfs (PATH lookup with the
//!   container's own PATH) in `prepare`, so a missing binary fails `create`, and
//!   `execve`s it in `exec`.
//! - [`wasm`]: compiles (or loads from [`cache`]) a wasm module or component in
//!   `prepare`, and runs it in-process with wasmtime and WASI in `exec`.
//! - [`select`]: decides which executor runs a workload, once per process.
//!
//! The shared first step of every executor, resolving `process.args[0]` inside
//! the rootfs without ever following a symlink out of it, is [`entrypoint`].
//!
//! Executors run inside the container's init: they never print (a failure is an
//! error value the runtime reports) and never start a thread before `exec`.

pub mod cache;
pub mod entrypoint;
pub mod native;
pub mod select;
pub mod wasm;

pub use native::NativeExecutor;
pub use select::select;
