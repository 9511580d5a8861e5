//! The Kubernetes setup in `docs/`: containerd accepts the documented CRI
//! config (started with it, paths moved into the test's directory) and lists
//! the amphi runtime handler with its options; the RuntimeClass and the Pod
//! name that handler.

use std::path::Path;

use crate::containerd::Containerd;
use crate::support::{self, can_run};

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
