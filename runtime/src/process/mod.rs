//! The stages that build the container process.

pub mod channel;
pub mod rootfs;
