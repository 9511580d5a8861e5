//! `linux.seccomp`: checking a profile, compiling it to BPF, loading it, and
//! handing the notify descriptor to a seccomp agent.
//!
//! ## The life of a profile
//!
//! 1. [`SeccompPlan::new`] runs in the runtime, before any fork, with the rest of
//!    the plans. It checks every field (an unknown syscall name, an `errnoRet` on
//!    an action that returns none, `SCMP_ACT_NOTIFY` without `listenerPath`, an
//!    argument index past 5, a flag this kernel lacks...) and fails with a
//!    [`SpecError`] naming the field, e.g.
//!    `config.json: linux.seccomp.syscalls[3].names[0]: unknown syscall "foo"`.
//!    Unknown action, architecture, operator and flag strings never get this far:
//!    oci-spec's enums refuse them while `config.json` is parsed, and the bundle
//!    loader names the path (`linux.seccomp.syscalls[0].action: unknown variant`).
//!    It then compiles the profile with libseccomp and keeps the BPF program: the
//!    plan is plain data (`Clone`), and nothing is left to go wrong later but
//!    the kernel's own refusal.
//! 2. [`load`] runs in the container's process as the last isolation step before
//!    the workload. It is a single `seccomp(2)` call ([`crate::sys::seccomp`]) that
//!    allocates nothing, so it is safe in a forked child. It needs
//!    `no_new_privs` or `CAP_SYS_ADMIN`. With a notifying rule it returns the
//!    listener descriptor, which the process sends to the runtime.
//! 3. [`send_to_listener`] runs in the runtime: it connects to `listenerPath` and
//!    sends the runtime-spec's container process state with the descriptor
//!    (`SCM_RIGHTS`), as runc does.
//!
//! ## Why libseccomp
//!
//! The profile is compiled by libseccomp (the `libseccomp` crate, linked
//! statically from Debian's `libseccomp.a`) rather than a pure-Rust compiler such
//! as `seccompiler`, because the profiles containerd and Docker send need what
//! only libseccomp has: a syscall table of every architecture, so a name is
//! resolved (or known to be absent) per architecture; filters for several
//! architectures at once (`SCMP_ARCH_X86_64` with `X86` and `X32`, each with its
//! own numbers); 64-bit argument comparisons on 32-bit ABIs; the exact semantics
//! runc, crun and youki share, so a profile behaves the same under amphi. A
//! pure-Rust compiler would mean keeping a syscall table of our own for every
//! architecture and reimplementing multi-architecture dispatch.
//!
//! libseccomp only compiles: amphi loads the exported program itself (as runc
//! does), so every flag the runtime-spec lists works whatever the library
//! version (`SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` is newer than libseccomp
//! 2.5.4), and loading is one syscall in the child instead of library code.
//!
//! ## Unknown syscall names
//!
//! A name no architecture has is an error; a name some architecture has is
//! used, and matches nothing where the call does not exist; a real Linux call
//! that the linked libseccomp is too old to know is skipped (and logged
//! when the plan is made), as runc skips what its
//! libseccomp cannot resolve. See [`names`].
//!
//! ## What this module must never do
//!
//! Load a filter in the runtime's own process, or start a thread: a filter
//! applies to the calling thread (all threads with `SECCOMP_FILTER_FLAG_TSYNC`)
//! and is inherited forever.

mod compile;
mod listener;
pub mod names;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::LinuxSeccomp;

pub use listener::send_to_listener;

use crate::plan::SpecError;
use crate::sys::seccomp::{self as sys, Instruction};

/// A checked and compiled `linux.seccomp`, ready to load.
#[derive(Clone)]
pub struct SeccompPlan {
    program: Vec<Instruction>,
    flags: u32,
    listener: Option<NotifyListener>,
    skipped: Vec<String>,
}

/// Where the notify descriptor goes: `listenerPath` and `listenerMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyListener {
    pub path: PathBuf,
    pub metadata: String,
}

