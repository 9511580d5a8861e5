//! The harness: the child that plays the container's init for one case, and
//! the parent's view of it (a sandboxed rootfs, the spawned child, its outcome).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use amphi_executors::cache::CacheConfig;
use amphi_executors::wasm::WasmExecutor;
use amphi_runtime::WaitingHandlers;
use amphi_runtime::executor::{CacheDir, ExecContext, Executor, Handover, HostDir, PrepareContext};
use oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder,
};
use serde::{Deserialize, Serialize};

pub const CASE_VAR: &str = "AMPHI_WASM_CASE";
/// The child's status when `prepare` failed (the error is in the report).
pub const PREPARE_FAILED: i32 = 200;
/// The child's status when `exec` returned an error (the error is on stderr).
pub const EXEC_FAILED: i32 = 201;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Case {
    /// The rootfs: the fixture sits at its `/app.wasm` (or `/app.wat`).
    pub rootfs: PathBuf,
    pub entrypoint: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub annotations: HashMap<String, String>,
    pub readonly_root: bool,
    pub memory_limit: Option<i64>,
    /// `RLIMIT_AS` in the spec.
    pub spec_rlimit_as: Option<u64>,
    /// `RLIMIT_AS` the child sets on itself before `prepare`.
    pub apply_rlimit_as: Option<u64>,
    pub cache: Option<PathBuf>,
    /// The file on the guest's stdin (`/dev/null` when absent).
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub report: PathBuf,
    pub prepare_only: bool,
    /// Between prepare and exec, install and remove the handlers with which
    /// the runtime's init waits at the start barrier (they replace the
    /// engine's trap handlers while it waits), as the init does.
    pub barrier_handlers: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub prepare_error: Option<String>,
    pub cache: Option<String>,
    pub prepare_us: u64,
    /// Debug-level `tracing` output of `prepare`.
    pub log: String,
    /// The child's thread count before and after `prepare`.
    pub threads_before: u64,
    pub threads_after: u64,
}

/// The `Threads:` count of `/proc/<pid>/status`.
pub fn threads(pid: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status.lines().find_map(|l| l.strip_prefix("Threads:")).expect("Threads line");
    line.trim().parse().expect("thread count")
}

pub fn play_init(case: &Case) -> i32 {
    let stdout = fs::File::create(&case.stdout).expect("stdout file");
    let stderr = fs::File::create(&case.stderr).expect("stderr file");
    let stdin = fs::File::open(case.stdin.as_deref().unwrap_or(Path::new("/dev/null"))).expect("stdin file");
    nix::unistd::dup2(stdin.as_raw_fd(), 0).expect("dup2 stdin");
    nix::unistd::dup2(stdout.as_raw_fd(), 1).expect("dup2 stdout");
    nix::unistd::dup2(stderr.as_raw_fd(), 2).expect("dup2 stderr");

    if let Some(bytes) = case.apply_rlimit_as {
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, bytes, bytes).expect("setrlimit");
    }
    let spec = spec_for(case);
    let process = spec.process().clone().expect("process");
    let rootfs_fd = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(&case.rootfs)
        .expect("open rootfs");
    let cache_config = case.cache.clone().map_or_else(CacheConfig::disabled, CacheConfig::at);
    let open_cache = || match cache_config.open_dir() {
        Ok(fd) => Ok(fd.map(|fd| HostDir { fd, path: cache_config.dir.clone().unwrap_or_default() })),
        Err(e) => Err(e.to_string()),
    };
    let ctx = PrepareContext {
        rootfs: &case.rootfs,
        rootfs_fd: rootfs_fd.as_fd(),
        process: &process,
        spec: &spec,
        cache_dir: CacheDir::new(&open_cache),
    };

    let log = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(log.clone())
        .finish();
    let mut executor = Box::new(WasmExecutor::new());
    let threads_before = threads("self");
    let started = Instant::now();
    let prepared = tracing::subscriber::with_default(subscriber, || executor.prepare(&ctx));
    let mut report = Report {
        prepare_us: started.elapsed().as_micros() as u64,
        threads_before,
        threads_after: threads("self"),
        ..Report::default()
    };
    report.log = log.text();
    match prepared {
        Ok(()) => report.cache = executor.cache_outcome().map(|o| format!("{o:?}")),
        Err(e) => report.prepare_error = Some(e.to_string()),
    }
    fs::write(&case.report, serde_json::to_vec(&report).expect("report json")).expect("write report");
    if report.prepare_error.is_some() {
        return PREPARE_FAILED;
    }
    if case.prepare_only {
        return 0;
    }
    if case.barrier_handlers {
        let waiting = WaitingHandlers::install().expect("install the barrier's handlers");
        waiting.remove().expect("remove the barrier's handlers");
    }
    nix::unistd::chroot(&case.rootfs).expect("chroot");
    nix::unistd::chdir(process.cwd()).expect("chdir");
    let handover = Handover::of_this_process(3).expect("the signal state");
    match executor.exec(&ExecContext::new(&process, &spec, handover)) {
        Ok(status) => status,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "exec failed: {e}");
            EXEC_FAILED
        }
    }
}

