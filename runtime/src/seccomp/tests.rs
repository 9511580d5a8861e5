//! The profile checks (pure), and filters loaded for real.
//!
//! A filter is forever and the test harness is multi-threaded, so every test
//! that loads one re-executes this test binary on that one test ([`in_child`]);
//! the copy loads the filter (with `no_new_privs`, so no root is needed), makes
//! the syscalls, and reports through its exit status, or dies by the signal the
//! profile asked for.

use std::ffi::CString;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Whence;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::{Value, json};

use super::*;
use crate::sys::clone::exit_now;

const CHILD: &str = "AMPHI_SECCOMP_TEST_CHILD";
const CASE: &str = "AMPHI_SECCOMP_TEST_CASE";
const DIR: &str = "AMPHI_SECCOMP_TEST_DIR";

/// 42: the errno the tests choose, so it cannot be confused with a real failure.
const CHOSEN: Errno = Errno::ENOMSG;

const CONTAINERD_DEFAULT: &str = include_str!("testdata/containerd-1.6.20-default.json");
const DOCKER_DEFAULT: &str = include_str!("testdata/docker-default.json");

/// The capabilities Docker and containerd give a container by default.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

fn seccomp(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("test profile does not parse: {e}"))
}

fn plan(json: &str) -> SeccompPlan {
    SeccompPlan::new(&seccomp(json)).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(json: &str) -> String {
    SeccompPlan::new(&seccomp(json)).expect_err("the profile should be refused").to_string()
}

/// Runs `body` in a fresh copy of this test binary that runs only the test
/// `name` (of this module), with `case` and a temporary directory that the
/// parent removes afterwards. In the copy, `body`'s return value is the exit
/// status and this function never returns; in the parent it returns the copy's
/// status and output.
fn in_child(name: &str, case: &str, body: impl FnOnce(&Path, &str) -> i32) -> Output {
    let test = format!("seccomp::tests::{name}");
    if std::env::var(CHILD).as_deref() == Ok(test.as_str()) {
        let dir = PathBuf::from(std::env::var_os(DIR).expect("child has a directory"));
        let case = std::env::var(CASE).unwrap_or_default();
        exit_now(body(&dir, &case));
    }
    let dir = tempfile::tempdir().unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(CHILD, &test)
        .env(CASE, case)
        .env(DIR, dir.path())
        .output()
        .unwrap()
}

fn describe(out: &Output) -> String {
    format!(
        "child {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
}

fn assert_killed_by(out: &Output, signal: Signal) {
    assert_eq!(out.status.signal(), Some(signal as i32), "{}", describe(out));
}

/// In a child: no core files from the deaths the tests cause, `no_new_privs`
/// (so loading needs no privilege), then the filter. Exits 100 if that fails.
fn restrict(plan: &SeccompPlan) -> Option<OwnedFd> {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    if nix::sys::prctl::set_no_new_privs().is_err() {
        exit_now(100);
    }
    match load(plan) {
        Ok(fd) => fd,
        Err(_) => exit_now(101),
    }
}

/// A profile that applies `action` (with `extra` fields) to mkdir and mkdirat
/// and allows everything else.
fn mkdir_profile(action: &str, extra: &str) -> String {
    format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["mkdir","mkdirat"],"action":"{action}"{extra}}}]}}"#
    )
}

fn mkdir(dir: &Path, name: &str) -> nix::Result<()> {
    nix::unistd::mkdir(&dir.join(name), Mode::S_IRWXU)
}

// ---- loading and running under a filter --------------------------------------

