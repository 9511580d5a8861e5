//! containerd's task API (v2), served over ttrpc: one [`Service`] per shim
//! process, for every task of its group (a pod, or one container).
//!
//! Calls that make a process (`Create`, `Start`, `Exec`'s start, `Delete`)
//! go to the helper ([`crate::helper`]); the others call amphi's runtime in
//! the shim itself. Each error is amphi's one-line message with a ttrpc code
//! containerd understands ([`crate::error`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amphi_runtime::ContainerId;
use amphi_runtime::container;
use amphi_runtime::state::Store;
use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest, PidsRequest, PidsResponse, ResizePtyRequest,
    ResumeRequest, ShutdownRequest, StartRequest, StartResponse, StateRequest, StateResponse, StatsRequest,
    StatsResponse, UpdateTaskRequest, WaitRequest, WaitResponse,
};
use containerd_shim::protos::api::CheckpointTaskRequest;
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskIO, TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::protos::topics;
use containerd_shim::protos::types::task::{ProcessInfo, Status};
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};

use crate::error::{Result, ShimError};
use crate::events::Events;
use crate::helper::{Helper, Place, Request, RootfsMount};
use crate::options::Settings;
use crate::stdio::IoSpec;
use crate::task::{Container, Life, Process, Tasks, lock, now};

/// The task service of one shim process.
pub struct Service {
    namespace: String,
    helper: Helper,
    events: Events,
    tasks: Arc<Tasks>,
    exit: Arc<ExitSignal>,
    /// Serialises `Create` and `Delete` of the same id with the map.
    creating: Mutex<()>,
    next_pid_file: AtomicU64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("namespace", &self.namespace)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service for `namespace` that makes processes through `helper`.
    pub fn new(namespace: String, helper: Helper, events: Events, exit: Arc<ExitSignal>) -> Self {
        let tasks = Arc::new(Tasks::default());
        if let Err(e) = tasks.reap(events.clone()) {
            tracing::error!("no reaper thread: {e}");
        }
        Self { namespace, helper, events, tasks, exit, creating: Mutex::new(()), next_pid_file: AtomicU64::new(0) }
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.tasks.container(id).ok_or_else(|| ShimError::NotFound(format!("container {id}: no such task")))
    }

    fn process(&self, id: &str, exec_id: &str) -> Result<(Arc<Container>, Arc<Process>)> {
        let container = self.container(id)?;
        if exec_id.is_empty() {
            let init = container.init.clone();
            return Ok((container, init));
        }
        let exec = lock(&container.execs).get(exec_id).cloned();
        let exec = exec.ok_or_else(|| ShimError::NotFound(format!("container {id}: no exec process {exec_id:?}")))?;
        Ok((container, exec))
    }

