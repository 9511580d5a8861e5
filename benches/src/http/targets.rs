//! The three servers of the http section, how each is started on a fresh
//! loopback port and stopped, and the time to its first 200.
//!
//! - **amphi**: the hello service (`hello-service.wasm`) in a wasm container,
//!   amphi's defaults otherwise (compile cache warm, as a node has it).
//! - **wasmtime**: `wasmtime serve` of the same component file on the host,
//!   with wasmtime's defaults (pooling allocator when the host allows it, a
//!   fresh instance per request for a WASIp2 component, no request timeout)
//!   and its compile cache in a directory of the run (warm after the check).
//! - **runc**: busybox `httpd -f` serving a one-file directory, in a native
//!   container under runc: the native reference. busybox httpd answers
//!   `Connection: close` and forks a process per connection, so every request
//!   pays a TCP handshake and a fork; it is the simplest native static server
//!   Debian ships statically linked, not a fast one.
//!
//! Neither container has a network namespace of its own: `wasmtime serve` has
//! none, and a namespace would put a veth pair and a bridge between the load
//! generator and the container that the host process does not pay for. Each
//! server listens on 127.0.0.1 and a port the kernel has just handed out.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amphi_test_bundles::bench::{FilesBundle, WASM_VARIANT_ANNOTATION, build_files};
use amphi_test_bundles::{Bundle, HOST_BUSYBOX};
use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client::Conn;
use crate::memory::{IdleContainer, create_for_pid, stop_idle};
use crate::process::timed;
use crate::runtime::Bench;
use crate::workload::CacheChoice;

/// The body busybox httpd serves (the wasm service's is
/// `hello from a wasm service\n`).
const NATIVE_BODY: &[u8] = b"hello from a native service\n";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Amphi,
    WasmtimeServe,
    RuncHttpd,
}

impl Target {
    /// The runtime column of the results.
    pub fn runtime(self) -> &'static str {
        match self {
            Target::Amphi => "amphi",
            Target::WasmtimeServe => "wasmtime",
            Target::RuncHttpd => "runc",
        }
    }

    /// The workload column of the results.
    pub fn workload(self) -> &'static str {
        match self {
            Target::Amphi | Target::WasmtimeServe => "http-hello-service",
            Target::RuncHttpd => "http-busybox-httpd",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Target::Amphi => "amphi, hello-service.wasm",
            Target::WasmtimeServe => "wasmtime serve, hello-service.wasm",
            Target::RuncHttpd => "runc, busybox httpd (native)",
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    pub target: Target,
    pub addr: SocketAddr,
    /// The container's init, or the wasmtime process.
    pub pid: i32,
    handle: Handle,
}

#[derive(Debug)]
enum Handle {
    Container { index: usize, id: String },
    Process(Child),
}

/// How long the time to the first 200 took, in its parts.
#[derive(Debug, Clone, Copy)]
pub struct FirstResponse {
    /// `create` (containers).
    pub create: Option<Duration>,
    /// `start` (containers).
    pub start: Option<Duration>,
    /// From `start` returning (containers) or the spawn (wasmtime) to the
    /// whole 200 response read.
    pub to_200: Duration,
}

/// The bundles and files the servers need, and where each runtime is.
#[derive(Debug)]
pub struct Targets {
    dir: PathBuf,
    service: Bundle,
    native: Bundle,
    cache: CacheChoice,
    wasmtime_cache_config: PathBuf,
    pub amphi: usize,
    pub runc: Option<usize>,
    pub wasmtime: Option<PathBuf>,
}

