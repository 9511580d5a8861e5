//! Freezing a cgroup: `pause`, `resume`, and the freeze that makes a `SIGKILL`
//! of every process race-free.
//!
//! Written here rather than taken from `libcgroups` because its v1 freezer is
//! reached only through a v1 manager (about 1 ms of `/proc` reads to build),
//! sleeps 10 ms between checks, and cannot say whether a cgroup is frozen.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CgroupError, write_file};

/// How long a freeze may take before it is undone and reported.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);

/// The freezer of one cgroup directory.
#[derive(Debug)]
pub enum Freezer {
    /// A directory in the v1 `freezer` hierarchy: `freezer.state`.
    V1(PathBuf),
    /// A cgroup2 directory: `cgroup.freeze` and `cgroup.events`.
    V2(PathBuf),
}

impl Freezer {
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self {
            Freezer::V1(dir) => freeze_v1(&dir.join("freezer.state")),
            Freezer::V2(dir) => freeze_v2(dir),
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self {
            Freezer::V1(dir) => write_file(&dir.join("freezer.state"), "THAWED"),
            Freezer::V2(dir) => write_file(&dir.join("cgroup.freeze"), "0"),
        }
    }

    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        let (file, frozen): (PathBuf, fn(&str) -> bool) = match self {
            Freezer::V1(dir) => (dir.join("freezer.state"), |s| matches!(s, "FROZEN" | "FREEZING")),
            Freezer::V2(dir) => (dir.join("cgroup.freeze"), |s| s == "1"),
        };
        match fs::read_to_string(&file) {
            Ok(text) => Ok(frozen(text.trim())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CgroupError::Io { op: "read", file, source }),
        }
    }
}

/// v1: ask for `FROZEN` until the state says so. A task in an uninterruptible
/// sleep or a vfork can hold the cgroup in `FREEZING`; asking again retries it, and
/// a brief thaw now and then lets such a task move on (as runc does).
fn freeze_v1(state: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(50);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        write_file(state, "FROZEN")?;
        let now = read_trimmed(state)?;
        match now.as_str() {
            "FROZEN" => return Ok(()),
            "FREEZING" => {}
            _ => {
                let _ = write_file(state, "THAWED");
                return Err(unexpected(state, now));
            }
        }
        if start.elapsed() > FREEZE_TIMEOUT {
            let _ = write_file(state, "THAWED");
            return Err(CgroupError::FreezeTimeout {
                file: state.to_owned(),
                state: now,
                waited_ms: start.elapsed().as_millis(),
            });
        }
        if attempt.is_multiple_of(20) {
            write_file(state, "THAWED")?;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// v2: write `1` to `cgroup.freeze`, then wait for `frozen 1` in `cgroup.events`.
fn freeze_v2(dir: &Path) -> Result<(), CgroupError> {
    let freeze = dir.join("cgroup.freeze");
    let events = dir.join("cgroup.events");
    write_file(&freeze, "1")?;
    let start = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        let text = fs::read_to_string(&events).map_err(CgroupError::io("read", &events))?;
        if text.lines().any(|l| l.trim() == "frozen 1") {
            return Ok(());
        }
        if start.elapsed() > FREEZE_TIMEOUT {
            let _ = write_file(&freeze, "0");
            return Err(CgroupError::FreezeTimeout {
                file: events,
                state: "frozen 0".into(),
                waited_ms: start.elapsed().as_millis(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

fn read_trimmed(file: &Path) -> Result<String, CgroupError> {
    let text = fs::read_to_string(file).map_err(CgroupError::io("read", file))?;
    Ok(text.trim().to_owned())
}

fn unexpected(file: &Path, state: String) -> CgroupError {
    CgroupError::Io {
        op: "read",
        file: file.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("unexpected freezer state {state:?}")),
    }
}
