//! The process's terminal, made inside the container (`process.terminal`).
//!
//! Runs in the init after `pivot_root` (before the read-only and masked paths)
//! and in an exec'd process after it joined the container's mount namespace, so
//! that `/dev/ptmx` is the container's devpts instance (`newinstance`, with
//! `ptmxmode=0666`, as the default spec mounts it). In order:
//!
//! 1. `setsid`: the process leads a new session, which is what may own a
//!    controlling terminal.
//! 2. Open `/dev/ptmx` inside the container's root and unlock the pty; open its
//!    slave through the master. Both must be devpts files (`fstatfs`, file
//!    type): the image decides where its paths lead, not what they are.
//! 3. `process.consoleSize` goes on the pty.
//! 4. The init only: the slave is bound onto `/dev/console` (made if missing),
//!    as the runtime-spec asks of a container with a terminal. The bind is made
//!    by descriptor, from the slave the process holds onto `/dev/console` opened
//!    without following a symlink: no path under `/dev/pts` is ever mounted
//!    (CVE-2025-52565).
//! 5. The master leaves over the console socket ([`crate::console`]); the
//!    process keeps no copy of it or of the socket.
//! 6. The slave becomes fds 0, 1 and 2 and the controlling terminal, owned by
//!    the process's uid (as runc does it, so a non-root process can use it).

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Uid;

use super::{Stage, StageFailure};
use crate::plan::ProcessPlan;
use crate::sys::inroot::{FileKind, VerifiedOpenError, create_or_open_entry, open_in_root};
use crate::sys::mount::{attach_tree, clone_tree};
use crate::sys::pty::{is_devpts_slave, open_master, open_peer, set_controlling_terminal, set_window_size};

const CONSOLE: &str = "/dev/console";

/// Gives the calling process a new pty as its stdio and controlling terminal and
/// sends the master over `console_socket`. With `mount_console` (the init) the
/// slave is also bound onto `/dev/console`.
pub(crate) fn attach(
    console_socket: OwnedFd,
    plan: &ProcessPlan,
    mount_console: bool,
    stage: Stage,
) -> Result<(), StageFailure> {
    let fail = |what: &str, errno: Option<i32>, cause: String| {
        StageFailure::new(stage, "terminal", errno, format!("process.terminal: {what}: {cause}"))
    };
    let sys = |what: &'static str| move |e: std::io::Error| fail(what, e.raw_os_error(), crate::sys::errno_text(&e));
    let nix = |what: &'static str| move |e: nix::Error| fail(what, Some(e as i32), e.desc().to_lowercase());

    nix::unistd::setsid().map_err(nix("setsid"))?;
    // After pivot_root (or setns into the container's mount namespace) "/" is
    // the container's root.
    let root = open_root().map_err(sys("open the container's root"))?;
    let master = open_master(root.as_fd()).map_err(|e| {
        let errno = match &e.source {
            VerifiedOpenError::Io(io) => io.raw_os_error(),
            _ => None,
        };
        StageFailure::new(stage, "terminal", errno, format!("process.terminal: {e}"))
    })?;
    let slave = open_peer(master.as_fd()).map_err(sys("open the pty's slave"))?;
    let kind = FileKind::of(slave.as_fd()).map_err(sys("look at the pty's slave"))?;
    if !is_devpts_slave(&kind) {
        let found = format!("not a devpts pty (a {})", kind.describe());
        return Err(fail("the pty's slave", None, found));
    }
    if let Some(size) = plan.console_size {
        set_window_size(master.as_fd(), size).map_err(sys("process.consoleSize"))?;
    }
    if mount_console {
        bind_console(root.as_fd(), slave.as_fd()).map_err(|e| fail(CONSOLE, e.errno(), e.to_string()))?;
    }
    drop(root);
    crate::console::send_master(console_socket.as_fd(), master.as_fd()).map_err(nix("send the pty master"))?;
    drop(master);
    drop(console_socket);

    for fd in 0..=2 {
        nix::unistd::dup2(slave.as_raw_fd(), fd).map_err(nix("make the pty stdio"))?;
    }
    drop(slave);
    // fd 0 is the slave now, open for the rest of the process's life.
    let stdin = std::io::stdin();
    set_controlling_terminal(stdin.as_fd()).map_err(sys("make the pty the controlling terminal"))?;
    if plan.identity.uid != 0 {
        nix::unistd::fchown(0, Some(Uid::from_raw(plan.identity.uid)), None)
            .map_err(nix("give the pty to process.user.uid"))?;
    }
    Ok(())
}

/// Why the pty could not be bound onto `/dev/console`.
#[derive(Debug, thiserror::Error)]
enum ConsoleError {
    #[error("{step}: {}", .errno.desc().to_lowercase())]
    Sys { step: &'static str, errno: Errno },
    #[error("is a {found}, not a file or device the console can be bound onto")]
    Refused { found: String },
}

impl ConsoleError {
    fn errno(&self) -> Option<i32> {
        match self {
            Self::Sys { errno, .. } => Some(*errno as i32),
            Self::Refused { .. } => None,
        }
    }
}

/// Binds `slave` (a verified pty slave) onto `/dev/console` inside `root`.
/// The target is opened without following a symlink at its last component
/// (made first, `O_EXCL`, when nothing is there) and must be a regular file or
/// a char device; the bind is a copy of the slave's own mount attached to that
/// descriptor, so no path is looked up by the mount.
fn bind_console(root: BorrowedFd<'_>, slave: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let sys = |step: &'static str| move |errno: Errno| ConsoleError::Sys { step, errno };
    let io = |step: &'static str| move |e: std::io::Error| sys(step)(errno_of(&e));
    let dev = open_in_root(root, Path::new("/dev"), OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(io("open /dev"))?;
    let target = create_or_open_entry(dev.as_fd(), OsStr::new("console"), 0o600).map_err(io("open"))?;
    let kind = FileKind::of(target.as_fd()).map_err(io("look at it"))?;
    if !kind.is_regular() && !kind.is_char_device() {
        return Err(ConsoleError::Refused { found: kind.describe() });
    }
    let tree = clone_tree(slave, false).map_err(io("copy the pty's mount"))?;
    attach_tree(tree.as_fd(), target.as_fd()).map_err(io("bind the pty onto it"))
}

/// `/` opened `O_PATH`: the root every container path is resolved in.
fn open_root() -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open("/")?;
    Ok(OwnedFd::from(root))
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