impl Targets {
    pub fn build(bench: &Bench) -> anyhow::Result<Self> {
        let dir = bench.work.join("bundles").join("http");
        let component = amphi_wasm_fixtures::path("hello-service.wasm");
        let service = build_files(
            &dir.join("service"),
            &FilesBundle {
                files: &[(&component, "/hello-service.wasm")],
                args: &["/hello-service.wasm"],
                annotations: &[WASM_VARIANT_ANNOTATION],
                host_usr: false,
                hostname: "bench",
            },
        )?;
        let index = bench.work.join("http-index.html");
        std::fs::write(&index, NATIVE_BODY).with_context(|| format!("write {}", index.display()))?;
        let native = build_files(
            &dir.join("native"),
            &FilesBundle {
                files: &[(Path::new(HOST_BUSYBOX), "/bin/busybox"), (&index, "/www/index.html")],
                args: &["/bin/busybox", "httpd"],
                annotations: &[],
                host_usr: false,
                hostname: "bench",
            },
        )?;
        let wasmtime_cache = bench.work.join("wasmtime-cache");
        let wasmtime_cache_config = bench.work.join("wasmtime-cache.toml");
        std::fs::write(
            &wasmtime_cache_config,
            format!("[cache]\ndirectory = {:?}\n", wasmtime_cache.display().to_string()),
        )
        .with_context(|| format!("write {}", wasmtime_cache_config.display()))?;
        let position = |name: &str| bench.runtimes.iter().position(|r| r.name == name && r.active());
        Ok(Self {
            dir,
            service,
            native,
            cache: CacheChoice::Warm(bench.work.join("wasm-cache-http")),
            wasmtime_cache_config,
            amphi: position("amphi").context("amphi is not among the runtimes")?,
            runc: position("runc"),
            wasmtime: bench.get("wasmtime").map(|r| r.path.clone()),
        })
    }

    /// The targets this run has, amphi first.
    pub fn available(&self) -> Vec<Target> {
        let mut all = vec![Target::Amphi];
        if self.wasmtime.is_some() {
            all.push(Target::WasmtimeServe);
        }
        if self.runc.is_some() {
            all.push(Target::RuncHttpd);
        }
        all
    }

    /// A bundle of `target` listening on `addr`, with no network namespace.
    fn bundle(&self, target: Target, addr: SocketAddr) -> anyhow::Result<PathBuf> {
        let dir = self.dir.join(format!("{}-{}", target.runtime(), addr.port()));
        let no_netns = |config: &mut Value| {
            if let Some(namespaces) = config["linux"]["namespaces"].as_array_mut() {
                namespaces.retain(|ns| ns["type"] != "network");
            }
        };
        let bundle = match target {
            Target::Amphi => self.service.variant(&dir, |config| {
                no_netns(config);
                let env = config["process"]["env"].as_array_mut();
                let var = json!(format!("WASMTIME_HTTP_PROXY_SOCKET_ADDR={addr}"));
                match env {
                    Some(env) => env.push(var),
                    None => config["process"]["env"] = json!([var]),
                }
            })?,
            Target::RuncHttpd => self.native.variant(&dir, |config| {
                no_netns(config);
                config["process"]["args"] =
                    json!(["/bin/busybox", "httpd", "-f", "-p", addr.to_string(), "-h", "/www"]);
            })?,
            Target::WasmtimeServe => bail!("wasmtime serve runs no bundle"),
        };
        Ok(bundle.dir().to_owned())
    }

    fn index(&self, target: Target) -> anyhow::Result<usize> {
        match target {
            Target::Amphi => Ok(self.amphi),
            Target::RuncHttpd => self.runc.context("runc is not installed"),
            Target::WasmtimeServe => bail!("wasmtime serve is no OCI runtime"),
        }
    }

    /// Starts `target` and waits until it answers 200.
    pub fn launch(&self, bench: &mut Bench, target: Target) -> anyhow::Result<Server> {
        let (server, _) = self.launch_timed(bench, target)?;
        Ok(server)
    }

    /// Starts `target` and times its first 200: for a container, the request
    /// goes on a connection made right after `create` (amphi listens from
    /// `create` on; busybox httpd binds only once started, so for runc the
    /// connection is retried every 0.1 ms after `start`); for wasmtime from
    /// the spawn, the connection retried every 0.1 ms.
    pub fn launch_timed(&self, bench: &mut Bench, target: Target) -> anyhow::Result<(Server, FirstResponse)> {
        let addr = free_port()?;
        if target == Target::WasmtimeServe {
            return self.spawn_wasmtime(bench, addr);
        }
        let index = self.index(target)?;
        let bundle = self.bundle(target, addr)?;
        let id = bench.new_id(target.runtime());
        let cache = if target == Target::Amphi { self.cache.clone() } else { CacheChoice::None };
        let (work, out) = (bench.work.clone(), bench.work.join(format!("{id}.out")));
        let bench = &*bench;
        bench.in_view(index, |runtime| {
            let globals = cache.globals(&id);
            let (create_took, pid) = create_for_pid(runtime, &globals, &bundle, &id, &out, &work, &bench.err)?;
            let server = Server { target, addr, pid, handle: Handle::Container { index, id: id.clone() } };
            let timed_start = (|| -> anyhow::Result<FirstResponse> {
                let mut early = match target {
                    Target::Amphi => {
                        let mut conn = Conn::connect(addr).context("the service does not listen after create")?;
                        conn.send()?;
                        Some(conn)
                    }
                    _ => None,
                };
                let start = timed(&mut runtime.oci(&globals, ["start", id.as_str()]), &bench.err)?;
                let started = Instant::now();
                let mut conn = match early.take() {
                    Some(conn) => conn,
                    None => {
                        let mut conn = Conn::connect_when_listening(addr, started + Duration::from_secs(20))?;
                        conn.send()?;
                        conn
                    }
                };
                let response = conn.receive()?;
                let to_200 = started.elapsed();
                if response.status != 200 {
                    bail!("the first response was {}, not 200", response.status);
                }
                Ok(FirstResponse { create: Some(create_took), start: Some(start), to_200 })
            })();
            match timed_start {
                Ok(first) => Ok((server, first)),
                Err(e) => {
                    let _ = stop_idle(runtime, &IdleContainer { id: id.clone(), pid }, &bench.err);
                    Err(e)
                }
            }
        })?
    }

