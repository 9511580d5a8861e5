//! Syscall names: which ones a profile may use, and which of those the filter
//! can carry.
//!
//! Profiles are written for many kernels and architectures at once (Docker's
//! lists `_llseek`, `socketcall`, `arm_fadvise64_64` next to `openat2`), so a name
//! that does not exist on this architecture must not fail the container; a name
//! that exists nowhere is a typo and must. The rule:
//!
//! 1. libseccomp knows the name, for any architecture: it is used. For an
//!    architecture that lacks the call libseccomp resolves it to a pseudo-number
//!    that matches nothing there, so the rule is silently empty on that arch.
//! 2. libseccomp does not know it, but Linux has it ([`NEWER_THAN_LIBSECCOMP`]:
//!    calls added after the syscall tables of the libseccomp we link): the name is
//!    skipped and reported, as runc does for names its libseccomp cannot resolve.
//!    The kernel then applies the default action to that call.
//! 3. Otherwise: an error naming the field.

use libseccomp::ScmpSyscall;

/// Linux syscalls that libseccomp 2.5.4 cannot resolve: the generic table from
/// number 454 (`futex_wake`, Linux 6.7) on, then calls of single architectures.
/// A newer libseccomp resolves some of them, and then rule 1 applies (Debian 12's
/// 2.5.4-1+deb12u1, which amphi links, already knows the three futex2 calls).
pub const NEWER_THAN_LIBSECCOMP: &[&str] = &[
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
    "file_getattr",
    "file_setattr",
    "listns",
    "rseq_slice_yield",
    // Architecture-specific.
    "riscv_hwprobe",
    "uretprobe",
    "uprobe",
];

/// What a profile's syscall name turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// libseccomp's number for the name (a pseudo-number where the native
    /// architecture lacks the call).
    Known(ScmpSyscall),
    /// A real Linux syscall that the linked libseccomp cannot express: skipped.
    NewerThanLibrary,
    /// Not a syscall of any architecture.
    Unknown,
}

pub fn resolve(name: &str) -> Resolved {
    if let Ok(syscall) = ScmpSyscall::from_name(name) {
        return Resolved::Known(syscall);
    }
    if NEWER_THAN_LIBSECCOMP.contains(&name) { Resolved::NewerThanLibrary } else { Resolved::Unknown }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_syscall_resolves_to_its_number() {
        assert_eq!(resolve("mkdirat"), Resolved::Known(ScmpSyscall::from(libc::SYS_mkdirat as i32)));
    }

    #[test]
    fn a_syscall_of_another_architecture_is_known() {
        // 32-bit x86 and arm only; libseccomp gives them negative pseudo-numbers here.
        for name in ["socketcall", "_llseek", "arm_fadvise64_64", "ugetrlimit"] {
            match resolve(name) {
                Resolved::Known(s) => assert!(s.as_raw_syscall() < 0, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_made_up_name_is_unknown() {
        assert_eq!(resolve("foo"), Resolved::Unknown);
        assert_eq!(resolve(""), Resolved::Unknown);
        assert_eq!(resolve("mkdir\0at"), Resolved::Unknown);
    }

    #[test]
    fn newer_syscalls_are_skipped_not_refused() {
        for name in NEWER_THAN_LIBSECCOMP {
            assert_ne!(resolve(name), Resolved::Unknown, "{name}");
        }
    }
}
