//! The wasm init as the container's PID 1: it reaps the orphans that processes
//! exec'd into the container leave behind, never takes an `exec`'s exit status,
//! and leaves the guest undisturbed; a native init is left alone. amphi-only: runc has no wasm executor (each
//! test returns at once under `AMPHI_E2E_RUNTIME`).

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{self, describe, proc_status};

/// The children of `parent` (host pids) with their state letter (`S`, `Z`...),
/// from the host's `/proc`.
fn children_of(parent: i64) -> Vec<(i64, char)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i64>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|s| s.parse::<i64>().ok());
        if let (Some(state), Some(ppid)) = (state, ppid)
            && ppid == parent
        {
            found.push((pid, state));
        }
    }
    found
}

/// Waits (up to 20 s) until `ready` holds for the children of `parent`;
/// returns them.
fn wait_for_children(parent: i64, what: &str, ready: impl Fn(&[(i64, char)]) -> bool) -> Vec<(i64, char)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let children = children_of(parent);
        if ready(&children) {
            return children;
        }
        assert!(Instant::now() < deadline, "{what}: children of {parent}: {children:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn zombies(children: &[(i64, char)]) -> Vec<i64> {
    children.iter().filter(|(_, state)| *state == 'Z').map(|(pid, _)| *pid).collect()
}

/// Whether SIGCHLD is in a `/proc/<pid>/status` signal mask (`SigIgn`, `SigBlk`).
fn has_sigchld(mask: &str) -> bool {
    u64::from_str_radix(mask, 16).expect("a hex signal mask") & (1 << (libc::SIGCHLD - 1)) != 0
}

#[test]
fn the_wasm_init_reaps_the_orphans_of_exec() {
    let Some(case) = support::case("wasm_init_reaps") else { return };
    if !support::runtime().is_amphi {
        return;
    }
    // Few enough pids that, unreaped, the zombies of the loop below would make
    // a later fork fail with EAGAIN.
    const PIDS_LIMIT: i64 = 16;
    const EXECS: i32 = 40;
    let id = case.id("c");
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        // The guest copies its stdin to its stdout: a host call (fd_read) that a
        // signal would interrupt, and output that tells it is still there.
        config["process"]["args"] = json!(["/wasm/cat.wasm"]);
        config["linux"]["resources"]["pids"] = json!({"limit": PIDS_LIMIT});
    });
    let cache = case.work.path().join("cache");
    let mut guest = case
        .cmd(&["--wasm-cache", cache.to_str().unwrap(), "run", "--bundle", bundle.dir().to_str().unwrap(), &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run amphi");
    let mut to_guest = guest.stdin.take().unwrap();
    let mut from_guest = BufReader::new(guest.stdout.take().unwrap());
    let mut echo = |text: &str| {
        to_guest.write_all(format!("{text}\n").as_bytes()).unwrap();
        let mut line = String::new();
        from_guest.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{text}\n"), "the guest echoes its input");
    };
    echo("before");
    case.wait_status(&id, "running");
    let init = case.state(&id)["pid"].as_i64().unwrap();
    assert!(proc_status(init, "NSpid").ends_with("\t1"), "the wasm init is pid 1 of its own pid namespace");

    // Each exec leaves an orphan (reparented to the init) and ends with its own
    // status, which only its `amphi exec` may collect.
    for i in 0..EXECS {
        let code = 10 + i;
        let out = case.run(&["exec", &id, "/bin/sh", "-c", &format!("sleep 0 & exit {code}")]);
        assert_eq!(out.status.code(), Some(code), "exec {i} of {EXECS}: {}", describe(&out));
    }
    // Every orphan ends (`sleep 0`) and none stays behind as a zombie.
    wait_for_children(init, "every orphan is reaped", <[_]>::is_empty);

    // An orphan that lives on is the init's child until it ends, then goes.
    let out = case.run(&["exec", &id, "/bin/sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let orphan = wait_for_children(init, "the orphan is reparented to the init", |c| c.len() == 1)[0].0;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(orphan as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait_for_children(init, "the killed orphan is reaped", <[_]>::is_empty);

    // A wasm process exec'd next to the guest is no pid 1: its status is its own.
    let out = case.run(&["--wasm-cache", cache.to_str().unwrap(), "exec", &id, "/wasm/exit-code.wasm", "9"]);
    assert_eq!(out.status.code(), Some(9), "{}", describe(&out));

    // The guest never noticed: it echoes, and ends as it would have.
    echo("after");
    drop(to_guest);
    let out = guest.wait_with_output().unwrap();
    assert!(out.status.success(), "the guest ends with its own status: {}", describe(&out));
    assert!(out.stderr.is_empty(), "{}", describe(&out));

    // A native init is left alone: its workload starts with SIGCHLD at its
    // default (an ignored one would survive execve), and an orphan reparented
    // to it is its own to reap (busybox sleep never does).
    let native = case.id("native");
    let bundle = case.busybox_bundle(&native, &["/bin/sleep", "1000"], |_| {});
    let created = case.create(&bundle, &native, &[]);
    assert!(created.status.success(), "{}", describe(&created));
    case.ok(&["start", &native]);
    let init = case.state(&native)["pid"].as_i64().unwrap();
    for mask in ["SigIgn", "SigBlk"] {
        assert!(!has_sigchld(&proc_status(init, mask)), "{mask} of the native init has SIGCHLD");
    }
    let out = case.run(&["exec", &native, "/bin/sh", "-c", "sleep 0 & exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    wait_for_children(init, "the orphan stays the native init's", |c| zombies(c).len() == 1);
    case.ok(&["delete", "--force", &native]);
    case.assert_all_gone();
}

#[test]
fn orphans_left_before_start_are_reaped_when_the_guest_starts() {
    let Some(case) = support::case("wasm_init_reaps_early") else { return };
    if !support::runtime().is_amphi {
        return;
    }
    let id = case.id("c");
    let bundle = case.bundle(&support::bundles().wasm, &id, |config| {
        config["process"]["args"] = json!(["/wasm/sleep.wasm"]);
    });
    let cache = case.work.path().join("cache");
    let created = case.create_in(bundle.dir(), &id, &[], &[("AMPHI_WASM_CACHE", cache.to_str().unwrap())]);
    assert!(created.status.success(), "{}", describe(&created));
    let init = case.state(&id)["pid"].as_i64().unwrap();
    // While the init waits at the barrier, an exec's orphan ends as its zombie.
    let out = case.run(&["exec", &id, "/bin/sh", "-c", "sleep 0 & exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    wait_for_children(init, "the orphan ends under the waiting init", |c| zombies(c).len() == 1);
    case.ok(&["start", &id]);
    wait_for_children(init, "the zombie is reaped once the guest starts", <[_]>::is_empty);
    let deadline = Instant::now() + Duration::from_secs(20);
    while case.container_stdout(&id) != "sleeping\n" {
        assert!(Instant::now() < deadline, "the guest runs: {:?}", case.container_stdout(&id));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(case.status(&id), "running");
    case.ok(&["delete", "--force", &id]);
    case.assert_all_gone();
}
