//! The compiled-module cache: a content-addressed store of precompiled wasm.
//!
//! Compiling a module with Cranelift costs milliseconds to seconds; loading a
//! precompiled artifact costs a read and an mmap. The wasm executor compiles in
//! `prepare` (during `create`) and stores the artifact here, so the next `create`
//! of the same module, in any container, only loads it, and `start` only
//! instantiates.
//!
//! ## Keys
//!
//! An entry is named `<module>-<engine>.cwasm`: `module` is the sha256 of the
//! module's bytes as they sit in the rootfs (binary or text), `engine` the first
//! 64 bits of a sha256 over the engine's
//! [`precompile_compatibility_hash`](wasmtime::Engine::precompile_compatibility_hash)
//! (wasmtime version, target, compiler flags and the tunables amphi derives from
//! the spec, such as the memory reservation under an `RLIMIT_AS`). An artifact is
//! therefore only ever loaded by an engine that can run it.
//!
//! ## Trust
//!
//! Deserializing an artifact is `unsafe` in wasmtime's terms: the bytes become
//! machine code. Three things keep a bad artifact out:
//!
//! - the directory must be owned by the caller's effective uid (root) and not
//!   writable by group or others ([`Cache::open`] refuses it otherwise, with the
//!   reason), and is created `0700`;
//! - every entry carries a header with the artifact's kind, length and sha256
//!   and the sha256 of the module it was compiled from, all checked before the
//!   bytes reach wasmtime: a truncated or corrupt file (a full disk, a crash, a
//!   stray edit) and an entry filed under another module's key (a swapped or
//!   renamed file, which would run the other module's code) are detected,
//!   removed and recompiled;
//! - an entry must be a regular file owned by the caller, opened without
//!   following a symlink.
//!
//! ## The directory is a descriptor
//!
//! Every entry is reached relative to one descriptor of the checked directory
//! (`openat`, `renameat`, `unlinkat`), never through a path: the directory is
//! opened on the host by the caller, and a container process that uses it has
//! no host path to it and must not resolve `/proc/self/fd/N` (the container's
//! `/proc` is not to be trusted). [`CacheConfig::open_dir`] checks and opens
//! it; [`Cache::from_dir`] takes such a descriptor, owned: each container
//! process gets its own, which it closes once the module is loaded.
//!
//! Where the directory is, is the caller's decision ([`CacheConfig`]): the CLI
//! resolves it once from its flag, its environment and its default, after the
//! bundle is loaded, and opens it (making it if missing) only when a wasm
//! workload asks for it. Nothing here reads the environment.
//!
//! ## Writes
//!
//! An entry is written to a temporary file in the same directory and renamed into
//! place, so a reader sees a whole entry or none. Two containers compiling the
//! same module at once both write and both rename: the last rename wins and both
//! entries are valid. A failed store only costs the next `create` a compilation;
//! the caller logs it and goes on.
//!
//! ## Last use
//!
//! A hit sets the entry's modification time to now, so [`Cache::list`] shows the
//! last use and [`Cache::prune`] can drop entries unused for a while.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"AMPHIWC1";
const HEADER_LEN: usize = 8 + 8 + 8 + 32 + 32;
const ENTRY_SUFFIX: &str = ".cwasm";
const TMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this are leftovers of a crashed writer.
const STALE_TMP: Duration = Duration::from_secs(600);

/// Where the cache lives, or that there is none. The caller decides it (the
/// CLI, from its flag, its environment and its default); this crate never
/// reads the environment for it. The path is a host path, for opening the
/// directory in the caller and for messages: a container process only ever
/// gets the opened descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// `None` disables the cache: every `prepare` compiles.
    pub dir: Option<PathBuf>,
}

