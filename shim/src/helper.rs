//! The helper: the one process that clones container stages for the shim.
//!
//! ## Why a helper
//! The shim is multi-threaded (ttrpc's worker threads, the reaper, the event
//! publisher), and a container stage must never be cloned from a
//! multi-threaded process: after `fork` only async-signal-safe work is allowed
//! until `execve`, and amphi's stages do far more than that (they are amphi,
//! and a wasm init never calls `execve` at all). So before the shim starts its
//! first thread, [`Helper::fork`] forks a helper. The helper stays
//! single-threaded for its whole life and does one thing: for each request it
//! forks a **worker**, a fresh single-threaded copy of itself that calls the
//! runtime's verb exactly as `amphi create` (`start`, `exec`, `delete`) would,
//! sends one [`Reply`] and exits. The worker is where the stages are cloned.
//!
//! ```text
//! containerd ──ttrpc──▶ shim (threads)          subreaper of the containers
//!                        │  request + stdio fds (SOCK_SEQPACKET, SCM_RIGHTS)
//!                        ▼
//!                       helper (1 thread) ──fork──▶ worker ──clone──▶ stages ▶ init
//! ```
//! The init is the worker's child (`CLONE_PARENT` keeps it so), and the worker
//! exits only after the shim has read its reply and recorded the pid: then the
//! init is reparented to the shim, the nearest subreaper (the helper is not
//! one), and its exit reaches the shim's reaper, which already knows the pid.
//! No exit can be reaped before its pid is known, and none is reaped twice.
//!
//! Verbs that clone no process (state, kill, pause, resume, update, stats,
//! pids, the OOM watch) run in the shim itself, through the same libraries.
//!
//! ## What the helper keeps
//! It is forked first thing in `main`: before containerd's shim library
//! installs its signal handlers (a signal library's registry copied into the
//! helper would make a wasm service's own SIGTERM handler a no-op) and before
//! the shim opens its listening socket, log or containerd's connection. It
//! closes every descriptor it inherited but its end of the request socket,
//! points its stdio at `/dev/null` (the shim's stdout is the pipe `shim start`
//! reads the address from until the server runs), and dies with the shim
//! (`PR_SET_PDEATHSIG`). Workers are reaped
//! by the kernel (`SIGCHLD` ignored in the helper); each worker puts `SIGCHLD`
//! back to default first, as the runtime waits for its own stages.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction, sigprocmask};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use nix::unistd::{ForkResult, Pid, fork};
use serde::{Deserialize, Serialize};

use crate::error::ShimError;

/// The largest request or reply (a Process JSON with its env fits many times).
const MAX_MESSAGE: usize = 256 * 1024;

/// One rootfs mount containerd hands over (the snapshot).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootfsMount {
    /// The filesystem type (`overlay`, `bind`…).
    pub kind: String,
    /// The source.
    pub source: String,
    /// Its options, flags and filesystem data alike.
    pub options: Vec<String>,
}

/// Where a container's state lives and how it is made: the shim's settings
/// for this task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Place {
    /// The runtime's state root (the shim's `root` plus the namespace).
    pub root: PathBuf,
    /// The container id.
    pub id: String,
    /// The wasm compile cache, if any.
    pub cache_dir: Option<PathBuf>,
}

/// What a worker does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Mount the rootfs, then `create` the container from `bundle`.
    Create {
        /// The container.
        place: Place,
        /// The bundle directory.
        bundle: PathBuf,
        /// The snapshot's mounts, mounted on `bundle/rootfs` first.
        rootfs: Vec<RootfsMount>,
        /// `linux.cgroupsPath` is `slice:prefix:name`.
        systemd_cgroup: bool,
        /// Where the pty master goes, for a terminal.
        console_socket: Option<PathBuf>,
    },
    /// `start`: lift the barrier (and run the poststart hooks).
    Start {
        /// The container.
        place: Place,
    },
    /// `exec --detach` of `process`; the worker answers its pid.
    Exec {
        /// The container.
        place: Place,
        /// The process (containerd's exec spec).
        process: Box<oci_spec::runtime::Process>,
        /// Where the pty master goes, for a terminal.
        console_socket: Option<PathBuf>,
        /// Where the runtime writes the pid.
        pid_file: PathBuf,
    },
    /// `delete` (with `force`: kill first), then unmount `bundle/rootfs`.
    Delete {
        /// The container.
        place: Place,
        /// Kill what still runs first.
        force: bool,
        /// The bundle whose `rootfs` containerd's snapshot was mounted on.
        bundle: PathBuf,
    },
}

/// A worker's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    /// Done; the pid of the process made, if any.
    Done(Option<i32>),
    /// Failed, with the runtime's one-line error.
    Failed(String),
}

/// The standard streams a worker passes on to the process it makes.
#[derive(Debug, Default)]
pub struct Stdio {
    /// The process's stdin, stdout and stderr (`/dev/null` where `None`).
    pub fds: [Option<OwnedFd>; 3],
}

/// A worker's reply, and the worker's life: it exits once this is dropped.
#[derive(Debug)]
pub struct Answer {
    /// What the worker said.
    pub reply: Reply,
    _worker: OwnedFd,
}

/// The shim's end of the helper.
#[derive(Debug)]
pub struct Helper {
    socket: Mutex<OwnedFd>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    request: Request,
    /// Which of stdin, stdout, stderr follow the reply socket in the fds.
    stdio: [bool; 3],
}

