//! Builds every fixture into `OUT_DIR` (see `src/lib.rs` for the list):
//!
//! - `wat/*.wat` → `NAME.wasm` with the `wat` crate (modules and components);
//!   `wat/hello.wat` is also copied as text (`hello.wat`), for the text path.
//! - `c/*.c` → `NAME.wasm` with Debian's clang for `wasm32-wasi` (WASI preview 1,
//!   wasi-libc). `$CLANG` overrides the compiler.
//! - components: `hello-component.wasm`, `probe-component.wasm` and
//!   `exit-code-component.wasm` are the C
//!   modules wrapped by `wit-component` with the preview-1 command adapter;
//!   `tcp-server-component.wasm` also embeds the `wit/tcp-server.wit` world for
//!   its direct wasi:sockets imports.
//! - services: `c/services/NAME.c` → `NAME.wasm`, components of the
//!   `wasi:http/proxy` world (world `service` in `wit/service.wit`) exporting
//!   `wasi:http/incoming-handler@0.2.12`. Each is a wasi-libc *reactor*
//!   (`-mexec-model=reactor`: no `main`, no `_start`) wrapped with the
//!   preview-1 **proxy** adapter, so the component imports only what the proxy
//!   world offers (no `wasi:cli/run`, environment or filesystem).
//!   `hybrid-service` (world `hybrid-service`) is built the same way but also
//!   exports `wasi:cli/run` itself, from C, so it is both a command and a
//!   service. It is not a wasi-libc command (`main`) under the command
//!   adapter: in that exec model wasm-ld wraps every export (the handler and
//!   `cabi_realloc` too) in constructor/destructor calls, and such a build ran
//!   under `wasmtime run` with none of its output.
//!
//! The services call wasi:http through C bindings that `wit-bindgen-c` (a
//! build-dependency, the library behind `wit-bindgen c`) generates here from
//! `wit/`, rather than through hand-lowered canonical-ABI imports as
//! `c/tcp-server.c` does. wasi:http is a large interface (resources with
//! parent/child handles, nested `result<option<...>>` returns, the 39-case
//! `error-code` variant, lists of tuples for headers); lowering it by hand would
//! mean re-deriving the flattening and return-area layout of every signature,
//! where one mistake is a silent memory corruption, while the generated
//! bindings are correct by construction, follow the vendored WIT when it
//! changes, and also provide `cabi_realloc`, which the host needs to hand us
//! strings and lists. WAT was the other candidate; a streaming echo or an
//! outgoing request in WAT would be long and hard to review. The world reaches
//! the component through wit-bindgen's `service_component_type.o`, linked into
//! each module (its `component-type` custom section is what `wit-component`
//! reads), as `wit-bindgen c` users do.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER, WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER,
};

/// The wasi:http services built from `c/services/NAME.c` as reactors with the
/// proxy adapter.
const SERVICES: &[&str] = &[
    "hello-service",
    "echo-service",
    "trap-service",
    "slow-service",
    "counter-service",
    "outgoing-service",
    "memory-service",
];

/// The service that is also a command (see the module docs).
const HYBRID_SERVICE: &str = "hybrid-service";

/// The WIT world every service's module is built against.
const SERVICE_WORLD: &str = "service";

