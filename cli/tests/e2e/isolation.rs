//! Isolation, as the spec's `linux` and `process` sections ask for it: each test
//! looks from inside (the probe's report) and from outside (`/proc/<pid>/ns`,
//! `status`, `mountinfo`, `root/…`, the cgroup files), and ends by checking that
//! its containers left nothing behind. One module per concern:
//!
//! - [`namespaces`]: new, joined (by `/proc` link or bind-mounted file), user
//!   id maps, the time namespace, and what lives in them (hostname,
//!   domainname, sysctls);
//! - [`mounts`]: the spec's mounts in order with their options, propagation,
//!   the default filesystems and devices, `pivot_root` or chroot, masked and
//!   read-only paths;
//! - [`process`]: args, env, cwd, user and groups, umask, rlimits,
//!   `noNewPrivileges`, capability sets;
//! - [`cgroups`]: the cgroup path and resources.
//!
//! Here: what they share, and the whole probe bundle run once.

mod cgroups;
mod mounts;
mod namespaces;
mod process;

use serde_json::{Value, json};

use crate::support::{self, cap_names, check, describe};

/// Report, then sleep until killed, so that the container can be seen from outside.
const STAY: &[&str] = &["--sleep", "0"];

/// `args` with `--check PATH` for each of `paths` added.
fn with_checks<'a>(args: &[&'a str], paths: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    for path in paths {
        all.extend(["--check", path]);
    }
    all
}

/// A masked file reads as nothing: an empty file, or `/dev/null` bound over it.
fn assert_reads_empty(seen: &Value) {
    assert_eq!(seen["readable"], true, "{seen}");
    let dev_null = seen["type"] == "char" && seen["rdev"] == json!([1, 3]);
    assert!(dev_null || seen["content"] == "", "{} is not masked: {seen}", seen["path"]);
}

#[test]
fn run_the_probe_bundle_shows_what_the_spec_asks() {
    // The done-when check of the foundation issue: `run --bundle <probe> c1`.
    let Some(case) = support::case("done_when") else { return };
    let id = case.id("c1");
    let args = ["--check", "/proc/keys", "--check", "/proc/sys/kernel/hostname", "--exit", "7"];
    let bundle = case.probe_bundle(&id, &args, |_| {});
    let spec = bundle.config().expect("config");
    let out = case.run(&["run", "--bundle", bundle.dir().to_str().expect("utf-8"), &id]);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
    let r = support::probe_report(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["pid"], 1);
    assert_eq!(r["hostname"], spec["hostname"]);
    assert_eq!(r["uid"], spec["process"]["user"]["uid"]);
    let spec_caps = &spec["process"]["capabilities"];
    for set in ["bounding", "effective", "permitted"] {
        let mut wanted: Vec<String> =
            spec_caps[set].as_array().expect("set").iter().map(|c| c.as_str().expect("name").to_owned()).collect();
        wanted.sort();
        assert_eq!(cap_names(&r, set), wanted, "{set}");
    }
    // An ambient capability needs to be inheritable too; the default spec has no
    // inheritable set, so the ambient one stays empty.
    assert_eq!(cap_names(&r, "ambient"), Vec::<String>::new());
    assert_reads_empty(check(&r, "/proc/keys"));
    assert_eq!(check(&r, "/proc/sys/kernel/hostname")["writable"], false, "read-only");
    for limit in spec["process"]["rlimits"].as_array().expect("rlimits") {
        let name = limit["type"].as_str().expect("type");
        assert_eq!(r["rlimits"][name], json!({"soft": limit["soft"], "hard": limit["hard"]}), "{name}");
    }
    let cgroup = r["cgroup"].as_array().expect("cgroup");
    assert!(!cgroup.is_empty() && cgroup.iter().all(|l| l.as_str().is_some_and(|l| l.ends_with(":/"))), "{cgroup:?}");
    case.assert_all_gone();
}
