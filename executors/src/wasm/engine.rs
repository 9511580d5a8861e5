//! The engine: its configuration derived from the spec, and loading a module or
//! component through the compile cache.

use std::time::Instant;

use oci_spec::runtime::{PosixRlimitType, Process, Spec};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, OptLevel, PoolingAllocationConfig};

use super::WasmError;
use crate::cache::{ArtifactKind, Cache, CacheKey};

/// Memory the engine and the runtime need beside the guest's linear memories
/// (compiled code, WASI buffers, the Rust heap): subtracted from the cgroup limit
/// to get the guest's ceiling, so that the guest fails `memory.grow` before the
/// cgroup OOM-kills the container.
pub const HOST_RESERVE: u64 = 32 << 20;

/// Most instances a store may hold (a componentized program has a handful).
pub const MAX_INSTANCES: usize = 1_000;
/// Most tables and memories a store may hold.
pub const MAX_TABLES: usize = 1_000;
pub const MAX_MEMORIES: usize = 100;
/// Most elements one table may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 10_000_000;

/// What the engine takes from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineSettings {
    /// The most bytes all of the guest's linear memories may hold together.
    pub memory_ceiling: Option<u64>,
    /// The soft `RLIMIT_AS` the process will run under, if any.
    pub address_space: Option<u64>,
    /// For a service ([`serves_http`]), the most requests it handles at once:
    /// the engine then compiles with epoch checks (the request timeout needs
    /// them; a command is compiled without) and allocates instances from a
    /// pool sized for that many ([`EngineSettings::config`]).
    pub serve_concurrency: Option<usize>,
}

impl EngineSettings {
    /// Reads `linux.resources.memory.limit` and the `RLIMIT_AS` of `process` (the
    /// process to run: the init's, or an exec'd one).
    ///
    /// - The ceiling is the memory limit less [`HOST_RESERVE`], but never below
    ///   half the limit (a small limit still leaves the guest something).
    /// - Under an `RLIMIT_AS`, linear memories are not given wasmtime's default
    ///   4 GiB (+ guard) reservation each, which would not fit: memories are
    ///   allocated at their size plus a growth margin and move when they outgrow
    ///   it (bounds-checked code, a little slower), and the ceiling is at most a
    ///   quarter of the address space: moving a memory briefly needs both its
    ///   old and its new copy, and the process has its own mappings.
    pub fn from_spec(spec: &Spec, process: &Process) -> Self {
        let limit = spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.resources().as_ref())
            .and_then(|resources| resources.memory().as_ref())
            .and_then(|memory| memory.limit())
            .and_then(|limit| u64::try_from(limit).ok())
            .filter(|&limit| limit > 0);
        let address_space = process
            .rlimits()
            .as_ref()
            .and_then(|rlimits| rlimits.iter().find(|r| r.typ() == PosixRlimitType::RlimitAs))
            .map(|r| r.soft())
            .filter(|&soft| soft != u64::MAX && soft != libc::RLIM_INFINITY);
        let from_limit = limit.map(|limit| limit.saturating_sub(HOST_RESERVE).max(limit / 2));
        let from_address_space = address_space.map(|bytes| bytes / 4);
        let memory_ceiling = match (from_limit, from_address_space) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self { memory_ceiling, address_space, serve_concurrency: None }
    }

    /// The engine configuration. Compilation is single-threaded: `prepare` runs in
    /// the container's init, where a second thread would escape the seccomp filter
    /// and capability changes applied later to the first. A cache miss compiles
    /// on every core in a child process instead ([`load`]). Wasm backtraces are
    /// on, as by default.
    pub fn config(&self) -> Config {
        let mut config = Config::new();
        config.parallel_compilation(false);
        config.cranelift_opt_level(OptLevel::Speed);
        config.wasm_component_model(true);
        if let Some(concurrency) = self.serve_concurrency {
            config.epoch_interruption(true);
            if self.address_space.is_none() {
                config.allocation_strategy(pool_for(concurrency));
            }
        }
        if let Some(address_space) = self.address_space {
            config.memory_reservation(0);
            config.memory_guard_size(0);
            config.guard_before_linear_memory(false);
            config.memory_reservation_for_growth((address_space / 16).clamp(1 << 20, 256 << 20));
            // Fiber stacks for async calls: the default (2 MiB) fits; keep it.
        }
        config
    }

    /// The engine for these settings. A service whose instance pool cannot be
    /// reserved (too large for the address space) allocates on demand instead.
    pub fn engine(&self) -> Result<Engine, WasmError> {
        let engine = Engine::new(&self.config());
        if let (Err(error), Some(concurrency)) = (&engine, self.serve_concurrency)
            && self.address_space.is_none()
        {
            tracing::debug!(error = %format!("{error:#}"), concurrency, "no instance pool for the service: allocating on demand");
            let mut config = self.config();
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            return Engine::new(&config).map_err(|e| WasmError::Engine { reason: format!("{e:#}") });
        }
        engine.map_err(|e| WasmError::Engine { reason: format!("{e:#}") })
    }
}

