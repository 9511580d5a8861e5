//! The prologue of every verb that acts on one container: lock it, read its
//! record, derive its status from the live process ([`identity::inspect`]) and
//! check that the verb may act in that status ([`Status::permits`]).

use super::Error;
use super::identity::{self, Init};
use crate::cgroups::Cgroup;
use crate::id::ContainerId;
use crate::state::{ContainerDir, Locked, Record, Status, Store, Verb};

/// A container opened for a verb: held under its lock, its record read, its
/// init verified and its status one the verb may act in.
#[derive(Debug)]
pub(crate) struct Opened {
    pub locked: Locked,
    pub record: Record,
    pub init: Init,
    pub status: Status,
}

impl Store {
    /// Opens container `id` for `verb`. A status the verb may not act in is
    /// refused with [`Error::BadStatus`] (for `kill`, a record that names
    /// another live process with [`Error::NotTheInit`]).
    pub(crate) fn open(&self, id: &ContainerId, verb: Verb) -> Result<Opened, Error> {
        let locked = self.lock(id)?;
        let record = locked.read()?;
        Opened::check(locked, record, verb)
    }
}

impl Opened {
    /// The prologue's second half, for a verb that read the record itself
    /// (`delete`, which also removes a container it cannot read).
    pub(crate) fn check(locked: Locked, record: Record, verb: Verb) -> Result<Self, Error> {
        let (init, status) = identity::inspect(&record, locked.dir());
        if !status.permits(verb) {
            let id = locked.id().clone();
            return Err(match (verb, init) {
                (Verb::Kill | Verb::KillAll, Init::Foreign { pid, why }) => Error::NotTheInit { id, pid, why },
                _ => Error::bad_status(id, status, verb),
            });
        }
        Ok(Self { locked, record, init, status })
    }

    pub(crate) fn dir(&self) -> &ContainerDir {
        self.locked.dir()
    }

    /// The cgroup `verb` may act on ([`identity::container_cgroup`]); an error
    /// when the container has none.
    pub(crate) fn cgroup(&self, verb: Verb) -> Result<Cgroup, Error> {
        identity::container_cgroup(&self.record, self.dir(), &self.init, verb.as_str())
    }

    /// [`Opened::cgroup`], or None for a container without a cgroup of its own
    /// (rootless): for verbs that then act on the init alone.
    pub(crate) fn own_cgroup(&self, verb: Verb) -> Result<Option<Cgroup>, Error> {
        self.record.cgroup().map(|_| self.cgroup(verb)).transpose()
    }
}