    fn spawn_wasmtime(&self, bench: &Bench, addr: SocketAddr) -> anyhow::Result<(Server, FirstResponse)> {
        let wasmtime = self.wasmtime.as_ref().context("wasmtime is not installed")?;
        let log = bench.work.join("wasmtime-serve.log");
        let log = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let spawned = Instant::now();
        let child = Command::new(wasmtime)
            .arg("serve")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("-C")
            .arg(format!("cache-config={}", self.wasmtime_cache_config.display()))
            .arg(amphi_wasm_fixtures::path("hello-service.wasm"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("run {} serve", wasmtime.display()))?;
        let server =
            Server { target: Target::WasmtimeServe, addr, pid: child.id() as i32, handle: Handle::Process(child) };
        let first = (|| -> anyhow::Result<FirstResponse> {
            let mut conn = Conn::connect_when_listening(addr, spawned + Duration::from_secs(60))?;
            conn.send()?;
            let response = conn.receive()?;
            let to_200 = spawned.elapsed();
            if response.status != 200 {
                bail!("the first response was {}, not 200", response.status);
            }
            Ok(FirstResponse { create: None, start: None, to_200 })
        })();
        match first {
            Ok(first) => Ok((server, first)),
            Err(e) => {
                self.stop(bench, server)?;
                Err(e.context("wasmtime serve"))
            }
        }
    }

    /// Stops and removes `server`.
    pub fn stop(&self, bench: &Bench, server: Server) -> anyhow::Result<()> {
        match server.handle {
            Handle::Process(mut child) => {
                let _ = child.kill();
                child.wait().context("wait for wasmtime serve")?;
                Ok(())
            }
            Handle::Container { index, id } => {
                let _ = std::fs::remove_file(bench.work.join(format!("{id}.out")));
                let _ = std::fs::remove_dir_all(self.dir.join(format!(
                    "{}-{}",
                    server.target.runtime(),
                    server.addr.port()
                )));
                bench
                    .in_view(index, |runtime| stop_idle(runtime, &IdleContainer { id, pid: server.pid }, &bench.err))?
            }
        }
    }
}

/// 127.0.0.1 and a port the kernel just handed out (and that is free again).
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    listener.local_addr().context("the local address")
}

/// The memory a server's processes use, and its container's cgroup: bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub cgroup: Option<u64>,
}

/// The VmRSS of the server's processes (the init or the wasmtime process and
/// any children), and the memory charged to its cgroup when it has one of its
/// own (`memory.usage_in_bytes` of cgroup v1's memory controller, else
/// cgroup v2's `memory.current`).
pub fn memory(server: &Server) -> Memory {
    let rss = crate::memory::footprint(&crate::memory::process_tree(server.pid)).rss;
    let cgroup = match server.handle {
        Handle::Container { .. } => cgroup_memory(server.pid),
        Handle::Process(_) => None,
    };
    Memory { rss, cgroup }
}

fn cgroup_memory(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let read = |path: PathBuf| std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return read(
                Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')).join("memory.usage_in_bytes"),
            );
        }
    }
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let unified = crate::runtime::cgroup2_mount().ok()?;
    read(unified.join(path.trim_start_matches('/')).join("memory.current"))
}
