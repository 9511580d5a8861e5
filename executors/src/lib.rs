//! amphi executors.

pub mod cache;
pub mod wasm;
