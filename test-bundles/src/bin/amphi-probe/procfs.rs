//! Parsers for the `/proc` files the probe reads. Pure functions over text, so
//! they are tested without a container.

use serde_json::{Value, json};

/// Capability names by bit number, as the OCI spec spells them.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The `/proc/self/status` fields of the capability sets, with the names the
/// report gives them.
pub const CAPABILITY_SETS: [(&str, &str); 5] = [
    ("CapInh", "inheritable"),
    ("CapPrm", "permitted"),
    ("CapEff", "effective"),
    ("CapBnd", "bounding"),
    ("CapAmb", "ambient"),
];

/// The value of field `key` in a `/proc/<pid>/status` text (`Key:\tvalue`), trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// A capability set as the report shows it: the hex mask as the kernel prints it
/// and the names of its bits (`CAP_<n>` for bits newer than this probe).
pub fn capability_set(hex: &str) -> Result<Value, String> {
    let mask = u64::from_str_radix(hex, 16).map_err(|e| format!("capability mask {hex:?}: {e}"))?;
    let names: Vec<String> = (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| match CAPABILITY_NAMES.get(bit) {
            Some(name) => (*name).to_owned(),
            None => format!("CAP_{bit}"),
        })
        .collect();
    Ok(json!({ "hex": hex, "names": names }))
}

/// One line of `/proc/<pid>/mountinfo` (see proc(5)):
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
pub fn mountinfo_line(line: &str) -> Result<Value, String> {
    let (before, after) =
        line.split_once(" - ").ok_or_else(|| format!("mountinfo line {line:?}: no \" - \" separator"))?;
    let mut fields = before.split(' ');
    let mut next = |what: &str| fields.next().ok_or_else(|| format!("mountinfo line {line:?}: no {what}"));
    let mount_id = parse_number(next("mount id")?, line)?;
    let parent_id = parse_number(next("parent id")?, line)?;
    let major_minor = next("major:minor")?.to_owned();
    let root = unescape(next("root")?);
    let mount_point = unescape(next("mount point")?);
    let mount_options = split_options(next("mount options")?);
    let optional: Vec<&str> = fields.filter(|f| !f.is_empty()).collect();

    let mut rest = after.splitn(3, ' ');
    let fs_type = rest.next().filter(|t| !t.is_empty()).ok_or_else(|| format!("mountinfo line {line:?}: no type"))?;
    let source = rest.next().ok_or_else(|| format!("mountinfo line {line:?}: no source"))?;
    let super_options = split_options(rest.next().unwrap_or(""));
    Ok(json!({
        "mount_id": mount_id,
        "parent_id": parent_id,
        "major_minor": major_minor,
        "root": root,
        "mount_point": mount_point,
        "mount_options": mount_options,
        "optional": optional,
        "fs_type": unescape(fs_type),
        "source": unescape(source),
        "super_options": super_options,
    }))
}

/// Every line of a mountinfo text; a line that does not parse becomes
/// `{"error": …}` in its place, so one odd line does not hide the others.
pub fn mountinfo(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| mountinfo_line(line).unwrap_or_else(|error| json!({ "error": error })))
        .collect()
}

fn parse_number(field: &str, line: &str) -> Result<u64, String> {
    field.parse().map_err(|_| format!("mountinfo line {line:?}: {field:?} is not a number"))
}

fn split_options(field: &str) -> Vec<String> {
    field.split(',').filter(|o| !o.is_empty()).map(unescape).collect()
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash
/// (`\040`, `\011`, `\012`, `\134`) in mountinfo fields.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An octal mode field such as `Umask:\t0022`.
pub fn octal(field: &str) -> Result<u32, String> {
    u32::from_str_radix(field, 8).map_err(|e| format!("{field:?} is not octal: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tamphi-probe\nUmask:\t0022\nState:\tR (running)\nUid:\t0\t0\t0\t0\n\
        NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\nCapInh:\t0000000000000000\n\
        CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";

    #[test]
    fn status_fields_by_exact_key() {
        assert_eq!(status_field(STATUS, "Umask"), Some("0022"));
        assert_eq!(status_field(STATUS, "Seccomp"), Some("2"));
        assert_eq!(status_field(STATUS, "Seccomp_filters"), Some("1"));
        assert_eq!(status_field(STATUS, "Uid"), Some("0\t0\t0\t0"));
        assert_eq!(status_field(STATUS, "Cap"), None);
        assert_eq!(octal(status_field(STATUS, "Umask").expect("umask")), Ok(0o22));
        assert!(octal("08").is_err());
    }

    #[test]
    fn capability_sets_name_their_bits() {
        let default_docker = capability_set(status_field(STATUS, "CapEff").expect("CapEff")).expect("parses");
        assert_eq!(default_docker["hex"], "00000000a80425fb");
        assert_eq!(
            default_docker["names"],
            json!([
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_SETGID",
                "CAP_SETUID",
                "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_CHROOT",
                "CAP_MKNOD",
                "CAP_AUDIT_WRITE",
                "CAP_SETFCAP"
            ])
        );
        let all = capability_set("000001ffffffffff").expect("parses");
        let names = all["names"].as_array().expect("names");
        assert_eq!(names.len(), 41);
        assert_eq!(names[40], "CAP_CHECKPOINT_RESTORE");
        assert_eq!(capability_set("0000020000000000").expect("parses")["names"], json!(["CAP_41"]));
        assert_eq!(capability_set("0").expect("parses")["names"], json!([]));
        assert!(capability_set("xyz").is_err());
    }

    #[test]
    fn mountinfo_line_with_optional_fields_and_escapes() {
        let line =
            r"36 35 98:0 /mnt\0401 /mnt\0402 rw,noatime master:1 shared:7 - ext3 /dev/my\134disk rw,errors=continue";
        let mount = mountinfo_line(line).expect("parses");
        assert_eq!(
            mount,
            json!({
                "mount_id": 36,
                "parent_id": 35,
                "major_minor": "98:0",
                "root": "/mnt 1",
                "mount_point": "/mnt 2",
                "mount_options": ["rw", "noatime"],
                "optional": ["master:1", "shared:7"],
                "fs_type": "ext3",
                "source": r"/dev/my\disk",
                "super_options": ["rw", "errors=continue"],
            })
        );
    }

    #[test]
    fn mountinfo_line_without_optional_fields() {
        let mount = mountinfo_line("22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw").expect("parses");
        assert_eq!(mount["mount_point"], "/proc");
        assert_eq!(mount["optional"], json!([]));
        assert_eq!(mount["mount_options"], json!(["rw", "nosuid", "nodev", "noexec", "relatime"]));
        assert_eq!(mount["fs_type"], "proc");
        assert_eq!(mount["super_options"], json!(["rw"]));
    }

    #[test]
    fn a_bad_mountinfo_line_is_reported_in_place() {
        let mounts = mountinfo("22 1 0:21 / /proc rw - proc proc rw\nnonsense\nx 1 0:1 / / rw - tmpfs none rw\n");
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0]["mount_point"], "/proc");
        assert!(mounts[1]["error"].as_str().expect("error").contains("no \" - \" separator"));
        assert!(mounts[2]["error"].as_str().expect("error").contains("\"x\" is not a number"));
    }

    #[test]
    fn unescape_leaves_other_backslashes_alone() {
        assert_eq!(unescape(r"a\040b\011c\012d\134e"), "a b\tc\nd\\e");
        assert_eq!(unescape(r"tail\04"), r"tail\04");
        assert_eq!(unescape(r"\999"), r"\999");
        assert_eq!(unescape(r"\777"), r"\777");
    }
}
