//! What changes when the caller is not root (`--rootless`).
//!
//! A user without privileges can still make a container, as long as the spec
//! gives it a user namespace in which the user is root: `amphi spec --rootless`
//! writes one that maps the caller's own uid and gid to 0. Then:
//!
//! - **id maps**: the caller writes them itself, which the kernel allows an
//!   unprivileged writer for exactly one mapping of its own uid (and, after
//!   `setgroups` is set to `deny`, of its own gid). newuidmap is not used, so any
//!   other mapping is refused up front, naming it ([`check_privileges`]).
//! - **namespaces**: every new one is owned by the new user namespace, which
//!   the caller owns. A namespace joined by path must belong to the caller too.
//! - **mounts and devices**: the rootfs code already binds device nodes from the
//!   host and binds `/sys` where sysfs cannot be mounted in a user namespace.
//! - **cgroups** ([`cgroup`]): with `--rootless`, as runc does, a cgroup is used
//!   only on a cgroup v2 host whose cgroup the caller may write (a delegated
//!   one); otherwise the container stays in its creator's cgroup, with a
//!   warning, and `linux.resources` is ignored with another.

use std::os::fd::AsFd;
use std::path::Path;

use caps::{CapSet, Capability};
use oci_spec::runtime::{LinuxIdMapping, LinuxResources, Spec};

use super::Error;
use crate::cgroups::{self, Cgroup, CgroupError, Layout};
use crate::plan::namespaces::Kind;
use crate::plan::{ContainerPlan, SpecError};

fn has(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)
}

/// Refuses, before anything is made, what the caller's privileges cannot do:
/// a container without a user namespace, an id mapping the kernel would refuse
/// an unprivileged writer, and a namespace to join that belongs to someone else.
pub(crate) fn check_privileges(spec: &Spec, plan: &ContainerPlan) -> Result<(), Error> {
    if has(Capability::CAP_SYS_ADMIN) {
        return Ok(());
    }
    let euid = nix::unistd::geteuid().as_raw();
    let ns = &plan.namespaces;
    let joins_user = ns.join.iter().any(|(kind, _)| *kind == Kind::User);
    if !ns.new_user && !joins_user {
        return Err(SpecError::new(
            "linux.namespaces",
            format!(
                "amphi runs as uid {euid} without CAP_SYS_ADMIN: a rootless container needs a user namespace \
                 (`amphi spec --rootless` writes a config with one)"
            ),
        )
        .into());
    }
    for (kind, path) in &ns.join {
        let owner = std::fs::File::open(path)
            .and_then(|file| crate::sys::ns::namespace_owner_uid(file.as_fd(), *kind == Kind::User));
        match owner {
            Ok(owner) if owner == euid => {}
            Ok(owner) => {
                return Err(SpecError::new(
                    "linux.namespaces",
                    format!(
                        "{} namespace {} belongs to uid {owner}: amphi runs as uid {euid} without CAP_SYS_ADMIN \
                         and cannot join it",
                        kind.spec_name(),
                        path.display()
                    ),
                )
                .into());
            }
            // A path that cannot be opened is reported by the stage that joins.
            Err(_) => {}
        }
    }
    if ns.new_user {
        let linux = spec.linux().as_ref();
        let uid = linux.and_then(|l| l.uid_mappings().as_deref()).unwrap_or_default();
        let gid = linux.and_then(|l| l.gid_mappings().as_deref()).unwrap_or_default();
        if !has(Capability::CAP_SETUID) {
            own_id_only("linux.uidMappings", "uid", "CAP_SETUID", uid, euid)?;
        }
        if !has(Capability::CAP_SETGID) {
            own_id_only("linux.gidMappings", "gid", "CAP_SETGID", gid, nix::unistd::getegid().as_raw())?;
        }
    }
    Ok(())
}