const INSTALL_HINT: &str = "the wasm fixtures need clang for wasm32-wasi: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32 (or set CLANG)";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let core = out.join("core");
    fs::create_dir_all(&core).unwrap_or_else(|e| panic!("create {}: {e}", core.display()));
    println!("cargo:rerun-if-env-changed=CLANG");

    for source in sources(&manifest.join("wat"), "wat") {
        let name = stem(&source);
        let bytes = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        write(&out.join(format!("{name}.wasm")), &bytes);
    }
    let text = manifest.join("wat/hello.wat");
    fs::copy(&text, out.join("hello.wat")).unwrap_or_else(|e| panic!("copy {}: {e}", text.display()));

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    for source in sources(&manifest.join("c"), "c") {
        let name = stem(&source);
        compile_c(&clang, &source, &out.join(format!("{name}.wasm")));
    }

    componentize(&out.join("hello-c.wasm"), None, Adapter::Command, &out.join("hello-component.wasm"));
    componentize(&out.join("probe.wasm"), None, Adapter::Command, &out.join("probe-component.wasm"));
    componentize(&out.join("exit-code.wasm"), None, Adapter::Command, &out.join("exit-code-component.wasm"));
    // The sockets server's core module is not runnable on its own (it imports
    // wasi:sockets functions), so it stays in `core/`.
    let tcp_core = out.join("tcp-server.wasm");
    let tcp_core_kept = core.join("tcp-server.wasm");
    fs::rename(&tcp_core, &tcp_core_kept).unwrap_or_else(|e| panic!("move {}: {e}", tcp_core.display()));
    componentize(
        &tcp_core_kept,
        Some((&manifest.join("wit"), "tcp-server")),
        Adapter::Command,
        &out.join("tcp-server-component.wasm"),
    );
    println!("cargo:rerun-if-changed=wit");

    build_services(&clang, &manifest, &out, &core);
}

/// Builds [`SERVICES`] and [`HYBRID_SERVICE`] (see the module docs).
fn build_services(clang: &str, manifest: &Path, out: &Path, core: &Path) {
    let wit = manifest.join("wit");
    let sources = manifest.join("c/services");
    let helper = sources.join("http.c");
    let service_bindings = out.join("bindings/service");
    generate_c_bindings(&wit, SERVICE_WORLD, &service_bindings);
    let service_object = compile_bindings(clang, &service_bindings, core, SERVICE_WORLD);
    // The hybrid's world adds the `wasi:cli/run` export; its bindings keep the
    // `service` prefix so that `http.c` compiles against either.
    let hybrid_bindings = out.join("bindings/hybrid");
    generate_c_bindings(&wit, HYBRID_SERVICE, &hybrid_bindings);
    let hybrid_object = compile_bindings(clang, &hybrid_bindings, core, HYBRID_SERVICE);

    for name in SERVICES.iter().chain([&HYBRID_SERVICE]) {
        let (bindings, object) = if *name == HYBRID_SERVICE {
            (&hybrid_bindings, &hybrid_object)
        } else {
            (&service_bindings, &service_object)
        };
        let source = sources.join(format!("{name}.c"));
        let module = core.join(format!("{name}.wasm"));
        let world_object = bindings.join(format!("{SERVICE_WORLD}_component_type.o"));
        let strict = ["-O2", "-Wall", "-Wextra", "-Werror", "-mexec-model=reactor", "-I"].map(OsStr::new);
        run_clang(
            clang,
            &source,
            strict,
            &[
                bindings.as_os_str(),
                OsStr::new("-o"),
                module.as_os_str(),
                source.as_os_str(),
                helper.as_os_str(),
                object.as_os_str(),
                world_object.as_os_str(),
            ],
        );
        componentize(&module, None, Adapter::Proxy, &out.join(format!("{name}.wasm")));
    }
}

/// Compiles the generated `service.c` in `bindings` into `core/NAME-bindings.o`.
/// It is compiled without -Werror: its warnings are wit-bindgen's to fix, not ours.
fn compile_bindings(clang: &str, bindings: &Path, core: &Path, name: &str) -> PathBuf {
    let object = core.join(format!("{name}-bindings.o"));
    let source = bindings.join(format!("{SERVICE_WORLD}.c"));
    run_clang(
        clang,
        &source,
        [OsStr::new("-O2"), OsStr::new("-c"), OsStr::new("-o")],
        &[object.as_os_str(), source.as_os_str()],
    );
    object
}

