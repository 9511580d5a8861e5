//! From `linux.seccomp` to a BPF program: every check of the profile, then
//! libseccomp builds the filter and exports it, in the runtime, before any fork.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall, ScmpVersion};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use super::names::{self, Resolved};
use crate::plan::SpecError;
use crate::sys::seccomp::{self as sys, Instruction};

/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// Profiles naming more syscalls than this get libseccomp's binary-tree layout,
/// so a syscall near the end of a long allow-list (Docker's names 350) is found
/// in a few jumps instead of hundreds of comparisons.
const BINARY_TREE_FROM: usize = 32;

/// Syscalls the init needs, after its filter is in place, to hand the notify
/// descriptor to the runtime: if they waited for the agent, which only gets the
/// descriptor through them, the container would hang.
const NEVER_NOTIFY: &[&str] = &["sendmsg", "write"];

/// What [`compile`] makes of a profile.
pub(super) struct Compiled {
    pub program: Vec<Instruction>,
    /// The kernel's `SECCOMP_FILTER_FLAG_*` bits, `NEW_LISTENER` included when a
    /// rule notifies.
    pub flags: u32,
    pub uses_notify: bool,
    /// Names skipped because the linked libseccomp cannot resolve them.
    pub skipped: Vec<String>,
}

pub(super) fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled, SpecError> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret(), "defaultErrnoRet")?;
    if default == ScmpAction::Notify {
        return Err(SpecError::new(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action: the syscalls that hand the notify descriptor to the runtime would wait for an agent that does not have it yet",
        ));
    }
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| library("linux.seccomp", e))?;

    for (i, arch) in seccomp.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let wanted = scmp_arch(*arch);
        if ctx.is_arch_present(wanted).unwrap_or(false) {
            continue;
        }
        ctx.add_arch(wanted)
            .map_err(|_| SpecError::new(field, format!("{arch} is not supported by libseccomp {}", version())))?;
    }

    let mut uses_notify = false;
    let mut skipped = Vec::new();
    let syscalls = seccomp.syscalls().as_deref().unwrap_or_default();
    for (i, rule) in syscalls.iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        if rule.names().is_empty() {
            return Err(SpecError::new(format!("{field}.names"), "must name at least one syscall"));
        }
        let act = action(rule.action(), rule.errno_ret(), &format!("syscalls[{i}].errnoRet"))?;
        let conditions = conditions(rule.args().as_deref().unwrap_or_default(), &field)?;

        let mut resolved = Vec::with_capacity(rule.names().len());
        for (j, name) in rule.names().iter().enumerate() {
            let name_field = format!("{field}.names[{j}]");
            if act == ScmpAction::Notify && NEVER_NOTIFY.contains(&name.as_str()) {
                return Err(SpecError::new(
                    name_field,
                    format!(
                        "SCMP_ACT_NOTIFY cannot apply to {name}: the init uses it to hand the notify descriptor to the runtime"
                    ),
                ));
            }
            match names::resolve(name) {
                Resolved::Known(syscall) => resolved.push((name_field, name, syscall)),
                Resolved::NewerThanLibrary => skipped.push(name.clone()),
                Resolved::Unknown => return Err(SpecError::new(name_field, format!("unknown syscall {name:?}"))),
            }
        }
        uses_notify |= act == ScmpAction::Notify && !resolved.is_empty();
        // libseccomp refuses a rule whose action is the default one; such a rule
        // changes nothing, so it is left out (its names were still checked above).
        if act == default {
            continue;
        }
        for (name_field, name, syscall) in resolved {
            add_rule(&mut ctx, act, syscall, &conditions)
                .map_err(|e| SpecError::new(name_field, format!("rule for {name}: libseccomp: {e}")))?;
        }
    }

    let flags = kernel_flags(seccomp.flags().as_deref().unwrap_or_default(), uses_notify)?;
    if syscalls.iter().map(|rule| rule.names().len()).sum::<usize>() > BINARY_TREE_FROM {
        // Only a speed-up; an older libseccomp without it builds a linear filter.
        let _ = ctx.set_ctl_optimize(2);
    }
    let program = export(&ctx)?;
    if program.len() > sys::MAX_INSTRUCTIONS {
        return Err(SpecError::new(
            "linux.seccomp",
            format!(
                "the compiled filter has {} instructions, more than the kernel's {}",
                program.len(),
                sys::MAX_INSTRUCTIONS
            ),
        ));
    }
    Ok(Compiled { program, flags, uses_notify, skipped })
}

