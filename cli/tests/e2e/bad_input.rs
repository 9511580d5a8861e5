//! Bad input: each refused with a non-zero exit and (for amphi) one line on
//! stderr that names the field or file, leaving nothing behind and never
//! disturbing another container.
//!
//! Each test starts a bystander container in the same state root first and checks
//! afterwards that it still runs, untouched. The key words are asserted for amphi
//! only: runc words its errors its own way (and is checked for the refusal and
//! the clean-up alone), except where runc's message is the one amphi copies.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::support::{self, Case, Running, bundles, describe, runtime};

/// Report, then sleep until killed.
const STAY: &[&str] = &["--sleep", "0"];

/// A running container that a bad create next to it must not disturb.
fn bystander(case: &Case) -> Running {
    let id = case.id("bystander");
    case.start(&case.probe_bundle(&id, STAY, |_| {}), &id)
}

fn assert_undisturbed(case: &Case, bystander: &Running) {
    let state = case.state(&bystander.id);
    assert_eq!(state["status"], "running", "the bystander was disturbed: {state}");
    assert_eq!(state["pid"].as_i64(), Some(bystander.pid), "the bystander's init changed: {state}");
    assert!(Path::new(&format!("/proc/{}", bystander.pid)).exists());
}

/// The probe bundle's config for container `id` (its own cgroup, an absolute
/// rootfs), changed by `edit`, as JSON.
fn config_for(id: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut config = bundles().probe.config().expect("probe config");
    config["root"]["path"] = json!(bundles().probe.rootfs());
    config["linux"]["cgroupsPath"] = json!(Case::cgroup_path(id));
    config["process"]["args"] = json!([amphi_test_bundles::PROBE_IN_ROOTFS, "--sleep", "0"]);
    edit(&mut config);
    config
}

/// A bundle directory whose `config.json` holds exactly `text`.
fn raw_bundle(case: &Case, id: &str, text: &[u8]) -> PathBuf {
    let dir = case.work.path().join(format!("bundle-{}", id.replace('/', "%")));
    fs::create_dir_all(&dir).expect("bundle dir");
    fs::write(dir.join("config.json"), text).expect("write config.json");
    dir
}

/// A bundle directory with the probe config changed by `edit`.
fn bad_bundle(case: &Case, id: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let config = config_for(id, edit);
    raw_bundle(case, id, &serde_json::to_vec_pretty(&config).expect("serialise"))
}

/// Creates the bundle at `dir` as `id` and asserts that it is refused: a
/// non-zero exit; for amphi one line on stderr, `amphi: …`, holding every one of
/// `words`; the container left nothing behind. Returns stderr.
fn refused(case: &Case, dir: &Path, id: &str, words: &[&str]) -> String {
    let out = case.create_in(dir, id, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "create {id:?} succeeded: {}", describe(&out));
    assert!(out.stdout.is_empty(), "create wrote to the container's stdout: {}", describe(&out));
    if runtime().is_amphi {
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
        assert!(stderr.starts_with("amphi: "), "{stderr:?}");
        for word in words {
            assert!(stderr.contains(word), "{stderr:?} does not name {word:?}");
        }
    }
    assert_no_fifo_or_state(case, id);
    stderr
}

