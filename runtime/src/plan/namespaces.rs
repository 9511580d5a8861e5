//! Which namespaces the container gets, and how.
//!
//! New namespaces are created by the `clone` of the init itself, so that in the
//! common case one clone makes the whole container. Two things need an
//! intermediate process: a namespace joined by `path` (`setns` must come before the
//! init is cloned, and joining a pid namespace only affects children) and a new
//! time namespace (its offsets must be written before a process enters it). The
//! cgroup namespace is always unshared by the init itself, after the parent has
//! put it in its cgroup, so that the namespace's root is the container's cgroup.
//!
//! ## What the spec leaves to the runtime
//! A type missing from `linux.namespaces` is **inherited**: the container
//! shares amphi's own namespace of that type, as the runtime-spec says, for
//! every type (user, mount, pid, network, ipc, uts, cgroup, time). Nothing is
//! made for it, and `exec` has nothing to join there. A container in the
//! runtime's mount namespace mounts nothing and enters its rootfs with `chroot`
//! ([`super::mounts::inherited`] lists what it may not ask for).
//!
//! ## Joining by `path`
//! An entry with a `path` is joined by the intermediate (`setns`), after the
//! file is checked again to be a namespace of that type, the mount namespace
//! included. In a joined mount namespace the rootfs is built as in a new one,
//! as runc does: the rootfs propagation is applied to that namespace's tree,
//! the spec's mounts are made in it and `pivot_root` runs in it. So every
//! process of that namespace whose root (or cwd) was the namespace's root
//! finds itself in the container's rootfs afterwards, the old root detached,
//! and the container's mounts stay in the namespace after the container is
//! gone, until the namespace itself is. Join a mount namespace made for the
//! container (kept alive by a bind mount of its file, or by a process that
//! only waits), not one other programs work in. The spec's host paths
//! (`root.path`, bind sources) are read in the joined namespace.

use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType, Spec};

use super::SpecError;

/// One kind of namespace, with its `CLONE_NEW*` flag and `/proc/<pid>/ns` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    User,
    Mount,
    Pid,
    Network,
    Ipc,
    Uts,
    Cgroup,
    Time,
}

impl Kind {
    pub fn flag(self) -> libc::c_int {
        match self {
            Kind::User => libc::CLONE_NEWUSER,
            Kind::Mount => libc::CLONE_NEWNS,
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Network => libc::CLONE_NEWNET,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::Cgroup => libc::CLONE_NEWCGROUP,
            Kind::Time => libc::CLONE_NEWTIME,
        }
    }

    /// The name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Mount => "mnt",
            Kind::Pid => "pid",
            Kind::Network => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
        }
    }

    /// The name config.json uses (`network`, `mount`...).
    pub fn spec_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Mount => "mount",
            Kind::Pid => "pid",
            Kind::Network => "network",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
        }
    }

    fn from_spec(typ: LinuxNamespaceType) -> Self {
        match typ {
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Mount => Kind::Mount,
            LinuxNamespaceType::Pid => Kind::Pid,
            LinuxNamespaceType::Network => Kind::Network,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            LinuxNamespaceType::Time => Kind::Time,
        }
    }
}

/// The namespace plan.
#[derive(Debug, Clone, Default)]
pub struct NamespacePlan {
    /// Namespaces to create, in no particular order.
    pub new: Vec<Kind>,
    /// Namespaces to join, user first (its capabilities are needed to join the
    /// others), then in spec order.
    pub join: Vec<(Kind, PathBuf)>,
    pub new_user: bool,
    pub new_cgroup: bool,
    /// `linux.uidMappings`, as the text of `/proc/<pid>/uid_map`.
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    /// `linux.timeOffsets`, as the text of `/proc/<pid>/timens_offsets`.
    pub time_offsets: Option<String>,
}