/// A spec action as libseccomp's, with its errno. `errnoRet` belongs to
/// `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` only (runtime-spec: anything else MUST
/// fail); it defaults to `EPERM`.
fn action(action: LinuxSeccompAction, errno_ret: Option<u32>, errno_field: &str) -> Result<ScmpAction, SpecError> {
    let errno = || -> Result<u16, SpecError> {
        match errno_ret {
            None => Ok(libc::EPERM as u16),
            Some(e) => u16::try_from(e).map_err(|_| {
                SpecError::new(
                    format!("linux.seccomp.{errno_field}"),
                    format!("{e} does not fit the 16 bits a filter returns"),
                )
            }),
        }
    };
    let scmp = match action {
        LinuxSeccompAction::ScmpActErrno => return Ok(ScmpAction::Errno(i32::from(errno()?))),
        LinuxSeccompAction::ScmpActTrace => return Ok(ScmpAction::Trace(errno()?)),
        // SCMP_ACT_KILL is the historical name of KILL_THREAD, in the spec and libseccomp alike.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    };
    if let Some(e) = errno_ret {
        return Err(SpecError::new(
            format!("linux.seccomp.{errno_field}"),
            format!("{e} given with {action}, which returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"),
        ));
    }
    Ok(scmp)
}

/// The argument conditions of one rule.
struct Conditions {
    list: Vec<ScmpArgCompare>,
    /// Whether two conditions test the same argument.
    repeats_an_argument: bool,
}

fn conditions(args: &[oci_spec::runtime::LinuxSeccompArg], field: &str) -> Result<Conditions, SpecError> {
    let mut list = Vec::with_capacity(args.len());
    let mut seen = [false; MAX_ARGS];
    let mut repeats_an_argument = false;
    for (k, arg) in args.iter().enumerate() {
        if arg.index() >= MAX_ARGS {
            return Err(SpecError::new(
                format!("{field}.args[{k}].index"),
                format!("{} is out of range: a syscall has arguments 0 to {}", arg.index(), MAX_ARGS - 1),
            ));
        }
        let (op, datum) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
            // As in libseccomp: `value` is the mask, `valueTwo` what the masked
            // argument must equal.
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                (ScmpCompareOp::MaskedEqual(arg.value()), arg.value_two().unwrap_or(0))
            }
        };
        repeats_an_argument |= std::mem::replace(&mut seen[arg.index()], true);
        list.push(ScmpArgCompare::new(arg.index() as u32, op, datum));
    }
    Ok(Conditions { list, repeats_an_argument })
}

/// Adds one syscall's rule. Conditions on distinct arguments must all hold
/// (one rule). Two conditions on the same argument cannot be one libseccomp
/// rule; as runc does, each condition then becomes a rule of its own, so any of
/// them matching is enough.
fn add_rule(
    ctx: &mut ScmpFilterContext,
    act: ScmpAction,
    syscall: ScmpSyscall,
    conditions: &Conditions,
) -> Result<(), libseccomp::error::SeccompError> {
    if conditions.list.is_empty() {
        ctx.add_rule(act, syscall)?;
    } else if conditions.repeats_an_argument {
        for condition in &conditions.list {
            ctx.add_rule_conditional(act, syscall, std::slice::from_ref(condition))?;
        }
    } else {
        ctx.add_rule_conditional(act, syscall, &conditions.list)?;
    }
    Ok(())
}

/// The spec's flags as the kernel's bits, each checked against this kernel.
fn kernel_flags(flags: &[LinuxSeccompFilterFlag], uses_notify: bool) -> Result<u32, SpecError> {
    let mut bits = if uses_notify { sys::FLAG_NEW_LISTENER } else { 0 };
    for (i, flag) in flags.iter().enumerate() {
        let bit = match flag {
            // TSYNC and a listener together need TSYNC_ESRCH (Linux 5.7): the
            // return value cannot be both a thread id and a descriptor.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync if uses_notify => sys::FLAG_TSYNC | sys::FLAG_TSYNC_ESRCH,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => sys::FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => sys::FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => sys::FLAG_SPEC_ALLOW,
            // It only changes how a notifying syscall waits; the kernel refuses it
            // on a filter without a listener, so without SCMP_ACT_NOTIFY it is moot.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if uses_notify => sys::FLAG_WAIT_KILLABLE_RECV,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => continue,
        };
        let probe = if bit == sys::FLAG_WAIT_KILLABLE_RECV { bit | sys::FLAG_NEW_LISTENER } else { bit };
        if !sys::filter_flags_supported(probe) {
            return Err(SpecError::new(
                format!("linux.seccomp.flags[{i}]"),
                format!("{flag} is not supported by this kernel"),
            ));
        }
        bits |= bit;
    }
    Ok(bits)
}

/// libseccomp's program, as the kernel will receive it.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<Instruction>, SpecError> {
    let err = |what: &str, e: &dyn std::fmt::Display| SpecError::new("linux.seccomp", format!("{what}: {e}"));
    let fd = nix::sys::memfd::memfd_create(c"amphi-seccomp", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(|e| err("memfd_create", &e))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file).map_err(|e| err("libseccomp: export", &e))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_end(&mut bytes)).map_err(|e| err("read filter", &e))?;
    if bytes.len() % std::mem::size_of::<Instruction>() != 0 {
        return Err(err("libseccomp: export", &format!("{} bytes is not a whole number of instructions", bytes.len())));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Instruction {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn library(field: &str, e: libseccomp::error::SeccompError) -> SpecError {
    SpecError::new(field, format!("libseccomp: {e}"))
}

/// The linked libseccomp's version, for messages.
pub(super) fn version() -> String {
    ScmpVersion::current().map(|v| v.to_string()).unwrap_or_else(|_| "(unknown version)".into())
}
