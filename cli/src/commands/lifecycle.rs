//! create, start, state, kill, delete, run.

use std::io::Write;

use amphi_runtime::container::parse_signal;
use amphi_runtime::container::{self, CreateOptions, RunOptions};
use amphi_runtime::state::{StateError, Store};
use amphi_runtime::{Bundle, ContainerId};
use anyhow::Context;

use super::Globals;
use crate::args::{CreateArgs, CreateFlags, DeleteArgs, IdArg, KillArgs, RunArgs};

/// The options of a bundle that loaded: the wasm cache's location is resolved
/// here, after the bundle was checked.
fn create_options(flags: &CreateFlags, globals: &Globals) -> CreateOptions {
    CreateOptions {
        pid_file: flags.pid_file.clone(),
        console_socket: flags.console_socket.clone(),
        no_pivot: flags.no_pivot,
        no_new_keyring: flags.no_new_keyring,
        preserve_fds: flags.preserve_fds,
        systemd_cgroup: globals.systemd_cgroup,
        listen_fds: super::activation::listen_fds(),
        rootless: globals.rootless,
        cache_dir: globals.cache_dir(),
    }
}

pub fn create(store: &Store, globals: &Globals, args: CreateArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let bundle = Bundle::load(&args.flags.bundle)?;
    let options = create_options(&args.flags, globals);
    let executor = amphi_executors::select(&bundle.spec);
    container::create(store, &id, &bundle, executor, &options)?;
    Ok(0)
}

pub fn run(store: &Store, globals: &Globals, args: RunArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let bundle = Bundle::load(&args.flags.bundle)?;
    let options = RunOptions { create: create_options(&args.flags, globals), detach: args.detach };
    let executor = amphi_executors::select(&bundle.spec);
    let code = container::run(store, &id, &bundle, executor, &options)?;
    Ok(exit_status(code))
}

pub fn start(store: &Store, args: IdArg) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    container::start(store, &id)?;
    Ok(0)
}

pub fn state(store: &Store, args: IdArg) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let state = container::state(store, &id)?;
    let mut out = serde_json::to_string_pretty(&state).context("encode state")?;
    out.push('\n');
    std::io::stdout().write_all(out.as_bytes()).context("write state")?;
    Ok(0)
}

pub fn kill(store: &Store, args: KillArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let signal = parse_signal(&args.signal).with_context(|| format!("invalid signal {:?}", args.signal))?;
    container::kill(store, &id, signal, args.all)?;
    Ok(0)
}

pub fn delete(store: &Store, args: DeleteArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    match container::delete(store, &id, args.force) {
        Ok(()) => Ok(0),
        // As runc: deleting what is already gone succeeds with --force.
        Err(container::Error::State(StateError::NotFound(_))) if args.force => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// A process status as the command's own exit status (0..=255).
pub fn exit_status(code: i32) -> u8 {
    u8::try_from(code & 0xff).unwrap_or(u8::MAX)
}
