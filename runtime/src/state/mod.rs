//! The state store: one directory per container under `--root`, the files in
//! it, and the container's typed record. Nothing else names those files.
//!
//! ```text
//! <root>/                 0700, made on first create
//!   <id>/                 0700, made by mkdir: an existing one means "id in use"
//!     state.json          the Record, replaced atomically (tmp + rename)
//!     config.json         the bundle's config, copied at create
//!     exec.fifo           the start barrier while the container is `created`
//! ```
//!
//! [`ContainerDir`] names the files; [`Record`] is what `state.json` holds;
//! [`OciState`] is the runtime-spec state made from it, with the JSON each
//! reader expects ([`oci`]); `atomic` is the one way a file is replaced (the
//! record, the pid file).
//!
//! Every command that acts on one container holds an exclusive `flock` on the
//! container's directory for as long as it acts, so concurrent commands on one id
//! serialize; commands on different ids take different locks and never block each
//! other. `list` reads without locking. The status is never stored: it is derived
//! from the live process each time it is read, and which verb may act in which
//! status is [`Status::permits`]. A verb gets its container through
//! `Store::open(id, verb)` ([`crate::container`]): lock, read, status, check.

pub(crate) mod atomic;
mod dir;
pub(crate) mod oci;
mod record;
mod status;

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

pub(crate) use dir::ContainerDir;
pub use oci::{ContainerState, OciState};
pub(crate) use record::Record;
pub use status::Status;
pub(crate) use status::Verb;

use crate::id::ContainerId;

/// Errors of the state store, each naming the container or file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state root cannot be made or read.
    #[error("state directory {path}: {source}")]
    Root {
        /// The state root.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// `create` of an id that has a state directory already.
    #[error("container id {0} is already in use")]
    InUse(ContainerId),
    /// No container of that id.
    #[error("container {0} does not exist")]
    NotFound(ContainerId),
    /// A file of the container's directory failed.
    #[error("container {id}: {path}: {source}")]
    Io {
        /// The container.
        id: ContainerId,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The container's record is not valid JSON of a record.
    #[error("container {id}: corrupt state file {path}: {source}")]
    Corrupt {
        /// The container.
        id: ContainerId,
        /// The record's path.
        path: PathBuf,
        /// Why it could not be read.
        source: serde_json::Error,
    },
    /// The container's directory exists but its record is not written yet.
    #[error("container {0} is still being created")]
    Creating(ContainerId),
}

/// The state root (`--root`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// No I/O: commands that find nothing to do never touch the disk.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    #[cfg(test)]
    pub(crate) fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub(crate) fn dir_of(&self, id: &ContainerId) -> ContainerDir {
        ContainerDir::new(self.root.join(id.as_str()))
    }

    /// Reserves `id` for a new container: makes its directory (failing if it
    /// exists) and locks it.
    pub(crate) fn reserve(&self, id: &ContainerId) -> Result<Locked, StateError> {
        let root_err = |source| StateError::Root { path: self.root.clone(), source };
        if !self.root.is_dir() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.root).map_err(root_err)?;
        }
        let dir = self.dir_of(id);
        match fs::DirBuilder::new().mode(0o700).create(dir.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StateError::InUse(id.clone())),
            Err(e) => return Err(root_err(e)),
        }
        let path = dir.path().to_owned();
        match Locked::acquire(id, dir) {
            Ok(locked) => Ok(locked),
            Err(e) => {
                let _ = fs::remove_dir_all(path);
                Err(e)
            }
        }
    }

    /// Locks an existing container, waiting for a command that holds it.
    pub(crate) fn lock(&self, id: &ContainerId) -> Result<Locked, StateError> {
        Locked::acquire(id, self.dir_of(id))
    }

    /// The ids of every container directory, sorted.
    pub(crate) fn ids(&self) -> Result<Vec<ContainerId>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StateError::Root { path: self.root.clone(), source }),
        };
        let mut ids: Vec<ContainerId> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| ContainerId::new(e.file_name().to_str()?).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads a container's record without taking its lock (for `list`).
    pub(crate) fn read_unlocked(&self, id: &ContainerId) -> Result<Record, StateError> {
        read_record(id, &self.dir_of(id))
    }
}

/// A container directory held under its exclusive lock. Dropping it unlocks.
#[derive(Debug)]
pub(crate) struct Locked {
    id: ContainerId,
    dir: ContainerDir,
    lock: Flock<OwnedFd>,
}

