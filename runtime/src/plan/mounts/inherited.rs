//! A container without a mount namespace of its own: what it may ask for.
//!
//! The runtime-spec leaves a namespace type missing from `linux.namespaces` to
//! the runtime, which keeps its own: such a container lives in the mount
//! namespace `amphi` runs in (the host's, usually). The rootfs is then entered
//! with `chroot(2)` through a descriptor (`fchdir` to the rootfs, `chroot(".")`)
//! and **nothing is mounted**: a mount made for the container would land in
//! the host's mount table and outlive the container, and `pivot_root` would move
//! the root of every process of the host. So every field that can only be
//! carried out by a mount is refused, each with a line naming it:
//!
//! - `mounts[i]`: the first entry (the spec's `/proc`, `/dev`, `/sys`... would be
//!   the host's mounts, left behind on the rootfs);
//! - `root.readonly`: it would remount a mount of the host read-only;
//! - `linux.rootfsPropagation`: it would change the host's mounts;
//! - `linux.maskedPaths`, `linux.readonlyPaths`: bind mounts and remounts over
//!   the host's files (runc refuses these too);
//! - `linux.devices`: the runtime makes its nodes in a `/dev` tmpfs of its own,
//!   which needs a mount; made in the rootfs itself they would outlive the
//!   container. The default devices are not made either: the container sees the
//!   rootfs's own `/dev`, as it is;
//! - `process.terminal`: the pty is bound onto `/dev/console`, a mount.
//!
//! What a runc user gets instead: runc 1.1 carries these out in the host's
//! namespace (it makes the host's `/` a recursive slave, binds the rootfs onto
//! itself and leaves that mount behind, then fails without a `/proc`). amphi
//! refuses before anything exists, and what it accepts leaves nothing behind.
//!
//! What such a container does *not* have (docs/security.md, "Namespaces the spec
//! leaves out"): its `/proc/self/mountinfo` lists the host's mounts; a process
//! with `CAP_SYS_CHROOT` can leave a chroot (a second `chroot` and `..`, or a
//! descriptor opened outside it), so give it only to trusted workloads; mounts
//! made later on the host below the rootfs appear in the container.

use oci_spec::runtime::Spec;

use crate::plan::SpecError;

/// What every refusal says after the field.
const NEEDS: &str = "needs a mount namespace of the container's own (linux.namespaces has none)";

/// Refuses every field of `spec` that a container in the runtime's own mount
/// namespace could only carry out by mounting there (see the module docs).
pub(crate) fn check(spec: &Spec) -> Result<(), SpecError> {
    let refuse = |field: &str, why: &str| Err(SpecError::new(field, format!("{NEEDS}: {why}")));
    if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        return refuse("mounts[0]", "it would be mounted in the host's mount namespace and outlive the container");
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        return refuse("root.readonly", "it would make a mount of the host read-only");
    }
    if spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false) {
        return refuse("process.terminal", "the pty is bound onto /dev/console, a mount in the host's mount namespace");
    }
    let Some(linux) = spec.linux() else { return Ok(()) };
    if linux.rootfs_propagation().as_deref().is_some_and(|p| !p.is_empty()) {
        return refuse("linux.rootfsPropagation", "it would change the propagation of the host's mounts");
    }
    if linux.masked_paths().as_ref().is_some_and(|p| !p.is_empty()) {
        return refuse("linux.maskedPaths", "each path would be mounted over in the host's mount namespace");
    }
    if linux.readonly_paths().as_ref().is_some_and(|p| !p.is_empty()) {
        return refuse("linux.readonlyPaths", "it would remount the host's mounts read-only");
    }
    if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return refuse(
            "linux.devices",
            "no /dev of the runtime's own can be mounted, and nodes made in the rootfs would outlive the container",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec with no mount namespace, `extra` merged into its top level and
    /// `linux` merged into `linux`.
    fn spec(extra: serde_json::Value, linux: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["/probe"], "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        base["linux"].as_object_mut().unwrap().extend(linux.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn refused_field(extra: serde_json::Value, linux: serde_json::Value) -> String {
        let err = check(&spec(extra, linux)).unwrap_err();
        assert!(err.reason.starts_with(NEEDS), "{err}");
        assert_eq!(err.to_string().lines().count(), 1, "{err}");
        err.field
    }

    #[test]
    fn nothing_to_mount_is_accepted() {
        check(&spec(serde_json::json!({}), serde_json::json!({}))).unwrap();
        // Empty lists ask for nothing.
        let empty = serde_json::json!({"maskedPaths": [], "readonlyPaths": [], "devices": [], "rootfsPropagation": ""});
        check(&spec(serde_json::json!({"mounts": []}), empty)).unwrap();
    }

    #[test]
    fn every_field_that_mounts_is_named() {
        use serde_json::json;
        let none = || json!({});
        assert_eq!(refused_field(json!({"mounts": [{"destination": "/proc", "type": "proc"}]}), none()), "mounts[0]");
        assert_eq!(refused_field(json!({"root": {"path": "rootfs", "readonly": true}}), none()), "root.readonly");
        let terminal = json!({"process": {"cwd": "/", "args": ["/p"], "terminal": true, "user": {"uid": 0, "gid": 0}}});
        assert_eq!(refused_field(terminal, none()), "process.terminal");
        assert_eq!(refused_field(none(), json!({"rootfsPropagation": "rslave"})), "linux.rootfsPropagation");
        assert_eq!(refused_field(none(), json!({"maskedPaths": ["/proc/kcore"]})), "linux.maskedPaths");
        assert_eq!(refused_field(none(), json!({"readonlyPaths": ["/proc/sys"]})), "linux.readonlyPaths");
        let fuse = json!({"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]});
        assert_eq!(refused_field(none(), fuse), "linux.devices");
    }
}
