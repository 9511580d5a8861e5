//! The shim's life as containerd drives it (`start`, serving, `delete`),
//! on containerd's Rust shim library.
//!
//! - `start`: containerd runs the binary in a task's bundle. The containers
//!   of one pod share a shim: the group is the spec's
//!   `io.kubernetes.cri.sandbox-id` annotation (a pod's sandbox names
//!   itself), or the task's own id. If the group's shim already listens, its
//!   address is the answer; otherwise a new shim process is spawned on it.
//! - serving: the helper is forked first, while the process has one thread
//!   ([`crate::helper`]); then the library starts the ttrpc server and the
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
        // Serving and `delete` make processes: the helper is forked now,
        // before the library starts any thread.
        let helper = match args.action.as_str() {
            "" | "delete" => match Helper::fork() {
                Ok(helper) => Some(helper),
                Err(e) => {
                    crate::logging::early(&format!("no helper: {e}"));
                    None
                }
            },
            _ => None,
        };
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        Self {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
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
        let (_, address) = containerd_shim::spawn(opts, &group, Vec::new())?;
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let place = recalled(&self.bundle).unwrap_or_else(|| Place {
            root: crate::options::Settings::default().root_of(&self.namespace),
            id: self.id.clone(),
            cache_dir: None,
        });
        let request = Request::Delete { place, force: true, bundle: self.bundle.clone() };
        let helper = crate::task::lock(&self.helper).take();
        let helper = helper.ok_or_else(|| containerd_shim::Error::Other("delete: no helper".into()))?;
        let answer =
            helper.call(request, Default::default()).map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        if let Reply::Failed(message) = answer.reply {
            return Err(containerd_shim::Error::Other(message));
        }
        forget(&self.bundle);
        Ok(DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: Some(crate::task::now()).into(),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Self::T {
        crate::logging::init(&self.namespace, &self.id);
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = crate::events::Events::start(address, self.namespace.clone(), publisher);
        let helper = crate::task::lock(&self.helper).take().unwrap_or_else(|| {
            tracing::error!("the helper was not forked: the shim cannot make containers");
            std::process::exit(1)
        });
        Service::new(self.namespace.clone(), helper, events, self.exit.clone())
    }
}

/// The pod a bundle's container belongs to, from its spec's annotations.
fn group_of(bundle: &Path) -> Option<String> {
    let text = std::fs::read(bundle.join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let id = spec.get("annotations")?.get(SANDBOX_ID)?.as_str()?;
    (!id.is_empty()).then(|| id.to_owned())
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