/// Nothing of a refused `id` in the state root, whatever the id looks like.
fn assert_no_fifo_or_state(case: &Case, id: &str) {
    if !id.is_empty() && !id.contains('/') && id != "." && id != ".." {
        case.assert_gone(id);
    }
    let registered: Vec<String> = fs::read_dir(case.root.path())
        .expect("state root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.contains("bystander"))
        .collect();
    assert!(registered.is_empty(), "left in the state root: {registered:?}");
}

/// One bad bundle, refused next to a bystander that stays untouched.
fn refuse(name: &str, words: &[&str], make: impl FnOnce(&Case, &str) -> PathBuf) {
    let Some(case) = support::case(name) else { return };
    let by = bystander(&case);
    let id = case.id("bad");
    let dir = make(&case, &id);
    refused(&case, &dir, &id, words);
    assert_undisturbed(&case, &by);
    case.delete_force(&by.id);
    case.assert_all_gone();
}

#[test]
fn malformed_json() {
    refuse("malformed_json", &["config.json", "line 1"], |case, id| {
        raw_bundle(case, id, br#"{"ociVersion": "1.0.2", "process": {"args": ["/bin/true" }, }"#)
    });
}

#[test]
fn truncated_config() {
    refuse("truncated_config", &["config.json", "end of file"], |case, id| {
        let text = serde_json::to_vec_pretty(&config_for(id, |_| {})).expect("serialise");
        raw_bundle(case, id, &text[..text.len() / 2])
    });
}

#[test]
fn missing_oci_version() {
    // Exception: runc 1.1 does not read ociVersion and runs such a bundle; the
    // runtime spec makes the field REQUIRED, and amphi refuses it.
    if !runtime().is_amphi {
        return;
    }
    refuse("missing_oci_version", &["ociVersion", "missing"], |case, id| {
        bad_bundle(case, id, |c| {
            c.as_object_mut().expect("object").remove("ociVersion");
        })
    });
}

#[test]
fn missing_process() {
    refuse("missing_process", &["process", "missing"], |case, id| {
        bad_bundle(case, id, |c| {
            c.as_object_mut().expect("object").remove("process");
        })
    });
}

#[test]
fn missing_root() {
    refuse("missing_root", &["root", "missing"], |case, id| {
        bad_bundle(case, id, |c| {
            c.as_object_mut().expect("object").remove("root");
        })
    });
}

#[test]
fn relative_cwd() {
    refuse("relative_cwd", &["process.cwd", "work", "absolute"], |case, id| {
        bad_bundle(case, id, |c| c["process"]["cwd"] = json!("work"))
    });
}

#[test]
fn unknown_namespace_type() {
    refuse("unknown_namespace", &["linux.namespaces", "bogus"], |case, id| {
        bad_bundle(case, id, |c| c["linux"]["namespaces"].as_array_mut().expect("ns").push(json!({"type": "bogus"})))
    });
}

#[test]
fn duplicate_namespace() {
    refuse("duplicate_namespace", &["linux.namespaces", "duplicate"], |case, id| {
        bad_bundle(case, id, |c| c["linux"]["namespaces"].as_array_mut().expect("ns").push(json!({"type": "network"})))
    });
}

#[test]
fn namespace_path_that_does_not_exist() {
    let path = "/nonexistent/amphi-e2e/ns/net";
    refuse("namespace_path", &["linux.namespaces", path], |case, id| {
        bad_bundle(case, id, |c| {
            for ns in c["linux"]["namespaces"].as_array_mut().expect("ns") {
                if ns["type"] == "network" {
                    ns["path"] = json!(path);
                }
            }
        })
    });
}

/// A good bundle created under a bad id.
fn refuse_id(name: &str, bad_id: &str) {
    let Some(case) = support::case(name) else { return };
    let by = bystander(&case);
    let cgroup_id = case.id("bad");
    let dir = bad_bundle(&case, &cgroup_id, |_| {});
    let bad_id = bad_id.replace("UNIQUE", &cgroup_id);
    refused(&case, &dir, &bad_id, &["container id"]);
    // Nothing outside the state root either (`../x`, `a/b`).
    let root = case.root.path();
    assert!(!root.parent().expect("parent").join(&cgroup_id).exists(), "a state dir escaped the root");
    assert!(!root.join("a").exists());
    case.assert_gone(&cgroup_id);
    assert_undisturbed(&case, &by);
    case.delete_force(&by.id);
    case.assert_all_gone();
}

#[test]
fn id_with_dot_dot() {
    refuse_id("id_dot_dot", "../UNIQUE");
}

#[test]
fn id_that_is_dot_dot() {
    refuse_id("id_is_dot_dot", "..");
}

#[test]
fn id_with_a_slash() {
    refuse_id("id_slash", "a/UNIQUE");
}

#[test]
fn id_that_is_empty() {
    refuse_id("id_empty", "");
}

#[test]
fn id_already_in_use() {
    let Some(case) = support::case("id_in_use") else { return };
    let by = bystander(&case);
    let dir = bad_bundle(&case, &by.id, |_| {});
    let out = case.create_in(&dir, &by.id, &[], &[]);
    assert!(!out.status.success(), "a second create of {} succeeded", by.id);
    if runtime().is_amphi {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(stderr.starts_with("amphi: ") && stderr.contains(&by.id) && stderr.contains("in use"), "{stderr:?}");
    }
    // The existing container is undisturbed: same process, same state, same cgroup.
    assert_undisturbed(&case, &by);
    let procs = support::processes_in_cgroup(&Case::cgroup_path(&by.id));
    assert_eq!(procs, [by.pid as i32], "the cgroup of the existing container changed");
    case.delete_force(&by.id);
    case.assert_all_gone();
}

#[test]
fn missing_rootfs() {
    refuse("missing_rootfs", &["root.path", "/nonexistent/amphi-e2e-rootfs"], |case, id| {
        bad_bundle(case, id, |c| c["root"]["path"] = json!("/nonexistent/amphi-e2e-rootfs"))
    });
}

#[test]
fn missing_executable() {
    let Some(case) = support::case("missing_executable") else { return };
    let by = bystander(&case);
    let id = case.id("bad");
    let dir = bad_bundle(&case, &id, |c| c["process"]["args"] = json!(["foo"]));
    let stderr = refused(&case, &dir, &id, &[]);
    // runc's wording, which amphi keeps (runc's log format escapes the quotes).
    let unescaped = stderr.replace("\\\"", "\"");
    assert!(unescaped.contains(r#"exec: "foo": executable file not found in $PATH"#), "{stderr:?}");
    assert_undisturbed(&case, &by);
    case.delete_force(&by.id);
    case.assert_all_gone();
}

#[test]
fn non_executable_file() {
    refuse("non_executable", &["/notexec", "permission denied"], |case, id| {
        let rootfs = case.private_rootfs(id);
        fs::write(rootfs.join("notexec"), "not a program\n").expect("write");
        bad_bundle(case, id, |c| {
            c["root"]["path"] = json!(rootfs);
            c["process"]["args"] = json!(["/notexec"]);
        })
    });
}

#[test]
fn bind_mount_source_that_does_not_exist() {
    let source = "/nonexistent/amphi-e2e-source";
    refuse("bind_source_missing", &["mounts[", "source", source], |case, id| {
        let rootfs = case.private_rootfs(id);
        bad_bundle(case, id, |c| {
            c["root"]["path"] = json!(rootfs);
            c["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": "/data", "type": "bind", "source": source, "options": ["bind"]
            }));
        })
    });
}

/// A private-rootfs bundle with a tmpfs at `/mnt` given `options`, and the
/// field that names them (`mounts[N].options`).
fn tmpfs_with_options(case: &Case, id: &str, options: &[&str]) -> (PathBuf, String) {
    let rootfs = case.private_rootfs(id);
    let mut field = String::new();
    let dir = bad_bundle(case, id, |c| {
        c["root"]["path"] = json!(rootfs);
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        field = format!("mounts[{}].options", mounts.len());
        mounts.push(json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": options}));
    });
    (dir, field)
}

#[test]
fn mount_option_that_is_a_flag_given_a_value() {
    // Exception: runc passes `ro=1` to the filesystem as data, where the kernel
    // reads the key alone and mounts read-only; the issue asks for a refusal.
    if !runtime().is_amphi {
        return;
    }
    let Some(case) = support::case("mount_option_flag_value") else { return };
    let id = case.id("bad");
    let (dir, field) = tmpfs_with_options(&case, &id, &["nosuid", "ro=1"]);
    let stderr = refused(&case, &dir, &id, &["config.json", &field, "\"ro=1\""]);
    assert!(stderr.contains("takes no value"), "{stderr:?}");
    case.assert_all_gone();
}

#[test]
fn mount_option_the_filesystem_refuses() {
    // Valid as a string, a bad value for tmpfs: only the mount can tell, and it
    // names the option. runc refuses it too (in its own words).
    let Some(case) = support::case("mount_option_refused") else { return };
    let by = bystander(&case);
    let id = case.id("bad");
    let (dir, field) = tmpfs_with_options(&case, &id, &["nosuid", "mode=755", "nr_inodes=lots"]);
    let stderr = refused(&case, &dir, &id, &[&field, "\"nr_inodes=lots\"", "tmpfs", "/mnt"]);
    if runtime().is_amphi {
        assert!(stderr.contains("nr_inodes"), "{stderr:?}");
    }
    assert_undisturbed(&case, &by);
    case.delete_force(&by.id);
    case.assert_all_gone();
}

#[test]
fn unknown_rlimit() {
    refuse("unknown_rlimit", &["process.rlimits", "RLIMIT_FOO"], |case, id| {
        bad_bundle(case, id, |c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]))
    });
}

#[test]
fn unknown_capability() {
    // Exception: runc 1.1 ignores an unknown capability with a warning (so that a
    // config naming a newer capability still runs on an older kernel); the issue
    // asks for a refusal, and amphi refuses.
    if !runtime().is_amphi {
        return;
    }
    refuse("unknown_capability", &["process.capabilities", "CAP_FOO"], |case, id| {
        bad_bundle(case, id, |c| c["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_FOO"]))
    });
}

