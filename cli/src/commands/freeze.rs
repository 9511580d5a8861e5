//! pause, resume: the freezer.

use amphi_runtime::ContainerId;
use amphi_runtime::container;
use amphi_runtime::state::Store;

use crate::args::IdArg;

pub fn pause(store: &Store, args: IdArg) -> anyhow::Result<u8> {
    container::pause(store, &ContainerId::new(&args.id)?)?;
    Ok(0)
}

pub fn resume(store: &Store, args: IdArg) -> anyhow::Result<u8> {
    container::resume(store, &ContainerId::new(&args.id)?)?;
    Ok(0)
}