/// An unprivileged writer of an id map may map only its own id, once, size 1.
fn own_id_only(field: &str, what: &str, cap: &str, mappings: &[LinuxIdMapping], own: u32) -> Result<(), SpecError> {
    let fits = |m: &LinuxIdMapping| m.host_id() == own && m.size() == 1;
    let bad = match mappings {
        [only] if fits(only) => return Ok(()),
        [] => return Ok(()), // The plan refuses an empty map with its own message.
        _ => mappings.iter().position(|m| !fits(m)).unwrap_or(1),
    };
    let m = &mappings[bad];
    let hosts = match m.size() {
        1 => format!("host {what} {}", m.host_id()),
        size => format!("host {what}s {}-{}", m.host_id(), u64::from(m.host_id()) + u64::from(size) - 1),
    };
    Err(SpecError::new(
        format!("{field}[{bad}]"),
        format!(
            "maps container {what} {} to {hosts}, but amphi runs without {cap} and may only map its own {what} {own}, \
             once, with size 1 (newuidmap is not used)",
            m.container_id(),
        ),
    ))
}

/// The container's cgroup, marked as `owner`'s, or none when `rootless` and the
/// caller may not make one (see the module docs). Skipping is logged as a warning, and so is a
/// `linux.resources` that is then ignored.
pub(crate) fn cgroup(
    path: &Path,
    resources: Option<&LinuxResources>,
    rootless: bool,
    owner: &str,
) -> Result<Option<Cgroup>, Error> {
    if !rootless {
        return Ok(Some(Cgroup::create(path, resources, owner)?));
    }
    let reason = match cgroups::layout()? {
        Layout::V2 => match Cgroup::create(path, resources, owner) {
            Ok(cgroup) => return Ok(Some(cgroup)),
            Err(CgroupError::Io { op, file, source }) if denied(&source) => {
                format!("{op} {}: {source}", file.display())
            }
            Err(e) => return Err(e.into()),
        },
        layout => format!("this host is {layout}, and a rootless container only uses a delegated cgroup v2"),
    };
    tracing::warn!("rootless: no cgroup for the container ({reason}); it stays in amphi's own cgroup");
    if resources.is_some_and(sets_limits) {
        tracing::warn!("rootless: linux.resources is ignored: the container has no cgroup");
    }
    Ok(None)
}

fn denied(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS))
}

/// Whether `resources` asks for anything but device rules (which a container
/// in a user namespace cannot get around anyway: it cannot make device nodes).
fn sets_limits(resources: &LinuxResources) -> bool {
    let mut value = serde_json::to_value(resources).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("devices");
        map.retain(|_, v| !v.is_null());
        return !map.is_empty();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mappings(json: &str) -> Vec<LinuxIdMapping> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_the_own_id_once() {
        let own = mappings(r#"[{"containerID":0,"hostID":1000,"size":1}]"#);
        assert!(own_id_only("linux.uidMappings", "uid", "CAP_SETUID", &own, 1000).is_ok());
        let other = mappings(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#);
        let err = own_id_only("linux.uidMappings", "uid", "CAP_SETUID", &other, 1000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.json: linux.uidMappings[0]: maps container uid 0 to host uids 100000-165535, but amphi runs \
             without CAP_SETUID and may only map its own uid 1000, once, with size 1 (newuidmap is not used)"
        );
        let two = mappings(r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":10}]"#);
        let err = own_id_only("linux.gidMappings", "gid", "CAP_SETGID", &two, 1000).unwrap_err();
        assert!(err.to_string().starts_with("config.json: linux.gidMappings[1]: maps container gid 1"), "{err}");
        let root = mappings(r#"[{"containerID":0,"hostID":0,"size":1}]"#);
        let err = own_id_only("linux.uidMappings", "uid", "CAP_SETUID", &root, 1000).unwrap_err();
        assert!(err.to_string().contains("maps container uid 0 to host uid 0, but"), "{err}");
        let wide = mappings(r#"[{"containerID":0,"hostID":1000,"size":2}]"#);
        assert!(own_id_only("linux.uidMappings", "uid", "CAP_SETUID", &wide, 1000).is_err());
    }

    #[test]
    fn device_rules_alone_set_no_limits() {
        let devices: LinuxResources = serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert!(!sets_limits(&devices));
        let memory: LinuxResources = serde_json::from_str(r#"{"memory":{"limit":1048576}}"#).unwrap();
        assert!(sets_limits(&memory));
    }
}
