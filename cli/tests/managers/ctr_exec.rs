//! An exec's own stdio and terminal through containerd, either way in: `ctr
//! task exec` feeds the process's stdin and closes it (CloseIO), keeps its
//! stdout and stderr apart and reports its status; `ctr task exec -t` gives it
//! a terminal of the host terminal's size, and ctr's resize on SIGWINCH
//! (ResizePty) reaches it. The task itself keeps running throughout.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use amphi_runtime::terminal::{WinSize, set_window_size};

use crate::containerd::{Containerd, Via, through_both_shims};
use crate::support::{can_run, describe, images, stderr, stdout};

const NATIVE: &str = "amphi.test/native:latest";

fn containerd(name: &str, via: Via) -> Option<Containerd> {
    (can_run("containerd") && via.applies()).then(|| Containerd::start_via(name, via))
}

/// Kills the task `id` and removes it, then checks that nothing is left.
fn kill_and_finish(ctrd: Containerd, id: &str) {
    ctrd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", id]);
    ctrd.wait_task(id, "STOPPED");
    ctrd.delete(id);
    ctrd.finish();
}

fn exec_has_its_own_stdio_and_exit_status(via: Via) {
    let Some(ctrd) = containerd("exec_stdio", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("host");
    ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);

    // stdin reaches the exec, and its end (ctr closes the task's stdin when
    // its own ends) ends cat.
    let mut cat = ctrd
        .exec_command(&[], &id, "cat", &["/bin/cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctr task exec");
    let mut input = cat.stdin.take().expect("cat's stdin");
    input.write_all(b"through the exec's stdin\n").expect("write to cat");
    drop(input);
    let out = cat.wait_with_output().expect("wait for ctr task exec");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "through the exec's stdin\n");

    // stdout and stderr stay apart, and the status is the exec's own.
    let out = ctrd.exec(&id, "split", &["/bin/sh", "-c", "echo out; echo err >&2; exit 6"]);
    assert_eq!(out.status.code(), Some(6), "{}", describe(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"), "{}", describe(&out));
    assert_eq!(ctrd.task(&id).map(|(_, s)| s).as_deref(), Some("RUNNING"), "the task outlives its execs");
    kill_and_finish(ctrd, &id);
}

/// Reads the pty's master on a thread of its own, sending what it reads.
fn read_master(master: std::fs::File) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    let mut master = master;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once every slave is closed: ctr and the process are gone.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 || sender.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Reads the terminal into `text` until it shows `wanted` (up to 20 s),
/// calling `poke` before each read.
fn wait_for(output: &mpsc::Receiver<String>, text: &mut String, wanted: &str, poke: &mut dyn FnMut()) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text.contains(wanted) {
        assert!(Instant::now() < deadline, "{wanted:?} never showed on the terminal: {text:?}");
        poke();
        if let Ok(more) = output.recv_timeout(Duration::from_millis(200)) {
            text.push_str(&more);
        }
    }
}

fn exec_with_a_terminal_follows_its_resize(via: Via) {
    let Some(ctrd) = containerd("exec_tty", via) else { return };
    ctrd.import(&[&images().native]);
    let id = ctrd.id("host");
    ctrd.run_detached(NATIVE, &id, &["/bin/sleep", "1000"]);

    let size = nix::pty::Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
    let slave = || Stdio::from(pty.slave.as_fd().try_clone_to_owned().expect("dup"));
    // Each line read prints the terminal's size (ctr sets it once the
    // process runs, so the first lines may find none); `q` ends the exec
    // with 5.
    let script = "tty; while read line; do [ \"$line\" = q ] && exit 5; stty size; done";
    let mut child = ctrd
        .exec_command(&["-t"], &id, "tty", &["/bin/sh", "-c", script])
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("spawn ctr task exec -t");
    drop(pty.slave);
    let master = std::fs::File::from(pty.master);
    let mut writer = master.try_clone().expect("dup the master");
    let output = read_master(master);
    let mut text = String::new();
    // The host terminal's size at the start...
    wait_for(&output, &mut text, "24 80", &mut || {
        let _ = writer.write_all(b"\r");
    });
    assert!(text.contains("/dev/pts/"), "the exec's stdin is not a pty: {text:?}");
    // ...and after a resize, which ctr passes on when it gets SIGWINCH (the
    // kernel would send it to a foreground process group of the terminal).
    set_window_size(writer.as_fd(), WinSize { rows: 30, cols: 100 }).expect("resize the host terminal");
    let ctr = nix::unistd::Pid::from_raw(child.id() as i32);
    wait_for(&output, &mut text, "30 100", &mut || {
        let _ = nix::sys::signal::kill(ctr, nix::sys::signal::Signal::SIGWINCH);
        let _ = writer.write_all(b"\r");
    });
    writer.write_all(b"q\r").expect("type q");
    let status = crate::support::wait_or_kill(&mut child, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("ctr task exec -t did not finish: {text:?}"));
    assert_eq!(status.code(), Some(5), "ctr task exec -t: {status}, terminal: {text:?}");
    assert_eq!(ctrd.task(&id).map(|(_, s)| s).as_deref(), Some("RUNNING"), "the task outlives its exec");
    kill_and_finish(ctrd, &id);
}

through_both_shims!(exec_has_its_own_stdio_and_exit_status, exec_with_a_terminal_follows_its_resize);
