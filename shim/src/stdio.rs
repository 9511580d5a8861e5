//! A process's standard streams, from what containerd hands over: FIFO
//! paths (ctr, the CRI plugin), `file://` and `binary://` log URIs, or
//! nothing (`/dev/null`).
//!
//! ## FIFOs without copying
//! Without a terminal the process gets the FIFOs themselves, so no byte passes
//! through the shim and no thread is spent on it:
//! - stdout and stderr are opened read-write: the open never blocks and a
//!   write never fails with `EPIPE` while containerd is away (restarting);
//!   the shim keeps no copy, so containerd reads end of file once the
//!   container's processes have closed them, as with the runc shim.
//! - stdin is the exception: the process reads a pipe, and a thread copies
//!   the FIFO into it. Only so does the process wait for the client's writer
//!   (a FIFO read with no writer yet is an immediate end of file) and see
//!   end of file when the client closes it, or at `CloseIO`.
//!
//! ## Terminals
//! With a terminal the pty master comes back over a console socket the shim
//! listens on; two threads copy stdin's FIFO to the master and the master to
//! stdout's FIFO. `ResizePty` sets the master's window size.
//!
//! ## Log URIs
//! `file:///path` appends stdout and stderr to the file. `binary:///path?k=v`
//! starts the logger as containerd's runc shim does: fds 3 and 4 are the read
//! ends of the process's stdout and stderr pipes, fd 5 a pipe the logger
//! closes when ready; `CONTAINER_ID` and `CONTAINER_NAMESPACE` are set and
//! each query pair becomes two arguments.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Result, ShimError};
use crate::helper::Stdio;

/// What containerd asked for.
#[derive(Debug, Clone, Default)]
pub struct IoSpec {
    /// stdin's FIFO, or empty.
    pub stdin: String,
    /// stdout's FIFO or log URI, or empty.
    pub stdout: String,
    /// stderr's FIFO or log URI, or empty.
    pub stderr: String,
    /// The process has a terminal.
    pub terminal: bool,
}

/// The shim's side of a process's streams, kept while the process lives.
#[derive(Debug, Default)]
pub struct Io {
    /// Where the stdin copy writes; taken at `CloseIO`.
    stdin: Option<StdinSink>,
    /// The pty master, once it came.
    console: Mutex<Option<Arc<OwnedFd>>>,
}

/// Streams being set up: what the helper passes on, and the console socket.
#[derive(Debug)]
pub struct Prepared {
    /// The process's stdin, stdout and stderr.
    pub stdio: Stdio,
    /// The console socket's path, for a terminal.
    pub console_socket: Option<PathBuf>,
    console: Option<Console>,
    stdin: Option<StdinSink>,
}

/// The process's end of the stdin copy: the copy writes here while it holds.
pub type StdinSink = Arc<Mutex<Option<File>>>;

#[derive(Debug)]
struct Console {
    listener: UnixListener,
    dir: PathBuf,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl IoSpec {
    /// Opens what the process gets, before the helper makes it; a console
    /// socket goes in `run_dir` (the state root: root's only).
    pub fn prepare(&self, namespace: &str, id: &str, run_dir: &Path) -> Result<Prepared> {
        let mut stdio = Stdio::default();
        let mut sink = None;
        let mut console = None;
        if self.terminal {
            console = Some(Console::listen(run_dir)?);
        } else {
            if !self.stdin.is_empty() {
                let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| ShimError::Internal(format!("pipe: {e}")))?;
                let writer: StdinSink = Arc::new(Mutex::new(Some(File::from(writer))));
                copy_stdin(&self.stdin, writer.clone())?;
                stdio.fds[0] = Some(reader);
                sink = Some(writer);
            }
            if is_binary(&self.stdout) {
                let (out, err) = start_logger(&self.stdout, namespace, id)?;
                stdio.fds[1] = Some(out);
                stdio.fds[2] = Some(err);
            } else {
                stdio.fds[1] = open_output(&self.stdout)?;
                stdio.fds[2] = open_output(&self.stderr)?;
            }
        }
        let console_socket = console.as_ref().map(|c| c.dir.join("s"));
        Ok(Prepared { stdio, console_socket, console, stdin: sink })
    }
}

impl Prepared {
    /// Once the process exists: receives the pty master (for a terminal)
    /// and starts copying; the shim keeps the returned [`Io`].
    pub fn finish(self, spec: &IoSpec) -> Result<Io> {
        let mut io = Io { stdin: self.stdin, ..Io::default() };
        if let Some(console) = self.console {
            let master = Arc::new(console.receive()?);
            *io.console.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(master.clone());
            io.stdin = copy_terminal(spec, &master)?;
        }
        Ok(io)
    }
}

impl Io {
    /// `CloseIO`: the process's stdin ends (a terminal's copy stops).
    pub fn close_stdin(&self) {
        if let Some(sink) = &self.stdin {
            sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        }
    }

    /// `ResizePty`.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let console = self.console.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(master) = console.as_ref() else {
            return Err(ShimError::FailedPrecondition("resize: the process has no terminal".into()));
        };
        let size = amphi_runtime::terminal::WinSize {
            rows: u16::try_from(height).unwrap_or(u16::MAX),
            cols: u16::try_from(width).unwrap_or(u16::MAX),
        };
        amphi_runtime::terminal::set_window_size(master.as_fd(), size)
            .map_err(|e| ShimError::Internal(format!("resize the terminal: {e}")))
    }

    /// The process exited: nothing more goes to its stdin.
    pub fn exited(&self) {
        self.close_stdin();
    }
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> ShimError {
    move |e| ShimError::InvalidArgument(format!("{what}: {e}"))
}

