//! Who the process is: user, groups, umask, capabilities, rlimits, no_new_privs.

use oci_spec::runtime::{Capabilities, PosixRlimitType, Process};

use super::SpecError;

/// The five capability sets, as the `caps` crate names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    pub bounding: caps::CapsHashSet,
    pub effective: caps::CapsHashSet,
    pub inheritable: caps::CapsHashSet,
    pub permitted: caps::CapsHashSet,
    pub ambient: caps::CapsHashSet,
}

/// One `setrlimit` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

/// The identity plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPlan {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    /// `None` when the spec has no `process.capabilities`: every set is cleared.
    pub capabilities: CapabilitySets,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
}

impl IdentityPlan {
    pub fn new(process: &Process) -> Result<Self, SpecError> {
        let user = process.user();
        let capabilities = match process.capabilities() {
            None => CapabilitySets::default(),
            Some(c) => CapabilitySets {
                bounding: convert("process.capabilities.bounding", c.bounding())?,
                effective: convert("process.capabilities.effective", c.effective())?,
                inheritable: convert("process.capabilities.inheritable", c.inheritable())?,
                permitted: convert("process.capabilities.permitted", c.permitted())?,
                ambient: convert("process.capabilities.ambient", c.ambient())?,
            },
        };
        let mut rlimits = Vec::new();
        for (i, r) in process.rlimits().iter().flatten().enumerate() {
            if r.soft() > r.hard() {
                return Err(SpecError::new(
                    format!("process.rlimits[{i}]"),
                    format!("soft limit {} is above the hard limit {}", r.soft(), r.hard()),
                ));
            }
            if rlimits.iter().any(|l: &Rlimit| l.resource == resource(r.typ())) {
                return Err(SpecError::new(format!("process.rlimits[{i}].type"), "duplicate rlimit type"));
            }
            rlimits.push(Rlimit { resource: resource(r.typ()), soft: r.soft(), hard: r.hard() });
        }
        Ok(Self {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            capabilities,
            rlimits,
            no_new_privileges: process.no_new_privileges().unwrap_or(false),
        })
    }
}

fn convert(field: &str, set: &Option<Capabilities>) -> Result<caps::CapsHashSet, SpecError> {
    let mut out = caps::CapsHashSet::new();
    for cap in set.iter().flatten() {
        let name = cap.to_string();
        let name = if name.starts_with("CAP_") { name } else { format!("CAP_{}", name.to_ascii_uppercase()) };
        let parsed = name
            .parse::<caps::Capability>()
            .map_err(|_| SpecError::new(field, format!("unknown capability {name:?}")))?;
        out.insert(parsed);
    }
    Ok(out)
}

fn resource(typ: PosixRlimitType) -> libc::__rlimit_resource_t {
    match typ {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: &str) -> Process {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn maps_user_caps_and_rlimits() {
        let p = process(
            r#"{"cwd":"/","user":{"uid":1000,"gid":100,"additionalGids":[5,6],"umask":63},
            "capabilities":{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"],"ambient":[]},
            "rlimits":[{"type":"RLIMIT_NOFILE","soft":100,"hard":200}],"noNewPrivileges":true}"#,
        );
        let plan = IdentityPlan::new(&p).unwrap();
        assert_eq!((plan.uid, plan.gid, plan.umask), (1000, 100, 63));
        assert_eq!(plan.additional_gids, vec![5, 6]);
        assert!(plan.capabilities.bounding.contains(&caps::Capability::CAP_CHOWN));
        assert_eq!(plan.capabilities.effective.len(), 1);
        assert!(plan.capabilities.inheritable.is_empty());
        assert_eq!(plan.rlimits, vec![Rlimit { resource: libc::RLIMIT_NOFILE, soft: 100, hard: 200 }]);
        assert!(plan.no_new_privileges);
    }

    #[test]
    fn soft_above_hard_names_the_rlimit() {
        let p = process(r#"{"cwd":"/","user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_CORE","soft":2,"hard":1}]}"#);
        let err = IdentityPlan::new(&p).unwrap_err().to_string();
        assert!(err.contains("process.rlimits[0]"), "{err}");
    }

    #[test]
    fn default_umask_is_022() {
        let p = process(r#"{"cwd":"/","user":{"uid":0,"gid":0}}"#);
        assert_eq!(IdentityPlan::new(&p).unwrap().umask, 0o022);
    }
}
