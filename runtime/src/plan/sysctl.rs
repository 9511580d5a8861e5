//! `linux.sysctl`: which keys a container may set, and where each is written.
//!
//! A key is read as sysctl(8) reads it: when its first separator is `.`, dots
//! separate and a `/` stands for a dot inside a name
//! (`net.ipv4.conf.eth0/100.rp_filter`); when it is `/`, the key is a path under
//! `/proc/sys` and a `.` is part of a name (`net/ipv4/conf/eth0.100/rp_filter`).
//!
//! The rule is runc's: a key may be set only where the container has its own
//! copy, that is in a namespace it has of its own (new or joined): the IPC keys
//! (`kernel.msg*`, `kernel.shm*`, `kernel.sem`, `fs.mqueue.*`), the network ones
//! (`net.*`), `kernel.hostname` and `kernel.domainname` (UTS). Any other key
//! would change the host. Whether a joined network namespace is the host's own
//! is a host check ([`crate::bundle`]).

use oci_spec::runtime::{Linux, LinuxNamespaceType};

use super::SpecError;

/// A key in both of its spellings.
struct Key {
    /// `net.ipv4.ip_forward`: what the namespace rule reads.
    dotted: String,
    /// `net/ipv4/ip_forward`: the file under `/proc/sys`.
    path: String,
}

impl Key {
    fn parse(key: &str) -> Self {
        let slashed = key.find(['.', '/']).is_some_and(|i| key.as_bytes()[i] == b'/');
        let swapped = key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect();
        if slashed {
            Self { dotted: swapped, path: key.to_owned() }
        } else {
            Self { dotted: key.to_owned(), path: swapped }
        }
    }
}

/// `key` as a path relative to `/proc/sys`.
pub fn path(key: &str) -> String {
    Key::parse(key).path
}

/// The namespace whose copy `key` sets, or `None` when the key is host-wide.
pub fn namespace(key: &str) -> Option<LinuxNamespaceType> {
    let dotted = Key::parse(key).dotted;
    let ipc = ["kernel.msg", "kernel.shm", "fs.mqueue."].iter().any(|p| dotted.starts_with(p))
        || dotted == "kernel.sem"
        || dotted == "kernel.sem_next_id";
    if ipc {
        Some(LinuxNamespaceType::Ipc)
    } else if dotted.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if dotted == "kernel.domainname" || dotted == "kernel.hostname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Refuses a key that is not a sysctl name, one the container has no namespace
/// of its own for, and `kernel.hostname` next to the spec's `hostname`.
pub fn check(linux: &Linux, hostname: bool) -> Result<(), SpecError> {
    let has = |typ| linux.namespaces().iter().flatten().any(|n| n.typ() == typ);
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        rule(key, has, hostname).map_err(|reason| SpecError::new(format!("linux.sysctl[{key:?}]"), reason))?;
    }
    Ok(())
}

fn rule(key: &str, has: impl Fn(LinuxNamespaceType) -> bool, hostname: bool) -> Result<(), String> {
    if Key::parse(key).path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("is not a sysctl name".into());
    }
    let (typ, what) = match namespace(key) {
        Some(LinuxNamespaceType::Ipc) => (LinuxNamespaceType::Ipc, "IPC"),
        Some(LinuxNamespaceType::Network) => (LinuxNamespaceType::Network, "network"),
        Some(typ) => (typ, "UTS"),
        None => return Err("is not namespaced, so setting it would change the host".into()),
    };
    if !has(typ) {
        return Err(format!("needs a private {what} namespace"));
    }
    if hostname && Key::parse(key).dotted == "kernel.hostname" {
        return Err("conflicts with the hostname field".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `linux` with the given namespace types and one sysctl `key`.
    fn linux(namespaces: &[&str], key: &str) -> Linux {
        let namespaces: Vec<_> = namespaces.iter().map(|t| serde_json::json!({"type": t})).collect();
        serde_json::from_value(serde_json::json!({"namespaces": namespaces, "sysctl": {key: "1"}})).unwrap()
    }

    const ALL: &[&str] = &["pid", "network", "ipc", "uts", "mount"];

    fn refused(namespaces: &[&str], key: &str, hostname: bool) -> String {
        let err = check(&linux(namespaces, key), hostname).unwrap_err();
        assert_eq!(err.field, format!("linux.sysctl[{key:?}]"));
        err.reason
    }

    #[test]
    fn keys_become_proc_paths_both_ways() {
        assert_eq!(path("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(path("net.ipv4.conf.eth0/100.rp_filter"), "net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(path("net/ipv4/conf/eth0.100/rp_filter"), "net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(path("kernel.shmmax"), "kernel/shmmax");
    }

    #[test]
    fn ipc_keys_need_an_ipc_namespace() {
        for key in ["kernel.msgmax", "kernel.shmmax", "kernel.sem", "fs.mqueue.queues_max", "kernel/shm_rmid_forced"] {
            assert_eq!(refused(&["pid", "mount"], key, false), "needs a private IPC namespace", "{key}");
            check(&linux(ALL, key), false).unwrap();
        }
    }

    #[test]
    fn net_keys_need_a_network_namespace() {
        assert_eq!(refused(&["mount"], "net.ipv4.ip_forward", false), "needs a private network namespace");
        // `/` form, with a `.` inside an interface name.
        check(&linux(ALL, "net/ipv4/conf/eth0.100/rp_filter"), false).unwrap();
        assert_eq!(namespace("net/ipv4/ip_forward"), Some(LinuxNamespaceType::Network));
    }

    #[test]
    fn uts_keys_need_a_uts_namespace_and_no_hostname() {
        for key in ["kernel.domainname", "kernel.hostname"] {
            assert_eq!(refused(&["mount"], key, false), "needs a private UTS namespace");
            check(&linux(ALL, key), false).unwrap();
        }
        assert_eq!(refused(ALL, "kernel.hostname", true), "conflicts with the hostname field");
        check(&linux(ALL, "kernel.domainname"), true).unwrap();
    }

    #[test]
    fn host_wide_keys_are_refused() {
        for key in ["kernel.panic", "vm.overcommit_memory", "fs.file-max"] {
            assert!(refused(ALL, key, false).contains("not namespaced"), "{key}");
        }
    }

    #[test]
    fn keys_cannot_climb_out_of_proc_sys() {
        for key in ["net/../../../etc/x", "net..ipv4", "net.", "net/./x"] {
            assert_eq!(refused(ALL, key, false), "is not a sysctl name", "{key}");
        }
    }
}