impl SeccompPlan {
    /// Checks and compiles a profile. Errors name the field in `config.json`.
    pub fn new(seccomp: &LinuxSeccomp) -> Result<Self, SpecError> {
        let path = seccomp.listener_path().clone().filter(|p| !p.as_os_str().is_empty());
        let metadata = seccomp.listener_metadata().clone().unwrap_or_default();
        if path.is_none() && !metadata.is_empty() {
            return Err(SpecError::new("linux.seccomp.listenerMetadata", "set without listenerPath"));
        }
        let compiled = compile::compile(seccomp)?;
        let listener = match (compiled.uses_notify, path) {
            (true, Some(path)) => Some(NotifyListener { path, metadata }),
            (true, None) => {
                return Err(SpecError::new(
                    "linux.seccomp.listenerPath",
                    "missing: a rule uses SCMP_ACT_NOTIFY, whose descriptor must go to a seccomp agent",
                ));
            }
            // The runtime-spec: without SCMP_ACT_NOTIFY the path is ignored.
            (false, _) => None,
        };
        if !compiled.skipped.is_empty() {
            tracing::debug!(
                syscalls = ?compiled.skipped,
                libseccomp = %compile::version(),
                "seccomp: syscalls unknown to libseccomp are left to the default action"
            );
        }
        Ok(Self { program: compiled.program, flags: compiled.flags, listener, skipped: compiled.skipped })
    }

    /// Whether the profile has an `SCMP_ACT_NOTIFY` rule: [`load`] then returns
    /// a descriptor that must reach [`Self::listener`].
    #[cfg(test)]
    pub fn uses_notify(&self) -> bool {
        self.flags & sys::FLAG_NEW_LISTENER != 0
    }

    /// The agent's socket and metadata, when the profile notifies.
    pub fn listener(&self) -> Option<&NotifyListener> {
        self.listener.as_ref()
    }

    /// Syscall names left out because the linked libseccomp does not know them.
    #[cfg(test)]
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped
    }
}

impl fmt::Debug for SeccompPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeccompPlan")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("listener", &self.listener)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Why a filter could not be loaded or its descriptor not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: load filter: {source}{hint}", hint = load_hint(source))]
    Load { source: io::Error },
    #[error("seccomp listener {}: connect: {source}", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("seccomp listener {}: send container process state: {source}", path.display())]
    Send { path: PathBuf, source: io::Error },
}

impl SeccompError {
    /// The errno behind the failure, for a stage's failure report.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SeccompError::Load { source }
            | SeccompError::Connect { source, .. }
            | SeccompError::Send { source, .. } => source.raw_os_error(),
        }
    }
}

fn load_hint(source: &io::Error) -> &'static str {
    match source.raw_os_error() {
        Some(libc::EACCES) => " (the process has neither no_new_privs nor CAP_SYS_ADMIN)",
        _ => "",
    }
}

/// Loads the plan's filter into the calling process (the calling thread, or every
/// thread with `SECCOMP_FILTER_FLAG_TSYNC`). Returns the user-notification
/// descriptor when the profile has `SCMP_ACT_NOTIFY`.
///
/// The caller must have `no_new_privs` set or hold `CAP_SYS_ADMIN`. Everything
/// after this call runs under the filter, so it is the last step before the
/// workload (after sending the descriptor, when there is one).
pub fn load(plan: &SeccompPlan) -> Result<Option<OwnedFd>, SeccompError> {
    sys::set_mode_filter(plan.flags, &plan.program).map_err(|source| SeccompError::Load { source })
}

/// Has `command` run its program under the plan's filter, loaded in the forked
/// child right before `exec` (needs `no_new_privs` or `CAP_SYS_ADMIN`): a host
/// command that sees what a process under the profile sees (a runtime started
/// where `clone3` is refused, as under Docker's default profile). A notify
/// descriptor, if the profile makes one, is not kept.
pub fn load_before_exec(plan: &SeccompPlan, command: &mut std::process::Command) {
    sys::set_mode_filter_before_exec(command, plan.flags, plan.program.clone());
}
