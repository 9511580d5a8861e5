//! One function per subcommand: flags → validated options → library call.

mod activation;
mod events;
mod exec;
mod features;
mod freeze;
mod lifecycle;
mod list;
mod ps;
mod spec;
mod update;
mod wasm_cache;

use std::path::PathBuf;

use amphi_executors::cache::CacheConfig;
use amphi_runtime::executor::{CacheDirSource, HostDir};
use amphi_runtime::state::Store;

use crate::args::{Cli, Command};
use crate::rootless::Env;

/// Runs the command; returns the exit status on success.
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    if cli.systemd_cgroup && !std::path::Path::new("/run/systemd/system").exists() {
        anyhow::bail!("--systemd-cgroup: systemd is not running on this host");
    }
    let env = Env::current();
    let rootless = crate::rootless::parse_rootless(&cli.rootless, env.euid)?;
    let root = match cli.root.clone() {
        Some(root) => root,
        None => {
            let (root, shared_tmp) = crate::rootless::default_root(&env);
            if shared_tmp {
                crate::rootless::private_fallback(&root, env.euid)?;
            }
            root
        }
    };
    let store = Store::new(root);
    let globals = Globals { systemd_cgroup: cli.systemd_cgroup, rootless, wasm_cache: cli.wasm_cache, env };
    match cli.command {
        Command::Create(args) => lifecycle::create(&store, &globals, args),
        Command::Start(args) => lifecycle::start(&store, args),
        Command::State(args) => lifecycle::state(&store, args),
        Command::Kill(args) => lifecycle::kill(&store, args),
        Command::Delete(args) => lifecycle::delete(&store, args),
        Command::Run(args) => lifecycle::run(&store, &globals, args),
        Command::List(args) => list::list(&store, args),
        Command::Spec(args) => spec::spec(args),
        Command::Exec(args) => exec::exec(&store, &globals, args),
        Command::WasmCache(args) => wasm_cache::wasm_cache(&globals, args),
        Command::Ps(args) => ps::ps(&store, args),
        Command::Pause(args) => freeze::pause(&store, args),
        Command::Resume(args) => freeze::resume(&store, args),
        Command::Update(args) => update::update(&store, args),
        Command::Events(args) => events::events(&store, args),
        Command::Features => features::features(),
    }
}

/// Global flags the commands need.
#[derive(Debug)]
pub struct Globals {
    pub systemd_cgroup: bool,
    /// `--rootless`, decided (`auto` resolved).
    pub rootless: bool,
    /// `--wasm-cache`, as given: [`Globals::wasm_cache`] resolves it.
    pub wasm_cache: Option<PathBuf>,
    /// The ids and environment the defaults are computed from, read once.
    pub env: Env,
}

impl Globals {
    /// Where the wasm compile cache lives ([`crate::cache_location`]). A
    /// command asks once, after its bundle (or process) was loaded and
    /// checked; resolving makes nothing.
    pub fn wasm_cache(&self) -> CacheConfig {
        crate::cache_location::resolve(self.wasm_cache.as_deref(), &self.env)
    }

    /// The wasm cache as container processes get it: opened here, on the host,
    /// only when a wasm workload asks for it (never inherited by a stage), and
    /// handed over as a descriptor the process owns.
    pub fn cache_dir(&self) -> CacheDirSource {
        let cache = self.wasm_cache();
        CacheDirSource::new(move || {
            let path = cache.dir.clone().unwrap_or_default();
            match cache.open_dir() {
                Ok(Some(fd)) => Ok(Some(HostDir { fd, path })),
                Ok(None) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
