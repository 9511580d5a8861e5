//! # amphi-probe: what a container process sees
//!
//! The probe runs as the workload of test containers and prints one JSON object,
//! on one line, describing its process and its view of the system, so that a test
//! can compare it with what `config.json` asked for. It is a static binary that
//! needs nothing in its rootfs but itself; anything it cannot read (no `/proc`
//! mounted, a masked file) becomes `{"error": "…"}` for that item alone.
//!
//! The report's keys: `pid`, `ppid`, `pgid`, `sid`, `uid`, `euid`, `suid`, `gid`,
//! `egid`, `sgid`, `groups`, `capabilities` (`inheritable`, `permitted`,
//! `effective`, `bounding`, `ambient`, each `{"hex", "names"}`), `no_new_privs`,
//! `seccomp` (0 off, 1 strict, 2 filter) and `seccomp_filters`, `umask` (a
//! number), `hostname`, `domainname`, `mounts` (parsed `/proc/self/mountinfo`:
//! `mount_point`, `fs_type`, `source`, `root`, `mount_options`, `super_options`,
//! `optional`, ids), `rlimits` (`RLIMIT_*` → `{"soft", "hard"}`, `null` for
//! unlimited), `cwd`, `env` (`["K=V"]`), `args`, `oom_score_adj`, `cgroup`
//! (the lines of `/proc/self/cgroup`), `namespaces` (`net` → `"net:[4026531840]"`),
//! `tty` (`stdin`, `stdout`, `stderr` → bool), `fds` (open descriptor → target),
//! `checks` (one per `--check`, see [`check::check`]) and `writes` (one per `--write`).
//!
//! After the report the flags act in a fixed order: `--stdout`, `--stderr`,
//! `--seize-exe` (an attacker, see [`seize`]), `--sleep`, `--wait-signal`,
//! `--exit` (see [`flags::USAGE`]).
//!
//! ## Waiting for a signal as pid 1
//! The kernel drops a signal sent to a pid namespace's init when its action is
//! the default one, so a plain `pause()` would never see `amphi kill`'s SIGTERM.
//! With `--wait-signal` the probe blocks the signals it waits for before it
//! does anything else and takes them with `sigwait`: a blocked signal is never
//! treated as ignored, so it stays pending even for pid 1, and none can slip in
//! between the report and the wait.

mod check;
mod flags;
mod procfs;
mod report;
mod seize;

use std::io::Write;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};
use serde_json::{Value, json};

use flags::{Options, Sleep};

/// The signals `--wait-signal` waits for.
const WAITED_SIGNALS: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
];

fn main() -> ExitCode {
    let options = match flags::parse(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            complain(&format!("{error}\n{}", flags::USAGE));
            return ExitCode::from(2);
        }
    };
    if options.help {
        return emit(&mut std::io::stdout(), flags::USAGE.as_bytes());
    }
    match run(&options) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            complain(&error);
            ExitCode::from(3)
        }
    }
}

/// Does what the flags say and returns the exit status.
fn run(options: &Options) -> Result<u8, String> {
    let waited = options.wait_signal.then(block_waited_signals).transpose()?;

    let writes: Vec<Value> = options.writes.iter().map(|(path, text)| check::write(path, text)).collect();
    let mut failed_write = false;
    for write in writes.iter().filter(|w| w["ok"] == false) {
        failed_write = true;
        complain(write["error"].as_str().unwrap_or("write failed"));
    }

    let mut stdout = std::io::stdout().lock();
    if options.report {
        let checks = options.checks.iter().map(|path| check::check(path)).collect();
        let report = report::gather(checks, writes);
        let text = if options.pretty { serde_json::to_string_pretty(&report) } else { serde_json::to_string(&report) }
            .map_err(|e| format!("serialise the report: {e}"))?;
        writeln!(stdout, "{text}").map_err(|e| format!("write the report to stdout: {e}"))?;
    }
    for text in &options.stdout {
        stdout.write_all(text.as_encoded_bytes()).map_err(|e| format!("write to stdout: {e}"))?;
        writeln!(stdout).map_err(|e| format!("write to stdout: {e}"))?;
    }
    stdout.flush().map_err(|e| format!("write to stdout: {e}"))?;
    drop(stdout);
    let mut stderr = std::io::stderr().lock();
    for text in &options.stderr {
        stderr.write_all(text.as_encoded_bytes()).map_err(|e| format!("write to stderr: {e}"))?;
        writeln!(stderr).map_err(|e| format!("write to stderr: {e}"))?;
    }
    drop(stderr);

    if let Some(report) = &options.seize_exe {
        seize::seize_exe(report)?;
    }

    match options.sleep {
        Some(Sleep::For(duration)) => std::thread::sleep(duration),
        Some(Sleep::Forever) => loop {
            nix::unistd::pause();
        },
        None => {}
    }

    if let Some(set) = waited {
        let signal = set.wait().map_err(|e| format!("sigwait: {e}"))?;
        let number = signal as i32;
        let line = json!({ "signal": signal.as_str(), "number": number });
        writeln!(std::io::stdout(), "{line}").map_err(|e| format!("write to stdout: {e}"))?;
        return u8::try_from(128 + number).map_err(|_| format!("signal {number} has no exit status"));
    }

    Ok(options.exit.unwrap_or(u8::from(failed_write)))
}

fn block_waited_signals() -> Result<SigSet, String> {
    let mut set = SigSet::empty();
    for signal in WAITED_SIGNALS {
        set.add(signal);
    }
    set.thread_block().map_err(|e| format!("block signals: {e}"))?;
    Ok(set)
}

fn emit(out: &mut impl Write, bytes: &[u8]) -> ExitCode {
    match out.write_all(bytes).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(3),
    }
}

/// One line on stderr, `amphi-probe: <message>`; if stderr itself is gone there is
/// nobody left to tell.
fn complain(message: &str) {
    let _ = writeln!(std::io::stderr(), "amphi-probe: {message}");
}
