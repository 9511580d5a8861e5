//! The Kubernetes setup in `docs/`: containerd accepts the documented CRI
//! config (started with it, paths moved into the test's directory) and lists
//! both amphi runtime handlers with their options, `amphi` (containerd's runc
//! shim) and `amphi-shim` (amphi's shim, its documented settings file); the
//! RuntimeClasses, the Pod and the service's Deployment name them; pods run a
//! wasm command beside a native sidecar, and a wasm service reached on its
//! port, through either handler. Through `amphi-shim` one shim process serves
//! the whole pod.

use std::path::Path;

use serde_json::Value;

use crate::containerd::{Containerd, Via, parent_of};
use crate::cri::{self, Cri, Pb};
use crate::http;
use crate::support::{self, can_run, images, runs_wasm};

/// The pod sandbox image the test config names (the test images' pause).
const PAUSE: &str = "amphi.test/pause:latest";

/// The documented runtime handler that goes `via` that shim.
pub fn handler(via: Via) -> &'static str {
    match via {
        Via::RuncShim => "amphi",
        Via::AmphiShim => "amphi-shim",
    }
}

fn docs() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))
}

fn read(rel: &str) -> String {
    let path = docs().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The documented config with this test's private paths first, the built
/// amphi as `BinaryName`, and the documented shim settings copied into the
/// test's directory as the shim's `ConfigPath`.
pub fn test_config(dir: &Path) -> String {
    let documented = read("containerd/config.toml");
    assert!(documented.contains(r#"BinaryName = "/usr/local/bin/amphi""#), "the docs name /usr/local/bin/amphi");
    assert!(documented.contains(r#"ConfigPath = "/etc/amphi/shim.toml""#), "the docs name /etc/amphi/shim.toml");
    let shim_config = dir.join("amphi-shim.toml");
    std::fs::write(&shim_config, read("containerd/amphi-shim.toml")).expect("write the shim's settings");
    let amphi = support::runtime().bin.display().to_string();
    let body = documented
        .replace("version = 2\n", "")
        .replace("/usr/local/bin/amphi", &amphi)
        .replace("/etc/amphi/shim.toml", &shim_config.display().to_string());
    let d = dir.display();
    format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\n[grpc]\n  address = \"{d}/c.sock\"\n\n\
         [ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\n\
         [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_tcp_service = true\n  stream_server_address = \"127.0.0.1\"\n\
         sandbox_image = \"{PAUSE}\"\n\
         restrict_oom_score_adj = true\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  conf_dir = \"{d}/cni\"\n\n{body}"
    )
}

#[test]
fn containerd_accepts_the_documented_cri_config_and_lists_amphi() {
    if !can_run("containerd") {
        return;
    }
    let ctrd = Containerd::start_with("cri_config", test_config);
    let plugins = ctrd.ctr_ok(&["plugins", "ls"]);
    let cri =
        plugins.lines().find(|l| l.contains("io.containerd.grpc.v1") && l.split_whitespace().nth(1) == Some("cri"));
    let cri = cri.unwrap_or_else(|| panic!("no cri plugin: {plugins}"));
    assert!(cri.trim_end().ends_with("ok"), "the cri plugin did not load: {cri}\n{}", ctrd.log());

    // The CRI plugin logs the configuration it runs with, runtime handlers
    // included.
    let amphi = support::runtime().bin.display().to_string();
    let log = ctrd.log();
    let started = log
        .lines()
        .find(|l| l.contains("Start cri plugin with config"))
        .unwrap_or_else(|| panic!("the cri plugin logged no config:\n{log}"));
    assert!(started.contains("amphi:{Type:io.containerd.runc.v2"), "{started}");
    assert!(started.contains(&format!("BinaryName:{amphi}")), "{started}");
    assert!(started.contains("amphi-shim:{Type:io.containerd.amphi.v1"), "{started}");
    let shim_config = ctrd.dir.path().join("amphi-shim.toml");
    assert!(started.contains(&format!("ConfigPath:{}", shim_config.display())), "{started}");
    assert!(started.contains("PodAnnotations:[run.oci.handler module.wasm.image/variant]"), "{started}");
    assert!(started.contains("ContainerAnnotations:[run.oci.handler module.wasm.image/variant]"), "{started}");
    ctrd.finish();
}

#[test]
fn the_runtime_classes_and_the_pod_name_the_amphi_handlers() {
    for (file, via) in
        [("kubernetes/runtimeclass.yaml", Via::RuncShim), ("kubernetes/runtimeclass-shim.yaml", Via::AmphiShim)]
    {
        let class = read(file);
        let name = handler(via);
        assert!(class.contains("kind: RuntimeClass") && class.contains(&format!("\nhandler: {name}\n")), "{class}");
        assert!(class.contains(&format!("  name: {name}\n")), "{class}");
        // The handler's name is a runtime table's in the containerd config.
        assert!(read("containerd/config.toml").contains(&format!("containerd.runtimes.{name}]")));
        assert!(read("kubernetes.md").contains(file), "docs/kubernetes.md does not point at {file}");
    }
    assert!(read("kubernetes.md").contains("containerd/amphi-shim.toml"), "docs/kubernetes.md does not point at it");
    let pod = read("kubernetes/pod.yaml");
    assert!(pod.contains("runtimeClassName: amphi"), "{pod}");
    assert!(pod.contains("module.wasm.image/variant: compat-smart"), "{pod}");
    let guide = read("kubernetes.md");
    for file in ["containerd/config.toml", "kubernetes/runtimeclass.yaml", "kubernetes/pod.yaml"] {
        assert!(guide.contains(file), "docs/kubernetes.md does not point at {file}");
    }
}

#[test]
fn the_service_deployment_names_the_amphi_handler_and_its_port() {
    let manifest = read("kubernetes/service.yaml");
    for line in [
        "kind: Deployment",
        "kind: Service",
        "      runtimeClassName: amphi",
        "              containerPort: 8080",
        "            - name: WASMTIME_HTTP_PROXY_SOCKET_ADDR",
        "          readinessProbe:",
        "            httpGet:",
    ] {
        assert!(manifest.lines().any(|l| l == line), "docs/kubernetes/service.yaml lacks {line:?}");
    }
    assert!(read("kubernetes.md").contains("kubernetes/service.yaml"), "docs/kubernetes.md does not point at it");
}

/// The CRI plugin's containerd namespace.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// The kubelet's pid namespace modes: each container its own (the default), or
/// one for the pod (`shareProcessNamespace: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidMode {
    Container = 1,
    Pod = 0,
}

/// A NamespaceOption: network NODE (2, as there is no CNI here), pid `pid`,
/// ipc POD (0).
fn namespaces(pid: PidMode) -> Pb {
    Pb::new().int(1, 2).int(2, pid as u64).int(3, 0)
}

/// The sandbox config of the test pod: host network, the wasm annotation on
/// the pod, cgroups under `/k8s.io`.
pub fn pod_config(logs: &Path, pid: PidMode) -> Pb {
    let metadata =
        Pb::new().str(1, "wasm-with-sidecar").str(2, &format!("uid-{}", std::process::id())).str(3, "default");
    let linux = Pb::new().str(1, &format!("/{K8S_NAMESPACE}")).msg(2, Pb::new().msg(1, namespaces(pid)));
    Pb::new()
        .msg(1, metadata)
        .str(3, logs.to_str().expect("utf-8 path"))
        .map(7, "module.wasm.image/variant", "compat-smart")
        .msg(8, linux)
}

/// A ContainerConfig: `name`, `image`, `command` (empty: the image's), logging
/// to `<name>.log`, the pid namespace `pid`.
pub fn container_config(name: &str, image: &str, command: &[&str], pid: PidMode) -> Pb {
    let mut config =
        Pb::new().msg(1, Pb::new().str(1, name)).msg(2, Pb::new().str(1, image)).str(11, &format!("{name}.log"));
    for arg in command {
        config = config.str(3, arg);
    }
    config.msg(15, Pb::new().msg(2, Pb::new().msg(3, namespaces(pid))))
}

/// Creates and starts a container in the sandbox; returns its id.
pub fn start_container(cri: &Cri, ctrd: &Containerd, sandbox: &str, pod: &Pb, config: Pb) -> String {
    let created = cri.ok("CreateContainer", &Pb::new().str(1, sandbox).msg(2, config).msg(3, pod.clone()));
    let id = cri::string(&created, 1);
    ctrd.register(&id);
    cri.ok("StartContainer", &Pb::new().str(1, &id));
    id
}

/// The container's CRI state (0 created, 1 running, 2 exited) and exit code.
pub fn container_state(cri: &Cri, id: &str) -> (u64, i32) {
    let status = cri::field(&cri.ok("ContainerStatus", &Pb::new().str(1, id)), 1);
    (cri::int(&status, 3), cri::int(&status, 7) as i64 as i32)
}

/// Waits (up to 10 s) until the container `id` is in the CRI state `wanted`.
pub fn wait_state(cri: &Cri, ctrd: &Containerd, id: &str, wanted: u64, log: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (state, code) = container_state(cri, id);
        if state == wanted {
            return;
        }
        if std::time::Instant::now() > deadline {
            let errors: Vec<&str> = ctrd
                .log()
                .lines()
                .filter(|l| l.contains("level=error"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
                .leak()
                .iter()
                .map(String::as_str)
                .collect();
            panic!(
                "container {id} is in state {state} (exit code {code}), not {wanted}; its log: {:?}; containerd's errors:\n{}",
                std::fs::read_to_string(log).unwrap_or_default(),
                errors.join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// amphi's state file for a container made in `k8s.io` `via` that shim.
fn amphi_state(via: Via, id: &str) -> Value {
    let path = via.runtime_root(K8S_NAMESPACE).join(id).join("state.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&text).expect("state.json is JSON")
}

/// A pod sandbox, run through `via`'s handler on a containerd of its own
/// that has `archives` imported.
pub struct PodRun {
    /// The test's containerd.
    pub ctrd: Containerd,
    /// Its CRI client.
    pub cri: Cri,
    /// The pod's log directory.
    pub logs: std::path::PathBuf,
    /// The pod's config.
    pub pod: Pb,
    /// The sandbox's id.
    pub sandbox: String,
}

/// Starts containerd for the CRI, imports `archives` and runs a pod sandbox
/// with `pid`'s namespaces through `via`'s handler. Hold [`CRI_LOCK`] first.
pub fn run_pod(via: Via, pid: PidMode, archives: &[&amphi_test_bundles::ImageArchive]) -> PodRun {
    let ctrd = Containerd::start_in_via(K8S_NAMESPACE, via, test_config);
    ctrd.import(archives);
    let cri = Cri { socket: ctrd.address.clone() };
    let logs = ctrd.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let pod = pod_config(&logs, pid);
    let run = cri.call("RunPodSandbox", &Pb::new().msg(1, pod.clone()).str(2, handler(via)));
    let sandbox = cri::string(&run.unwrap_or_else(|e| panic!("{e}; containerd:\n{}", ctrd.log())), 1);
    ctrd.register(&sandbox);
    PodRun { ctrd, cri, logs, pod, sandbox }
}

/// The CRI tests share the `k8s.io` namespace and its runtime root: one at a
/// time.
pub static CRI_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_pod_runs_wasm_beside_a_native_sidecar_through_the_cri_runtime_handler() {
    pod_scenario(PidMode::Container, Via::RuncShim);
}

/// With one pid namespace for the pod, containerd's shim runs `kill --all`
/// after each container's init exits.
#[test]
fn a_pod_sharing_its_pid_namespace_runs_wasm_beside_a_native_sidecar() {
    pod_scenario(PidMode::Pod, Via::RuncShim);
}

#[test]
fn a_pod_runs_wasm_beside_a_native_sidecar_in_one_amphi_shim() {
    pod_scenario(PidMode::Container, Via::AmphiShim);
}

#[test]
fn a_pod_sharing_its_pid_namespace_runs_wasm_beside_a_native_sidecar_in_one_amphi_shim() {
    pod_scenario(PidMode::Pod, Via::AmphiShim);
}

/// The shim serving the process `pid`: its nearest ancestor among the
/// containerd's shims.
fn serving_shim(ctrd: &Containerd, pid: i64) -> Option<i32> {
    let shims = ctrd.shim_servers();
    let mut current = parent_of(pid)?;
    while current > 1 {
        if shims.contains(&current) {
            return Some(current);
        }
        current = parent_of(i64::from(current))?;
    }
    None
}

/// What the kubelet does for the pod in `docs/kubernetes/pod.yaml`: a sandbox
/// through the `amphi` handler, a wasm app that runs to completion, a native
/// sidecar, an exec into the sidecar, then the pod stopped and removed.
fn pod_scenario(pid: PidMode, via: Via) {
    if !runs_wasm() || !can_run("containerd") || !via.applies() {
        return;
    }
    let _one_at_a_time = CRI_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let PodRun { ctrd, cri, logs, pod, sandbox } =
        run_pod(via, pid, &[&images().pause, &images().native, &images().wasm_plain]);
    let version = cri.ok("Version", &Pb::new().str(1, "v1"));
    assert_eq!(cri::string(&version, 2), "containerd");
    // The sandbox ran through the amphi handler, natively.
    let sandbox_state = amphi_state(via, &sandbox);
    assert_eq!(sandbox_state["executor"], "native", "{sandbox_state}");
    assert_eq!(sandbox_state["annotations"]["io.kubernetes.cri.container-type"], "sandbox");

    // The wasm app: the image's entrypoint is /hello.wasm.
    let app =
        start_container(&cri, &ctrd, &sandbox, &pod, container_config("app", "amphi.test/wasm-plain:latest", &[], pid));
    wait_state(&cri, &ctrd, &app, 2, &logs.join("app.log"));
    assert_eq!(container_state(&cri, &app).1, 0, "the app's exit code");
    let app_log = std::fs::read_to_string(logs.join("app.log")).expect("app log");
    assert!(app_log.contains("stdout F hello from wasm"), "{app_log}");

    // The native sidecar, with the pod's annotation passed through the
    // allow-list, runs natively (compat-smart and an ELF entrypoint).
    let sidecar = start_container(
        &cri,
        &ctrd,
        &sandbox,
        &pod,
        container_config(
            "sidecar",
            "amphi.test/native:latest",
            &["/bin/sh", "-c", "echo sidecar up; exec sleep 1000"],
            pid,
        ),
    );
    wait_state(&cri, &ctrd, &sidecar, 1, &logs.join("sidecar.log"));
    let state = amphi_state(via, &sidecar);
    assert_eq!(state["executor"], "native", "{state}");
    assert_eq!(state["annotations"]["module.wasm.image/variant"], "compat-smart", "{state}");
    support::wait_until("the sidecar logs", || {
        std::fs::read_to_string(logs.join("sidecar.log")).is_ok_and(|l| l.contains("stdout F sidecar up"))
    });

    // kubectl exec's path: a wasm tool exec'd into the native sidecar.
    let exec = cri.ok("ExecSync", &Pb::new().str(1, &sidecar).str(2, "/wasm/hello.wasm").int(3, 20));
    assert_eq!(cri::string(&exec, 1), "hello from wasm\n", "stderr: {}", cri::string(&exec, 2));
    assert_eq!(cri::int(&exec, 3), 0);

    if via == Via::AmphiShim {
        one_shim_serves_the_pod(&cri, &ctrd, &sandbox, &pod, &sidecar, pid, &logs);
    }

    cri.ok("StopContainer", &Pb::new().str(1, &sidecar).int(2, 0));
    cri.ok("StopPodSandbox", &Pb::new().str(1, &sandbox));
    cri.ok("RemovePodSandbox", &Pb::new().str(1, &sandbox));
    ctrd.finish();
}

/// Through amphi's shim: a wasm container that keeps running (the looping
/// guest) joins the sandbox and the sidecar, and one shim process (its
/// helper child aside) is the ancestor of all three tasks' inits.
fn one_shim_serves_the_pod(
    cri: &Cri,
    ctrd: &Containerd,
    sandbox: &str,
    pod: &Pb,
    sidecar: &str,
    pid: PidMode,
    logs: &Path,
) {
    let config = container_config("spinner", "amphi.test/wasm-plain:latest", &["/loop-forever.wasm"], pid);
    let spinner = start_container(cri, ctrd, sandbox, pod, config);
    wait_state(cri, ctrd, &spinner, 1, &logs.join("spinner.log"));
    assert_eq!(amphi_state(Via::AmphiShim, &spinner)["executor"], "wasm");
    support::wait_until("the wasm container logs", || {
        std::fs::read_to_string(logs.join("spinner.log")).is_ok_and(|l| l.contains("stdout F looping"))
    });
    let shims = ctrd.shim_servers();
    assert_eq!(shims.len(), 1, "one shim process serves the pod: {shims:?}");
    for id in [sandbox, sidecar, spinner.as_str()] {
        let (init, status) = ctrd.task(id).unwrap_or_else(|| panic!("no task {id}"));
        assert_eq!(status, "RUNNING", "task {id}");
        assert_eq!(serving_shim(ctrd, init), Some(shims[0]), "the shim of {id}'s init {init}");
    }
    cri.ok("StopContainer", &Pb::new().str(1, &spinner).int(2, 10));
    wait_state(cri, ctrd, &spinner, 2, &logs.join("spinner.log"));
}

/// What the kubelet does for the Deployment in `docs/kubernetes/service.yaml`,
/// on the node's network (there is no CNI here): a pod through the `amphi`
/// handler whose container is a wasm service, listening on the port its env
/// names by the time StartContainer returns, answering from the host;
/// StopContainer's SIGTERM ends it with 0.
#[test]
fn a_pod_serves_a_wasm_service_on_its_port() {
    service_scenario(Via::RuncShim);
}

#[test]
fn a_pod_serves_a_wasm_service_on_its_port_through_amphi_shim() {
    service_scenario(Via::AmphiShim);
}

fn service_scenario(via: Via) {
    if !runs_wasm() || !can_run("containerd") || !via.applies() {
        return;
    }
    let _one_at_a_time = CRI_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let PodRun { ctrd, cri, logs, pod, sandbox } =
        run_pod(via, PidMode::Container, &[&images().pause, &images().service]);

    // The node's network is shared: a free port of the host's loopback.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let env = Pb::new().str(1, "WASMTIME_HTTP_PROXY_SOCKET_ADDR").str(2, &addr.to_string());
    let config = container_config("web", "amphi.test/wasm-service:latest", &[], PidMode::Container).msg(6, env);
    let web = start_container(&cri, &ctrd, &sandbox, &pod, config);
    assert_eq!(amphi_state(via, &web)["executor"], "wasm");
    let response = http::get_ok(None, addr, "/", &[("x-echo", "through the cri")]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, "hello from a wasm service\n");
    assert_eq!(response.header("x-echo"), Some("through the cri"), "{response:?}");

    cri.ok("StopContainer", &Pb::new().str(1, &web).int(2, 30));
    wait_state(&cri, &ctrd, &web, 2, &logs.join("web.log"));
    assert_eq!(container_state(&cri, &web).1, 0, "SIGTERM ends a service with 0");
    assert!(http::get(None, addr, "/", &[]).is_err(), "{addr} still answers after the service stopped");
    cri.ok("StopPodSandbox", &Pb::new().str(1, &sandbox));
    cri.ok("RemovePodSandbox", &Pb::new().str(1, &sandbox));
    ctrd.finish();
}
