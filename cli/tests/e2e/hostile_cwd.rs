//! A hostile image against `exec`'s working directory (the CVE-2024-21626
//! class): the container turns the directory an `exec` will enter into a
//! symlink to `/proc/self/fd/N`, hoping that the exec'd process still holds a
//! host directory at N (amphi's wasm cache was one) and lands outside the
//! container's root. The host must be untouched afterwards.

use std::fs;
use std::os::unix::fs::symlink;

use serde_json::Value;

use crate::support::{self, case, describe};

/// Every descriptor number a stage might hold a host directory at.
const FDS: std::ops::RangeInclusive<u32> = 3..=20;

#[test]
fn exec_into_a_cwd_that_is_a_magic_link_never_reaches_the_host() {
    let Some(case) = case("hostile_exec_cwd") else { return };
    let id = case.id("c");
    let bundle = case.private_probe_bundle(&id, &["--sleep", "0"], |_| {});
    let rootfs = case.work.path().join(format!("rootfs-{id}"));
    for n in FDS {
        symlink(format!("/proc/self/fd/{n}"), rootfs.join(format!("evil{n}"))).expect("plant the symlink");
    }
    // The wasm cache the old CLI opened on the host for every exec, and a
    // canary next to it.
    let cache = case.work.path().join("cache");
    fs::create_dir_all(&cache).expect("cache dir");
    fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let canary = case.work.path().join("canary");
    fs::write(&canary, "untouched").expect("canary");
    let running = case.start(&bundle, &id);
    assert!(running.report.is_object());

    let amphi = support::runtime().is_amphi;
    for n in FDS {
        let cwd = format!("/evil{n}");
        let mut args = vec![];
        if amphi {
            args.extend(["--wasm-cache", cache.to_str().unwrap()]);
        }
        args.extend(["exec", "--cwd", &cwd, &id, amphi_test_bundles::PROBE_IN_ROOTFS, "--no-report"]);
        args.extend([
            "--write",
            "marker:written through a leaked descriptor",
            "--write",
            "../../../../../../marker-root:x",
        ]);
        let out = case.run(&args);
        assert!(!out.status.success(), "exec with cwd {cwd} ran: {}", describe(&out));
        if amphi {
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(text.contains(&format!("process.cwd {cwd}")), "exec --cwd {cwd}: {}", describe(&out));
            assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
        }
    }
    // The host: nothing landed in the cache, the work dir, the state root or /.
    for dir in [&cache, &case.work.path().to_path_buf(), &case.root.path().to_path_buf()] {
        for entry in walk(dir) {
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            assert!(!name.starts_with("marker"), "a container process wrote {}", entry.display());
        }
    }
    assert!(!std::path::Path::new("/marker-root").exists(), "a container process wrote /marker-root on the host");
    assert_eq!(fs::read_to_string(&canary).expect("canary"), "untouched");
    // A plain directory of the container is still a fine cwd.
    let out = case.run(&["exec", "--cwd", "/tmp", &id, amphi_test_bundles::PROBE_IN_ROOTFS, "--no-report"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(case.state(&id)["status"], Value::from("running"));
    case.delete_force(&id);
    case.assert_all_gone();
}

/// Every file and directory below `dir` (symlinks not followed).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn a_container_process_holds_no_host_directory() {
    // The descriptors a stage holds while the container waits for `start`:
    // none may be a directory (a way back into the host's tree through
    // /proc/self/fd). The old CLI handed every stage the wasm cache directory,
    // native ones included.
    let Some(case) = case("hostile_no_host_dirs") else { return };
    if !support::runtime().is_amphi {
        return; // the --wasm-cache flag is amphi's
    }
    let cache = case.work.path().join("cache");
    let native = case.id("native");
    let wasm = case.id("wasm");
    let bundles = [
        (native.clone(), case.probe_bundle(&native, &["--sleep", "0"], |_| {})),
        (
            wasm.clone(),
            case.bundle(&support::bundles().wasm, &wasm, |config| {
                config["process"]["args"] = serde_json::json!(["/wasm/loop-forever.wasm"])
            }),
        ),
    ];
    for (id, bundle) in &bundles {
        let out = case.create_in(bundle.dir(), id, &[], &[("AMPHI_WASM_CACHE", cache.to_str().unwrap())]);
        assert!(out.status.success(), "{}", describe(&out));
        let pid = case.state(id)["pid"].as_i64().expect("pid");
        let rootfs = fs::metadata(bundle.rootfs()).expect("rootfs");
        for fd in fs::read_dir(format!("/proc/{pid}/fd")).expect("the init's descriptors").flatten() {
            if !fs::metadata(fd.path()).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            // A directory of the container's own (a wasm guest's preopen) is
            // fine: walking up from it reaches the rootfs.
            let target = fs::read_link(fd.path()).unwrap_or_default();
            assert!(
                below(&fd.path(), &rootfs),
                "{id}: the init holds the host directory {} at fd {:?}",
                target.display(),
                fd.file_name()
            );
        }
    }
    assert!(cache.is_dir(), "the wasm container used the cache");
    for (id, _) in &bundles {
        case.delete_force(id);
    }
    case.assert_all_gone();
}

/// Whether the directory `dir` is the directory `top` or below it: its parents
/// are walked up (through the host's view) until `top` or the host's root.
fn below(dir: &std::path::Path, top: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut path = dir.to_path_buf();
    for _ in 0..256 {
        let Ok(meta) = fs::metadata(&path) else { return false };
        if (meta.dev(), meta.ino()) == (top.dev(), top.ino()) {
            return true;
        }
        let parent = fs::metadata(path.join(".."));
        if parent.is_ok_and(|p| (p.dev(), p.ino()) == (meta.dev(), meta.ino())) {
            return false; // the host's root
        }
        path.push("..");
    }
    false
}
