//! The Kubernetes setup in `docs/`: containerd accepts the documented CRI
//! config (started with it, paths moved into the test's directory) and lists
//! the amphi runtime handler with its options; the RuntimeClass, the Pod and
//! the service's Deployment name that handler; pods run a wasm command beside
//! a native sidecar, and a wasm service reached on its port.

use std::path::Path;

use serde_json::Value;

use crate::containerd::{Containerd, SHIM_RUNTIME_ROOT};
use crate::cri::{self, Cri, Pb};
use crate::http;
use crate::support::{self, can_run, images, runs_wasm};

/// The pod sandbox image the test config names (the test images' pause).
const PAUSE: &str = "amphi.test/pause:latest";

fn docs() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))
}

fn read(rel: &str) -> String {
    let path = docs().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The documented config with this test's private paths first and the built
/// amphi as `BinaryName`.
fn test_config(dir: &Path) -> String {
    let documented = read("containerd/config.toml");
    assert!(documented.contains(r#"BinaryName = "/usr/local/bin/amphi""#), "the docs name /usr/local/bin/amphi");
    let amphi = support::runtime().bin.display().to_string();
    let body = documented.replace("version = 2\n", "").replace("/usr/local/bin/amphi", &amphi);
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
    assert!(started.contains("PodAnnotations:[run.oci.handler module.wasm.image/variant]"), "{started}");
    assert!(started.contains("ContainerAnnotations:[run.oci.handler module.wasm.image/variant]"), "{started}");
    ctrd.finish();
}

#[test]
fn the_runtime_class_and_the_pod_name_the_amphi_handler() {
    let class = read("kubernetes/runtimeclass.yaml");
    assert!(class.contains("kind: RuntimeClass") && class.contains("\nhandler: amphi\n"), "{class}");
    assert!(class.contains("  name: amphi\n"), "{class}");
    let pod = read("kubernetes/pod.yaml");
    assert!(pod.contains("runtimeClassName: amphi"), "{pod}");
    assert!(pod.contains("module.wasm.image/variant: compat-smart"), "{pod}");
    // The handler's name is the runtime table's in the containerd config.
    assert!(read("containerd/config.toml").contains("containerd.runtimes.amphi]"));
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
const K8S_NAMESPACE: &str = "k8s.io";

/// The kubelet's pid namespace modes: each container its own (the default), or
/// one for the pod (`shareProcessNamespace: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PidMode {
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
fn pod_config(logs: &Path, pid: PidMode) -> Pb {
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
fn container_config(name: &str, image: &str, command: &[&str], pid: PidMode) -> Pb {
    let mut config =
        Pb::new().msg(1, Pb::new().str(1, name)).msg(2, Pb::new().str(1, image)).str(11, &format!("{name}.log"));
    for arg in command {
        config = config.str(3, arg);
    }
    config.msg(15, Pb::new().msg(2, Pb::new().msg(3, namespaces(pid))))
}

/// Creates and starts a container in the sandbox; returns its id.
fn start_container(cri: &Cri, ctrd: &Containerd, sandbox: &str, pod: &Pb, config: Pb) -> String {
    let created = cri.ok("CreateContainer", &Pb::new().str(1, sandbox).msg(2, config).msg(3, pod.clone()));
    let id = cri::string(&created, 1);
    ctrd.register(&id);
    cri.ok("StartContainer", &Pb::new().str(1, &id));
    id
}

/// The container's CRI state (0 created, 1 running, 2 exited) and exit code.
fn container_state(cri: &Cri, id: &str) -> (u64, i32) {
    let status = cri::field(&cri.ok("ContainerStatus", &Pb::new().str(1, id)), 1);
    (cri::int(&status, 3), cri::int(&status, 7) as i64 as i32)
}

/// Waits (up to 10 s) until the container `id` is in the CRI state `wanted`.
fn wait_state(cri: &Cri, ctrd: &Containerd, id: &str, wanted: u64, log: &Path) {
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

/// amphi's state file for a container the runc shim made in `k8s.io`.
fn amphi_state(id: &str) -> Value {
    let path = Path::new(SHIM_RUNTIME_ROOT).join(K8S_NAMESPACE).join(id).join("state.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&text).expect("state.json is JSON")
}

/// The CRI tests share the `k8s.io` namespace and its runtime root: one at a
/// time.
static CRI_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_pod_runs_wasm_beside_a_native_sidecar_through_the_cri_runtime_handler() {
    pod_scenario(PidMode::Container);
}

/// With one pid namespace for the pod, containerd's shim runs `kill --all`
/// after each container's init exits.
#[test]
fn a_pod_sharing_its_pid_namespace_runs_wasm_beside_a_native_sidecar() {
    pod_scenario(PidMode::Pod);
}

/// What the kubelet does for the pod in `docs/kubernetes/pod.yaml`: a sandbox
/// through the `amphi` handler, a wasm app that runs to completion, a native
/// sidecar, an exec into the sidecar, then the pod stopped and removed.
fn pod_scenario(pid: PidMode) {
    if !runs_wasm() || !can_run("containerd") {
        return;
    }
    let _one_at_a_time = CRI_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let ctrd = Containerd::start_in(K8S_NAMESPACE, test_config);
    ctrd.import(&[&images().pause, &images().native, &images().wasm_plain]);
    let cri = Cri { socket: ctrd.address.clone() };
    let version = cri.ok("Version", &Pb::new().str(1, "v1"));
    assert_eq!(cri::string(&version, 2), "containerd");

    let logs = ctrd.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let pod = pod_config(&logs, pid);
    let run = cri.call("RunPodSandbox", &Pb::new().msg(1, pod.clone()).str(2, "amphi"));
    let sandbox = cri::string(&run.unwrap_or_else(|e| panic!("{e}; containerd:\n{}", ctrd.log())), 1);
    ctrd.register(&sandbox);
    // The sandbox ran through the amphi handler, natively.
    let sandbox_state = amphi_state(&sandbox);
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
    let state = amphi_state(&sidecar);
    assert_eq!(state["executor"], "native", "{state}");
    assert_eq!(state["annotations"]["module.wasm.image/variant"], "compat-smart", "{state}");
    support::wait_until("the sidecar logs", || {
        std::fs::read_to_string(logs.join("sidecar.log")).is_ok_and(|l| l.contains("stdout F sidecar up"))
    });

    // kubectl exec's path: a wasm tool exec'd into the native sidecar.
    let exec = cri.ok("ExecSync", &Pb::new().str(1, &sidecar).str(2, "/wasm/hello.wasm").int(3, 20));
    assert_eq!(cri::string(&exec, 1), "hello from wasm\n", "stderr: {}", cri::string(&exec, 2));
    assert_eq!(cri::int(&exec, 3), 0);

    cri.ok("StopContainer", &Pb::new().str(1, &sidecar).int(2, 0));
    cri.ok("StopPodSandbox", &Pb::new().str(1, &sandbox));
    cri.ok("RemovePodSandbox", &Pb::new().str(1, &sandbox));
    ctrd.finish();
}

/// What the kubelet does for the Deployment in `docs/kubernetes/service.yaml`,
/// on the node's network (there is no CNI here): a pod through the `amphi`
/// handler whose container is a wasm service, listening on the port its env
/// names by the time StartContainer returns, answering from the host;
/// StopContainer's SIGTERM ends it with 0.
#[test]
fn a_pod_serves_a_wasm_service_on_its_port() {
    if !runs_wasm() || !can_run("containerd") {
        return;
    }
    let _one_at_a_time = CRI_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let ctrd = Containerd::start_in(K8S_NAMESPACE, test_config);
    ctrd.import(&[&images().pause, &images().service]);
    let cri = Cri { socket: ctrd.address.clone() };
    let logs = ctrd.dir.path().join("pod-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let pod = pod_config(&logs, PidMode::Container);
    let run = cri.call("RunPodSandbox", &Pb::new().msg(1, pod.clone()).str(2, "amphi"));
    let sandbox = cri::string(&run.unwrap_or_else(|e| panic!("{e}; containerd:\n{}", ctrd.log())), 1);
    ctrd.register(&sandbox);

    // The node's network is shared: a free port of the host's loopback.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let env = Pb::new().str(1, "WASMTIME_HTTP_PROXY_SOCKET_ADDR").str(2, &addr.to_string());
    let config = container_config("web", "amphi.test/wasm-service:latest", &[], PidMode::Container).msg(6, env);
    let web = start_container(&cri, &ctrd, &sandbox, &pod, config);
    assert_eq!(amphi_state(&web)["executor"], "wasm");
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
