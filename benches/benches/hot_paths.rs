//! Micro-benchmarks of amphi's own hot paths, in-process: bundle load and
//! validation, executor selection, a compile-cache lookup, and instantiating a
//! wasm program from a precompiled (cached) artifact, and what compiling the
//! hello module and component costs without a cache.
//!
//! `cargo bench -p amphi-bench --bench hot_paths`

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;

use amphi_executors::cache::{Cache, CacheKey};
use amphi_executors::select::{Decision, select};
use amphi_executors::wasm::engine::{CacheOutcome, EngineSettings, load};
use amphi_executors::wasm::run::{link, run};
use criterion::{Criterion, criterion_group, criterion_main};

fn bundle_load(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle =
        amphi_test_bundles::build_busybox(&tmp.path().join("busybox"), Path::new(amphi_test_bundles::HOST_BUSYBOX))
            .expect("build the busybox bundle (needs Debian's busybox-static)");
    c.bench_function("bundle load and validation (busybox /bin/true)", |b| {
        b.iter(|| amphi_runtime::Bundle::load(black_box(bundle.dir())).expect("load"))
    });
}

fn selection(c: &mut Criterion) {
    let mut annotations = HashMap::new();
    annotations.insert("io.kubernetes.cri.sandbox-id".to_owned(), "abc".to_owned());
    annotations.insert("module.wasm.image/variant".to_owned(), "compat".to_owned());
    c.bench_function("Decision::from_annotations (wasm variant)", |b| {
        b.iter(|| Decision::from_annotations(black_box(&annotations)))
    });
    let spec: oci_spec::runtime::Spec =
        serde_json::from_value(serde_json::to_value(amphi_runtime::default_spec::default_spec()).expect("spec"))
            .expect("spec");
    c.bench_function("select (default spec, no annotation)", |b| b.iter(|| select(black_box(&spec))));
}

fn cache_and_instantiation(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = Cache::open(&tmp.path().join("cache")).expect("open cache");
    let engine = EngineSettings::default().engine().expect("engine");
    let bytes = amphi_wasm_fixtures::bytes("proc-exit.wasm");
    let (compiled, outcome) = load(&engine, None, Some(&cache), "proc-exit.wasm", &bytes).expect("compile and store");
    assert_eq!(outcome, CacheOutcome::Miss);
    let key = CacheKey::new(&engine, &bytes);
    c.bench_function("cache lookup (Cache::load of a stored entry)", |b| {
        b.iter(|| cache.load(black_box(&key), None).expect("load").expect("stored"))
    });
    c.bench_function("cache hit: key, lookup and deserialize (engine::load)", |b| {
        b.iter(|| {
            let (compiled, outcome) =
                load(&engine, None, Some(&cache), "proc-exit.wasm", black_box(&bytes)).expect("load");
            assert_eq!(outcome, CacheOutcome::Hit);
            compiled
        })
    });
    for name in ["hello.wasm", "hello-component.wasm"] {
        let bytes = amphi_wasm_fixtures::bytes(name);
        c.bench_function(&format!("compile {name} with no cache (what a cold start adds)"), |b| {
            b.iter(|| load(&engine, None, None, name, black_box(&bytes)).expect("compile").0)
        });
    }
    let linked = link(&compiled).expect("link");
    c.bench_function("instantiate and run a precompiled module (proc_exit(42))", |b| {
        b.iter(|| {
            let status =
                run(&linked, wasmtime_wasi::WasiCtxBuilder::new(), None, "proc-exit.wasm", || {}).expect("run");
            assert_eq!(status, 42);
        })
    });
    let component = amphi_wasm_fixtures::bytes("exit-with-code-component.wasm");
    let (compiled, _) =
        load(&engine, None, Some(&cache), "exit-with-code-component.wasm", &component).expect("compile");
    let linked = link(&compiled).expect("link");
    c.bench_function("instantiate and run a precompiled component (exit-with-code(7))", |b| {
        b.iter(|| {
            let status = run(&linked, wasmtime_wasi::WasiCtxBuilder::new(), None, "component", || {}).expect("run");
            assert_eq!(status, 7);
        })
    });
}

criterion_group!(benches, bundle_load, selection, cache_and_instantiation);
criterion_main!(benches);
