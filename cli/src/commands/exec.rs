//! exec: a new process in a running container.

use amphi_runtime::ContainerId;
use amphi_runtime::container::{self, ExecOptions};
use amphi_runtime::state::Store;
use anyhow::Context;
use oci_spec::runtime::Process;

use super::Globals;
use super::lifecycle::exit_status;
use crate::args::ExecArgs;

pub fn exec(store: &Store, globals: &Globals, args: ExecArgs) -> anyhow::Result<u8> {
    let id = ContainerId::new(&args.id)?;
    let process = args.process.as_deref().map(read_process).transpose()?;
    if process.is_none() && args.command.is_empty() {
        anyhow::bail!("exec: name a command to run, or pass --process FILE");
    }
    let user = args.user.as_deref().map(parse_user).transpose()?;
    let options = ExecOptions {
        process,
        args: args.command,
        env: args.env,
        cwd: args.cwd,
        user,
        additional_gids: args.additional_gids,
        caps: args.cap,
        no_new_privs: args.no_new_privs,
        tty: args.tty,
        detach: args.detach,
        pid_file: args.pid_file,
        console_socket: args.console_socket,
        preserve_fds: args.preserve_fds,
        cache_dir: globals.cache_dir(),
    };
    let choose = |spec: &oci_spec::runtime::Spec, _process: &Process| amphi_executors::select::select_for_exec(spec);
    let code = container::exec(store, &id, &options, &choose)?;
    Ok(exit_status(code))
}

/// Reads a `--process` file: a runtime-spec Process JSON.
fn read_process(path: &std::path::Path) -> anyhow::Result<Process> {
    let bytes = std::fs::read(path).with_context(|| format!("--process {}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let process: Process = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| anyhow::anyhow!("--process {}: not a Process JSON: {e}", path.display()))?;
    // The rules `create` applies to config.json's process, named in this file.
    amphi_runtime::plan::process::check(&process)
        .map_err(|e| anyhow::anyhow!("--process {}: {}: {}", path.display(), e.field, e.reason))?;
    Ok(process)
}

/// `UID[:GID]`.
fn parse_user(text: &str) -> anyhow::Result<(u32, Option<u32>)> {
    let bad = || anyhow::anyhow!("--user {text:?}: expected UID[:GID] (numbers)");
    match text.split_once(':') {
        Some((uid, gid)) => Ok((uid.parse().map_err(|_| bad())?, Some(gid.parse().map_err(|_| bad())?))),
        None => Ok((text.parse().map_err(|_| bad())?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse_as_runc_takes_them() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, Some(100)));
        assert!(parse_user("root").unwrap_err().to_string().contains("--user"));
        assert!(parse_user("1:x").is_err());
    }
}
