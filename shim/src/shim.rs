//! The shim's life as containerd drives it (`start`, serving, `delete`),
//! on containerd's Rust shim library.
//!
//! - `start`: containerd runs the binary in a task's bundle. The containers
//!   of one pod share a shim: the group is the spec's
//!   `io.kubernetes.cri.sandbox-id` annotation (a pod's sandbox names
//!   itself), or the task's own id. If the group's shim already listens, its
//!   address is the answer; otherwise a new shim process is spawned on it.
//! - serving: the helper is forked first, in `main`, while the process has
//!   one thread and no signal handler ([`crate::helper`]); then the library
//!   starts the ttrpc server and the
//!   reaper, and [`Service`] serves the task API until `Shutdown` finds no
//!   task left.
//! - `delete`: containerd runs it in a task's bundle when the shim died
//!   without deleting the task. It kills and deletes the container through a
//!   helper of its own (the runtime state root is the one `Create` recorded
//!   in the bundle), unmounts the rootfs, and answers exit status 137.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim::api::DeleteResponse;
use containerd_shim::protos::ttrpc::Client;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, ExitSignal, Flags, StartOpts, socket_address};

use crate::helper::{Helper, Place, Reply, Request};
use crate::service::Service;

/// The file in a bundle where `Create` records the task's state place, for a
/// later `delete` by a new shim process.
const PLACE_FILE: &str = "amphi-shim.json";

/// The annotation that names a container's pod sandbox.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The shim process.
pub struct Shim {
    namespace: String,
    id: String,
    /// The socket this shim serves on (`-socket`), when it serves.
    socket: String,
    bundle: PathBuf,
    helper: Mutex<Option<Helper>>,
    exit: Arc<ExitSignal>,
}

impl std::fmt::Debug for Shim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shim").field("namespace", &self.namespace).field("id", &self.id).finish_non_exhaustive()
    }
}

impl containerd_shim::Shim for Shim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, config: &mut Config) -> Self {
        // The shim's own log goes to containerd's `log` FIFO (crate::logging).
        config.no_setup_logger = true;
        // Serving and `delete` make processes: main forked the helper.
        let helper = FORKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        one_malloc_arena();
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        Self {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            socket: args.socket.clone(),
            bundle,
            helper: Mutex::new(helper),
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let group = group_of(&self.bundle).unwrap_or_else(|| opts.id.clone());
        let address = socket_address(&opts.address, &opts.namespace, &group);
        if Client::connect(&address).is_ok() {
            containerd_shim::util::write_address(&address)?;
            return Ok(address);
        }
        let address = spawn_server(&opts, &group)?;
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let place = place_to_delete(&self.bundle, &self.namespace, &self.id);
        let helper = crate::task::lock(&self.helper).take();
        if needs_deleting(&self.bundle, &place) {
            let request = Request::Delete { place, force: true, bundle: self.bundle.clone() };
            let helper = helper.ok_or_else(|| containerd_shim::Error::Other("delete: no helper".into()))?;
            let answer =
                helper.call(request, Default::default()).map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
            if let Reply::Failed(message) = answer.reply {
                return Err(containerd_shim::Error::Other(message));
            }
        }
        forget(&self.bundle);
        remove_dead_socket(&self.bundle);
        Ok(DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: Some(crate::task::now()).into(),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
        // The library removes the socket too, but by the address file in
        // its first task's bundle, which containerd may have deleted by now.
        if let Some(path) = self.socket.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
        }
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        crate::logging::init(&self.namespace, &self.id);
        // The library's publisher neither reconnects nor spells type names
        // out: crate::events keeps its own connection.
        drop(publisher);
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = crate::events::Events::start(address, self.namespace.clone());
        let helper = crate::task::lock(&self.helper).take().unwrap_or_else(|| {
            tracing::error!("the helper was not forked: the shim cannot make containers");
            std::process::exit(1)
        });
        Service::new(self.namespace.clone(), helper, events, self.exit.clone())
    }
}

/// The task state a `delete` after a dead shim removes: where `Create`
/// recorded it, else the default root.
fn place_to_delete(bundle: &Path, namespace: &str, id: &str) -> Place {
    recalled(bundle).unwrap_or_else(|| Place {
        root: crate::options::Settings::default().root_of(namespace),
        id: id.to_owned(),
        cache_dir: None,
    })
}

/// Whether a `delete` has anything to remove: the container's state, or a
/// bundle whose rootfs may still be mounted. containerd also runs `delete`
/// after a shim that stopped cleanly, when both are gone already; then no
/// helper is needed.
fn needs_deleting(bundle: &Path, place: &Place) -> bool {
    place.root.join(&place.id).exists() || bundle.join("rootfs").exists()
}