#[test]
fn id_mapping_of_size_zero() {
    refuse("id_mapping_size_zero", &["uidMappings", "size"], |case, id| {
        bad_bundle(case, id, |c| {
            c["linux"]["namespaces"].as_array_mut().expect("ns").push(json!({"type": "user"}));
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 0}]);
            c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        })
    });
}

/// Whether the host has the LSM `name` enabled.
fn host_has_lsm(name: &str) -> bool {
    fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|list| list.split(',').any(|l| l.trim() == name))
        || (name == "selinux" && Path::new("/sys/fs/selinux/enforce").exists())
        || (name == "apparmor" && Path::new("/sys/module/apparmor/parameters/enabled").exists())
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn apparmor_profile_without_apparmor() {
    if host_has_lsm("apparmor") {
        eprintln!("skipping: this host has AppArmor");
        return;
    }
    refuse("apparmor_missing", &["apparmorProfile", "AppArmor"], |case, id| {
        bad_bundle(case, id, |c| c["process"]["apparmorProfile"] = json!("amphi-e2e"))
    });
}

#[test]
#[expect(clippy::print_stderr, reason = "a skipped test says why")]
fn selinux_label_without_selinux() {
    if host_has_lsm("selinux") {
        eprintln!("skipping: this host has SELinux");
        return;
    }
    refuse("selinux_missing", &["selinuxLabel", "SELinux"], |case, id| {
        bad_bundle(case, id, |c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0"))
    });
}

#[test]
fn corrupt_state_file_breaks_neither_list_nor_delete() {
    // amphi only: runc keeps a different state file, and what a corrupt one of
    // its does is runc's business.
    if !runtime().is_amphi {
        return;
    }
    let Some(case) = support::case("corrupt_state") else { return };
    let by = bystander(&case);
    // A truncated, an empty and a non-JSON state file, of a created container and
    // of running ones.
    let junks: [&[u8]; 3] = [b"{\"id\": \"trunc", b"", b"not json at all"];
    let mut corrupt = Vec::new();
    for (n, junk) in junks.into_iter().enumerate() {
        let id = case.id(&format!("corrupt{n}"));
        let bundle = case.probe_bundle(&id, STAY, |_| {});
        let out = case.create(&bundle, &id, &[]);
        assert!(out.status.success(), "create: {}", describe(&out));
        if n > 0 {
            case.ok(&["start", &id]);
        }
        let pid = case.state(&id)["pid"].as_i64().expect("pid");
        fs::write(case.root.path().join(&id).join("state.json"), junk).expect("corrupt the state file");
        corrupt.push((id, pid));
    }

    let list = case.run(&["list"]);
    assert!(list.status.success(), "list with corrupt states: {}", describe(&list));
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(table.lines().any(|l| l.starts_with(&by.id) && l.contains("running")), "{table}");
    let json_list = case.run(&["list", "--format", "json"]);
    assert!(json_list.status.success(), "list --format json: {}", describe(&json_list));
    let listed: Value = serde_json::from_slice(&json_list.stdout).expect("list is JSON");
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|c| c["id"] == by.id.as_str())), "{listed}");

    for (id, pid) in &corrupt {
        let out = case.run(&["delete", "--force", id]);
        assert!(out.status.success(), "delete --force with a corrupt state: {}", describe(&out));
        assert!(
            fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z ")),
            "init {pid} of {id}, whose state file is corrupt, still runs after delete --force"
        );
        case.assert_gone(id);
        assert_undisturbed(&case, &by);
    }
    case.delete_force(&by.id);
    case.assert_all_gone();
}

