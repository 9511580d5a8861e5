//! `linux.devices`: the device nodes made in a `/dev` of the runtime's own,
//! after the runtime-spec's default devices.
//!
//! Each entry names an absolute path (a file, not `/`), a node type (`c`, `b`,
//! `u` or `p`: `a` is a cgroup rule's wildcard, not a node) and, but for a
//! fifo, device numbers. [`check`] states these rules for the spec's first
//! pass; [`plan`] applies the same ones ([`device`]) when it builds the list.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::plan::{SpecError, clean_absolute};

/// One device node to make in the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    /// Absolute path inside the container.
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// The devices every container gets (runtime-spec, "Default Devices").
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Refuses the first entry of `linux.devices` that is not a device node.
pub fn check(devices: &[LinuxDevice]) -> Result<(), SpecError> {
    devices.iter().enumerate().try_for_each(|(i, d)| device(i, d).map(drop))
}

/// `linux.devices`, checked, in spec order.
pub fn plan(devices: &[LinuxDevice]) -> Result<Vec<DevicePlan>, SpecError> {
    devices.iter().enumerate().map(|(i, d)| device(i, d)).collect()
}

/// The default devices the spec does not name again, then the spec's.
pub fn with_defaults(spec_devices: Vec<DevicePlan>) -> Vec<DevicePlan> {
    let mut devices: Vec<DevicePlan> = DEFAULT_DEVICES
        .into_iter()
        .filter(|(path, ..)| !spec_devices.iter().any(|d| d.path == Path::new(path)))
        .map(|(path, major, minor)| DevicePlan {
            path: PathBuf::from(path),
            kind: DeviceKind::Char,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    devices.extend(spec_devices);
    devices
}

/// Entry `i` of `linux.devices`, the one statement of its rules.
fn device(i: usize, d: &LinuxDevice) -> Result<DevicePlan, SpecError> {
    let field = |name: &str| format!("linux.devices[{i}].{name}");
    let path = d.path();
    if !path.is_absolute() {
        return Err(SpecError::new(field("path"), format!("{path:?} is not an absolute path")));
    }
    if clean_absolute(path) == Path::new("/") {
        return Err(SpecError::new(field("path"), format!("{path:?} is not an absolute path to a file")));
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
        LinuxDeviceType::B => DeviceKind::Block,
        LinuxDeviceType::P => DeviceKind::Fifo,
        LinuxDeviceType::A => return Err(SpecError::new(field("type"), "a device node must be of type c, b, u or p")),
    };
    let number = |name: &str, n: i64| {
        u64::try_from(n).map_err(|_| SpecError::new(field(name), format!("{n} is not a device number")))
    };
    let (major, minor) = match kind {
        DeviceKind::Fifo => (0, 0),
        _ => (number("major", d.major())?, number("minor", d.minor())?),
    };
    Ok(DevicePlan {
        path: clean_absolute(path),
        kind,
        major,
        minor,
        mode: d.file_mode().map_or(0o666, |m| m & 0o7777),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(json: serde_json::Value) -> Vec<LinuxDevice> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn spec_devices_override_defaults() {
        let spec = plan(&devices(serde_json::json!([
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 8630, "uid": 5, "gid": 6},
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
            {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 432},
            {"path": "/dev/fifo", "type": "p"}
        ])))
        .unwrap();
        let all = with_defaults(spec);
        let null: Vec<_> = all.iter().filter(|d| d.path == Path::new("/dev/null")).collect();
        assert_eq!(null.len(), 1);
        // 8630 = 0o20666: the type bits are dropped.
        assert_eq!((null[0].mode, null[0].uid, null[0].gid), (0o666, 5, 6));
        let fuse = all.iter().find(|d| d.path == Path::new("/dev/fuse")).unwrap();
        assert_eq!((fuse.kind, fuse.major, fuse.minor, fuse.mode), (DeviceKind::Char, 10, 229, 0o666));
        let sda = all.iter().find(|d| d.path == Path::new("/dev/sda")).unwrap();
        assert_eq!((sda.kind, sda.mode), (DeviceKind::Block, 0o660));
        assert_eq!(all.iter().find(|d| d.path == Path::new("/dev/fifo")).unwrap().kind, DeviceKind::Fifo);
        assert_eq!(all.len(), 5 + 4);
        assert_eq!(with_defaults(Vec::new()).len(), 6);
    }

    #[test]
    fn bad_devices_name_the_field() {
        let refused = |json| check(&devices(json)).unwrap_err().to_string();
        assert_eq!(
            refused(serde_json::json!([{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}])),
            r#"config.json: linux.devices[0].path: "dev/fuse" is not an absolute path"#
        );
        assert_eq!(
            refused(serde_json::json!([{"path": "/dev/ok", "type": "p"}, {"path": "/..", "type": "p"}])),
            r#"config.json: linux.devices[1].path: "/.." is not an absolute path to a file"#
        );
        assert_eq!(
            refused(serde_json::json!([{"path": "/dev/x", "type": "a", "major": 1, "minor": 1}])),
            "config.json: linux.devices[0].type: a device node must be of type c, b, u or p"
        );
        assert_eq!(
            refused(serde_json::json!([{"path": "/dev/x", "type": "c", "major": -1, "minor": 1}])),
            "config.json: linux.devices[0].major: -1 is not a device number"
        );
    }

    #[test]
    fn check_and_plan_state_the_same_rules() {
        let bad = devices(serde_json::json!([{"path": "/dev/x", "type": "b", "major": 8, "minor": -2}]));
        assert_eq!(check(&bad).unwrap_err().to_string(), plan(&bad).unwrap_err().to_string());
        let good = devices(serde_json::json!([{"path": "/dev/./x", "type": "u", "major": 1, "minor": 2}]));
        check(&good).unwrap();
        assert_eq!(plan(&good).unwrap()[0].path, Path::new("/dev/x"));
    }
}