/// Writes wit-bindgen-c's `service.h`, `service.c` and
/// `service_component_type.o` (the world as a custom section, for
/// `wit-component`) for `world` of the WIT package in `wit_dir` into `dir`.
/// Every world's bindings are named as the `service` world's, so the shared
/// `c/services/http.c` compiles against any of them.
fn generate_c_bindings(wit_dir: &Path, world_name: &str, dir: &Path) {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(wit_dir).unwrap_or_else(|e| panic!("{}: {e:#}", wit_dir.display()));
    let world = resolve
        .select_world(&[package], Some(world_name))
        .unwrap_or_else(|e| panic!("{}: world {world_name}: {e:#}", wit_dir.display()));
    let mut files = wit_bindgen_core::Files::default();
    let opts = wit_bindgen_c::Opts { rename_world: Some(SERVICE_WORLD.to_owned()), ..Default::default() };
    opts.build()
        .generate(&mut resolve, world, &mut files)
        .unwrap_or_else(|e| panic!("wit-bindgen-c for world {world_name}: {e:#}"));
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    for (name, contents) in files.iter() {
        write(&dir.join(name), contents);
    }
}

fn sources(dir: &Path, ext: &str) -> Vec<PathBuf> {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("read {}: {e}", dir.display())).path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    for path in &found {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    found
}

fn stem(path: &Path) -> String {
    path.file_stem().expect("a source file has a name").to_string_lossy().into_owned()
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn compile_c(clang: &str, source: &Path, output: &Path) {
    let flags = ["-O2", "-Wall", "-Wextra", "-Werror", "-o"].map(OsStr::new);
    run_clang(clang, source, flags, &[output.as_os_str(), source.as_os_str()]);
}

/// Runs `clang --target=wasm32-wasi FLAGS ARGS` for `source`, panicking with
/// clang's stderr (and how to install it) when it fails.
fn run_clang<'a>(clang: &str, source: &Path, flags: impl IntoIterator<Item = &'a OsStr>, args: &[&OsStr]) {
    let result = Command::new(clang).arg("--target=wasm32-wasi").args(flags).args(args).output();
    match result {
        Err(e) => panic!("run {clang} for {}: {e}; {INSTALL_HINT}", source.display()),
        Ok(done) if !done.status.success() => panic!(
            "{clang} failed on {} ({}):\n{}\n{INSTALL_HINT}",
            source.display(),
            done.status,
            String::from_utf8_lossy(&done.stderr)
        ),
        Ok(_) => {}
    }
}

/// Which preview-1 adapter turns a core module into a component.
#[derive(Clone, Copy)]
enum Adapter {
    /// For a command (`_start`): exports `wasi:cli/run`.
    Command,
    /// For a reactor serving `wasi:http/proxy`: only stdio, clocks and random
    /// behind preview 1, exports nothing of its own.
    Proxy,
}

/// Wraps a WASI preview 1 module into a component with `adapter` (the command
/// adapter exports `wasi:cli/run`), optionally embedding the world `world` of
/// the WIT package in `wit_dir` for the module's own component-model imports
/// and exports.
fn componentize(module: &Path, world: Option<(&Path, &str)>, adapter: Adapter, output: &Path) {
    let mut bytes = fs::read(module).unwrap_or_else(|e| panic!("read {}: {e}", module.display()));
    if let Some((wit_dir, world_name)) = world {
        let mut resolve = wit_parser::Resolve::default();
        let (package, _) = resolve.push_dir(wit_dir).unwrap_or_else(|e| panic!("{}: {e:#}", wit_dir.display()));
        let world = resolve
            .select_world(&[package], Some(world_name))
            .unwrap_or_else(|e| panic!("{}: world {world_name}: {e:#}", wit_dir.display()));
        wit_component::embed_component_metadata(
            &mut bytes,
            &resolve,
            world,
            wit_component::StringEncoding::UTF8,
            false,
        )
        .unwrap_or_else(|e| panic!("embed {world_name} into {}: {e:#}", module.display()));
    }
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .and_then(|encoder| {
            let adapter = match adapter {
                Adapter::Command => WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
                Adapter::Proxy => WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER,
            };
            encoder.adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)
        })
        .and_then(|encoder| encoder.encode())
        .unwrap_or_else(|e| panic!("componentize {}: {e:#}", module.display()));
    write(output, &component);
}
