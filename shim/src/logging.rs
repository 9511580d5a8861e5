//! The shim's log: containerd reads a FIFO named `log` in the directory it
//! starts the shim in (the first task's bundle) and copies each line into its
//! own log. The FIFO is opened read-write and non-blocking: while containerd
//! is away a line that does not fit is dropped, and the shim never waits on
//! its log. The level is `debug` when containerd runs with debug logging
//! (`-debug`), else `$AMPHI_SHIM_LOG` or `info`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;

struct Fifo(Mutex<std::fs::File>);

struct Line<'a>(&'a Fifo);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut file = crate::task::lock(&self.0.0);
        // A full FIFO drops the line rather than stall a task call.
        match file.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(buf.len()),
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Fifo {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line(self)
    }
}

/// Sends the shim's log to containerd, naming the shim's first task.
pub fn init(namespace: &str, id: &str) {
    let debug = std::env::args().any(|a| a == "-debug" || a == "--debug");
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        std::env::var("AMPHI_SHIM_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(tracing::Level::INFO)
    };
    let Ok(file) =
        OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open("log")
    else {
        return;
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(Fifo(Mutex::new(file)))
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false)
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        tracing::info!(namespace, id, pid = std::process::id(), "amphi shim serving");
    }
}

/// A line before the log exists (on the shim's stderr, which containerd
/// keeps while it starts the shim).
#[expect(clippy::print_stderr, reason = "the log does not exist yet")]
pub fn early(message: &str) {
    eprintln!("containerd-shim-amphi-v1: {message}");
}