/// The instance pool of a service that handles up to `concurrency` requests
/// at once, each in its own instance: instantiating from a pool reuses
/// reserved slots (and the component's memory images) instead of mapping and
/// unmapping memories, stacks and tables per request, which is what makes a
/// fresh instance per request cheap. A component instance has a handful of
/// core instances, memories and tables (a C program with WASI's adapter: 2
/// memories, 4 core instances); the slots are address space reserved, not
/// memory used. `memory.limit` is enforced by the service's own budget, not
/// by the pool.
fn pool_for(concurrency: usize) -> InstanceAllocationStrategy {
    let n = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_stacks(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(4))
        .total_tables(n.saturating_mul(4));
    InstanceAllocationStrategy::Pooling(pool)
}

/// What the entrypoint's bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A binary core module (`\0asm`, version 1).
    Module,
    /// A binary component (`\0asm`, layer 1).
    Component,
    /// WebAssembly text (`(module …)` or `(component …)`).
    Text,
}

/// Tells a binary module, a binary component and text apart; `None` for anything
/// else (an ELF file, a script, garbage).
pub fn detect(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(b"\0asm") {
        return match bytes.get(6..8) {
            Some([1, 0]) => Some(Format::Component),
            Some([0, 0]) => Some(Format::Module),
            _ => None,
        };
    }
    let text = std::str::from_utf8(bytes.get(..bytes.len().min(4096))?).ok().or_else(|| {
        // The first 4 KiB may cut a multi-byte character in half.
        std::str::from_utf8(&bytes[..bytes.len().min(4096).saturating_sub(3)]).ok()
    })?;
    let mut rest = text.trim_start();
    // Skip leading `;;` line comments and `(; ;)` block comments.
    loop {
        if let Some(after) = rest.strip_prefix(";;") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail).trim_start();
        } else if let Some(after) = rest.strip_prefix("(;") {
            rest = after.split_once(";)").map_or("", |(_, tail)| tail).trim_start();
        } else {
            break;
        }
    }
    rest.starts_with('(').then_some(Format::Text)
}

