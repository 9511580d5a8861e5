//! The wasi:http service fixtures are `wasi:http/proxy` components: each
//! exports `wasi:http/incoming-handler@0.2.x` and imports nothing beyond the
//! proxy world (so no `wasi:cli/run`, environment, exit or filesystem, which a
//! build through the command adapter would bring); the hybrid exports both
//! `wasi:cli/run` and the handler, with the same imports.

use wasmparser::{Parser, Payload};

/// Every `*-service.wasm` fixture but the hybrid: a service added to the
/// list is checked too.
fn proxy_services() -> impl Iterator<Item = &'static str> {
    amphi_wasm_fixtures::NAMES.iter().copied().filter(|name| name.ends_with("-service.wasm") && *name != HYBRID)
}

const HYBRID: &str = "hybrid-service.wasm";

const HANDLER: &str = "wasi:http/incoming-handler@0.2.";
const RUN: &str = "wasi:cli/run@0.2.";

/// The interfaces the `wasi:http/proxy` world imports (wit/deps/http.wit).
const PROXY_IMPORTS: &[&str] = &[
    "wasi:io/poll@0.2.",
    "wasi:io/error@0.2.",
    "wasi:io/streams@0.2.",
    "wasi:clocks/monotonic-clock@0.2.",
    "wasi:clocks/wall-clock@0.2.",
    "wasi:random/random@0.2.",
    "wasi:cli/stdout@0.2.",
    "wasi:cli/stderr@0.2.",
    "wasi:cli/stdin@0.2.",
    "wasi:http/types@0.2.",
    "wasi:http/outgoing-handler@0.2.",
];

/// The names of the outermost component's imports and exports.
fn imports_and_exports(name: &str) -> (Vec<String>, Vec<String>) {
    let bytes = amphi_wasm_fixtures::bytes(name);
    assert!(Parser::is_component(&bytes), "{name} is not a component");
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.unwrap_or_else(|e| panic!("{name}: {e}")) {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import.unwrap_or_else(|e| panic!("{name}: {e}")).name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.push(export.unwrap_or_else(|e| panic!("{name}: {e}")).name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn services_export_the_handler_and_import_only_the_proxy_world() {
    let mut checked = 0;
    for name in proxy_services() {
        checked += 1;
        let (imports, exports) = imports_and_exports(name);
        assert!(exports.iter().any(|e| e.starts_with(HANDLER)), "{name} does not export {HANDLER}x: {exports:?}");
        assert!(!exports.iter().any(|e| e.starts_with(RUN)), "{name} is a command: {exports:?}");
        for import in &imports {
            assert!(
                PROXY_IMPORTS.iter().any(|allowed| import.starts_with(allowed)),
                "{name} imports {import}, outside the wasi:http/proxy world: {imports:?}"
            );
        }
    }
    assert_eq!(checked, 7, "the proxy services: hello, echo, trap, slow, counter, outgoing, memory");
}

#[test]
fn the_hybrid_service_exports_both_run_and_the_handler() {
    let (imports, exports) = imports_and_exports(HYBRID);
    assert!(exports.iter().any(|e| e.starts_with(HANDLER)), "no {HANDLER}x: {exports:?}");
    assert!(exports.iter().any(|e| e.starts_with(RUN)), "no {RUN}x: {exports:?}");
    for import in &imports {
        assert!(PROXY_IMPORTS.iter().any(|allowed| import.starts_with(allowed)), "imports {import}: {imports:?}");
    }
}

#[test]
fn commands_are_not_services() {
    // The check above is only meaningful if it tells a command apart.
    let (imports, exports) = imports_and_exports("hello-component.wasm");
    assert!(!exports.iter().any(|e| e.starts_with(HANDLER)), "{exports:?}");
    assert!(exports.iter().any(|e| e.starts_with(RUN)), "{exports:?}");
    assert!(imports.iter().any(|i| !PROXY_IMPORTS.iter().any(|allowed| i.starts_with(allowed))), "{imports:?}");
}
