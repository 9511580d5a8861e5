//! The load generator: Debian's `wrk`, with a Lua `done` hook that prints the
//! exact request count, duration, error counts and the 50th and 99th latency
//! percentiles (wrk's own text output rounds them).
//!
//! wrk runs on the same 2-core machine as the server: at 1 connection it runs
//! one thread, from 16 connections on two (the connections split evenly). It
//! is wrk, not wrk2: latencies are measured from when wrk sent each request,
//! with no correction for coordinated omission; every target is measured the
//! same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::{ErrLog, check_status, wait_or_kill};

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub requests: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses with a status of 400 or more (wrk's `errors.status`).
    pub bad_status: u64,
    /// Socket errors: connect, read, write, and requests past wrk's timeout.
    pub socket_errors: u64,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.requests as f64 / self.seconds } else { 0.0 }
    }
}

const MARK: &str = "AMPHI-BENCH-WRK";

const SCRIPT: &str = r#"-- amphi-bench: exact numbers from wrk's summary, one line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("AMPHI-BENCH-WRK requests=%d duration_us=%d p50_us=%d p99_us=%d status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"#;

/// The wrk binary and its script.
#[derive(Debug)]
pub struct Wrk {
    pub path: PathBuf,
    pub version: String,
    script: PathBuf,
}

impl Wrk {
    /// Finds wrk (PATH, then ~/.cargo/bin) and writes the script under `work`.
    pub fn find(work: &Path) -> anyhow::Result<Option<Self>> {
        let Some(path) = crate::cli::find_program("wrk") else { return Ok(None) };
        let script = work.join("wrk-done.lua");
        std::fs::write(&script, SCRIPT).with_context(|| format!("write {}", script.display()))?;
        // `wrk -v` prints its version and usage and exits 1.
        let version = Command::new(&path)
            .arg("-v")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_owned()))
            .unwrap_or_default();
        Ok(Some(Self { path, version, script }))
    }

    /// The threads for `connections` connections on this machine.
    pub fn threads(connections: usize) -> usize {
        connections.clamp(1, 2)
    }

    /// `wrk -t T -c C -d Ns --timeout 5s -s SCRIPT http://ADDR/`.
    pub fn run(&self, addr: SocketAddr, connections: usize, seconds: u64, err: &ErrLog) -> anyhow::Result<Load> {
        let mut cmd = Command::new(&self.path);
        cmd.arg("-t")
            .arg(Self::threads(connections).to_string())
            .arg("-c")
            .arg(connections.to_string())
            .arg("-d")
            .arg(format!("{seconds}s"))
            .args(["--timeout", "5s", "-s"])
            .arg(&self.script)
            .arg(format!("http://{addr}/"));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err.stdio()?);
        let mut child = cmd.spawn().with_context(|| format!("run {}", self.path.display()))?;
        let mut stdout = child.stdout.take().context("wrk's stdout")?;
        // wrk prints a few hundred bytes; the pipe holds them until it exits.
        let status = wait_or_kill(child, Duration::from_secs(seconds + 30)).context("wrk")?;
        check_status(&cmd, status, err)?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).context("read wrk's output")?;
        parse(&text)
    }
}

/// The numbers on the script's line of wrk's output.
pub fn parse(text: &str) -> anyhow::Result<Load> {
    let Some(line) = text.lines().find_map(|l| l.strip_prefix(MARK)) else {
        bail!("wrk printed no {MARK} line: {:?}", text.chars().take(300).collect::<String>());
    };
    let field = |name: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("wrk's line has no {name}: {line:?}"))
    };
    Ok(Load {
        requests: field("requests")?,
        seconds: field("duration_us")? as f64 / 1e6,
        p50_ms: field("p50_us")? as f64 / 1e3,
        p99_ms: field("p99_us")? as f64 / 1e3,
        bad_status: field("status")?,
        socket_errors: field("connect")? + field("read")? + field("write")? + field("timeout")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_line_among_wrk_output() {
        let text = "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 16 connections\n\
                    AMPHI-BENCH-WRK requests=3000 duration_us=1500000 p50_us=2500 p99_us=9100 status=1 connect=0 read=2 write=0 timeout=1\n\
                    Requests/sec:   2000.00\n";
        let load = parse(text).expect("parse");
        assert_eq!((load.requests, load.bad_status, load.socket_errors), (3000, 1, 3));
        assert_eq!((load.p50_ms, load.p99_ms), (2.5, 9.1));
        assert_eq!(load.per_second(), 2000.0);
        assert!(parse("Requests/sec: 1\n").is_err());
    }

    #[test]
    fn at_most_two_threads_never_more_than_connections() {
        assert_eq!([1, 16, 64].map(Wrk::threads), [1, 2, 2]);
    }
}
