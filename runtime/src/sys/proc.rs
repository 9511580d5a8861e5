//! What `/proc/<pid>/stat` says about a process: alive or not, and its start time,
//! which tells a container's init apart from a later process that reused its pid.

use std::io;

use nix::unistd::Pid;

/// The fields of `/proc/<pid>/stat` amphi needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter: `R`, `S`, `D`, `Z`, `T`, `X`...
    pub state: char,
    /// Field 22, the start time in clock ticks after boot.
    pub start_time: u64,
}

impl ProcStat {
    pub fn read(pid: Pid) -> io::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Self::parse(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/<pid>/stat"))
    }

    /// Parses the text of `/proc/<pid>/stat`. The command name (field 2) may hold
    /// spaces and parentheses, so the fields are counted from its last `)`.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?.chars().next()?;
        // `rest` starts at field 3 (state); start time is field 22.
        let start_time = fields.nth(22 - 4)?.parse().ok()?;
        Some(Self { state, start_time })
    }

    /// Whether the process has finished running (a zombie or dead).
    pub fn is_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parens() {
        let text = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let stat = ProcStat::parse(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_time, 98765);
        assert!(!stat.is_exited());
    }

    #[test]
    fn reads_this_process() {
        let me = ProcStat::read(nix::unistd::getpid()).unwrap();
        assert!(!me.is_exited());
        assert!(me.start_time > 0);
    }

    #[test]
    fn zombie_is_exited() {
        let stat = ProcStat::parse("7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0").unwrap();
        assert!(stat.is_exited());
    }
}
