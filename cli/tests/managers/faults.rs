//! The host's faults, either way in: a task over its memory limit is
//! OOM-killed (exit status 137 and a `/tasks/oom` event); containerd restarted
//! while a task runs (the task keeps running, and the new containerd execs
//! into it, kills and deletes it); a shim SIGKILLed while its task runs
//! (containerd sees the task end, and its clean-up leaves no process, cgroup,
//! mount or state behind).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use crate::containerd::{Containerd, Via, through_both_shims};
use crate::support::{self, can_run, describe, images, stderr, stdout};

const NATIVE: &str = "amphi.test/native:latest";

fn containerd(name: &str, via: Via) -> Option<Containerd> {
    (can_run("containerd") && via.applies()).then(|| Containerd::start_via(name, via))
}

/// `ctr events` running beside the test, its lines collected.
struct Events {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Events {
    fn watch(ctrd: &Containerd) -> Events {
        let mut child = ctrd.ctr_command(&["events"]).stdout(Stdio::piped()).spawn().expect("spawn ctr events");
        let out = child.stdout.take().expect("ctr events' stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().expect("events").push(line);
            }
        });
        Events { child, lines }
    }

    /// Whether an event of `topic` about the container `id` was seen.
    fn seen(&self, topic: &str, id: &str) -> bool {
        let quoted = format!("\"{id}\"");
        self.lines.lock().expect("events").iter().any(|l| l.contains(topic) && l.contains(&quoted))
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn a_task_over_its_memory_limit_is_oom_killed(via: Via) {
    let Some(ctrd) = containerd("oom", via) else { return };
    ctrd.import(&[&images().native]);
    let events = Events::watch(&ctrd);
    let id = ctrd.id("hog");
    // dd's 64 MiB buffer, filled from /dev/zero, does not fit in 32 MiB.
    let hog = ["/bin/sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1"];
    let out = ctrd.run(&["--rm", "--memory-limit", &(32u64 << 20).to_string()], NATIVE, &id, &hog);
    assert_eq!(out.status.code(), Some(137), "the OOM killer's SIGKILL: {}", describe(&out));
    support::wait_until("containerd publishes the task's OOM", || events.seen("/tasks/oom", &id));
    drop(events);
    ctrd.finish();
}

fn tasks_outlive_a_restart_of_containerd(via: Via) {
    let Some(mut ctrd) = containerd("restart", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("survivor");
    let pid = ctrd.run_detached(NATIVE, &id, &["/bin/amphi-probe", "--no-report", "--wait-signal"]);
    let shims = ctrd.shim_servers();
    ctrd.restart();
    assert_eq!(ctrd.task(&id), Some((pid, "RUNNING".to_owned())), "after the restart:\n{}", ctrd.log());
    assert_eq!(ctrd.shim_servers(), shims, "the same shim serves the task");
    // The new containerd reaches the task through its shim: an exec, waited
    // for...
    let out = ctrd.exec(&id, "after", &["/bin/echo", "still", "here"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "still here\n");
    // ...a kill and the delete that reports its status.
    support::wait_in_sigwait(pid);
    ctrd.ctr_ok(&["task", "kill", &id]);
    ctrd.wait_task(&id, "STOPPED");
    let out = ctrd.delete(&id);
    assert!(stderr(&out).contains("exit code 143"), "ctr task delete: {}", describe(&out));
    ctrd.finish();
}

fn a_killed_shim_leaves_nothing_behind(via: Via) {
    let Some(ctrd) = containerd("shim_killed", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("orphan");
    let pid = ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);
    let shims = ctrd.shim_servers();
    assert_eq!(shims.len(), 1, "one shim serves the task: {shims:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::Signal::SIGKILL)
        .expect("SIGKILL the shim");
    // containerd sees the shim go, has it clean up (`<shim> delete`), and
    // the task ends.
    support::wait_until("containerd sees the task end", || {
        ctrd.task(&id).is_none_or(|(_, status)| status == "STOPPED")
    });
    let cgroup = format!("/{}/{id}", ctrd.namespace);
    support::wait_until("the container's processes are gone", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists() && support::processes_in_cgroup(&cgroup).is_empty()
    });
    if ctrd.task(&id).is_some() {
        let out = ctrd.ctr(&["task", "delete", &id]);
        assert!(out.status.success(), "ctr task delete after the shim died: {}", describe(&out));
    }
    ctrd.ctr_ok(&["containers", "rm", &id]);
    if via == Via::RuncShim {
        // containerd 1.6's runc shim, killed, leaves its socket file (its
        // `delete` does not remove it); amphi's shim must not.
        ctrd.remove_shim_socket(&id);
    }
    ctrd.finish();
}

through_both_shims!(
    a_task_over_its_memory_limit_is_oom_killed,
    tasks_outlive_a_restart_of_containerd,
    a_killed_shim_leaves_nothing_behind,
);
