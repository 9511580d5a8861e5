//! Reading `/proc/self/mountinfo`: one parser for the cgroup layer (which
//! hierarchies to make a cgroup in), the rootfs (which to show a container)
//! and the benchmark harness's teardown (what containerd left mounted).

use std::path::PathBuf;

/// The fields of one mountinfo line that amphi reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine<'a> {
    /// The path of the mount's root within its filesystem (field 4).
    pub root: PathBuf,
    /// Where it is mounted (field 5), unescaped.
    pub mount_point: PathBuf,
    /// The filesystem type (`cgroup`, `overlay`…).
    pub fs_type: &'a str,
    /// The mount's source (a device, `overlay`, `cgroup`…).
    pub source: &'a str,
    /// The superblock options (`rw,cpu,cpuacct`).
    pub super_options: &'a str,
}

/// Parses one line; `None` for a line that is not mountinfo.
pub fn parse_line(line: &str) -> Option<MountLine<'_>> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split_ascii_whitespace();
    let (root, mount_point) = (left.nth(3)?, left.next()?);
    let mut right = right.split_ascii_whitespace();
    let fs_type = right.next()?;
    let source = right.next().unwrap_or("");
    let super_options = right.next().unwrap_or("");
    Some(MountLine {
        root: PathBuf::from(unescape(root)),
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type,
        source,
        super_options,
    })
}

/// Every mount in `text`, in order.
pub fn parse(text: &str) -> impl Iterator<Item = MountLine<'_>> {
    text.lines().filter_map(parse_line)
}

/// Whether a cgroup v1 superblock option names a controller or a named
/// hierarchy (`name=systemd`), rather than being a mount setting.
pub fn is_cgroup_subsystem(option: &str) -> bool {
    const SETTINGS: &[&str] =
        &["rw", "ro", "none", "all", "noprefix", "xattr", "clone_children", "cpuset_v2_mode", "favordynmods"];
    if let Some(name) = option.strip_prefix("name=") {
        return !name.is_empty();
    }
    !option.is_empty() && !option.contains('=') && !SETTINGS.contains(&option)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for `\`).
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            out.push((bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_amphi_reads() {
        let line = parse_line(
            "32 31 0:29 /sub /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct",
        )
        .unwrap();
        assert_eq!(line.root, PathBuf::from("/sub"));
        assert_eq!(line.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!((line.fs_type, line.source, line.super_options), ("cgroup", "cgroup", "rw,cpu,cpuacct"));
        assert!(parse_line("garbage").is_none());
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }

    #[test]
    fn subsystems_are_told_from_settings() {
        for yes in ["cpu", "cpuacct", "name=systemd", "memory"] {
            assert!(is_cgroup_subsystem(yes), "{yes}");
        }
        for no in ["rw", "xattr", "release_agent=/x", "name=", "", "clone_children", "nsdelegate=1"] {
            assert!(!is_cgroup_subsystem(no), "{no}");
        }
    }
}