impl NamespacePlan {
    pub fn new(spec: &Spec) -> Result<Self, SpecError> {
        let mut plan = Self::default();
        let Some(linux) = spec.linux() else { return Ok(plan) };
        let mut seen = Vec::new();
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            let kind = Kind::from_spec(ns.typ());
            if seen.contains(&kind) {
                return Err(SpecError::new(
                    format!("linux.namespaces[{i}]"),
                    format!("duplicate namespace type {:?}", kind.spec_name()),
                ));
            }
            seen.push(kind);
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => plan.join.push((kind, path.clone())),
                _ => plan.new.push(kind),
            }
        }
        plan.join.sort_by_key(|(kind, _)| *kind != Kind::User);
        plan.new_user = plan.new.contains(&Kind::User);
        plan.new_cgroup = plan.new.contains(&Kind::Cgroup);

        let uid = linux.uid_mappings().as_deref().unwrap_or_default();
        let gid = linux.gid_mappings().as_deref().unwrap_or_default();
        if plan.new_user {
            plan.uid_map = Some(map_text("linux.uidMappings", uid)?);
            plan.gid_map = Some(map_text("linux.gidMappings", gid)?);
        } else if !uid.is_empty() || !gid.is_empty() {
            return Err(SpecError::new("linux.uidMappings", "id mappings need a new user namespace"));
        }
        if let Some(offsets) = linux.time_offsets() {
            if !plan.new.contains(&Kind::Time) {
                return Err(SpecError::new("linux.timeOffsets", "time offsets need a new time namespace"));
            }
            let mut text = String::new();
            for (clock, offset) in offsets {
                let clock = match clock.as_str() {
                    "monotonic" | "boottime" => clock.as_str(),
                    other => return Err(SpecError::new(format!("linux.timeOffsets.{other}"), "unknown clock")),
                };
                text.push_str(&format!("{clock} {} {}\n", offset.secs().unwrap_or(0), offset.nanosecs().unwrap_or(0)));
            }
            plan.time_offsets = Some(text);
        }
        Ok(plan)
    }

    /// Flags for the `clone` that makes the init: every new namespace except the
    /// cgroup one (unshared later) and the time one (made by the intermediate). When
    /// an intermediate runs, it has already made the user namespace.
    pub fn clone_flags(&self) -> libc::c_int {
        let intermediate = self.needs_intermediate();
        self.new
            .iter()
            .filter(|k| !matches!(k, Kind::Cgroup | Kind::Time))
            .filter(|k| !(intermediate && **k == Kind::User))
            .fold(0, |flags, k| flags | k.flag())
    }

    /// Whether the init must be cloned by an intermediate process.
    pub fn needs_intermediate(&self) -> bool {
        !self.join.is_empty() || self.new.contains(&Kind::Time)
    }

    /// Whether the container has a namespace of this kind of its own (new or
    /// joined); without one it shares the runtime's.
    pub fn has(&self, kind: Kind) -> bool {
        self.new.contains(&kind) || self.join.iter().any(|(k, _)| *k == kind)
    }

    /// Whether the container has a UTS namespace of its own (new or joined), so
    /// that setting its hostname does not change the host's.
    pub fn has_uts(&self) -> bool {
        self.has(Kind::Uts)
    }
}

/// The rule of `linux.namespaces` that needs no plan: a namespace is joined by
/// an absolute path (the rest is [`NamespacePlan::new`]'s).
pub fn check(linux: &Linux) -> Result<(), SpecError> {
    for (i, n) in linux.namespaces().iter().flatten().enumerate() {
        if let Some(path) = n.path()
            && !path.as_os_str().is_empty()
            && !path.is_absolute()
        {
            return Err(SpecError::new(
                format!("linux.namespaces[{i}].path"),
                format!("{path:?} is not an absolute path"),
            ));
        }
    }
    Ok(())
}