impl Helper {
    /// Forks the helper. Call it while the process is single-threaded and
    /// before any signal handler is installed.
    pub fn fork() -> Result<Self, ShimError> {
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(io("socketpair"))?;
        // SAFETY: the shim calls this first thing in `main`, before any
        // thread exists, so the child may run Rust code.
        match unsafe { fork() }.map_err(io("fork the helper"))? {
            ForkResult::Child => {
                drop(ours);
                serve(theirs)
            }
            ForkResult::Parent { .. } => Ok(Self { socket: Mutex::new(ours) }),
        }
    }

    /// Sends `request` to a new worker with `stdio`, and waits for its reply.
    pub fn call(&self, request: Request, stdio: Stdio) -> Result<Answer, ShimError> {
        let (mine, worker) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(io("socketpair"))?;
        let present = [stdio.fds[0].is_some(), stdio.fds[1].is_some(), stdio.fds[2].is_some()];
        let body = serde_json::to_vec(&Envelope { request, stdio: present })
            .map_err(|e| ShimError::Internal(format!("encode a helper request: {e}")))?;
        let mut fds: Vec<RawFd> = vec![worker.as_raw_fd()];
        fds.extend(stdio.fds.iter().flatten().map(AsRawFd::as_raw_fd));
        {
            let socket = self.socket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let cmsg = [ControlMessage::ScmRights(&fds)];
            sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(&body)], &cmsg, MsgFlags::empty(), None)
                .map_err(|e| ShimError::Internal(format!("the helper is gone: {e}")))?;
        }
        drop(worker);
        drop(stdio);
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            match nix::unistd::read(mine.as_raw_fd(), &mut buf) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(io("read a worker's reply"))?,
            }
        };
        if n == 0 {
            return Err(ShimError::Internal("a worker ended without a reply".into()));
        }
        let reply = serde_json::from_slice(&buf[..n])
            .map_err(|e| ShimError::Internal(format!("decode a worker's reply: {e}")))?;
        Ok(Answer { reply, _worker: mine })
    }
}

fn io(what: &'static str) -> impl Fn(nix::errno::Errno) -> ShimError {
    move |e| ShimError::Internal(format!("{what}: {e}"))
}

/// The helper's life: one worker per request, until the shim goes.
fn serve(socket: OwnedFd) -> ! {
    detach_from_shim(socket.as_fd());
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Some((len, fds)) = receive(socket.as_fd(), &mut buf) else { exit(0) };
        // SAFETY: the helper is single-threaded, so the worker may run any code.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(socket);
                work(&buf[..len], fds)
            }
            // The worker has its copies; a failed fork drops the request,
            // and the shim reads EOF on the reply socket.
            Ok(ForkResult::Parent { .. }) | Err(_) => drop(fds),
        }
    }
}

/// Receives one request and its descriptors; `None` once the shim is gone.
fn receive(socket: BorrowedFd<'_>, buf: &mut [u8]) -> Option<(usize, Vec<OwnedFd>)> {
    loop {
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(msg) => msg,
        };
        let len = msg.bytes;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: SCM_RIGHTS gave this process these new descriptors;
                // each is owned once, here.
                fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        if len == 0 {
            return None;
        }
        return Some((len, fds));
    }
}

/// Cuts the helper loose from the shim's descriptors and stdio.
fn detach_from_shim(keep: BorrowedFd<'_>) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and changes only
    // this process's attributes.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if nix::unistd::getppid() == Pid::from_raw(1) {
        exit(0);
    }
    let keep = keep.as_raw_fd();
    let inherited: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in inherited.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: closing a descriptor this process inherited and never uses
        // (nothing in the helper owns it); the directory's own fd is already
        // closed, and a failure only leaves it open.
        unsafe { libc::close(fd) };
    }
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for target in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which only this
            // process uses.
            unsafe { libc::dup2(null.as_raw_fd(), target) };
        }
    }
    // No handler exists yet (main forks the helper first): only SIGCHLD
    // changes.
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring SIGCHLD runs no handler code; the kernel reaps workers.
    let _ = unsafe { sigaction(Signal::SIGCHLD, &ignore) };
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// A worker: decodes the request, does it, replies, waits for the shim to
/// take the reply, exits.
fn work(body: &[u8], mut fds: Vec<OwnedFd>) -> ! {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: the default disposition runs no handler code; the runtime waits
    // for its own stages, which an ignored SIGCHLD would forbid.
    let _ = unsafe { sigaction(Signal::SIGCHLD, &default) };
    if fds.is_empty() {
        exit(1);
    }
    let reply_socket = fds.remove(0);
    let reply = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => {
            let mut rest = fds.into_iter();
            let mut stdio = Stdio::default();
            for (slot, present) in stdio.fds.iter_mut().zip(envelope.stdio) {
                if present {
                    *slot = rest.next();
                }
            }
            crate::worker::run(envelope.request, stdio)
        }
        Err(e) => Reply::Failed(format!("a request the helper cannot read: {e}")),
    };
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    let _ = nix::unistd::write(&reply_socket, &body);
    // The shim closes its end once it has recorded the pid.
    let mut byte = [0u8; 1];
    while let Err(nix::errno::Errno::EINTR) = nix::unistd::read(reply_socket.as_raw_fd(), &mut byte) {}
    exit(0)
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends this process at once; a helper or worker has nothing
    // to flush that the shim needs (its stdio is /dev/null or the container's).
    unsafe { libc::_exit(code) }
}
