//! `list`: every container under the state root.

use super::status_of;
use crate::state::{ContainerState, StateError, Store};

/// One row of `list`: a container's state, or why it could not be read.
#[derive(Debug)]
pub enum ListEntry {
    /// The container's state.
    Ok(ContainerState),
    /// A container whose state could not be read.
    Unreadable {
        /// The container's id (its directory's name).
        id: String,
        /// Why its state could not be read.
        error: StateError,
    },
}

/// Lists containers without taking their locks: a container being created or
/// with a corrupt state file is reported as unreadable, never fatal.
pub fn list(store: &Store) -> Result<Vec<ListEntry>, StateError> {
    Ok(store
        .ids()?
        .into_iter()
        .map(|id| match store.read_unlocked(&id) {
            Ok(record) => {
                let status = status_of(&record, &store.dir_of(&id));
                ListEntry::Ok(ContainerState::of(&record, status))
            }
            Err(error) => ListEntry::Unreadable { id: id.to_string(), error },
        })
        .collect())
}