/// Copies stdin's FIFO into `sink` on a thread of its own: it opens the FIFO
/// (blocking until the client's writer is there) and copies until the
/// client closes it or `sink` is taken.
fn copy_stdin(path: &str, sink: StdinSink) -> Result<()> {
    let path = path.to_owned();
    spawn("stdin", move || {
        let Ok(mut from) = OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open(&path) else {
            sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut to = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(file) = to.as_mut() else { break };
            if file.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    })
}

/// Lets a stdin copy that waits for a writer in `open` go: opens `path` for
/// writing and closes it at once, so the copy's open returns and its read
/// sees end of file once the client's writer, if any, is gone too.
pub fn release_stdin(path: &str) {
    if path.is_empty() {
        return;
    }
    let _ = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path);
}

/// stdout's or stderr's target: a FIFO (read-write), a `file://` log, none.
fn open_output(target: &str) -> Result<Option<OwnedFd>> {
    if target.is_empty() {
        return Ok(None);
    }
    if let Some(path) = target.strip_prefix("file://") {
        let path = Path::new(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(format!("log {target}")))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io_error(format!("log {target}")))?;
        return Ok(Some(file.into()));
    }
    let path = target.strip_prefix("fifo://").unwrap_or(target);
    let fifo = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(io_error(format!("stdio {path}")))?;
    Ok(Some(fifo.into()))
}

fn is_binary(uri: &str) -> bool {
    uri.starts_with("binary://")
}

/// Starts a `binary://` logger; returns the write ends for stdout and stderr.
fn start_logger(uri: &str, namespace: &str, id: &str) -> Result<(OwnedFd, OwnedFd)> {
    let rest = uri.strip_prefix("binary://").unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(ShimError::InvalidArgument(format!("log {uri}: no binary path")));
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(key.to_owned());
        if !value.is_empty() {
            args.push(value.to_owned());
        }
    }
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| ShimError::Internal(format!("pipe: {e}")));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let passed = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut command = std::process::Command::new(path);
    command
        .args(&args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: runs in the forked child before execve and calls only dup2 and
    // fcntl, which are async-signal-safe; it touches no memory but `passed`.
    unsafe {
        command.pre_exec(move || {
            for (i, fd) in passed.iter().enumerate() {
                let target = 3 + i as i32;
                if *fd == target {
                    if libc::fcntl(target, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(*fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
    };
    command.spawn().map_err(io_error(format!("log {uri}: start {path}")))?;
    drop((out_r, err_r, ready_w));
    // The logger closes fd 5 once it reads: wait for that, up to 10 s.
    let mut ready = File::from(ready_r);
    set_nonblocking(&ready).map_err(io_error(format!("log {uri}")))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut byte = [0u8; 1];
    loop {
        match ready.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(ShimError::Internal(format!("log {uri}: the logger did not get ready in 10 s")));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(ShimError::Internal(format!("log {uri}: {e}"))),
        }
    }
    Ok((out_w, err_w))
}

impl Console {
    fn listen(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join(format!(".console-{}-{}", std::process::id(), next_console()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ShimError::Internal(format!("console socket dir {}: {e}", dir.display())))?;
        let listener = UnixListener::bind(dir.join("s"))
            .map_err(|e| ShimError::Internal(format!("console socket {}: {e}", dir.display())));
        match listener {
            Ok(listener) => Ok(Self { listener, dir }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// The master the runtime sent while making the process.
    fn receive(self) -> Result<OwnedFd> {
        self.listener.set_nonblocking(true).map_err(|e| ShimError::Internal(format!("console socket: {e}")))?;
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| ShimError::Internal(format!("console socket: no terminal came: {e}")))?;
        stream.set_nonblocking(false).map_err(|e| ShimError::Internal(format!("console socket: {e}")))?;
        let mut buf = [0u8; 256];
        let (_, fds) = amphi_runtime::terminal::recv_with_fds(stream.as_fd(), &mut buf, 1)
            .map_err(|e| ShimError::Internal(format!("console socket: {e}")))?;
        fds.into_iter().next().ok_or_else(|| ShimError::Internal("console socket: no pty master came".into()))
    }
}

fn next_console() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Starts the copies between a terminal's master and the FIFOs; returns
/// the stdin copy's sink.
fn copy_terminal(spec: &IoSpec, master: &Arc<OwnedFd>) -> Result<Option<StdinSink>> {
    let dup = |what: &str| {
        master.try_clone().map(File::from).map_err(|e| ShimError::Internal(format!("terminal {what}: {e}")))
    };
    if let Some(out) = open_output(&spec.stdout)? {
        let mut from = dup("output")?;
        spawn("tty-out", move || {
            let mut to = File::from(out);
            let mut buf = [0u8; 8192];
            // EIO once the last process holding the slave has gone.
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        })?;
    }
    if spec.stdin.is_empty() {
        return Ok(None);
    }
    let sink: StdinSink = Arc::new(Mutex::new(Some(dup("input")?)));
    copy_stdin(&spec.stdin, sink.clone())?;
    Ok(Some(sink))
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(64 * 1024)
        .spawn(body)
        .map(drop)
        .map_err(|e| ShimError::Internal(format!("start a copy thread: {e}")))
}

fn set_nonblocking(file: &File) -> std::io::Result<()> {
    set_flag(file, true)
}

fn set_flag(file: &File, nonblocking: bool) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(file.as_raw_fd(), FcntlArg::F_GETFL)?);
    let flags = if nonblocking { flags | OFlag::O_NONBLOCK } else { flags & !OFlag::O_NONBLOCK };
    fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}