#[test]
fn errno_rule_fails_mkdir_with_the_chosen_errno_and_nothing_else() {
    let out = in_child("errno_rule_fails_mkdir_with_the_chosen_errno_and_nothing_else", "", |dir, _| {
        let plan = plan(&mkdir_profile("SCMP_ACT_ERRNO", r#","errnoRet":42"#));
        restrict(&plan);
        if mkdir(dir, "denied") != Err(CHOSEN) {
            return 1;
        }
        if std::fs::write(dir.join("file"), b"still allowed").is_err() {
            return 2;
        }
        if std::fs::read(dir.join("file")).map(|b| b.len()).unwrap_or(0) != 13 {
            return 3;
        }
        0
    });
    assert_exit(&out, 0);
}

#[test]
fn a_command_runs_its_program_under_the_filter() {
    // Loaded without no_new_privs, as a privileged caller does: needs root.
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "loading a filter without no_new_privs needs root in CI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("/bin/mkdir");
    command.arg(dir.path().join("denied"));
    load_before_exec(&plan(&mkdir_profile("SCMP_ACT_ERRNO", r#","errnoRet":42"#)), &mut command);
    let out = command.output().expect("run mkdir");
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&CHOSEN.desc().to_string()), "{}", describe(&out));
    assert!(!dir.path().join("denied").exists());
    // This process is not filtered.
    assert_eq!(mkdir(dir.path(), "allowed"), Ok(()));
}

#[test]
fn errno_without_errno_ret_is_eperm() {
    let out = in_child("errno_without_errno_ret_is_eperm", "", |dir, _| {
        restrict(&plan(&mkdir_profile("SCMP_ACT_ERRNO", "")));
        if mkdir(dir, "x") == Err(Errno::EPERM) { 0 } else { 1 }
    });
    assert_exit(&out, 0);
}

#[test]
fn default_errno_ret_answers_every_unlisted_syscall() {
    // An allow-list that lets the process do nothing but exit.
    let out = in_child("default_errno_ret_answers_every_unlisted_syscall", "", |dir, _| {
        let plan = plan(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":40,
                "syscalls":[{"names":["exit_group","exit"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        restrict(&plan);
        if mkdir(dir, "x") != Err(Errno::ELOOP) {
            return 1;
        }
        if nix::unistd::access(dir, nix::unistd::AccessFlags::F_OK) != Err(Errno::ELOOP) {
            return 2;
        }
        0
    });
    assert_exit(&out, 0);
}

#[test]
fn kill_process_dies_with_sigsys() {
    let out = in_child("kill_process_dies_with_sigsys", "", |dir, _| {
        restrict(&plan(&mkdir_profile("SCMP_ACT_KILL_PROCESS", "")));
        let _ = mkdir(dir, "x");
        1
    });
    assert_killed_by(&out, Signal::SIGSYS);
}

#[test]
fn trap_delivers_sigsys() {
    let out = in_child("trap_delivers_sigsys", "", |dir, _| {
        restrict(&plan(&mkdir_profile("SCMP_ACT_TRAP", "")));
        let _ = mkdir(dir, "x");
        1
    });
    assert_killed_by(&out, Signal::SIGSYS);
}

/// SCMP_ACT_KILL_THREAD and its old name SCMP_ACT_KILL end the calling thread
/// and leave the rest of the process running.
#[test]
fn kill_thread_ends_only_the_thread() {
    for action in ["SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL"] {
        let out = in_child("kill_thread_ends_only_the_thread", action, |dir, action| {
            let plan = plan(&mkdir_profile(action, ""));
            let tid = Arc::new(AtomicI32::new(0));
            let survived = Arc::new(AtomicBool::new(false));
            let (t, s, d) = (tid.clone(), survived.clone(), dir.to_owned());
            // Never joined: a thread the kernel killed never reports back.
            std::thread::spawn(move || {
                restrict(&plan);
                t.store(nix::unistd::gettid().as_raw(), Ordering::SeqCst);
                let _ = mkdir(&d, "x");
                s.store(true, Ordering::SeqCst);
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let id = tid.load(Ordering::SeqCst);
                if id != 0 && !Path::new(&format!("/proc/self/task/{id}")).exists() {
                    break;
                }
                if Instant::now() > deadline {
                    return 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if survived.load(Ordering::SeqCst) || dir.join("x").exists() { 2 } else { 0 }
        });
        assert_exit(&out, 0);
    }
}

#[test]
fn trace_without_a_tracer_is_enosys() {
    let out = in_child("trace_without_a_tracer_is_enosys", "", |dir, _| {
        restrict(&plan(&mkdir_profile("SCMP_ACT_TRACE", r#","errnoRet":7"#)));
        if mkdir(dir, "x") == Err(Errno::ENOSYS) { 0 } else { 1 }
    });
    assert_exit(&out, 0);
}

#[test]
fn log_lets_the_syscall_run() {
    let out = in_child("log_lets_the_syscall_run", "", |dir, _| {
        restrict(&plan(&mkdir_profile("SCMP_ACT_LOG", "")));
        if mkdir(dir, "logged").is_err() {
            return 1;
        }
        if dir.join("logged").is_dir() { 0 } else { 2 }
    });
    assert_exit(&out, 0);
}

/// Every operator, on mkdirat's mode argument (index 2): the child tries four
/// modes and reports, as a bit mask, which ones the rule refused.
#[test]
fn argument_operators_compare_as_the_kernel_sees_them() {
    const MODES: [u32; 4] = [0o700, 0o750, 0o755, 0o777];
    /// An operator, its operands, and which modes it refuses.
    type Case = (&'static str, &'static str, fn(u32) -> bool);
    let cases: [Case; 7] = [
        ("SCMP_CMP_NE", r#""value":488"#, |m| m != 0o750),
        ("SCMP_CMP_LT", r#""value":488"#, |m| m < 0o750),
        ("SCMP_CMP_LE", r#""value":488"#, |m| m <= 0o750),
        ("SCMP_CMP_EQ", r#""value":488"#, |m| m == 0o750),
        ("SCMP_CMP_GE", r#""value":488"#, |m| m >= 0o750),
        ("SCMP_CMP_GT", r#""value":488"#, |m| m > 0o750),
        // value is the mask (group bits), valueTwo what they must equal (r-x).
        ("SCMP_CMP_MASKED_EQ", r#""value":56,"valueTwo":40"#, |m| m & 0o070 == 0o050),
    ];
    for (op, operands, refused) in cases {
        let expected = MODES.iter().enumerate().filter(|(_, m)| refused(**m)).fold(0, |acc, (i, _)| acc | 1 << i);
        let case = format!(r#"{{"index":2,"op":"{op}",{operands}}}"#);
        let out = in_child("argument_operators_compare_as_the_kernel_sees_them", &case, |dir, case| {
            let plan = plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":42,"args":[{case}]}}]}}"#
            ));
            let Ok(dirfd) = std::fs::File::open(dir) else { return 99 };
            restrict(&plan);
            let mut refused = 0;
            for (i, mode) in MODES.iter().enumerate() {
                match nix::sys::stat::mkdirat(
                    Some(dirfd.as_raw_fd()),
                    format!("d{i}").as_str(),
                    Mode::from_bits_truncate(*mode),
                ) {
                    Err(e) if e == CHOSEN => refused |= 1 << i,
                    Ok(()) => {}
                    Err(_) => return 98,
                }
            }
            refused
        });
        assert_exit(&out, expected);
    }
}

/// Conditions on different arguments must all hold; two conditions on one
/// argument (which libseccomp cannot put in one rule) each suffice, as in runc.
#[test]
fn conditions_on_distinct_arguments_and_and_on_one_argument_or() {
    // lseek(fd, offset = arg 1, whence = arg 2)
    let cases = [
        (
            r#"[{"index":1,"op":"SCMP_CMP_EQ","value":100},{"index":2,"op":"SCMP_CMP_EQ","value":0}]"#,
            0b0001, // only (100, SET)
        ),
        (
            r#"[{"index":1,"op":"SCMP_CMP_EQ","value":100},{"index":1,"op":"SCMP_CMP_EQ","value":200}]"#,
            0b0111, // offset 100 or 200, whatever the whence
        ),
    ];
    for (args, expected) in cases {
        let out = in_child("conditions_on_distinct_arguments_and_and_on_one_argument_or", args, |dir, args| {
            let plan = plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["lseek"],"action":"SCMP_ACT_ERRNO","errnoRet":42,"args":{args}}}]}}"#
            ));
            let file = match std::fs::File::create(dir.join("f")) {
                Ok(f) => f,
                Err(_) => return 99,
            };
            restrict(&plan);
            let tries =
                [(100, Whence::SeekSet), (200, Whence::SeekSet), (100, Whence::SeekCur), (300, Whence::SeekSet)];
            let mut refused = 0;
            for (i, (offset, whence)) in tries.into_iter().enumerate() {
                match nix::unistd::lseek(file.as_raw_fd(), offset, whence) {
                    Err(e) if e == CHOSEN => refused |= 1 << i,
                    Ok(_) => {}
                    Err(_) => return 98,
                }
            }
            refused
        });
        assert_exit(&out, expected);
    }
}

/// TSYNC puts the filter on threads that already exist; without it only the
/// loading thread is filtered.
#[test]
fn tsync_filters_every_thread() {
    for (flags, expect_refused) in [(r#"["SECCOMP_FILTER_FLAG_TSYNC"]"#, true), ("[]", false)] {
        let out = in_child("tsync_filters_every_thread", flags, |dir, flags| {
            let plan = plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","flags":{flags},"syscalls":[{{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":42}}]}}"#
            ));
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let d = dir.to_owned();
            let other = std::thread::spawn(move || {
                let _ = go_rx.recv();
                mkdir(&d, "from-other-thread")
            });
            restrict(&plan);
            let _ = go_tx.send(());
            match other.join() {
                Ok(Err(e)) if e == CHOSEN => 1,
                Ok(Ok(())) => 0,
                _ => 99,
            }
        });
        assert_exit(&out, i32::from(expect_refused));
    }
}

#[test]
fn log_and_spec_allow_flags_load() {
    let out = in_child("log_and_spec_allow_flags_load", "", |dir, _| {
        let plan = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":42}]}"#,
        );
        restrict(&plan);
        if mkdir(dir, "x") == Err(CHOSEN) { 0 } else { 1 }
    });
    assert_exit(&out, 0);
}

/// SCMP_ACT_NOTIFY end to end: `load` returns the listener, `send_to_listener`
/// delivers the container process state and the descriptor to an agent, and
/// the agent answers a notifying mkdir through the descriptor it received.
#[test]
fn notify_descriptor_reaches_the_agent_with_the_state() {
    let out = in_child("notify_descriptor_reaches_the_agent_with_the_state", "", |dir, _| {
        let socket = dir.join("agent.sock");
        let Ok(agent) = UnixListener::bind(&socket) else { return 90 };
        let plan = plan(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{}","listenerMetadata":"agent-metadata",
                "flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls":[{{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
            socket.display()
        ));
        if !plan.uses_notify() {
            return 1;
        }
        let Some(notify_fd) = restrict(&plan) else { return 2 };
        let pid = nix::unistd::getpid().as_raw();
        let state = json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": pid, "bundle": "/bundle"});
        let listener = plan.listener().expect("notify plan has a listener");
        if send_to_listener(&listener.path, &listener.metadata, &state, pid, notify_fd.as_fd()).is_err() {
            return 3;
        }
        drop(notify_fd);

        // The agent's side.
        let Ok((conn, _)) = agent.accept() else { return 4 };
        let Some((message, received)) = receive_state(conn.as_raw_fd()) else { return 5 };
        let expected = json!({
            "ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": pid, "metadata": "agent-metadata", "state": state,
        });
        if message != expected {
            return 6;
        }
        let d = dir.to_owned();
        let blocked = std::thread::spawn(move || mkdir(&d, "asked"));
        let Ok(request) = ScmpNotifReq::receive(received) else { return 7 };
        let native_mkdir = [ScmpSyscall::from_name("mkdir").ok(), ScmpSyscall::from_name("mkdirat").ok()];
        if !native_mkdir.contains(&Some(request.data.syscall)) {
            return 8;
        }
        let answer = ScmpNotifResp::new_error(request.id, -(CHOSEN as i32), ScmpNotifRespFlags::empty());
        if answer.respond(received).is_err() {
            return 9;
        }
        match blocked.join() {
            Ok(Err(e)) if e == CHOSEN => 0,
            _ => 10,
        }
    });
    assert_exit(&out, 0);
}

/// What an agent reads from one connection: the JSON and the descriptor (left
/// open: the child exits soon).
fn receive_state(conn: RawFd) -> Option<(Value, RawFd)> {
    let mut bytes = Vec::new();
    let mut fd = None;
    loop {
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!([RawFd; 2]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn,
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        for c in msg.cmsgs().ok()? {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                fd = fds.first().copied();
            }
        }
        let n = msg.bytes;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    Some((serde_json::from_slice(&bytes).ok()?, fd?))
}

/// Runs `/bin/sh` under `profile`: the shell forks `ls`, `unshare` and `grep`
/// (dynamically linked, so the loader's syscalls are exercised too) and prints
/// its seccomp mode.
fn run_shell_under(test: &str, profile: &str) -> Output {
    in_child(test, profile, |_, case| {
        let profile = match case {
            "containerd" => seccomp(CONTAINERD_DEFAULT),
            "docker" => docker_profile(DEFAULT_CAPS),
            "docker-all-caps" => docker_profile(&all_caps().iter().map(String::as_str).collect::<Vec<_>>()),
            _ => return 97,
        };
        let Ok(plan) = SeccompPlan::new(&profile) else { return 98 };
        let script = shell_script(case);
        let argv: Vec<CString> = ["sh", "-c", &script].iter().map(|a| CString::new(*a).unwrap()).collect();
        restrict(&plan);
        let _ = nix::unistd::execv(c"/bin/sh", &argv);
        99
    })
}

/// The shell's work. Under the unprivileged profiles `unshare` (CAP_SYS_ADMIN
/// only) must be refused, which shows the filter denies as well as allows.
fn shell_script(case: &str) -> String {
    let denied = if case == "docker-all-caps" { "" } else { "! unshare -U true 2>/dev/null && " };
    format!("ls / >/dev/null && {denied}grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status && echo shell-ran")
}

fn assert_shell_ran(out: &Output) {
    assert_exit(out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Seccomp:\t2") && stdout.contains("shell-ran"), "{}", describe(out));
}

#[test]
fn containerd_default_profile_runs_an_ordinary_program() {
    let plan = plan(CONTAINERD_DEFAULT);
    assert!(plan.skipped_syscalls().is_empty(), "{:?}", plan.skipped_syscalls());
    assert!(!plan.uses_notify());
    assert_shell_ran(&run_shell_under("containerd_default_profile_runs_an_ordinary_program", "containerd"));
}

#[test]
fn docker_default_profile_runs_an_ordinary_program() {
    let plan = SeccompPlan::new(&docker_profile(DEFAULT_CAPS)).unwrap_or_else(|e| panic!("{e}"));
    for name in plan.skipped_syscalls() {
        assert!(names::NEWER_THAN_LIBSECCOMP.contains(&name.as_str()), "{name}");
    }
    assert_shell_ran(&run_shell_under("docker_default_profile_runs_an_ordinary_program", "docker"));
}

#[test]
fn docker_profile_of_a_privileged_container_runs_an_ordinary_program() {
    assert_shell_ran(&run_shell_under(
        "docker_profile_of_a_privileged_container_runs_an_ordinary_program",
        "docker-all-caps",
    ));
}

/// Without `no_new_privs` the kernel wants CAP_SYS_ADMIN, which a container's
/// init still has at this point when the spec leaves noNewPrivileges unset.
#[test]
fn loads_without_no_new_privs_when_privileged() {
    if !nix::unistd::geteuid().is_root() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "this test needs root under CI");
        return;
    }
    let out = in_child("loads_without_no_new_privs_when_privileged", "", |dir, _| {
        let plan = plan(&mkdir_profile("SCMP_ACT_ERRNO", r#","errnoRet":42"#));
        if load(&plan).is_err() {
            return 1;
        }
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
        if !status.contains("NoNewPrivs:\t0") || !status.contains("Seccomp:\t2") {
            return 2;
        }
        if mkdir(dir, "x") == Err(CHOSEN) { 0 } else { 3 }
    });
    assert_exit(&out, 0);
}

// ---- Docker's profile format -----------------------------------------------

/// Docker's `default.json` is a template: what moby's `setupSeccomp` makes of it
/// for a container on this machine (amd64, this kernel) with `caps`.
fn docker_profile(caps: &[&str]) -> LinuxSeccomp {
    const ARCH: &str = "amd64";
    const NATIVE: &str = "SCMP_ARCH_X86_64";
    let template: Value = serde_json::from_str(DOCKER_DEFAULT).unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
    };
    let kernel = kernel_version();
    let mut architectures = Vec::new();
    for entry in template["archMap"].as_array().unwrap() {
        if entry["architecture"] == NATIVE {
            architectures.push(NATIVE.to_owned());
            architectures.extend(strings(&entry["subArchitectures"]));
        }
    }
    let mut syscalls = Vec::new();
    for call in template["syscalls"].as_array().unwrap() {
        let (inc, exc) = (&call["includes"], &call["excludes"]);
        let has = |cap: &String| caps.contains(&cap.as_str());
        if strings(&exc["arches"]).iter().any(|a| a == ARCH)
            || strings(&exc["caps"]).iter().any(has)
            || exc["minKernel"].as_str().is_some_and(|k| kernel >= parse_kernel(k))
            || (!strings(&inc["arches"]).is_empty() && !strings(&inc["arches"]).iter().any(|a| a == ARCH))
            || !strings(&inc["caps"]).iter().all(has)
            || inc["minKernel"].as_str().is_some_and(|k| kernel < parse_kernel(k))
        {
            continue;
        }
        let mut rule = json!({"names": call["names"], "action": call["action"]});
        for key in ["errnoRet", "args"] {
            if !call[key].is_null() {
                rule[key] = call[key].clone();
            }
        }
        syscalls.push(rule);
    }
    serde_json::from_value(json!({
        "defaultAction": template["defaultAction"],
        "defaultErrnoRet": template["defaultErrnoRet"],
        "architectures": architectures,
        "syscalls": syscalls,
    }))
    .unwrap()
}

fn kernel_version() -> (u32, u32) {
    parse_kernel(&std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap())
}

fn parse_kernel(text: &str) -> (u32, u32) {
    let mut parts = text.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn all_caps() -> Vec<String> {
    caps::all().iter().map(|c| c.to_string()).collect()
}

#[test]
fn docker_template_becomes_the_profile_docker_would_send() {
    let profile = docker_profile(DEFAULT_CAPS);
    let json = serde_json::to_value(&profile).unwrap();
    assert_eq!(json["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
    assert_eq!(json["defaultErrnoRet"], 1);
    let rules = json["syscalls"].as_array().unwrap();
    let has = |name: &str| rules.iter().any(|r| r["names"].as_array().unwrap().iter().any(|n| n == name));
    // Default capabilities: chroot (CAP_SYS_CHROOT) and arch_prctl (amd64) are in;
    // mount (CAP_SYS_ADMIN) and the arm-only calls are out; clone3 gets ENOSYS.
    assert!(has("chroot") && has("arch_prctl") && has("ptrace"));
    assert!(!has("mount") && !has("arm_fadvise64_64") && !has("s390_pci_mmio_read"));
    assert!(rules.iter().any(|r| r["names"] == json!(["clone3"]) && r["errnoRet"] == 38));
    let privileged =
        serde_json::to_value(docker_profile(&all_caps().iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
    assert!(
        privileged["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"].as_array().unwrap().contains(&json!("mount")))
    );
    assert!(!privileged["syscalls"].as_array().unwrap().iter().any(|r| r["names"] == json!(["clone3"])));
}

// ---- checks: each bad profile is one line naming the field -----------------

#[test]
fn unknown_syscall_names_the_field() {
    let err = refusal(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ALLOW"},
            {"names":["write","close","foo"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(err, r#"config.json: linux.seccomp.syscalls[1].names[2]: unknown syscall "foo""#);
}

#[test]
fn unknown_syscall_is_refused_even_in_a_rule_that_changes_nothing() {
    let err =
        refusal(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdri"],"action":"SCMP_ACT_ALLOW"}]}"#);
    assert!(err.contains("syscalls[0].names[0]: unknown syscall \"mkdri\""), "{err}");
}

#[test]
fn syscalls_of_other_architectures_and_newer_kernels_are_accepted() {
    let plan = plan(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["read","socketcall","arm_fadvise64_64","futex_wake","mseal"],"action":"SCMP_ACT_ALLOW"}]}"#,
    );
    // Skipped: exactly the names the linked library cannot resolve (mseal with
    // Debian's 2.5.4, which does know the futex2 calls).
    let unresolvable: Vec<&str> =
        ["futex_wake", "mseal"].into_iter().filter(|n| ScmpSyscall::from_name(n).is_err()).collect();
    assert_eq!(plan.skipped_syscalls(), unresolvable.as_slice());
}

#[test]
fn unknown_action_architecture_operator_and_flag_fail_at_parse_naming_the_path() {
    // What the bundle loader does with config.json (serde_path_to_error).
    let parse = |seccomp: &str| -> String {
        let spec = format!(r#"{{"ociVersion":"1.2.0","linux":{{"seccomp":{seccomp}}}}}"#);
        let mut de = serde_json::Deserializer::from_str(&spec);
        serde_path_to_error::deserialize::<_, oci_spec::runtime::Spec>(&mut de).expect_err("must not parse").to_string()
    };
    let cases = [
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_FOO"}]}"#,
            "linux.seccomp.syscalls[0].action: unknown variant `SCMP_ACT_FOO`",
        ),
        (r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "linux.seccomp.defaultAction: unknown variant `SCMP_ACT_NOPE`"),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_VAX"]}"#,
            "linux.seccomp.architectures[1]: unknown variant `SCMP_ARCH_VAX`",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}]}"#,
            "linux.seccomp.syscalls[0].args[0].op: unknown variant `SCMP_CMP_ABOUT`",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_FAST"]}"#,
            "linux.seccomp.flags[0]: unknown variant `SECCOMP_FILTER_FLAG_FAST`",
        ),
    ];
    for (seccomp, expected) in cases {
        let err = parse(seccomp);
        assert!(err.starts_with(expected), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn field_errors() {
    let cases = [
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}"#,
            "linux.seccomp.syscalls[0].names: must name at least one syscall",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","errnoRet":5}]}"#,
            "linux.seccomp.syscalls[0].errnoRet: 5 given with SCMP_ACT_ALLOW, which returns no errno",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_KILL","defaultErrnoRet":5}"#,
            "linux.seccomp.defaultErrnoRet: 5 given with SCMP_ACT_KILL",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
            "linux.seccomp.syscalls[0].errnoRet: 70000 does not fit",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
            "linux.seccomp.syscalls[0].args[0].index: 6 is out of range",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/run/agent.sock"}"#,
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "linux.seccomp.listenerPath: missing: a rule uses SCMP_ACT_NOTIFY",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock","syscalls":[{"names":["mkdir","write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot apply to write",
        ),
        (
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"x"}"#,
            "linux.seccomp.listenerMetadata: set without listenerPath",
        ),
    ];
    for (profile, expected) in cases {
        let err = refusal(profile);
        assert!(err.starts_with(&format!("config.json: {expected}")), "{err}\nwanted: {expected}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn an_architecture_the_library_lacks_names_the_entry() {
    let result = SeccompPlan::new(&seccomp(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86","SCMP_ARCH_M68K"]}"#,
    ));
    let version = libseccomp::ScmpVersion::current().unwrap();
    if (version.major, version.minor) < (2, 6) {
        let err = result.expect_err("libseccomp before 2.6 has no m68k").to_string();
        assert!(
            err.starts_with(
                "config.json: linux.seccomp.architectures[1]: SCMP_ARCH_M68K is not supported by libseccomp 2."
            ),
            "{err}"
        );
    } else {
        assert!(result.is_ok());
    }
}

#[test]
fn listener_path_without_notify_is_ignored() {
    let plan = plan(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","listenerMetadata":"m"}"#);
    assert!(!plan.uses_notify());
    assert!(plan.listener().is_none());
}

#[test]
fn wait_killable_recv_without_notify_is_dropped() {
    let plan = plan(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#);
    assert!(!plan.uses_notify());
    assert_eq!(plan.flags, 0);
}

#[test]
fn notify_plan_carries_its_listener() {
    let plan = plan(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","listenerMetadata":"m",
            "flags":["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    );
    assert!(plan.uses_notify());
    assert_eq!(plan.listener(), Some(&NotifyListener { path: "/run/agent.sock".into(), metadata: "m".into() }));
    // TSYNC with a listener needs TSYNC_ESRCH.
    assert_eq!(plan.flags, sys::FLAG_NEW_LISTENER | sys::FLAG_TSYNC | sys::FLAG_TSYNC_ESRCH);
}

#[test]
fn a_rule_with_the_default_action_is_left_out() {
    let with = plan(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO"}]}"#);
    let without = plan(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#);
    assert_eq!(with.program, without.program);
    // A different errno is a different action.
    let other = plan(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":2}]}"#,
    );
    assert_ne!(other.program, without.program);
}

#[test]
fn debug_shows_the_size_not_the_program() {
    let text = format!("{:?}", plan(CONTAINERD_DEFAULT));
    assert!(text.starts_with("SeccompPlan { instructions: "), "{text}");
    assert!(text.len() < 200, "{text}");
}