impl CacheConfig {
    /// The cache at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()) }
    }

    /// No cache.
    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// Checks the cache directory here, in the caller's mount namespace (making
    /// it if missing, refusing a foreign-owned or group/world-writable one), and
    /// returns it opened `O_PATH`: what the caller hands to a container process
    /// that asks for it. `None` when the cache is disabled.
    pub fn open_dir(&self) -> Result<Option<OwnedFd>, CacheError> {
        let Some(dir) = &self.dir else { return Ok(None) };
        Ok(Some(Cache::open(dir)?.fd))
    }
}

/// What an artifact is: wasmtime serializes modules and components differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    Module,
    Component,
}

impl ArtifactKind {
    fn byte(self) -> u8 {
        match self {
            Self::Module => 0,
            Self::Component => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Module),
            1 => Some(Self::Component),
            _ => None,
        }
    }
}

/// The key of one entry: what module, compiled by what engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// sha256 of the module's bytes, lowercase hex.
    pub module: String,
    /// The engine's compatibility fingerprint, 16 lowercase hex digits.
    pub engine: String,
}

impl CacheKey {
    /// The key of `module_bytes` for `engine`.
    pub fn new(engine: &wasmtime::Engine, module_bytes: &[u8]) -> Self {
        Self { module: hex(&Sha256::digest(module_bytes)), engine: engine_fingerprint(engine) }
    }

    fn file_name(&self) -> String {
        format!("{}-{}{ENTRY_SUFFIX}", self.module, self.engine)
    }
}

/// The engine's compatibility hash, as 16 hex digits. The hash is fed into sha256
/// (not a `DefaultHasher`, whose output may change between Rust releases).
pub fn engine_fingerprint(engine: &wasmtime::Engine) -> String {
    use std::hash::Hash;
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize()[..8])
}

struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a sha256 digest has 32 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cache failure, naming the directory or entry.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("wasm cache {}: {source}", dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("wasm cache {}: is not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("wasm cache {}: owned by uid {owner}, not by uid {expected}: refusing to load code from it", dir.display())]
    ForeignOwner { dir: PathBuf, owner: u32, expected: u32 },
    #[error("wasm cache {}: mode {mode:04o} lets group or others write: refusing to load code from it (chmod 0700)", dir.display())]
    Writable { dir: PathBuf, mode: u32 },
    #[error("wasm cache entry {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("wasm cache entry {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: &'static str },
}

/// One entry as [`Cache::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub path: PathBuf,
    /// sha256 of the module's bytes (hex).
    pub module: String,
    /// The engine fingerprint the entry was compiled for.
    pub engine: String,
    /// Module or component; `None` when the header cannot be read.
    pub kind: Option<ArtifactKind>,
    /// Size of the file in bytes.
    pub size: u64,
    /// The last hit (or the write, if never hit).
    pub last_used: SystemTime,
    /// Whether the header is whole and the length matches (the checksum is only
    /// verified on load).
    pub intact: bool,
}

/// What [`Cache::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: usize,
    pub freed_bytes: u64,
}

/// An opened, checked cache directory: every entry is reached relative to its
/// descriptor.
#[derive(Debug)]
pub struct Cache {
    /// For messages: the directory's host path.
    dir: PathBuf,
    fd: OwnedFd,
}