#[test]
fn json_log_gets_the_error_and_stdio_nothing() {
    let Some(case) = support::case("json_log") else { return };
    let by = bystander(&case);
    let id = case.id("bad");
    let dir = bad_bundle(&case, &id, |c| c["process"]["cwd"] = json!("work"));
    let log = case.work.path().join("runtime.log");
    let out = case
        .cmd(&["--log", log.to_str().expect("utf-8"), "--log-format", "json", "create", "--bundle"])
        .arg(&dir)
        .arg(&id)
        .output()
        .expect("run create");
    assert!(!out.status.success(), "{}", describe(&out));
    // During create the runtime's stdio is the container's: diagnostics go to the
    // log only. (runc 1.1 also prints the error on stderr: checked for amphi.)
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    if runtime().is_amphi {
        assert!(out.stderr.is_empty(), "{}", describe(&out));
    }
    let text = fs::read_to_string(&log).expect("the log file");
    let errors: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("log line {l:?} is not JSON: {e}")))
        .filter(|l| l["level"] == "error")
        .collect();
    let last = errors.last().unwrap_or_else(|| panic!("no error line in {text:?}"));
    let msg = last["msg"].as_str().expect("msg");
    assert!(msg.to_lowercase().contains("cwd"), "{msg:?}");
    assert!(last["time"].as_str().is_some_and(|t| t.contains('T')), "{last}");
    assert_no_fifo_or_state(&case, &id);
    assert_undisturbed(&case, &by);
    case.delete_force(&by.id);
    case.assert_all_gone();
}

