//! Waiting for the kernel's out-of-memory kills in a cgroup (`amphi events`),
//! without polling: a descriptor that becomes readable when one happens.
//!
//! - cgroup v1: an eventfd registered for `memory.oom_control` through
//!   `cgroup.event_control`; the kernel signals it on every OOM of the cgroup
//!   (and once more when the cgroup is removed).
//! - cgroup v2: an inotify watch on `memory.events`, whose `oom_kill` counter is
//!   read again on every change.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::{CgroupError, write_file};

/// A readable-on-OOM descriptor for one cgroup.
#[derive(Debug)]
pub struct OomWatch {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    V1 {
        eventfd: EventFd,
        /// `memory.oom_control`, open for as long as the registration lives.
        _control: fs::File,
        /// `cgroup.event_control`: gone once the cgroup is removed.
        event_control: PathBuf,
    },
    V2 {
        inotify: Inotify,
        events: PathBuf,
        oom_kills: u64,
    },
}

impl OomWatch {
    /// Registers for OOM notifications of the v1 memory cgroup `dir`.
    pub(crate) fn v1(dir: &Path) -> Result<Self, CgroupError> {
        let control_path = dir.join("memory.oom_control");
        let control = fs::File::open(&control_path).map_err(CgroupError::io("open", &control_path))?;
        let eventfd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| CgroupError::Io { op: "eventfd", file: control_path.clone(), source: e.into() })?;
        let event_control = dir.join("cgroup.event_control");
        write_file(&event_control, &format!("{} {}", eventfd.as_fd().as_raw_fd(), control.as_raw_fd()))?;
        Ok(Self { kind: Kind::V1 { eventfd, _control: control, event_control } })
    }

    /// Watches `memory.events` of the cgroup2 directory `dir`.
    pub(crate) fn v2(dir: &Path) -> Result<Self, CgroupError> {
        let events = dir.join("memory.events");
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(|e| CgroupError::Io {
            op: "inotify_init",
            file: events.clone(),
            source: e.into(),
        })?;
        inotify.add_watch(&events, AddWatchFlags::IN_MODIFY).map_err(|e| CgroupError::Io {
            op: "inotify_add_watch",
            file: events.clone(),
            source: e.into(),
        })?;
        let oom_kills = oom_kills(&events)?;
        Ok(Self { kind: Kind::V2 { inotify, events, oom_kills } })
    }

    /// The descriptor to wait on (`poll` for `POLLIN`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { eventfd, .. } => eventfd.as_fd(),
            Kind::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// After the descriptor became readable: how many OOM kills happened since
    /// the last call (0 for a wake-up that was not one, such as the cgroup's
    /// removal on v1).
    pub fn take(&mut self) -> Result<u64, CgroupError> {
        match &mut self.kind {
            Kind::V1 { eventfd, event_control, .. } => {
                let count = match eventfd.read() {
                    Ok(count) => count,
                    Err(nix::errno::Errno::EAGAIN) => 0,
                    Err(e) => {
                        return Err(CgroupError::Io { op: "read", file: event_control.clone(), source: e.into() });
                    }
                };
                // The removal of the cgroup signals the eventfd too.
                Ok(if event_control.exists() { count } else { 0 })
            }
            Kind::V2 { inotify, events, oom_kills: last } => {
                match inotify.read_events() {
                    Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                    Err(e) => return Err(CgroupError::Io { op: "read", file: events.clone(), source: e.into() }),
                }
                let now = match oom_kills(events) {
                    Ok(now) => now,
                    // The cgroup went away.
                    Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => *last,
                    Err(e) => return Err(e),
                };
                let new = now.saturating_sub(*last);
                *last = now;
                Ok(new)
            }
        }
    }
}

/// The `oom_kill` counter of a v2 `memory.events` file.
fn oom_kills(events: &Path) -> Result<u64, CgroupError> {
    let text = fs::read_to_string(events).map_err(CgroupError::io("read", events))?;
    Ok(parse_oom_kills(&text))
}

fn parse_oom_kills(text: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oom_kill_counter_is_read_from_memory_events() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(text), 2);
        assert_eq!(parse_oom_kills("low 0\n"), 0);
    }
}
