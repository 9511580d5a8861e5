//! The process's terminal, made inside the container (`process.terminal`).
//!
//! Runs in the init after `pivot_root` (before the read-only and masked paths)
//! and in an exec'd process after it joined the container's mount namespace, so
//! that `/dev/ptmx` is the container's devpts instance (`newinstance`, with
//! `ptmxmode=0666`, as the default spec mounts it). In order:
//!
//! 1. `setsid`: the process leads a new session, which is what may own a
//!    controlling terminal.
//! 2. Open `/dev/ptmx` and unlock the pty; open its slave through the master.
//! 3. `process.consoleSize` goes on the pty.
//! 4. The init only: the slave is bound onto `/dev/console` (made if missing),
//!    as the runtime-spec asks of a container with a terminal.
//! 5. The master leaves over the console socket ([`crate::console`]); the
//!    process keeps no copy of it or of the socket.
//! 6. The slave becomes fds 0, 1 and 2 and the controlling terminal, owned by
//!    the process's uid (as runc does it, so a non-root process can use it).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::mount::MsFlags;
use nix::unistd::Uid;

use super::{Stage, StageFailure};
use crate::plan::ProcessPlan;
use crate::sys::pty::{open_master, open_peer, pty_number, set_controlling_terminal, set_window_size};

const PTMX: &str = "/dev/ptmx";
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
    let sys = |what: &'static str| move |e: std::io::Error| fail(what, e.raw_os_error(), lower(&e));
    let nix = |what: &'static str| move |e: nix::Error| fail(what, Some(e as i32), e.desc().to_lowercase());

    nix::unistd::setsid().map_err(nix("setsid"))?;
    let master = open_master(Path::new(PTMX)).map_err(sys("open /dev/ptmx"))?;
    let slave = open_peer(master.as_fd()).map_err(sys("open the pty's slave"))?;
    if let Some(size) = plan.console_size {
        set_window_size(master.as_fd(), size).map_err(sys("process.consoleSize"))?;
    }
    if mount_console {
        let number = pty_number(master.as_fd()).map_err(sys("read the pty's number"))?;
        bind_console(&format!("/dev/pts/{number}"))
            .map_err(|(what, e)| fail(what, Some(e as i32), e.desc().to_lowercase()))?;
    }
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

/// Binds the pty slave at `slave` onto `/dev/console`, making an empty file
/// there first if nothing is there (`O_EXCL`: an existing node or symlink is
/// never opened). Runs after pivot_root: both paths are the container's.
fn bind_console(slave: &str) -> Result<(), (&'static str, nix::Error)> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(CONSOLE);
    match created {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(("create /dev/console", nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))),
    }
    nix::mount::mount(Some(slave), CONSOLE, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| ("bind the pty onto /dev/console", e))
}

/// An io error's text as amphi's messages read: lowercase, without the
/// `(os error N)` suffix.
fn lower(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_lowercase(),
        None => e.to_string(),
    }
}