    fn do_create(&self, req: &CreateTaskRequest) -> Result<u32> {
        let _serial = lock(&self.creating);
        let id = ContainerId::new(&req.id).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
        if self.tasks.container(id.as_str()).is_some() {
            return Err(ShimError::AlreadyExists(format!("container {id}: a task with this id exists")));
        }
        if !req.checkpoint.is_empty() {
            return Err(ShimError::Unimplemented("checkpoint: amphi does not restore checkpoints".into()));
        }
        let settings = Settings::from_options(req.options.as_ref())?;
        let place = Place { root: settings.root_of(&self.namespace), id: id.to_string(), cache_dir: settings.cache() };
        let bundle = PathBuf::from(&req.bundle);
        let io_spec = IoSpec {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let prepared = io_spec.prepare(&self.namespace, id.as_str(), &run_dir(&place.root)?)?;
        let rootfs = req
            .rootfs
            .iter()
            .map(|m| RootfsMount { kind: m.type_.clone(), source: m.source.clone(), options: m.options.clone() })
            .collect();
        let request = Request::Create {
            place: place.clone(),
            bundle: bundle.clone(),
            rootfs,
            systemd_cgroup: settings.systemd_cgroup,
            console_socket: prepared.console_socket.clone(),
        };
        let init = Arc::new(Process::new(id.as_str(), "", io_spec.clone(), None));
        let pid = match self.made(&init, request, prepared, false) {
            Ok(pid) => pid,
            Err(e) => {
                if init.pid() != 0 || matches!(e, ShimError::Internal(_)) {
                    let undo = Request::Delete { place: place.clone(), force: true, bundle: bundle.clone() };
                    let _ = self.helper.call(undo, Default::default());
                }
                return Err(e);
            }
        };
        crate::shim::remember(&bundle, &place);
        let container = Arc::new(Container {
            place,
            bundle,
            init,
            execs: Mutex::new(Default::default()),
            paused: Mutex::new(false),
        });
        lock(&self.tasks.containers).insert(id.to_string(), container.clone());
        self.watch_oom(&container);
        self.events.send(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: id.to_string(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: Some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                })
                .into(),
                pid,
                ..Default::default()
            },
        );
        Ok(pid)
    }

    /// Has the helper make `process` with `request`, records its pid, then
    /// lets the worker go (so the process becomes the shim's child).
    fn made(
        &self,
        process: &Arc<Process>,
        request: Request,
        prepared: crate::stdio::Prepared,
        running: bool,
    ) -> Result<u32> {
        let mut rest = prepared;
        let stdio = std::mem::take(&mut rest.stdio);
        let answer = self.helper.call(request, stdio)?;
        let pid = match answer.reply {
            crate::helper::Reply::Done(Some(pid)) => u32::try_from(pid).unwrap_or(0),
            crate::helper::Reply::Done(None) => 0,
            crate::helper::Reply::Failed(message) => {
                drop(rest);
                process.never_ran();
                return Err(ShimError::Runtime(message));
            }
        };
        self.tasks.register(pid, process);
        let io = rest.finish(&process.io_spec);
        drop(answer);
        match io {
            Ok(io) => {
                process.made(pid, io, running);
                Ok(pid)
            }
            Err(e) => {
                // The process exists but its streams failed: it goes.
                if let Ok(pidfd) = amphi_runtime::PidFd::open(nix::unistd::Pid::from_raw(pid as i32)) {
                    let _ = pidfd.send_signal(nix::sys::signal::Signal::SIGKILL);
                }
                Err(e)
            }
        }
    }

    fn watch_oom(&self, container: &Arc<Container>) {
        let (events, place) = (self.events.clone(), container.place.clone());
        let spawned = std::thread::Builder::new().name("oom".into()).stack_size(128 * 1024).spawn(move || {
            let Ok(id) = ContainerId::new(&place.id) else { return };
            let store = Store::new(&place.root);
            // Stats are asked for by containerd; this stream only waits for
            // OOM kills (and ends when the container stops).
            let interval = Duration::from_secs(24 * 3600);
            let _ = container::events(&store, &id, interval, &mut |event| {
                if event.kind == "oom" {
                    events.send(
                        topics::TASK_OOM_EVENT_TOPIC,
                        TaskOOM { container_id: place.id.clone(), ..Default::default() },
                    );
                }
                Ok(())
            });
        });
        if let Err(e) = spawned {
            tracing::warn!(id = %container.place.id, "no oom watch: {e}");
        }
    }

    fn store_of(container: &Container) -> Result<(Store, ContainerId)> {
        let id = ContainerId::new(&container.place.id).map_err(|e| ShimError::InvalidArgument(e.to_string()))?;
        Ok((Store::new(&container.place.root), id))
    }

    fn do_start(&self, req: &StartRequest) -> Result<u32> {
        let (container, process) = self.process(&req.id, &req.exec_id)?;
        if req.exec_id.is_empty() {
            let answer = self.helper.call(Request::Start { place: container.place.clone() }, Default::default())?;
            if let crate::helper::Reply::Failed(message) = answer.reply {
                return Err(ShimError::Runtime(message));
            }
            process.started();
            let pid = process.pid();
            self.events.send(
                topics::TASK_START_EVENT_TOPIC,
                TaskStart { container_id: req.id.clone(), pid, ..Default::default() },
            );
            return Ok(pid);
        }
        if !matches!(process.life(), Life::Created) || process.pid() != 0 {
            return Err(ShimError::FailedPrecondition(format!("exec {}: already started", req.exec_id)));
        }
        let spec = process.spec.clone().ok_or_else(|| ShimError::Internal("an exec without a spec".into()))?;
        let run_dir = run_dir(&container.place.root)?;
        let prepared = process.io_spec.prepare(&self.namespace, &req.id, &run_dir)?;
        let n = self.next_pid_file.fetch_add(1, Ordering::Relaxed);
        let pid_file = run_dir.join(format!(".exec-{}-{n}.pid", std::process::id()));
        let request = Request::Exec {
            place: container.place.clone(),
            process: Box::new(spec),
            console_socket: prepared.console_socket.clone(),
            pid_file,
        };
        let pid = self.made(&process, request, prepared, true)?;
        self.events.send(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted { container_id: req.id.clone(), exec_id: req.exec_id.clone(), pid, ..Default::default() },
        );
        Ok(pid)
    }

    fn do_delete(&self, req: &DeleteRequest) -> Result<DeleteResponse> {
        let (container, process) = self.process(&req.id, &req.exec_id)?;
        if !req.exec_id.is_empty() {
            if matches!(process.life(), Life::Running) {
                return Err(ShimError::FailedPrecondition(format!("exec {}: still running", req.exec_id)));
            }
            lock(&container.execs).remove(&req.exec_id);
            let exit = process.exit();
            return Ok(DeleteResponse {
                pid: process.pid(),
                exit_status: exit.as_ref().map_or(0, |e| e.status),
                exited_at: exit.map(|e| e.at).into(),
                ..Default::default()
            });
        }
        let _serial = lock(&self.creating);
        let request =
            Request::Delete { place: container.place.clone(), force: false, bundle: container.bundle.clone() };
        let answer = self.helper.call(request, Default::default())?;
        if let crate::helper::Reply::Failed(message) = answer.reply {
            return Err(ShimError::Runtime(message));
        }
        drop(answer);
        // Deleting a created container kills its init: its exit comes soon.
        let exit = process.wait(Some(Duration::from_secs(2)));
        // An exec that never started never will: its waiters return.
        for exec in lock(&container.execs).values() {
            exec.never_ran();
        }
        lock(&self.tasks.containers).remove(&req.id);
        crate::shim::forget(&container.bundle);
        let (status, at) = exit.map_or((0, now()), |e| (e.status, e.at));
        self.events.send(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: req.id.clone(),
                pid: process.pid(),
                exit_status: status,
                exited_at: Some(at.clone()).into(),
                id: req.id.clone(),
                ..Default::default()
            },
        );
        Ok(DeleteResponse { pid: process.pid(), exit_status: status, exited_at: Some(at).into(), ..Default::default() })
    }

    fn do_exec(&self, req: &ExecProcessRequest) -> Result<()> {
        let container = self.container(&req.id)?;
        if !matches!(container.init.life(), Life::Running) {
            return Err(ShimError::FailedPrecondition(format!("container {}: not running: cannot exec in it", req.id)));
        }
        let spec = req.spec.as_ref().ok_or_else(|| ShimError::InvalidArgument("exec: no process spec".into()))?;
        let mut de = serde_json::Deserializer::from_slice(&spec.value);
        let process: oci_spec::runtime::Process = serde_path_to_error(&mut de)
            .map_err(|e| ShimError::InvalidArgument(format!("exec {}: not a Process JSON: {e}", req.exec_id)))?;
        amphi_runtime::plan::process::check(&process)
            .map_err(|e| ShimError::InvalidArgument(format!("exec {}: {}: {}", req.exec_id, e.field, e.reason)))?;
        let io_spec = IoSpec {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        {
            let mut execs = lock(&container.execs);
            if execs.contains_key(&req.exec_id) {
                return Err(ShimError::AlreadyExists(format!("exec {}: exists in container {}", req.exec_id, req.id)));
            }
            execs.insert(req.exec_id.clone(), Arc::new(Process::new(&req.id, &req.exec_id, io_spec, Some(process))));
        }
        self.events.send(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded { container_id: req.id.clone(), exec_id: req.exec_id.clone(), ..Default::default() },
        );
        Ok(())
    }

    fn do_kill(&self, req: &KillRequest) -> Result<()> {
        let (container, process) = self.process(&req.id, &req.exec_id)?;
        let signal = i32::try_from(req.signal)
            .ok()
            .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
            .ok_or_else(|| ShimError::InvalidArgument(format!("kill: signal {} is not a signal", req.signal)))?;
        if process.exit().is_some() {
            return Err(ShimError::NotFound(format!("process {}: already finished", process.pid())));
        }
        if req.exec_id.is_empty() {
            let (store, id) = Self::store_of(&container)?;
            return container::kill(&store, &id, signal, req.all).map_err(ShimError::from);
        }
        let pid = process.pid();
        if pid == 0 {
            return Err(ShimError::FailedPrecondition(format!("exec {}: not started", req.exec_id)));
        }
        let pidfd = amphi_runtime::PidFd::open(nix::unistd::Pid::from_raw(pid as i32))
            .map_err(|e| ShimError::NotFound(format!("exec {}: process {pid}: {e}", req.exec_id)))?;
        pidfd.send_signal(signal).map_err(|e| ShimError::Internal(format!("signal exec {}: {e}", req.exec_id)))
    }

    fn do_state(&self, req: &StateRequest) -> Result<StateResponse> {
        let (container, process) = self.process(&req.id, &req.exec_id)?;
        let mut status = match process.life() {
            Life::Created => Status::CREATED,
            Life::Running => Status::RUNNING,
            Life::Exited(_) => Status::STOPPED,
        };
        if status == Status::RUNNING && *lock(&container.paused) {
            status = Status::PAUSED;
        }
        let exit = process.exit();
        Ok(StateResponse {
            id: if req.exec_id.is_empty() { req.id.clone() } else { req.exec_id.clone() },
            bundle: container.bundle.display().to_string(),
            pid: process.pid(),
            status: status.into(),
            stdin: process.io_spec.stdin.clone(),
            stdout: process.io_spec.stdout.clone(),
            stderr: process.io_spec.stderr.clone(),
            terminal: process.io_spec.terminal,
            exit_status: exit.as_ref().map_or(0, |e| e.status),
            exited_at: exit.map(|e| e.at).into(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }

    fn do_pause(&self, id: &str, pause: bool) -> Result<()> {
        let container = self.container(id)?;
        let (store, cid) = Self::store_of(&container)?;
        if pause {
            container::pause(&store, &cid)?;
            *lock(&container.paused) = true;
            self.events
                .send(topics::TASK_PAUSED_EVENT_TOPIC, TaskPaused { container_id: id.into(), ..Default::default() });
        } else {
            container::resume(&store, &cid)?;
            *lock(&container.paused) = false;
            self.events
                .send(topics::TASK_RESUMED_EVENT_TOPIC, TaskResumed { container_id: id.into(), ..Default::default() });
        }
        Ok(())
    }

    fn do_pids(&self, req: &PidsRequest) -> Result<PidsResponse> {
        let container = self.container(&req.id)?;
        let (store, id) = Self::store_of(&container)?;
        let pids = container::ps(&store, &id)?;
        let execs: Vec<(u32, String)> = lock(&container.execs).values().map(|p| (p.pid(), p.exec_id.clone())).collect();
        let processes = pids
            .into_iter()
            .map(|pid| {
                let pid = u32::try_from(pid).unwrap_or(0);
                let mut info = ProcessInfo { pid, ..Default::default() };
                if let Some((_, exec_id)) = execs.iter().find(|(p, _)| *p == pid) {
                    let details = ProcessDetails { exec_id: exec_id.clone(), ..Default::default() };
                    info.info = details
                        .write_to_bytes()
                        .ok()
                        .map(|value| Any {
                            type_url: "containerd.runc.v1.ProcessDetails".into(),
                            value,
                            ..Default::default()
                        })
                        .into();
                }
                info
            })
            .collect();
        Ok(PidsResponse { processes, ..Default::default() })
    }

    fn do_update(&self, req: &UpdateTaskRequest) -> Result<()> {
        let container = self.container(&req.id)?;
        let resources =
            req.resources.as_ref().ok_or_else(|| ShimError::InvalidArgument("update: no resources".into()))?;
        let mut de = serde_json::Deserializer::from_slice(&resources.value);
        let resources: oci_spec::runtime::LinuxResources = serde_path_to_error(&mut de)
            .map_err(|e| ShimError::InvalidArgument(format!("update: resources: not LinuxResources JSON: {e}")))?;
        let (store, id) = Self::store_of(&container)?;
        container::update(&store, &id, &resources).map_err(ShimError::from)
    }

    fn do_stats(&self, req: &StatsRequest) -> Result<StatsResponse> {
        let container = self.container(&req.id)?;
        let (store, id) = Self::store_of(&container)?;
        let event = container::stats(&store, &id)?;
        let stats = event.data.unwrap_or_default();
        Ok(StatsResponse { stats: Some(crate::metrics::metrics(&stats)).into(), ..Default::default() })
    }
}

/// The state root, made (root's only) if this is its first container: the
/// shim's console sockets and exec pid files go there, never in a directory
/// others may write.
fn run_dir(root: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| ShimError::Internal(format!("state root {}: {e}", root.display())))?;
    Ok(root.to_owned())
}

fn serde_path_to_error<'de, T: serde::Deserialize<'de>>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> std::result::Result<T, String> {
    T::deserialize(de).map_err(|e| e.to_string())
}

/// Logs a failed call at the level it deserves and hands it to ttrpc.
fn answer<T>(call: &str, id: &str, result: Result<T>) -> TtrpcResult<T> {
    if let Err(e) = &result {
        tracing::info!(call, id, "refused: {e}");
    }
    result.map_err(Into::into)
}

impl containerd_shim::Task for Service {
    fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        let pid = answer("create", &req.id, self.do_create(&req))?;
        Ok(CreateTaskResponse { pid, ..Default::default() })
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        let pid = answer("start", &req.id, self.do_start(&req))?;
        Ok(StartResponse { pid, ..Default::default() })
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        answer("delete", &req.id, self.do_delete(&req))
    }

    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        answer("exec", &req.id, self.do_exec(&req))?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let resized = self
            .process(&req.id, &req.exec_id)
            .and_then(|(_, p)| p.with_io(|io| io.resize(req.width, req.height)).unwrap_or(Ok(())));
        answer("resize", &req.id, resized)?;
        Ok(Empty::new())
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        answer("state", &req.id, self.do_state(&req))
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        answer("pids", &req.id, self.do_pids(&req))
    }

    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        answer("pause", &req.id, self.do_pause(&req.id, true))?;
        Ok(Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        answer("resume", &req.id, self.do_pause(&req.id, false))?;
        Ok(Empty::new())
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        let refused = Err(ShimError::Unimplemented("checkpoint: not supported by amphi".into()));
        answer("checkpoint", &req.id, refused)
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        answer("kill", &req.id, self.do_kill(&req))?;
        Ok(Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        let closed = self.process(&req.id, &req.exec_id).map(|(_, p)| {
            if req.stdin {
                p.with_io(crate::stdio::Io::close_stdin);
            }
        });
        answer("closeio", &req.id, closed)?;
        Ok(Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        answer("update", &req.id, self.do_update(&req))?;
        Ok(Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let (_, process) = answer("wait", &req.id, self.process(&req.id, &req.exec_id))?;
        let exit = process.wait(None).unwrap_or(crate::task::Exit { status: 255, at: now() });
        Ok(WaitResponse { exit_status: exit.status, exited_at: Some(exit.at).into(), ..Default::default() })
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        answer("stats", &req.id, self.do_stats(&req))
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let container = answer("connect", &req.id, self.container(&req.id))?;
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: container.init.pid(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: ShutdownRequest) -> TtrpcResult<Empty> {
        // One shim serves a whole pod: it goes only with its last task.
        let left = lock(&self.tasks.containers).len();
        tracing::debug!(left, "shutdown asked");
        if left == 0 {
            self.exit.signal();
        }
        Ok(Empty::new())
    }
}
