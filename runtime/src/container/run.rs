//! `run`: create, start, wait and delete in one command, forwarding signals to
//! the container; the command's exit status is the container's.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use std::os::fd::AsFd;

use super::create::{Console, create_with_console};
use super::{CreateOptions, Error, create, delete, start};
use crate::bundle::Bundle;
use crate::console::{self, HostConsole};
use crate::executor::Executor;
use crate::id::ContainerId;
use crate::state::Store;

/// The flags of `run` beyond those of `create`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The flags `run` shares with `create`.
    pub create: CreateOptions,
    /// Return once the container runs, leaving it to whoever reaps it.
    pub detach: bool,
}

/// Runs container `id`. Returns the exit status the command should end with: the
/// container's exit code, or 128+N when a signal N killed it (0 with `detach`).
pub fn run(
    store: &Store,
    id: &ContainerId,
    bundle: &Bundle,
    executor: Box<dyn Executor>,
    options: &RunOptions,
) -> Result<i32, Error> {
    // Block every signal before the init exists: none is lost between create and
    // the wait loop, SIGCHLD included. The init unblocks them for the workload.
    let mut old = SigSet::empty();
    let all = SigSet::all();
    let blocked = !options.detach;
    if blocked {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old)).map_err(|e| io(id, "block signals", e))?;
    }
    let result = run_blocked(store, id, bundle, executor, options);
    if blocked {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    result
}

fn run_blocked(
    store: &Store,
    id: &ContainerId,
    bundle: &Bundle,
    executor: Box<dyn Executor>,
    options: &RunOptions,
) -> Result<i32, Error> {
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    console::check_modes(terminal, options.detach, options.create.console_socket.is_some())?;
    if terminal && !options.detach {
        return run_relaying(store, id, bundle, executor, &options.create);
    }
    let created = create(store, id, bundle, executor, &options.create)?;
    if let Err(e) = start(store, id) {
        let _ = delete(store, id, true);
        return Err(e);
    }
    if options.detach {
        return Ok(0);
    }
    let code = wait_forwarding(created.pid).map_err(|e| io(id, "wait for the container", e));
    let deleted = delete(store, id, true);
    let code = code?;
    deleted?;
    Ok(code)
}

/// A foreground `run` of a process with a terminal: the pty's master comes
/// back to this process, which relays it to its own terminal
/// ([`console::relay`]) until the container exits.
fn run_relaying(
    store: &Store,
    id: &ContainerId,
    bundle: &Bundle,
    executor: Box<dyn Executor>,
    options: &CreateOptions,
) -> Result<i32, Error> {
    // Before anything is made: without a terminal to relay to, nothing is.
    let mut host = HostConsole::find()?;
    let (ours, theirs) = console::pair()?;
    let created = create_with_console(store, id, bundle, executor, options, Console::Relay(theirs))?;
    let master = console::receive_master(ours.as_fd());
    drop(ours);
    // The host terminal's size, before the workload starts and asks for it.
    if let Ok(master) = &master {
        let _ = host.resize(master.as_fd());
    }
    let started = master.map_err(Error::from).and_then(|master| start(store, id).map(|()| master));
    let master = match started {
        Ok(master) => master,
        Err(e) => {
            let _ = delete(store, id, true);
            return Err(e);
        }
    };
    let code = relay_until_exit(master, &mut host, created.pid);
    drop(host);
    let deleted = delete(store, id, true);
    let code = code?;
    deleted?;
    Ok(code)
}

/// Relays `master` to the caller's terminal until `pid` ends; returns its
/// status as [`wait_forwarding`] does.
pub(crate) fn relay_until_exit(master: std::os::fd::OwnedFd, host: &mut HostConsole, pid: Pid) -> Result<i32, Error> {
    let forward = |signal| {
        // The process may have just exited: ESRCH is not an error here.
        let _ = nix::sys::signal::kill(pid, signal);
    };
    Ok(console::relay(master, host, || reap(pid), forward)?)
}

/// Waits for `pid` to end, forwarding every other signal to it.
pub(crate) fn wait_forwarding(pid: Pid) -> Result<i32, nix::Error> {
    let all = SigSet::all();
    loop {
        if let Some(code) = reap(pid)? {
            return Ok(code);
        }
        match all.wait()? {
            Signal::SIGCHLD => continue,
            signal => {
                // The init may have just exited: ESRCH is not an error here.
                let _ = nix::sys::signal::kill(pid, signal);
            }
        }
    }
}

/// Reaps `pid` if it has ended.
fn reap(pid: Pid) -> Result<Option<i32>, nix::Error> {
    loop {
        return match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
            Ok(WaitStatus::Signaled(_, signal, _)) => Ok(Some(128 + signal as i32)),
            Ok(_) => Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => Err(e),
        };
    }
}

fn io(id: &ContainerId, what: &str, e: nix::Error) -> Error {
    Error::Io { id: id.clone(), what: what.to_owned(), source: e.into() }
}
