//! The WASI context, granted from the spec and nothing else.
//!
//! | WASI | from |
//! |---|---|
//! | arguments | `process.args`, `argv[0]` as given |
//! | environment | `process.env` (`KEY=VALUE`; an entry without `=` is `KEY` with an empty value), with `HOME` from the container's `/etc/passwd` when it has none (the runtime adds it before `prepare`, as for a native workload); never the runtime's own environment |
//! | stdin, stdout, stderr | the process's fds 0, 1, 2, whatever they are (pipes, a pty, a terminal, `/dev/null`); a closed fd becomes an empty stream |
//! | preopened directories | see below |
//! | initial cwd (WASI 0.2) | `process.cwd` |
//! | clocks, random | the host's |
//! | sockets, name lookup (WASI 0.2) | TCP, UDP and `ip-name-lookup`, in the container's network namespace (the process is in it) |
//!
//! ## Preopens
//!
//! By default the guest gets the process's cwd as `.` and the container's `/` as
//! `/`, both read-only when `root.readonly` is set. The order matters to
//! wasi-libc (C, and Rust's std): it strips the leading `/` or `./` of preopen
//! names, so `.` and `/` both become the empty prefix, and of equal prefixes the
//! last preopen wins. With `/` last, absolute paths reach the container's root
//! as they should. wasi-libc resolves a relative path against its own cwd, which
//! starts at `/` (it cannot be set from outside), so for such guests a relative
//! path is read from the root too; guests that use the `.` preopen directly, and
//! WASI 0.2 guests that read `initial-cwd`, see the real cwd. The annotation
//! `org.amphi.wasm.preopens` narrows or extends that set:
//!
//! ```text
//! value := ["+"] [entry ("," entry)*]
//! entry := PATH [":" [GUEST] [":" MODE]]
//! MODE  := "ro" | "rw"
//! ```
//!
//! - Without the leading `+` the list *replaces* the defaults (an empty value
//!   preopens nothing); with it the list is *added* to them.
//! - `PATH` is an absolute path in the container, or `.` for the process's cwd.
//! - `GUEST` is the name the guest sees; empty or absent means the same as `PATH`.
//! - `MODE` defaults to `rw`; `ro` lets the guest read but not create, write or
//!   remove anything beneath (the mount's own flags apply as well).
//!
//! Examples: `/data:/data:ro,/tmp` (only those two), `+/data::ro` (the defaults
//! and `/data` read-only), `.` (only the cwd). Paths may contain neither `,` nor
//! `:`. Every `PATH` must be a directory in the container when `create` runs, or
//! `create` fails naming it.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};
use wasmtime_wasi::cli::{InputFile, IsTerminal, OutputFile, StdinStream, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::WasmError;

/// The annotation that narrows or extends the guest's preopened directories.
pub const PREOPENS_ANNOTATION: &str = "org.amphi.wasm.preopens";

/// One preopened directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The directory, as a path in the container.
    pub path: PathBuf,
    /// Its name in the guest.
    pub guest: String,
    pub read_only: bool,
}

/// The preopens for `process` under `spec`: the defaults, changed by the
/// annotation when present.
pub fn preopens(spec: &Spec, process: &Process) -> Result<Vec<Preopen>, WasmError> {
    let root_read_only = spec.root().as_ref().and_then(|root| root.readonly()).unwrap_or(false);
    let cwd = process.cwd();
    let defaults = || {
        vec![
            Preopen { path: cwd.clone(), guest: ".".to_owned(), read_only: root_read_only },
            Preopen { path: PathBuf::from("/"), guest: "/".to_owned(), read_only: root_read_only },
        ]
    };
    let annotation = spec.annotations().as_ref().and_then(|map: &HashMap<String, String>| map.get(PREOPENS_ANNOTATION));
    let Some(value) = annotation else {
        return Ok(defaults());
    };
    let (mut list, entries) = match value.trim().strip_prefix('+') {
        Some(rest) => (defaults(), rest),
        None => (Vec::new(), value.trim()),
    };
    for entry in entries.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        list.push(parse_entry(entry, cwd)?);
    }
    Ok(list)
}

