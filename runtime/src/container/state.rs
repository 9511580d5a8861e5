//! `state`: the OCI state of one container ([`ContainerState`]).

use super::Error;
use crate::id::ContainerId;
use crate::state::{ContainerState, Store, Verb};

/// Reads container `id`'s state, with its status taken from the live process.
pub fn state(store: &Store, id: &ContainerId) -> Result<ContainerState, Error> {
    let opened = store.open(id, Verb::State)?;
    Ok(ContainerState::of(&opened.record, opened.status))
}
