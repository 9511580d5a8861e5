//! Bad input through containerd, either way in: an exec of a program that
//! does not exist fails with amphi's one-line error, a kill of an exec id the
//! task does not have fails, a Stats of a stopped task fails (amphi's shim;
//! the runc shim reads the cgroup still there) — and the shim keeps serving
//! the task it runs, and nothing is left behind. (A create amphi refuses is
//! `ctr::*::amphi_errors_reach_the_user_through_containerd`; an Update with
//! invalid resources goes through the CRI, `cri_update`.)

use crate::containerd::{Containerd, Via, through_both_shims};
use crate::support::{self, can_run, describe, images, stderr, stdout};

const NATIVE: &str = "amphi.test/native:latest";

fn containerd(name: &str, via: Via) -> Option<Containerd> {
    (can_run("containerd") && via.applies()).then(|| Containerd::start_via(name, via))
}

/// The task `id` still runs and still answers an exec.
fn still_serving(ctrd: &Containerd, id: &str, exec_id: &str) {
    assert_eq!(ctrd.task(id).map(|(_, s)| s).as_deref(), Some("RUNNING"), "task {id}");
    let out = ctrd.exec(id, exec_id, &["/bin/echo", "still", "served"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "still served\n");
}

fn an_exec_of_a_missing_program_fails_and_the_task_runs_on(via: Via) {
    let Some(ctrd) = containerd("bad_exec", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("host");
    ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);
    let out = ctrd.exec(&id, "missing", &["/nonexistent"]);
    assert!(!out.status.success(), "{}", describe(&out));
    if support::runtime().is_amphi {
        let message = stderr(&out);
        assert!(message.contains(r#"exec: "/nonexistent": No such file or directory"#), "{message}");
        assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
    }
    still_serving(&ctrd, &id, "after-missing");
    // The failed exec's id is free again.
    let out = ctrd.exec(&id, "missing", &["/bin/true"]);
    assert!(out.status.success(), "{}", describe(&out));
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    ctrd.wait_task(&id, "STOPPED");
    ctrd.delete(&id);
    ctrd.finish();
}

fn a_kill_of_an_unknown_exec_id_fails_and_the_task_runs_on(via: Via) {
    let Some(ctrd) = containerd("bad_kill", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("host");
    ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);
    let out = ctrd.ctr(&["task", "kill", "--exec-id", "nosuch", "--signal", "SIGKILL", &id]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr(&out).contains("nosuch"), "the error names the exec id: {}", describe(&out));
    still_serving(&ctrd, &id, "after-kill");
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", &id]);
    ctrd.wait_task(&id, "STOPPED");
    if via == Via::AmphiShim {
        let out = ctrd.ctr(&["task", "metrics", &id]);
        assert!(!out.status.success(), "metrics of a stopped task: {}", describe(&out));
        assert_eq!(stderr(&out).trim_end().lines().count(), 1, "one line: {}", describe(&out));
    }
    ctrd.delete(&id);
    ctrd.finish();
}

through_both_shims!(
    an_exec_of_a_missing_program_fails_and_the_task_runs_on,
    a_kill_of_an_unknown_exec_id_fails_and_the_task_runs_on,
);