#[test]
fn a_bad_bundle_leaves_no_wasm_cache_dir() {
    // amphi only: runc has no wasm cache. The cache location is resolved after
    // the bundle loads and the directory is made only when a wasm workload asks
    // for it, so a refused bundle leaves no cache directory behind, wherever
    // the location came from (flag or environment), for create and run alike.
    if !runtime().is_amphi {
        return;
    }
    let Some(case) = support::case("bad_bundle_no_cache") else { return };
    let wasm_config = |id: &str, edit: &dyn Fn(&mut Value)| {
        let mut config = bundles().wasm.config().expect("wasm config");
        config["root"]["path"] = json!(bundles().wasm.rootfs());
        config["linux"]["cgroupsPath"] = json!(Case::cgroup_path(id));
        edit(&mut config);
        serde_json::to_vec_pretty(&config).expect("serialise")
    };
    type Make = fn(&mut Value);
    let bad: [(&str, Option<Make>); 3] = [
        ("json", None),
        ("cwd", Some(|c| c["process"]["cwd"] = json!("relative"))),
        ("entry", Some(|c| c["process"]["args"] = json!(["/wasm/no-such-module.wasm"]))),
    ];
    let mut n = 0;
    for (what, edit) in bad {
        for verb in ["create", "run"] {
            for by_env in [false, true] {
                n += 1;
                let id = case.id(&format!("{what}{n}"));
                let text = match edit {
                    Some(edit) => wasm_config(&id, &edit),
                    None => br#"{"ociVersion": "1.0.2", "process": {"#.to_vec(),
                };
                let dir = raw_bundle(&case, &id, &text);
                let fresh = case.work.path().join(format!("fresh-{n}"));
                let cache = fresh.join("cache");
                let out = created_with_cache(&case, verb, &dir, &id, &cache, by_env);
                assert!(!out.status.success(), "{verb} of a bad bundle ({what}) succeeded: {}", describe(&out));
                assert!(!fresh.exists(), "{verb} of a bad bundle ({what}, env: {by_env}) made {}", fresh.display());
                assert_no_fifo_or_state(&case, &id);
            }
        }
    }
    // The same call with a good bundle does make the directory.
    let id = case.id("good");
    let dir = raw_bundle(&case, &id, &wasm_config(&id, &|_| {}));
    let cache = case.work.path().join("fresh-good").join("cache");
    let out = created_with_cache(&case, "run", &dir, &id, &cache, false);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(cache.is_dir(), "a wasm run made no cache at {}", cache.display());
    case.assert_all_gone();
}

/// `amphi create|run` of the bundle `dir` as `id` with the wasm cache at
/// `cache`, named by `--wasm-cache` or by `$AMPHI_WASM_CACHE`.
fn created_with_cache(case: &Case, verb: &str, dir: &Path, id: &str, cache: &Path, by_env: bool) -> Output {
    let cache = cache.to_str().expect("utf-8");
    let dir = dir.to_str().expect("utf-8");
    let mut args = if by_env { vec![] } else { vec!["--wasm-cache", cache] };
    args.extend([verb, "--bundle", dir, id]);
    let mut cmd = case.cmd(&args);
    if by_env {
        cmd.env("AMPHI_WASM_CACHE", cache);
    }
    cmd.output().expect("run amphi")
}