/// Whether `bytes` (binary or text) is a component that is a service: it
/// exports `wasi:http/incoming-handler` and not `wasi:cli/run`
/// ([`super::service`]). Read before compiling, since a service is compiled
/// with epoch checks; anything unreadable is "no" (compiling reports it).
pub fn serves_http(bytes: &[u8]) -> bool {
    let text;
    let bytes = match detect(bytes) {
        Some(Format::Component) => bytes,
        Some(Format::Text) => match wat::parse_bytes(bytes) {
            Ok(binary) => {
                text = binary.into_owned();
                &text[..]
            }
            Err(_) => return false,
        },
        _ => return false,
    };
    let mut exports = Vec::new();
    // Nested modules and components have their own sections: only the outer
    // component's exports count.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. }) => depth += 1,
            Ok(wasmparser::Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(wasmparser::Payload::ComponentExportSection(section)) if depth == 0 => {
                for export in section.into_iter().flatten() {
                    exports.push(export.name.name.to_owned());
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    super::service::is_service(&exports)
}

/// A compiled program, ready to link.
#[derive(Debug, Clone)]
pub enum Compiled {
    Module(Module),
    Component(Component),
}

/// Whether [`load`] found the program in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// No cache configured.
    Off,
}

/// Compiles `bytes` (from `path`, for messages) or loads its artifact from
/// `cache`. A corrupt entry is removed and the program recompiled; a failed store
/// is logged and does not fail the load.
///
/// On a miss, with `settings` given, a program of [`PARALLEL_MIN_BYTES`] or
/// more and this process single-threaded (a container's init or exec'd
/// process), the program is compiled on every core by a forked child, which
/// stores it and exits; this process then loads it from the cache. The threads live and die in the child, before this process
/// takes its seccomp filter and capabilities. Should the child fail, the
/// program is compiled here, and its errors reported as ever.
pub fn load(
    engine: &Engine,
    settings: Option<&EngineSettings>,
    cache: Option<&Cache>,
    path: &str,
    bytes: &[u8],
) -> Result<(Compiled, CacheOutcome), WasmError> {
    let format = detect(bytes).ok_or_else(|| WasmError::NotWasm { path: path.to_owned() })?;
    let Some(cache) = cache else {
        return Ok((compile(engine, path, format, bytes)?, CacheOutcome::Off));
    };
    let key = CacheKey::new(engine, bytes);
    let expected = match format {
        Format::Module => Some(ArtifactKind::Module),
        Format::Component => Some(ArtifactKind::Component),
        Format::Text => None,
    };
    let started = Instant::now();
    match cache.load(&key, expected) {
        Ok(Some((kind, artifact))) => match deserialize(engine, kind, &artifact) {
            Ok(compiled) => {
                tracing::debug!(cache = "hit", path, module = %key.module, elapsed_us = started.elapsed().as_micros() as u64, "wasm module loaded from cache");
                return Ok((compiled, CacheOutcome::Hit));
            }
            Err(e) => {
                tracing::warn!(path, entry = %cache.entry_path(&key).display(), error = %format!("{e:#}"), "wasm cache entry rejected by the engine; recompiling");
                remove_quietly(cache, &key);
            }
        },
        Ok(None) => {}
        Err(e @ crate::cache::CacheError::Corrupt { .. }) => {
            tracing::warn!(path, error = %e, "wasm cache entry discarded; recompiling");
            remove_quietly(cache, &key);
        }
        Err(e) => return Err(WasmError::Cache(e)),
    }
    if let Some(settings) = settings
        && bytes.len() >= PARALLEL_MIN_BYTES
        && compile_in_child(settings, cache, &key, path, format, bytes)
    {
        match cache.load(&key, expected) {
            Ok(Some((kind, artifact))) => match deserialize(engine, kind, &artifact) {
                Ok(compiled) => {
                    tracing::debug!(cache = "miss", path, module = %key.module, elapsed_us = started.elapsed().as_micros() as u64, "wasm module compiled on every core by a child process");
                    return Ok((compiled, CacheOutcome::Miss));
                }
                Err(e) => {
                    tracing::warn!(path, error = %format!("{e:#}"), "the child's artifact was rejected; compiling here")
                }
            },
            other => {
                tracing::warn!(path, outcome = ?other.map(|found| found.is_some()), "the child's artifact is not in the cache; compiling here")
            }
        }
    }
    let compiled = compile(engine, path, format, bytes)?;
    tracing::debug!(cache = "miss", path, module = %key.module, elapsed_us = started.elapsed().as_micros() as u64, "wasm module compiled");
    match serialize(&compiled) {
        Ok((kind, artifact)) => {
            if let Err(e) = cache.store(&key, kind, &artifact) {
                tracing::warn!(path, error = %e, "could not store the compiled module in the wasm cache");
            }
        }
        Err(e) => tracing::warn!(path, error = %format!("{e:#}"), "could not serialize the compiled module"),
    }
    Ok((compiled, CacheOutcome::Miss))
}

/// The size from which a program is compiled in parallel in a child process:
/// below it, the fork, the threads and the reload cost more than they save (a
/// hello-world module compiles in about 2 ms alone; the 65 KiB hello component,
/// mostly the WASI adapter, in 37 ms alone and 25 ms on two cores).
pub const PARALLEL_MIN_BYTES: usize = 16 * 1024;

/// Compiles the program in a forked child with parallel compilation and stores
/// it in `cache` under `key`; whether the child succeeded. Forks nothing
/// (false) when this process has more than one thread: a fork would copy locks
/// other threads hold ([`amphi_runtime::executor::worker`]).
fn compile_in_child(
    settings: &EngineSettings,
    cache: &Cache,
    key: &CacheKey,
    path: &str,
    format: Format,
    bytes: &[u8],
) -> bool {
    let status = amphi_runtime::executor::worker::run_in_child(|| {
        let stored = (|| -> Option<()> {
            let mut config = settings.config();
            config.parallel_compilation(true);
            let engine = Engine::new(&config).ok()?;
            // The child's engine must file the artifact where the parent looks.
            if crate::cache::engine_fingerprint(&engine) != key.engine {
                return None;
            }
            let (kind, artifact) = serialize(&compile(&engine, path, format, bytes).ok()?).ok()?;
            cache.store(key, kind, &artifact).ok().map(drop)
        })();
        if stored.is_some() { 0 } else { 1 }
    });
    status == Some(0)
}

fn serialize(compiled: &Compiled) -> wasmtime::Result<(ArtifactKind, Vec<u8>)> {
    match compiled {
        Compiled::Module(module) => module.serialize().map(|a| (ArtifactKind::Module, a)),
        Compiled::Component(component) => component.serialize().map(|a| (ArtifactKind::Component, a)),
    }
}

fn remove_quietly(cache: &Cache, key: &CacheKey) {
    if let Err(e) = cache.remove(key) {
        tracing::warn!(error = %e, "could not remove a bad wasm cache entry");
    }
}

fn compile(engine: &Engine, path: &str, format: Format, bytes: &[u8]) -> Result<Compiled, WasmError> {
    let invalid = |e: wasmtime::Error| WasmError::Invalid { path: path.to_owned(), reason: format!("{e:#}") };
    let binary;
    let (format, bytes) = match format {
        Format::Text => {
            binary = wat::parse_bytes(bytes)
                .map_err(|e| WasmError::Invalid { path: path.to_owned(), reason: e.to_string() })?;
            let format = detect(&binary).ok_or_else(|| WasmError::NotWasm { path: path.to_owned() })?;
            (format, &binary[..])
        }
        binary_format => (binary_format, bytes),
    };
    match format {
        Format::Component => Component::new(engine, bytes).map(Compiled::Component).map_err(invalid),
        _ => Module::new(engine, bytes).map(Compiled::Module).map_err(invalid),
    }
}

fn deserialize(engine: &Engine, kind: ArtifactKind, artifact: &[u8]) -> wasmtime::Result<Compiled> {
    match kind {
        // SAFETY: the artifact comes from a cache directory that only our uid can
        // write (checked by `Cache::open`/`Cache::from_dir`), in a regular file
        // owned by us, and its length, sha256, kind and module hash match the
        // header written with it and the key (`Cache::load`): it is byte for byte
        // what `Module::serialize` produced from this module for an engine with
        // the same compatibility hash (the key). wasmtime checks that hash again.
        ArtifactKind::Module => unsafe { Module::deserialize(engine, artifact) }.map(Compiled::Module),
        // SAFETY: as above, for `Component::serialize`.
        ArtifactKind::Component => unsafe { Component::deserialize(engine, artifact) }.map(Compiled::Component),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder, PosixRlimitBuilder, ProcessBuilder, SpecBuilder,
    };

    #[test]
    fn parallel_compilation_files_artifacts_under_the_same_key() {
        // The compile child uses parallel compilation, the init does not: both
        // must agree on the cache key, or every miss would compile twice.
        for settings in [settings(None, None), settings(Some(256 << 20), Some(8 << 30))] {
            let sequential = settings.engine().expect("engine");
            let mut config = settings.config();
            config.parallel_compilation(true);
            let parallel = Engine::new(&config).expect("parallel engine");
            assert_eq!(crate::cache::engine_fingerprint(&sequential), crate::cache::engine_fingerprint(&parallel));
        }
    }

    #[test]
    fn a_second_thread_is_seen() {
        // `load` then compiles in-process: it never forks a multi-threaded process.
        let other = std::thread::spawn(|| amphi_runtime::executor::worker::run_in_child(|| 0));
        assert_eq!(other.join().expect("thread"), None);
    }

    fn settings(limit: Option<i64>, rlimit_as: Option<u64>) -> EngineSettings {
        let spec = spec(limit, rlimit_as);
        EngineSettings::from_spec(&spec, spec.process().as_ref().expect("process"))
    }

    fn spec(limit: Option<i64>, rlimit_as: Option<u64>) -> Spec {
        let mut resources = LinuxResourcesBuilder::default();
        if let Some(limit) = limit {
            resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build().expect("memory"));
        }
        let linux = LinuxBuilder::default().resources(resources.build().expect("resources")).build().expect("linux");
        let mut process = ProcessBuilder::default().args(vec!["/app.wasm".to_owned()]);
        if let Some(bytes) = rlimit_as {
            let rlimit = PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitAs)
                .soft(bytes)
                .hard(bytes)
                .build()
                .expect("rl");
            process = process.rlimits(vec![rlimit]);
        }
        SpecBuilder::default().linux(linux).process(process.build().expect("process")).build().expect("spec")
    }

    #[test]
    fn memory_limit_becomes_the_ceiling_less_the_host_reserve() {
        let settings = settings(Some(256 << 20), None);
        assert_eq!(settings.memory_ceiling, Some((256 << 20) - HOST_RESERVE));
        assert_eq!(settings.address_space, None);
    }

    #[test]
    fn small_memory_limit_keeps_half_for_the_guest() {
        let settings = settings(Some(40 << 20), None);
        assert_eq!(settings.memory_ceiling, Some(20 << 20));
    }

    #[test]
    fn unlimited_memory_means_no_ceiling() {
        assert_eq!(settings(Some(-1), None), EngineSettings::default());
        assert_eq!(settings(None, None), EngineSettings::default());
    }

    #[test]
    fn address_space_limit_shrinks_reservations_and_ceiling() {
        let settings = settings(Some(1 << 30), Some(512 << 20));
        assert_eq!(settings.address_space, Some(512 << 20));
        assert_eq!(settings.memory_ceiling, Some(128 << 20));
        // Engines for different address spaces compile differently (bounds
        // checks), so their cache keys must differ.
        let limited = settings.engine().expect("engine");
        let default = EngineSettings::default().engine().expect("engine");
        assert_ne!(crate::cache::engine_fingerprint(&limited), crate::cache::engine_fingerprint(&default));
    }

    #[test]
    fn detects_modules_components_and_text() {
        assert_eq!(detect(b"\0asm\x01\0\0\0"), Some(Format::Module));
        assert_eq!(detect(b"\0asm\x0d\0\x01\0"), Some(Format::Component));
        assert_eq!(detect(b"(module)"), Some(Format::Text));
        assert_eq!(detect(b"  ;; a comment\n(; block ;) (component)"), Some(Format::Text));
        assert_eq!(detect(b"\x7fELF\x02\x01"), None);
        assert_eq!(detect(b"#!/bin/sh\n"), None);
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"\0asm"), None, "a truncated preamble is not wasm");
    }
}