fn parse_entry(entry: &str, cwd: &Path) -> Result<Preopen, WasmError> {
    let bad = |reason: &str| WasmError::Preopen { entry: entry.to_owned(), reason: reason.to_owned() };
    let mut parts = entry.split(':');
    let path = parts.next().unwrap_or_default();
    let guest = parts.next().unwrap_or_default();
    let mode = parts.next().unwrap_or("rw");
    if parts.next().is_some() {
        return Err(bad("too many ':' (PATH[:GUEST[:ro|rw]])"));
    }
    let read_only = match mode {
        "ro" => true,
        "rw" | "" => false,
        _ => return Err(bad("mode must be ro or rw")),
    };
    let (path, default_guest) = match path {
        "." => (cwd.to_owned(), "."),
        p if p.starts_with('/') => (PathBuf::from(p), p),
        _ => return Err(bad("the path must be absolute, or . for the cwd")),
    };
    let guest = if guest.is_empty() { default_guest } else { guest };
    Ok(Preopen { path, guest: guest.to_owned(), read_only })
}

/// Seeds this thread's random generator now, in `prepare`, while the host's
/// `/dev/urandom` is reachable. wasmtime-wasi seeds every WASI context from it;
/// in a static binary the `getrandom` crate cannot find glibc's `getrandom`
/// through `dlsym` and reads `/dev/urandom` instead (keeping the descriptor open
/// for later reseeds), which a container without that device would lack at
/// `exec`.
pub fn seed_random() {
    drop(wasmtime_wasi::random::thread_rng());
}

/// Splits `process.env` into pairs.
pub fn env_pairs(process: &Process) -> Vec<(String, String)> {
    process
        .env()
        .iter()
        .flatten()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (entry.clone(), String::new()),
        })
        .collect()
}

/// Builds the WASI context for `process`: call after `pivot_root`, so the
/// preopens' paths are the container's.
pub fn context(process: &Process, preopens: &[Preopen]) -> Result<WasiCtxBuilder, WasmError> {
    let mut builder = WasiCtxBuilder::new();
    builder.args(process.args().as_deref().unwrap_or_default());
    builder.envs(&env_pairs(process));
    if let Some(stdin) = HostStdio::dup(std::io::stdin().as_fd()) {
        builder.stdin(Stdin(stdin.into_stream(InputFile::new)));
    }
    if let Some(stdout) = HostStdio::dup(std::io::stdout().as_fd()) {
        builder.stdout(Stdout(stdout.into_stream(OutputFile::new)));
    }
    if let Some(stderr) = HostStdio::dup(std::io::stderr().as_fd()) {
        builder.stderr(Stdout(stderr.into_stream(OutputFile::new)));
    }
    // File operations block this thread instead of a tokio blocking-pool thread:
    // the workload stays single-threaded.
    builder.allow_blocking_current_thread(true);
    for preopen in preopens {
        let perms = if preopen.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
        builder
            .preopened_dir(&preopen.path, &preopen.guest, perms)
            .map_err(|e| WasmError::OpenPreopen { path: preopen.path.clone(), reason: format!("{e:#}") })?;
    }
    builder.initial_cwd(process.cwd().to_string_lossy());
    builder.inherit_network();
    builder.allow_tcp(true);
    builder.allow_udp(true);
    builder.allow_ip_name_lookup(true);
    Ok(builder)
}

/// A duplicate of one of the process's standard fds, and whether it is a terminal.
struct HostStdio {
    file: File,
    terminal: bool,
}

impl HostStdio {
    fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Option<Self> {
        let terminal = nix::unistd::isatty(fd.as_raw_fd()).unwrap_or(false);
        let owned = fd.try_clone_to_owned().ok()?;
        Some(Self { file: File::from(owned), terminal })
    }

    fn into_stream<S>(self, wrap: impl FnOnce(File) -> S) -> WithTerminal<S> {
        WithTerminal { stream: wrap(self.file), terminal: self.terminal }
    }
}

