//! # amphi-wasm-fixtures: WebAssembly programs for tests, demo and benchmarks
//!
//! Every fixture is built from source by `build.rs` when this crate builds: WAT
//! with the `wat` crate, C with clang for `wasm32-wasi` (wasi-libc, WASI
//! preview 1), and components with `wit-component` and wasmtime's preview-1
//! command adapter (the same 48.x release as amphi's engine). Tests and the bundle
//! builder reach them by name through [`path`] or [`bytes`].
//!
//! | name | from | what it does |
//! |---|---|---|
//! | `hello.wasm` | `wat/hello.wat` | prints `hello from wasm`, returns (status 0) |
//! | `hello.wat` | `wat/hello.wat` | the same module as text |
//! | `proc-exit.wasm` | `wat/proc-exit.wat` | `proc_exit(42)` |
//! | `cat.wasm` | `wat/cat.wat` | copies stdin to stdout |
//! | `trap.wasm` | `wat/trap.wat` | prints `about to trap`, then `unreachable` in `$crash_here` |
//! | `out-of-bounds.wasm` | `wat/out-of-bounds.wat` | loads past the end of its memory (a SIGSEGV-based trap) |
//! | `loop-forever.wasm` | `wat/loop-forever.wat` | prints `looping`, then spins forever |
//! | `sleep.wasm` | `wat/sleep.wat` | prints `sleeping`, then sleeps in `poll_oneoff` forever (idle) |
//! | `missing-import.wasm` | `wat/missing-import.wat` | imports a WASI function that does not exist |
//! | `no-start.wasm` | `wat/no-start.wat` | a module without `_start` |
//! | `unsupported-world.wasm` | `wat/unsupported-world.wat` | a component importing `amphi:nope/thing` |
//! | `exit-with-code-component.wasm` | `wat/exit-with-code-component.wat` | a component (in component text) whose `wasi:cli/run` calls `exit-with-code(7)` |
//! | `exit-code.wasm` | `c/exit-code.c` | exits with the status in `argv[1]` |
//! | `hello-c.wasm` | `c/hello-c.c` | prints `hello from wasm` (through wasi-libc) |
//! | `memory-grow.wasm` | `c/memory-grow.c` | grows memory 1 MiB at a time until it fails, prints JSON |
//! | `files.wasm` | `c/files.c` | `files PATH TEXT`: writes, reads back, prints `read back: TEXT` |
//! | `probe.wasm` | `c/probe.c` | prints JSON: args, env, cwd, preopens, /proc/self/status, hostname |
//! | `hello-component.wasm` | `hello-c.wasm` + adapter | the C hello as a `wasi:cli/run` component |
//! | `probe-component.wasm` | `probe.wasm` + adapter | the probe as a component |
//! | `exit-code-component.wasm` | `exit-code.wasm` + adapter | exit-code as a component (the adapter's `proc_exit` decides what status reaches the host) |
//! | `tcp-server-component.wasm` | `c/tcp-server.c` + `wit/` + adapter | `PORT [IPV4]`: prints `listening on PORT`, serves one connection a line, exits 0 |

use std::path::PathBuf;

/// Every fixture's file name.
pub const NAMES: &[&str] = &[
    "hello.wasm",
    "hello.wat",
    "proc-exit.wasm",
    "cat.wasm",
    "trap.wasm",
    "out-of-bounds.wasm",
    "loop-forever.wasm",
    "sleep.wasm",
    "missing-import.wasm",
    "no-start.wasm",
    "unsupported-world.wasm",
    "exit-with-code-component.wasm",
    "exit-code.wasm",
    "hello-c.wasm",
    "memory-grow.wasm",
    "files.wasm",
    "probe.wasm",
    "hello-component.wasm",
    "probe-component.wasm",
    "exit-code-component.wasm",
    "tcp-server-component.wasm",
];

/// The directory holding every built fixture.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR"))
}

/// The built fixture `name` (one of [`NAMES`]).
///
/// # Panics
/// When `name` is not a fixture: a typo in a test should stop it loudly.
pub fn path(name: &str) -> PathBuf {
    assert!(NAMES.contains(&name), "no wasm fixture named {name}; fixtures are {NAMES:?}");
    dir().join(name)
}

/// The bytes of the fixture `name`.
///
/// # Panics
/// When `name` is not a fixture or its file cannot be read.
pub fn bytes(name: &str) -> Vec<u8> {
    let path = path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read wasm fixture {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_built_with_its_magic() {
        for name in NAMES {
            let bytes = bytes(name);
            if name.ends_with(".wat") {
                assert_eq!(bytes.first(), Some(&b';'), "{name} is text");
            } else {
                assert_eq!(&bytes[..4], b"\0asm", "{name}");
            }
        }
    }

    #[test]
    fn components_and_modules_carry_their_layer() {
        // Byte 4..8 of the preamble: version 1 layer 0 for a core module,
        // version 0x0d layer 1 for a component.
        assert_eq!(&bytes("hello.wasm")[4..8], &[1, 0, 0, 0]);
        assert_eq!(&bytes("hello-component.wasm")[6..8], &[1, 0]);
        assert_eq!(&bytes("tcp-server-component.wasm")[6..8], &[1, 0]);
        assert_eq!(&bytes("unsupported-world.wasm")[6..8], &[1, 0]);
        assert_eq!(&bytes("exit-with-code-component.wasm")[6..8], &[1, 0]);
    }
}