impl Locked {
    fn acquire(id: &ContainerId, dir: ContainerDir) -> Result<Self, StateError> {
        let path = dir.path();
        let fd = match fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(path) {
            Ok(file) => OwnedFd::from(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StateError::NotFound(id.clone())),
            Err(e) => return Err(StateError::Io { id: id.clone(), path: path.to_owned(), source: e }),
        };
        let lock = Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| StateError::Io {
            id: id.clone(),
            path: path.to_owned(),
            source: e.into(),
        })?;
        // A delete may have removed the directory while we waited for its lock.
        if !path.join(".").exists() {
            return Err(StateError::NotFound(id.clone()));
        }
        Ok(Self { id: id.clone(), dir, lock })
    }

    pub fn id(&self) -> &ContainerId {
        &self.id
    }

    pub fn dir(&self) -> &ContainerDir {
        &self.dir
    }

    /// The lock's descriptor: a cloned child must close it, or the lock (which
    /// belongs to the open file) would outlive this command.
    pub fn raw_fd(&self) -> RawFd {
        self.lock.as_raw_fd()
    }

    /// Reads the record. A directory without one belongs to a container that
    /// `create` is still building (or whose create died half way).
    pub fn read(&self) -> Result<Record, StateError> {
        read_record(&self.id, &self.dir)
    }

    /// Replaces the record atomically (`atomic::replace`; the lock makes this
    /// the only writer of its temporary file).
    pub fn write(&self, record: &Record) -> Result<(), StateError> {
        let path = self.dir.record();
        let io_err = |source| StateError::Io { id: self.id.clone(), path: path.clone(), source };
        let bytes = serde_json::to_vec(record).map_err(|e| io_err(io::Error::other(e)))?;
        atomic::replace(&path, &self.dir.record_tmp(), atomic::Tmp::Reused, 0o600, &bytes).map_err(io_err)
    }

    /// Removes the container's directory and everything in it, then unlocks.
    pub fn remove(self) -> Result<(), StateError> {
        fs::remove_dir_all(self.dir.path()).map_err(|source| StateError::Io {
            id: self.id.clone(),
            path: self.dir.path().to_owned(),
            source,
        })
    }
}

fn read_record(id: &ContainerId, dir: &ContainerDir) -> Result<Record, StateError> {
    let path = dir.record();
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(if dir.path().is_dir() {
                StateError::Creating(id.clone())
            } else {
                StateError::NotFound(id.clone())
            });
        }
        Err(source) => return Err(StateError::Io { id: id.clone(), path, source }),
    };
    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { id: id.clone(), path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ContainerId {
        ContainerId::new(s).unwrap()
    }

    #[test]
    fn reserve_refuses_an_id_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("root"));
        let first = store.reserve(&id("c1")).unwrap();
        assert!(matches!(store.reserve(&id("c1")), Err(StateError::InUse(_))));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(first.dir().path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let root_mode = fs::metadata(store.root()).unwrap().permissions().mode();
        assert_eq!(root_mode & 0o777, 0o700);
    }

    #[test]
    fn write_then_read_round_trips_and_remove_forgets() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let locked = store.reserve(&id("c2")).unwrap();
        assert!(matches!(locked.read(), Err(StateError::Creating(_))));
        let record = Record::sample("c2");
        locked.write(&record).unwrap();
        assert_eq!(locked.read().unwrap(), record);
        assert_eq!(store.ids().unwrap(), vec![id("c2")]);
        locked.remove().unwrap();
        assert!(matches!(store.lock(&id("c2")), Err(StateError::NotFound(_))));
        assert!(store.ids().unwrap().is_empty());
    }

    #[test]
    fn corrupt_state_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let locked = store.reserve(&id("bad")).unwrap();
        fs::write(locked.dir().record(), b"{\"id\": ").unwrap();
        let err = locked.read().unwrap_err().to_string();
        assert!(err.contains("corrupt state file") && err.contains("state.json"), "{err}");
    }

    #[test]
    fn locks_on_different_ids_do_not_block() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let _a = store.reserve(&id("a")).unwrap();
        let _b = store.reserve(&id("b")).unwrap();
        // Both held at once by this process: neither waited for the other.
        assert_eq!(store.ids().unwrap().len(), 2);
    }

    #[test]
    fn a_second_lock_on_one_id_waits_for_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let held = store.reserve(&id("c")).unwrap();
        let dir = held.dir().path().to_owned();
        // A separate open file description cannot take the lock while it is held.
        let fd = OwnedFd::from(fs::File::open(&dir).unwrap());
        let fd = match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Err((fd, e)) => {
                assert_eq!(e, nix::errno::Errno::EWOULDBLOCK);
                fd
            }
            Ok(_) => panic!("lock taken twice"),
        };
        drop(held);
        assert!(Flock::lock(fd, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
