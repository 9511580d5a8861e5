//! runc's command line, as containerd's runc shim (go-runc) and podman call it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// amphi: a WebAssembly-aware OCI container runtime.
#[derive(Debug, Parser)]
#[command(name = "amphi", version = crate::VERSION_TEXT, disable_version_flag = true)]
pub struct Cli {
    /// Root directory for the state of containers (default: /run/amphi for
    /// root, else $XDG_RUNTIME_DIR/amphi or /tmp/amphi-<uid>).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write amphi's own log to this file (default: stderr).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Format of the log: text or json (runc's JSON lines).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log debug detail.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (needs a running systemd).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Where compiled wasm modules are cached (default: $AMPHI_WASM_CACHE, else
    /// /var/lib/amphi/cache).
    #[arg(long, global = true, value_name = "DIR")]
    pub wasm_cache: Option<PathBuf>,
    /// Rootless mode: true, false or auto (rootless unless amphi runs as uid 0):
    /// cgroups are used only where the caller may write them. Before the
    /// command, as runc takes it (`spec --rootless` is the spec's own flag).
    #[arg(long, value_name = "BOOL", default_value = "auto")]
    pub rootless: String,
    /// Print the version.
    #[arg(short = 'v', long, action = clap::ArgAction::Version)]
    pub version: Option<bool>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container: its init waits for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start(IdArg),
    /// Output the state of a container as JSON.
    State(IdArg),
    /// Send a signal to a container's init (default TERM).
    Kill(KillArgs),
    /// Delete a container and everything it had.
    Delete(DeleteArgs),
    /// Create and start a container, wait for it and delete it.
    Run(RunArgs),
    /// List containers.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Write a default config.json.
    Spec(SpecArgs),
    /// Run a new process inside a running container.
    Exec(ExecArgs),
    /// List or prune the compiled-wasm cache.
    WasmCache(WasmCacheArgs),
    /// Show the processes of a container (host pids).
    Ps(PsArgs),
    /// Freeze every process of a running container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Change the resource limits of a container.
    Update(UpdateArgs),
    /// Show a container's resource usage and OOM events.
    Events(EventsArgs),
    /// Print the runtime-spec features document of this runtime.
    Features,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// table (the host's ps output for the container's processes) or json
    /// (the array of host pids).
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: PsFormat,
    pub id: String,
    /// Arguments for the host's ps (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// A LinuxResources JSON file, or - for stdin; the flags below override it.
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<std::path::PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g; -1 for unlimited).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit in bytes (suffixes k, m, g; -1 for unlimited).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit in bytes (suffixes k, m, g).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight). runc spells it --cpu-share.
    #[arg(long = "cpu-share", visible_alias = "cpu-shares", value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1 for none).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long, value_name = "N")]
    pub cpu_period: Option<u64>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Print the stats once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print stats (Go durations: 5s, 500ms, 1m30s).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub interval: String,
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// A Process JSON file describing the whole process (as containerd passes).
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to this file.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// A unix socket that receives the master of the process's pty.
    #[arg(long, value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// The working directory inside the container.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (repeatable).
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// An additional group id (repeatable).
    #[arg(short = 'g', long, value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to every set (repeatable).
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many extra descriptors (from fd 3) to the process.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct WasmCacheArgs {
    #[command(subcommand)]
    pub action: WasmCacheAction,
}

#[derive(Debug, Subcommand)]
pub enum WasmCacheAction {
    /// List the cached compiled modules.
    List,
    /// Remove cached modules: all of them, or those unused for a while.
    Prune {
        /// Only entries not used for this long (e.g. 30s, 10m, 12h, 7d).
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct IdArg {
    /// The container id.
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct CreateFlags {
    /// The bundle directory (default: the current directory).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to this file.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// A unix socket that receives the master of the container's pty.
    #[arg(long, value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Use chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not make a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra descriptors (from fd 3) to the container.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Return once the container runs.
    #[arg(short, long)]
    pub detach: bool,
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal every process in the container's cgroup.
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// TERM, SIGTERM or 15.
    #[arg(default_value = "TERM")]
    pub signal: String,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Print only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    /// Where to write config.json (default: the current directory).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// A spec for a rootless container.
    #[arg(long)]
    pub rootless: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn rootless_is_a_global_value_and_a_flag_of_spec() {
        let cli = Cli::try_parse_from(["amphi", "--rootless", "true", "spec", "--rootless"]).unwrap();
        assert_eq!(cli.rootless, "true");
        assert!(matches!(cli.command, Command::Spec(SpecArgs { rootless: true, .. })));
        let cli = Cli::try_parse_from(["amphi", "spec"]).unwrap();
        assert_eq!(cli.rootless, "auto");
        assert!(matches!(cli.command, Command::Spec(SpecArgs { rootless: false, .. })));
    }
}