/// Whether this `delete` action needs a helper (see [`needs_deleting`]).
pub fn delete_needs_helper() -> bool {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let Ok(flags) = containerd_shim::parse(&args) else { return true };
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        PathBuf::from(&flags.bundle)
    };
    needs_deleting(&bundle, &place_to_delete(&bundle, &flags.namespace, &flags.id))
}

/// The helper `main` forked, until `Shim::new` takes it.
static FORKED: Mutex<Option<Helper>> = Mutex::new(None);

/// Forks the helper: call it first thing in `main`, single-threaded, before
/// containerd's shim library sets up signals or threads.
pub fn fork_helper() {
    match Helper::fork() {
        Ok(helper) => *FORKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(helper),
        Err(e) => crate::logging::early(&format!("no helper: {e}")),
    }
}

/// Makes the shim's threads share one malloc arena. The shim's threads
/// mostly wait; glibc would give each its own arena, and each arena costs
/// its touched pages in every shim (one per pod). Called after the helper is
/// forked, so neither the helper's workers nor the containers they make (a
/// wasm service serves on many threads) inherit it.
fn one_malloc_arena() {
    // SAFETY: mallopt only changes glibc's allocator settings; no thread runs
    // yet (containerd's shim library starts its threads after `new`).
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Starts the serving shim for `group`, as the shim library's `spawn` does,
/// but from a protected image of this binary
/// ([`amphi_runtime::protected_image`]): the server starts protected and
/// need not execute itself again, which would cost every new shim one more
/// `execve` of this binary. Returns the server's address once it serves (it
/// closes the stdout pipe then).
fn spawn_server(opts: &StartOpts, group: &str) -> containerd_shim::Result<String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let other = |what: &str, e: &dyn std::fmt::Display| containerd_shim::Error::Other(format!("{what}: {e}"));
    let address = socket_address(&opts.address, &opts.namespace, group);
    let exe = std::env::current_exe().map_err(|e| other("own binary", &e))?;
    let image = amphi_runtime::protected_image().map_err(|e| other("protected image", &e))?;
    let program =
        image.as_ref().map_or_else(|| exe.clone(), |fd| PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())));
    let mut command = std::process::Command::new(program);
    command
        .arg0(&exe)
        .current_dir(std::env::current_dir().map_err(|e| other("working directory", &e))?)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .args(["-namespace", &opts.namespace, "-id", &opts.id, "-address", &opts.address, "-socket", &address]);
    if opts.debug {
        command.arg("-debug");
    }
    let mut child = command.spawn().map_err(|e| other("start the shim", &e))?;
    drop(image);
    if let Some(mut out) = child.stdout.take() {
        let _ = std::io::copy(&mut out, &mut std::io::stderr());
    }
    Ok(address)
}

/// The pod a bundle's container belongs to, from its spec's annotations.
fn group_of(bundle: &Path) -> Option<String> {
    let text = std::fs::read(bundle.join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let id = spec.get("annotations")?.get(SANDBOX_ID)?.as_str()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// Removes the socket of the shim that died, once nothing answers on it (a
/// pod's shim served several tasks: the first `delete` removes it).
fn remove_dead_socket(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else { return };
    let address = address.trim();
    let Some(path) = address.strip_prefix("unix://") else { return };
    if Client::connect(address).is_err() {
        let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        });
        if is_socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Records where task state lives, in its bundle.
pub fn remember(bundle: &Path, place: &Place) {
    if let Ok(text) = serde_json::to_vec(place)
        && let Err(e) = std::fs::write(bundle.join(PLACE_FILE), text)
    {
        tracing::warn!(bundle = %bundle.display(), "cannot record the task's state root: {e}");
    }
}

/// What [`remember`] recorded.
fn recalled(bundle: &Path) -> Option<Place> {
    serde_json::from_slice(&std::fs::read(bundle.join(PLACE_FILE)).ok()?).ok()
}

/// Removes the record.
pub fn forget(bundle: &Path) {
    let _ = std::fs::remove_file(bundle.join(PLACE_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_containers_share_the_sandboxs_group() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(&config, r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#).unwrap();
        assert_eq!(group_of(dir.path()).as_deref(), Some("pod1"));
        std::fs::write(&config, r#"{"annotations":{}}"#).unwrap();
        assert_eq!(group_of(dir.path()), None);
        std::fs::remove_file(&config).unwrap();
        assert_eq!(group_of(dir.path()), None);
    }

    #[test]
    fn the_place_is_recalled_from_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place { root: "/run/x/ns".into(), id: "c1".into(), cache_dir: None };
        remember(dir.path(), &place);
        let back = recalled(dir.path()).unwrap();
        assert_eq!((back.root, back.id), (place.root, place.id));
        forget(dir.path());
        assert!(recalled(dir.path()).is_none());
    }
}