/// A stream that reports the real fd's `isatty` (wasmtime-wasi's file streams
/// always say "not a terminal").
struct WithTerminal<S> {
    stream: S,
    terminal: bool,
}

struct Stdin(WithTerminal<InputFile>);
struct Stdout(WithTerminal<OutputFile>);

impl IsTerminal for Stdin {
    fn is_terminal(&self) -> bool {
        self.0.terminal
    }
}

impl StdinStream for Stdin {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        self.0.stream.async_stream()
    }

    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::InputStream> {
        self.0.stream.p2_stream()
    }
}

impl IsTerminal for Stdout {
    fn is_terminal(&self) -> bool {
        self.0.terminal
    }
}

impl StdoutStream for Stdout {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        self.0.stream.async_stream()
    }

    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        self.0.stream.p2_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{ProcessBuilder, RootBuilder, SpecBuilder};

    fn spec(readonly: bool, annotation: Option<&str>) -> (Spec, Process) {
        let process = ProcessBuilder::default()
            .args(vec!["/app.wasm".to_owned()])
            .cwd("/work")
            .env(vec!["A=1".to_owned(), "B=x=y".to_owned(), "C".to_owned()])
            .build()
            .expect("process");
        let mut annotations = HashMap::new();
        if let Some(value) = annotation {
            annotations.insert(PREOPENS_ANNOTATION.to_owned(), value.to_owned());
        }
        let spec = SpecBuilder::default()
            .root(RootBuilder::default().path("rootfs").readonly(readonly).build().expect("root"))
            .process(process.clone())
            .annotations(annotations)
            .build()
            .expect("spec");
        (spec, process)
    }

    fn preopen(path: &str, guest: &str, read_only: bool) -> Preopen {
        Preopen { path: PathBuf::from(path), guest: guest.to_owned(), read_only }
    }

    #[test]
    fn defaults_are_root_and_cwd() {
        let (spec, process) = spec(false, None);
        assert_eq!(
            preopens(&spec, &process).expect("preopens"),
            vec![preopen("/work", ".", false), preopen("/", "/", false)]
        );
    }

    #[test]
    fn readonly_root_makes_the_defaults_read_only() {
        let (spec, process) = spec(true, None);
        assert!(preopens(&spec, &process).expect("preopens").iter().all(|p| p.read_only));
    }

    #[test]
    fn annotation_replaces_the_defaults() {
        let (spec, process) = spec(false, Some("/data:/data:ro, /tmp, .::ro"));
        assert_eq!(
            preopens(&spec, &process).expect("preopens"),
            vec![preopen("/data", "/data", true), preopen("/tmp", "/tmp", false), preopen("/work", ".", true)]
        );
    }

    #[test]
    fn plus_extends_the_defaults() {
        let (spec, process) = spec(false, Some("+/data:/mnt/data"));
        let list = preopens(&spec, &process).expect("preopens");
        assert_eq!(list.len(), 3);
        assert_eq!(list[2], preopen("/data", "/mnt/data", false));
    }

    #[test]
    fn empty_annotation_preopens_nothing() {
        let (spec, process) = spec(false, Some(""));
        assert!(preopens(&spec, &process).expect("preopens").is_empty());
    }

    #[test]
    fn bad_entries_are_named() {
        for (value, reason) in [("data", "absolute"), ("/data:/d:rx", "ro or rw"), ("/data:/d:ro:extra", "too many")] {
            let (spec, process) = spec(false, Some(value));
            let err = preopens(&spec, &process).expect_err(value).to_string();
            assert!(err.contains(PREOPENS_ANNOTATION) && err.contains(reason), "{value}: {err}");
        }
    }

    #[test]
    fn env_comes_from_the_process_only() {
        let (_, process) = spec(false, None);
        assert_eq!(
            env_pairs(&process),
            vec![("A".to_owned(), "1".to_owned()), ("B".to_owned(), "x=y".to_owned()), ("C".to_owned(), String::new())]
        );
    }
}