impl Cache {
    /// Opens the cache at `dir` (a host path, in the caller), creating it (and
    /// its parents) `0700` when missing. Refuses a directory owned by another
    /// uid or writable by group or others: code is loaded from it.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let create = |source| CacheError::Create { dir: dir.to_owned(), source };
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(create)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ENOTDIR) => CacheError::NotADirectory { dir: dir.to_owned() },
                _ => create(source),
            })?;
        Self::from_dir(OwnedFd::from(file), dir.to_owned())
    }

    /// The cache in the directory `fd` (opened by the caller, named `dir` in
    /// messages), checked as [`Cache::open`] checks it.
    pub fn from_dir(fd: OwnedFd, dir: PathBuf) -> Result<Self, CacheError> {
        let meta = fstat(&fd).map_err(|source| CacheError::Create { dir: dir.clone(), source })?;
        if meta.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(CacheError::NotADirectory { dir });
        }
        let expected = nix::unistd::geteuid().as_raw();
        if meta.st_uid != expected {
            return Err(CacheError::ForeignOwner { dir, owner: meta.st_uid, expected });
        }
        let mode = meta.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(CacheError::Writable { dir, mode });
        }
        Ok(Self { dir, fd })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of `key`'s entry, for messages and listings.
    pub fn entry_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// Opens `name` in the directory (never following a symlink) with `flags`.
    fn open_entry(&self, name: &str, flags: OFlag, mode: u32) -> io::Result<File> {
        let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        let fd = amphi_runtime::inroot::openat2(
            self.fd.as_fd(),
            Path::new(name),
            flags,
            Mode::from_bits_truncate(mode),
            resolve,
        )?;
        Ok(File::from(fd))
    }

    /// Reads and verifies `key`'s entry: `Ok(None)` when there is none,
    /// [`CacheError::Corrupt`] when its header or checksum do not hold, when it
    /// was compiled from another module than `key` names, or when it holds
    /// another kind of artifact than `expected` (the caller removes it with
    /// [`Cache::remove`] and recompiles). A hit refreshes the entry's last-use
    /// time.
    pub fn load(
        &self,
        key: &CacheKey,
        expected: Option<ArtifactKind>,
    ) -> Result<Option<(ArtifactKind, Vec<u8>)>, CacheError> {
        let path = self.entry_path(key);
        let io_err = |source| CacheError::Io { path: path.clone(), source };
        let mut file = match self.open_entry(&key.file_name(), OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(CacheError::Corrupt { path, reason: "is a symlink" });
            }
            Err(e) => return Err(io_err(e)),
        };
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(CacheError::Corrupt { path, reason: "is not a regular file" });
        }
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return Err(CacheError::Corrupt { path, reason: "is owned by another user" });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(io_err)?;
        let (kind, artifact) =
            verify(&bytes, key, expected).map_err(|reason| CacheError::Corrupt { path: path.clone(), reason })?;
        // The last use is advisory (list and prune); failing to record it is harmless.
        let _ = file.set_modified(SystemTime::now());
        let artifact = artifact.to_vec();
        Ok(Some((kind, artifact)))
    }

    /// Stores `artifact` (a wasmtime serialization of `kind`) under `key`,
    /// atomically: a temporary file in the cache directory, renamed into place.
    pub fn store(&self, key: &CacheKey, kind: ArtifactKind, artifact: &[u8]) -> Result<PathBuf, CacheError> {
        let module = decode_hex(&key.module).ok_or_else(|| CacheError::Corrupt {
            path: self.entry_path(key),
            reason: "the key's module hash is not 64 hex digits",
        })?;
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let tmp = format!("{TMP_PREFIX}{}-{}-{nanos}", key.file_name(), std::process::id());
        let io_err = |source| CacheError::Io { path: self.dir.join(&tmp), source };
        let mut file =
            self.open_entry(&tmp, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, 0o600).map_err(io_err)?;
        let written = file
            .write_all(&header(kind, artifact, &module))
            .and_then(|()| file.write_all(artifact))
            .and_then(|()| file.flush());
        drop(file);
        let dir = Some(self.fd.as_raw_fd());
        let renamed =
            written.and_then(|()| Ok(nix::fcntl::renameat(dir, tmp.as_str(), dir, key.file_name().as_str())?));
        if let Err(e) = renamed {
            let _ = nix::unistd::unlinkat(dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
            return Err(io_err(e));
        }
        Ok(self.entry_path(key))
    }

    /// Removes `key`'s entry (a corrupt one, before recompiling); a missing entry
    /// is not an error.
    pub fn remove(&self, key: &CacheKey) -> Result<(), CacheError> {
        self.remove_name(&key.file_name())
    }

    fn remove_name(&self, name: &str) -> Result<(), CacheError> {
        match nix::unistd::unlinkat(Some(self.fd.as_raw_fd()), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(CacheError::Io { path: self.dir.join(name), source: e.into() }),
        }
    }

    /// Every entry, most recently used first.
    pub fn list(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let mut entries = Vec::new();
        for (name, meta) in self.files()? {
            let Some(stem) = name.strip_suffix(ENTRY_SUFFIX) else { continue };
            let Some((module, engine)) = stem.rsplit_once('-') else { continue };
            let mut head = [0u8; HEADER_LEN];
            let header_ok = self
                .open_entry(&name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok();
            let parsed = if header_ok { parse_header(&head) } else { None };
            let intact = parsed.is_some_and(|(_, len)| HEADER_LEN as u64 + len == meta.len);
            entries.push(CacheEntry {
                path: self.dir.join(&name),
                module: module.to_owned(),
                engine: engine.to_owned(),
                kind: parsed.map(|(kind, _)| kind),
                size: meta.len,
                last_used: meta.modified,
                intact,
            });
        }
        entries.sort_by(|a, b| b.last_used.cmp(&a.last_used).then_with(|| a.path.cmp(&b.path)));
        Ok(entries)
    }

    /// Removes every entry (`older_than: None`) or those not used for
    /// `older_than`, and any temporary file a crashed writer left behind.
    pub fn prune(&self, older_than: Option<Duration>) -> Result<PruneReport, CacheError> {
        let now = SystemTime::now();
        let mut report = PruneReport::default();
        for (name, meta) in self.files()? {
            let age = now.duration_since(meta.modified).unwrap_or(Duration::ZERO);
            let remove = if name.starts_with(TMP_PREFIX) {
                age >= STALE_TMP
            } else if name.ends_with(ENTRY_SUFFIX) {
                older_than.is_none_or(|limit| age >= limit)
            } else {
                false
            };
            if remove {
                self.remove_name(&name)?;
                report.removed += 1;
                report.freed_bytes += meta.len;
            }
        }
        Ok(report)
    }

    /// The regular files in the directory, read through its descriptor.
    fn files(&self) -> Result<Vec<(String, FileMeta)>, CacheError> {
        let io_err = |source: nix::Error| CacheError::Io { path: self.dir.clone(), source: source.into() };
        let mut dir = nix::dir::Dir::openat(
            Some(self.fd.as_raw_fd()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        let mut files = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(io_err)?;
            let Ok(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if name == "." || name == ".." {
                continue;
            }
            let stat = match nix::sys::stat::fstatat(
                Some(self.fd.as_raw_fd()),
                name.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(stat) if stat.st_mode & libc::S_IFMT == libc::S_IFREG => stat,
                Ok(_) | Err(nix::errno::Errno::ENOENT) => continue,
                Err(e) => return Err(CacheError::Io { path: self.dir.join(&name), source: e.into() }),
            };
            let modified = SystemTime::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(stat.st_mtime).unwrap_or(0),
                    u32::try_from(stat.st_mtime_nsec).unwrap_or(0),
                );
            files.push((name, FileMeta { len: u64::try_from(stat.st_size).unwrap_or(0), modified }));
        }
        Ok(files)
    }
}

/// What [`Cache::files`] reports of a file.
struct FileMeta {
    len: u64,
    modified: SystemTime,
}

fn fstat(fd: &OwnedFd) -> io::Result<nix::sys::stat::FileStat> {
    Ok(nix::sys::stat::fstat(fd.as_raw_fd())?)
}

/// The entry header: magic, kind (padded to 8), artifact length, artifact sha256,
/// module sha256.
fn header(kind: ArtifactKind, artifact: &[u8], module: &[u8; 32]) -> Vec<u8> {
    let mut head = Vec::with_capacity(HEADER_LEN);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&[kind.byte(), 0, 0, 0, 0, 0, 0, 0]);
    head.extend_from_slice(&(artifact.len() as u64).to_le_bytes());
    head.extend_from_slice(&Sha256::digest(artifact));
    head.extend_from_slice(module);
    head
}

fn parse_header(head: &[u8]) -> Option<(ArtifactKind, u64)> {
    if head.len() < HEADER_LEN || &head[..8] != MAGIC {
        return None;
    }
    let kind = ArtifactKind::from_byte(head[8])?;
    let len = u64::from_le_bytes(head[16..24].try_into().ok()?);
    Some((kind, len))
}

/// Checks an entry's bytes against its key and returns the artifact they
/// carry: the header's magic, kind and padding, the artifact's length and
/// sha256, and the module hash, which must be the one `key` names (an entry
/// renamed or copied over another module's key would run that other code).
fn verify<'a>(
    bytes: &'a [u8],
    key: &CacheKey,
    expected: Option<ArtifactKind>,
) -> Result<(ArtifactKind, &'a [u8]), &'static str> {
    let (kind, len) = parse_header(bytes).ok_or("bad header")?;
    if bytes[9..16].iter().any(|&b| b != 0) {
        return Err("bad header (padding is not zero)");
    }
    if expected.is_some_and(|expected| expected != kind) {
        return Err("holds another kind of artifact than the module needs");
    }
    if decode_hex(&key.module).is_none_or(|module| module[..] != bytes[56..88]) {
        return Err("was compiled from another module than its name says");
    }
    let artifact = &bytes[HEADER_LEN..];
    if artifact.len() as u64 != len {
        return Err("truncated or overlong (length does not match its header)");
    }
    if Sha256::digest(artifact).as_slice() != &bytes[24..56] {
        return Err("checksum mismatch");
    }
    Ok((kind, artifact))
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn key(module: &[u8]) -> CacheKey {
        CacheKey { module: hex(&Sha256::digest(module)), engine: "0123456789abcdef".to_owned() }
    }

    fn open_temp() -> (tempfile::TempDir, Cache) {
        let temp = tempfile::tempdir().expect("tempdir");
        let cache = Cache::open(&temp.path().join("cache")).expect("open cache");
        (temp, cache)
    }

    #[test]
    fn open_creates_a_private_directory() {
        let (_temp, cache) = open_temp();
        let mode = fs::metadata(cache.dir()).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn store_then_load_round_trips() {
        let (_temp, cache) = open_temp();
        let key = key(b"module");
        assert_eq!(cache.load(&key, None).expect("load"), None);
        cache.store(&key, ArtifactKind::Component, b"artifact bytes").expect("store");
        let (kind, bytes) = cache.load(&key, None).expect("load").expect("hit");
        assert_eq!(kind, ArtifactKind::Component);
        assert_eq!(bytes, b"artifact bytes");
    }

    #[test]
    fn concurrent_stores_of_one_key_leave_a_whole_entry() {
        let (_temp, cache) = open_temp();
        let key = key(b"shared module");
        let artifact: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        cache.store(&key, ArtifactKind::Module, &artifact).expect("store");
                        // A reader never sees a partial entry: Corrupt would fail here.
                        let (_, loaded) = cache.load(&key, None).expect("load").expect("hit");
                        assert_eq!(loaded.len(), artifact.len());
                    }
                });
            }
        });
        let names: Vec<_> =
            fs::read_dir(cache.dir()).expect("read dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind: {names:?}");
    }

    #[test]
    fn truncated_entry_is_reported_corrupt() {
        let (_temp, cache) = open_temp();
        let key = key(b"m");
        let path = cache.store(&key, ArtifactKind::Module, &[7u8; 1000]).expect("store");
        let len = fs::metadata(&path).expect("stat").len();
        OpenOptions::new().write(true).open(&path).expect("open").set_len(len - 10).expect("truncate");
        assert!(matches!(cache.load(&key, None), Err(CacheError::Corrupt { .. })));
        cache.remove(&key).expect("remove");
        assert_eq!(cache.load(&key, None).expect("load"), None);
    }

    #[test]
    fn flipped_byte_fails_the_checksum() {
        let (_temp, cache) = open_temp();
        let key = key(b"m");
        let path = cache.store(&key, ArtifactKind::Module, &[7u8; 100]).expect("store");
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        match cache.load(&key, None) {
            Err(CacheError::Corrupt { reason, .. }) => assert_eq!(reason, "checksum mismatch"),
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
    }

    #[test]
    fn an_entry_filed_under_another_modules_key_is_refused() {
        let (_temp, cache) = open_temp();
        let (good, evil) = (key(b"good module"), key(b"evil module"));
        cache.store(&good, ArtifactKind::Module, b"good code").expect("store good");
        let evil_path = cache.store(&evil, ArtifactKind::Module, b"evil code").expect("store evil");
        // An attacker who can write the directory swaps the evil entry in.
        fs::rename(&evil_path, cache.entry_path(&good)).expect("swap");
        match cache.load(&good, None) {
            Err(CacheError::Corrupt { reason, .. }) => {
                assert_eq!(reason, "was compiled from another module than its name says")
            }
            other => panic!("a swapped entry must be refused, got {other:?}"),
        }
    }

    #[test]
    fn an_entry_of_the_wrong_kind_is_refused() {
        let (_temp, cache) = open_temp();
        let key = key(b"m");
        cache.store(&key, ArtifactKind::Component, b"component code").expect("store");
        assert!(matches!(cache.load(&key, Some(ArtifactKind::Module)), Err(CacheError::Corrupt { .. })));
        assert!(cache.load(&key, Some(ArtifactKind::Component)).expect("load").is_some());
    }

    #[test]
    fn group_writable_directory_is_refused() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("cache");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).expect("chmod");
        let err = Cache::open(&dir).expect_err("a group-writable cache must be refused");
        assert!(matches!(err, CacheError::Writable { mode: 0o770, .. }), "{err}");
        assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    }

    #[test]
    fn foreign_owned_directory_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root: chown needs it");
            return;
        }
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("cache");
        DirBuilder::new().mode(0o700).create(&dir).expect("mkdir");
        std::os::unix::fs::chown(&dir, Some(65534), None).expect("chown");
        let err = Cache::open(&dir).expect_err("a foreign-owned cache must be refused");
        assert!(matches!(err, CacheError::ForeignOwner { owner: 65534, .. }), "{err}");
    }

    #[test]
    fn list_and_prune() {
        let (_temp, cache) = open_temp();
        let a = key(b"a");
        let b = key(b"b");
        cache.store(&a, ArtifactKind::Module, b"aaaa").expect("store a");
        let b_path = cache.store(&b, ArtifactKind::Component, b"bbbbbbbb").expect("store b");
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options().write(true).open(&b_path).expect("open").set_modified(old).expect("age b");
        fs::write(cache.dir().join("unrelated.txt"), b"x").expect("write stray");

        let listed = cache.list().expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].module, a.module, "most recently used first");
        assert_eq!(listed[1].kind, Some(ArtifactKind::Component));
        assert!(listed.iter().all(|e| e.intact && e.engine == "0123456789abcdef"));
        assert_eq!(listed[0].size, HEADER_LEN as u64 + 4);

        let pruned = cache.prune(Some(Duration::from_secs(60))).expect("prune old");
        assert_eq!(pruned, PruneReport { removed: 1, freed_bytes: HEADER_LEN as u64 + 8 });
        assert_eq!(cache.list().expect("list").len(), 1);
        assert_eq!(cache.prune(None).expect("prune all").removed, 1);
        assert!(cache.list().expect("list").is_empty());
        assert!(cache.dir().join("unrelated.txt").exists(), "prune only removes cache files");
    }
}
