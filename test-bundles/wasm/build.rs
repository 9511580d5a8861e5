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

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
};

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

    componentize(&out.join("hello-c.wasm"), None, &out.join("hello-component.wasm"));
    componentize(&out.join("probe.wasm"), None, &out.join("probe-component.wasm"));
    componentize(&out.join("exit-code.wasm"), None, &out.join("exit-code-component.wasm"));
    // The sockets server's core module is not runnable on its own (it imports
    // wasi:sockets functions), so it stays in `core/`.
    let tcp_core = out.join("tcp-server.wasm");
    let tcp_core_kept = core.join("tcp-server.wasm");
    fs::rename(&tcp_core, &tcp_core_kept).unwrap_or_else(|e| panic!("move {}: {e}", tcp_core.display()));
    componentize(&tcp_core_kept, Some((&manifest.join("wit"), "tcp-server")), &out.join("tcp-server-component.wasm"));
    println!("cargo:rerun-if-changed=wit");
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
    let result = Command::new(clang)
        .args(["--target=wasm32-wasi", "-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(output)
        .arg(source)
        .output();
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

/// Wraps a WASI preview 1 command module into a component exporting
/// `wasi:cli/run`, optionally embedding the world `world` of the WIT package in
/// `wit_dir` for the module's own component-model imports.
fn componentize(module: &Path, world: Option<(&Path, &str)>, output: &Path) {
    let mut bytes = fs::read(module).unwrap_or_else(|e| panic!("read {}: {e}", module.display()));
    if let Some((wit_dir, world_name)) = world {
        let mut resolve = wit_parser::Resolve::default();
        let (package, _) = resolve.push_dir(wit_dir).unwrap_or_else(|e| panic!("{}: {e:#}", wit_dir.display()));
        let world = resolve
            .select_world(&[package], Some(world_name))
            .unwrap_or_else(|e| panic!("{}: world {world_name}: {e:#}", wit_dir.display()));
        wit_component::embed_component_metadata(&mut bytes, &resolve, world, wit_component::StringEncoding::UTF8)
            .unwrap_or_else(|e| panic!("embed {world_name} into {}: {e:#}", module.display()));
    }
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&bytes)
        .and_then(|encoder| {
            encoder.adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER)
        })
        .and_then(|mut encoder| encoder.encode())
        .unwrap_or_else(|e| panic!("componentize {}: {e:#}", module.display()));
    write(output, &component);
}
