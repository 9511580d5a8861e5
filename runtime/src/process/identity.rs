//! Becoming the process the spec describes: rlimits, groups, ids, capabilities,
//! no_new_privs, umask. Runs in the init (or an exec'd process) after
//! `pivot_root`, as the last privileged steps before the start barrier, in
//! the order [`super::steps`] gives.

use caps::CapSet;
use nix::unistd::{Gid, Uid};

use crate::plan::IdentityPlan;
use crate::plan::identity::Rlimit;

/// Why the identity could not be applied; names the step.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("setrlimit {name}: {source}")]
    Rlimit { name: &'static str, source: nix::Error },
    #[error("{step}: {source}")]
    Sys { step: &'static str, source: nix::Error },
    #[error("capabilities: {step}: {msg}")]
    Caps { step: &'static str, msg: String },
}

impl IdentityError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            IdentityError::Rlimit { source, .. } | IdentityError::Sys { source, .. } => Some(*source as i32),
            IdentityError::Caps { .. } => None,
        }
    }
}

/// Applies the spec's rlimits.
pub fn apply_rlimits(rlimits: &[Rlimit]) -> Result<(), IdentityError> {
    for limit in rlimits {
        crate::sys::rlimit::set(limit.resource, limit.soft, limit.hard)
            .map_err(|source| IdentityError::Rlimit { name: rlimit_name(limit.resource), source })?;
    }
    Ok(())
}

/// Shrinks the bounding set to the spec's, then switches to the spec's groups,
/// gid and uid, keeping the permitted set across the change for
/// [`set_capabilities`]. `setgroups_allowed` is false in a user namespace
/// whose `setgroups` file says `deny`.
pub fn set_user(plan: &IdentityPlan, setgroups_allowed: bool) -> Result<(), IdentityError> {
    let sys = |step| move |source| IdentityError::Sys { step, source };
    let caps_err = |step| move |e: caps::errors::CapsError| IdentityError::Caps { step, msg: e.to_string() };

    // The bounding set can only shrink, and shrinking needs CAP_SETPCAP: first.
    for cap in caps::runtime::thread_all_supported() {
        if !plan.capabilities.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(caps_err("drop bounding"))?;
        }
    }

    // Keep the permitted set across the uid change; the sets are set exactly after.
    nix::sys::prctl::set_keepcaps(true).map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    if setgroups_allowed {
        let groups: Vec<Gid> = plan.additional_gids.iter().copied().map(Gid::from_raw).collect();
        nix::unistd::setgroups(&groups).map_err(sys("setgroups"))?;
    }
    let gid = Gid::from_raw(plan.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(sys("setresgid"))?;
    let uid = Uid::from_raw(plan.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(sys("setresuid"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("prctl(PR_SET_KEEPCAPS)"))?;
    Ok(())
}

/// Sets the effective, permitted and inheritable sets exactly, and the ambient
/// set. Runs after [`set_user`].
pub fn set_capabilities(plan: &IdentityPlan) -> Result<(), IdentityError> {
    let caps_err = |step| move |e: caps::errors::CapsError| IdentityError::Caps { step, msg: e.to_string() };
    let wanted = &plan.capabilities;
    let mask = |set: &caps::CapsHashSet| set.iter().fold(0u64, |m, c| m | c.bitmask());
    crate::sys::caps::set_sets(mask(&wanted.effective), mask(&wanted.permitted), mask(&wanted.inheritable))
        .map_err(|e| IdentityError::Caps { step: "capset", msg: e.to_string() })?;
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient"))?;
    // The kernel keeps an ambient capability only while it is both permitted and
    // inheritable; runc's own default spec asks for ambient capabilities without
    // inheritable ones, so (as runc does) the others are skipped, not fatal.
    for cap in &wanted.ambient {
        if wanted.permitted.contains(cap) && wanted.inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap).map_err(caps_err("raise ambient"))?;
        } else {
            tracing::debug!(capability = %cap, "ambient capability skipped: not both permitted and inheritable");
        }
    }
    Ok(())
}

/// `no_new_privs`: no later `execve` gains privileges (setuid bits, file
/// capabilities).
pub fn set_no_new_privs() -> Result<(), IdentityError> {
    nix::sys::prctl::set_no_new_privs()
        .map_err(|source| IdentityError::Sys { step: "prctl(PR_SET_NO_NEW_PRIVS)", source })
}

/// The spec's umask.
pub fn set_umask(plan: &IdentityPlan) {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(plan.umask as libc::mode_t));
}

fn rlimit_name(resource: libc::__rlimit_resource_t) -> &'static str {
    match resource {
        libc::RLIMIT_CPU => "RLIMIT_CPU",
        libc::RLIMIT_FSIZE => "RLIMIT_FSIZE",
        libc::RLIMIT_DATA => "RLIMIT_DATA",
        libc::RLIMIT_STACK => "RLIMIT_STACK",
        libc::RLIMIT_CORE => "RLIMIT_CORE",
        libc::RLIMIT_RSS => "RLIMIT_RSS",
        libc::RLIMIT_NPROC => "RLIMIT_NPROC",
        libc::RLIMIT_NOFILE => "RLIMIT_NOFILE",
        libc::RLIMIT_MEMLOCK => "RLIMIT_MEMLOCK",
        libc::RLIMIT_AS => "RLIMIT_AS",
        libc::RLIMIT_LOCKS => "RLIMIT_LOCKS",
        libc::RLIMIT_SIGPENDING => "RLIMIT_SIGPENDING",
        libc::RLIMIT_MSGQUEUE => "RLIMIT_MSGQUEUE",
        libc::RLIMIT_NICE => "RLIMIT_NICE",
        libc::RLIMIT_RTPRIO => "RLIMIT_RTPRIO",
        libc::RLIMIT_RTTIME => "RLIMIT_RTTIME",
        _ => "RLIMIT_?",
    }
}