#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn spec_for(case: &Case) -> Spec {
    let mut args = vec![case.entrypoint.clone()];
    args.extend(case.args.iter().cloned());
    let mut process = ProcessBuilder::default().args(args).env(case.env.clone()).cwd(&case.cwd);
    if let Some(bytes) = case.spec_rlimit_as {
        let rlimit = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitAs)
            .soft(bytes)
            .hard(bytes)
            .build()
            .expect("rlimit");
        process = process.rlimits(vec![rlimit]);
    }
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(limit) = case.memory_limit {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build().expect("memory"));
    }
    SpecBuilder::default()
        .root(RootBuilder::default().path(&case.rootfs).readonly(case.readonly_root).build().expect("root"))
        .process(process.build().expect("process"))
        .linux(LinuxBuilder::default().resources(resources.build().expect("resources")).build().expect("linux"))
        .annotations(case.annotations.clone())
        .build()
        .expect("spec")
}

pub struct Sandbox {
    pub temp: tempfile::TempDir,
    pub case: Case,
}

pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub report: Report,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// `None` (and a printed reason) when the tests cannot run here.
pub fn sandbox(fixture: &str) -> Option<Sandbox> {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "the wasm executor tests need root (chroot) in CI");
        #[expect(clippy::print_stderr, reason = "a skipped test says why")]
        {
            eprintln!("skipping: the wasm executor tests need root (chroot)");
        }
        return None;
    }
    let temp = tempfile::tempdir().expect("tempdir");
    let rootfs = temp.path().join("rootfs");
    fs::create_dir(&rootfs).expect("mkdir rootfs");
    let entry_name = if fixture.ends_with(".wat") { "app.wat" } else { "app.wasm" };
    fs::copy(amphi_wasm_fixtures::path(fixture), rootfs.join(entry_name)).expect("copy fixture");
    let case = Case {
        rootfs,
        entrypoint: format!("/{entry_name}"),
        cwd: "/".to_owned(),
        stdout: temp.path().join("stdout"),
        stderr: temp.path().join("stderr"),
        report: temp.path().join("report.json"),
        ..Case::default()
    };
    Some(Sandbox { temp, case })
}

impl Sandbox {
    pub fn spawn(&self) -> Child {
        let _ = fs::remove_file(&self.case.report);
        Command::new(std::env::current_exe().expect("current exe"))
            .args(["--exact", "child_entry", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CASE_VAR, serde_json::to_string(&self.case).expect("case json"))
            .env("AMPHI_TEST_SECRET", "this must not reach the guest")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child")
    }

    pub fn run(&self) -> Outcome {
        let status = self.spawn().wait().expect("wait child");
        self.outcome(status)
    }

    pub fn outcome(&self, status: ExitStatus) -> Outcome {
        let read = |path: &Path| fs::read_to_string(path).unwrap_or_default();
        let report = fs::read(&self.case.report)
            .map(|bytes| serde_json::from_slice(&bytes).expect("report json"))
            .unwrap_or_default();
        Outcome { status, stdout: read(&self.case.stdout), stderr: read(&self.case.stderr), report }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.temp.path().join("cache")
    }
}

pub fn wait_for(path: &Path, needle: &str, child: &mut Child) -> Duration {
    let started = Instant::now();
    loop {
        if fs::read_to_string(path).unwrap_or_default().contains(needle) {
            return started.elapsed();
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("child ended ({status}) before printing {needle:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no {needle:?} in {} after 60s", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