fn map_text(field: &str, mappings: &[LinuxIdMapping]) -> Result<String, SpecError> {
    if mappings.is_empty() {
        return Err(SpecError::new(field, "a new user namespace needs at least one mapping"));
    }
    let mut text = String::new();
    for (i, m) in mappings.iter().enumerate() {
        if m.size() == 0 {
            return Err(SpecError::new(format!("{field}[{i}].size"), "must be greater than 0"));
        }
        text.push_str(&format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_namespace_is_joined_by_an_absolute_path() {
        let linux = |path: &str| -> Linux {
            serde_json::from_value(
                serde_json::json!({"namespaces": [{"type": "pid"}, {"type": "network", "path": path}]}),
            )
            .unwrap()
        };
        let err = check(&linux("netns/x")).unwrap_err().to_string();
        assert_eq!(err, r#"config.json: linux.namespaces[1].path: "netns/x" is not an absolute path"#);
        check(&linux("/proc/1/ns/net")).unwrap();
        check(&linux("")).unwrap();
    }

    #[test]
    fn all_new_namespaces_need_one_clone() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}]}}"#,
        );
        let plan = NamespacePlan::new(&s).unwrap();
        assert!(!plan.needs_intermediate());
        assert!(plan.new_cgroup);
        let flags = plan.clone_flags();
        assert_eq!(flags & libc::CLONE_NEWCGROUP, 0, "cgroup ns is unshared later");
        for f in [libc::CLONE_NEWPID, libc::CLONE_NEWNET, libc::CLONE_NEWIPC, libc::CLONE_NEWUTS, libc::CLONE_NEWNS] {
            assert_ne!(flags & f, 0);
        }
    }

    #[test]
    fn joining_by_path_needs_an_intermediate_and_user_goes_first() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"network","path":"/proc/1/ns/net"},{"type":"user","path":"/proc/1/ns/user"},{"type":"pid"}]}}"#,
        );
        let plan = NamespacePlan::new(&s).unwrap();
        assert!(plan.needs_intermediate());
        assert_eq!(plan.join[0].0, Kind::User);
        assert_eq!(plan.join[1].0, Kind::Network);
        assert_eq!(plan.clone_flags(), libc::CLONE_NEWPID);
    }

    #[test]
    fn user_namespace_maps_become_proc_text() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"user"}],
            "uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],
            "gidMappings":[{"containerID":0,"hostID":200000,"size":10},{"containerID":10,"hostID":5,"size":1}]}}"#,
        );
        let plan = NamespacePlan::new(&s).unwrap();
        assert_eq!(plan.uid_map.as_deref(), Some("0 100000 65536\n"));
        assert_eq!(plan.gid_map.as_deref(), Some("0 200000 10\n10 5 1\n"));
        assert_ne!(plan.clone_flags() & libc::CLONE_NEWUSER, 0);
    }

    #[test]
    fn duplicate_namespace_names_the_entry() {
        let s = spec(r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}}"#);
        let err = NamespacePlan::new(&s).unwrap_err().to_string();
        assert!(err.contains("linux.namespaces[1]") && err.contains("duplicate"), "{err}");
    }

    #[test]
    fn zero_sized_mapping_names_the_field() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"user"}],
            "uidMappings":[{"containerID":0,"hostID":1000,"size":0}],"gidMappings":[{"containerID":0,"hostID":1000,"size":1}]}}"#,
        );
        let err = NamespacePlan::new(&s).unwrap_err().to_string();
        assert!(err.contains("linux.uidMappings[0].size"), "{err}");
    }

    #[test]
    fn missing_namespaces_are_inherited() {
        let s = spec(r#"{"ociVersion":"1.2.0","linux":{"namespaces":[]}}"#);
        let plan = NamespacePlan::new(&s).unwrap();
        assert_eq!(plan.clone_flags(), 0, "nothing new: every namespace is the runtime's");
        assert!(!plan.needs_intermediate() && !plan.new_user && !plan.new_cgroup);
        for kind in [Kind::User, Kind::Mount, Kind::Pid, Kind::Network, Kind::Ipc, Kind::Uts, Kind::Cgroup, Kind::Time]
        {
            assert!(!plan.has(kind), "{kind:?}");
        }
        let without_linux = spec(r#"{"ociVersion":"1.2.0"}"#);
        assert_eq!(NamespacePlan::new(&without_linux).unwrap().clone_flags(), 0);
    }

    #[test]
    fn a_mount_namespace_is_joined_by_path() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"mount","path":"/proc/9/ns/mnt"},{"type":"pid"}]}}"#,
        );
        let plan = NamespacePlan::new(&s).unwrap();
        assert_eq!(plan.join, [(Kind::Mount, PathBuf::from("/proc/9/ns/mnt"))]);
        assert!(plan.needs_intermediate() && plan.has(Kind::Mount));
        assert_eq!(plan.clone_flags(), libc::CLONE_NEWPID, "no new mount namespace");
    }

    #[test]
    fn time_namespace_needs_an_intermediate() {
        let s = spec(r#"{"ociVersion":"1.2.0","linux":{"namespaces":[{"type":"time"},{"type":"pid"}]}}"#);
        let plan = NamespacePlan::new(&s).unwrap();
        assert!(plan.needs_intermediate());
        assert_eq!(plan.clone_flags() & libc::CLONE_NEWTIME, 0);
    }
}
