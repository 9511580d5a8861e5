//! `linux.resources.devices` on cgroup v2: an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE`, compiled here from the rules and attached to the
//! container's cgroup2 directory.
//!
//! `libcgroups` can do this behind its `cgroupsv2_devices` feature, but that needs
//! libbpf (a C build, linked statically into every amphi binary) and raises
//! `RLIMIT_MEMLOCK` to 128 MiB first, which fails for a root without
//! `CAP_SYS_RESOURCE`; since Linux 5.11 a BPF program is charged to the memory
//! cgroup and needs no such limit. The program is a handful of instructions:
//!
//! ```text
//! r2 = ctx->access_type & 0xffff   device type: 1 block, 2 char
//! r3 = ctx->access_type >> 16      requested access: 1 mknod, 2 read, 4 write
//! r4 = ctx->major; r5 = ctx->minor
//! one block per rule, the spec's last rule first; a block whose conditions all
//! hold returns its verdict (1 allow, 0 deny), else jumps to the next block
//! return 0                         nothing matched: deny
//! ```
//!
//! So the rules read as in the spec: later rules override earlier ones, and a
//! device no rule names is denied (as runc and youki do on v2). An allow rule
//! matches a request whose every access it grants; a deny rule matches a request
//! that asks for any access it denies (the kernel's v1 semantics). The rules are
//! followed by the same defaults `libcgroups` appends on v1 (`/dev/null`, `zero`,
//! `full`, `tty`, `random`, `urandom`, `console`, ptys, `tun`, mknod of any
//! device), so a container gets the same devices on both versions.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::sys::bpf::{self, Insn};

const MKNOD: u32 = 1;
const READ: u32 = 2;
const WRITE: u32 = 4;
const ALL_ACCESS: u32 = MKNOD | READ | WRITE;
const BLOCK: u32 = 1;
const CHAR: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("rule {index}: access {access:?} may only hold r, w and m")]
    BadAccess { index: usize, access: String },
    #[error("rule {index}: device number {number} is out of range")]
    BadNumber { index: usize, number: i64 },
    #[error("load the eBPF device filter: {0}")]
    Load(io::Error),
    #[error("{op} {dir}: {source}")]
    Cgroup { op: &'static str, dir: PathBuf, source: io::Error },
}

/// One device rule, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// `BLOCK`, `CHAR`, or any.
    kind: Option<u32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: u32,
}

impl Rule {
    /// Whether the rule matches every request, making every rule before it moot.
    fn matches_everything(&self) -> bool {
        self.kind.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ALL_ACCESS
    }
}

/// Compiles `rules` (and the defaults) and attaches the program to the cgroup2
/// directory `dir`, replacing the device programs attached there before.
pub fn apply(dir: &Path, rules: Option<&[LinuxDeviceCgroup]>) -> Result<(), DeviceFilterError> {
    let mut decoded = Vec::new();
    for (index, rule) in rules.unwrap_or_default().iter().enumerate() {
        decoded.extend(decode(index, rule)?);
    }
    decoded.extend_from_slice(DEFAULTS);
    let program = compile(&decoded);
    let prog = bpf::load_cgroup_device_prog(&program, c"Apache-2.0").map_err(DeviceFilterError::Load)?;
    let cgroup_err = |op| move |source| DeviceFilterError::Cgroup { op, dir: dir.to_owned(), source };
    let cgroup = File::open(dir).map_err(cgroup_err("open"))?;
    let before = bpf::query_cgroup_device_progs(cgroup.as_fd()).map_err(cgroup_err("query device programs of"))?;
    bpf::attach_cgroup_device_prog(cgroup.as_fd(), prog.as_fd()).map_err(cgroup_err("attach device program to"))?;
    for id in before {
        let old = bpf::prog_fd_by_id(id).map_err(cgroup_err("find old device program of"))?;
        bpf::detach_cgroup_device_prog(cgroup.as_fd(), old.as_fd())
            .map_err(cgroup_err("detach old device program from"))?;
    }
    Ok(())
}

/// `rules` and the defaults as the lines v1 takes in `devices.allow` (`true`)
/// and `devices.deny` (`false`), in the spec's order: the kernel applies them
/// one at a time, so later rules override earlier ones there too.
pub fn v1_lines(rules: Option<&[LinuxDeviceCgroup]>) -> Result<Vec<(bool, String)>, DeviceFilterError> {
    let mut decoded = Vec::new();
    for (index, rule) in rules.unwrap_or_default().iter().enumerate() {
        decoded.extend(decode(index, rule)?);
    }
    decoded.extend_from_slice(DEFAULTS);
    Ok(decoded.iter().map(|rule| (rule.allow, rule.v1_text())).collect())
}

impl Rule {
    /// `TYPE MAJOR:MINOR ACCESS`, as v1's device files read it.
    fn v1_text(&self) -> String {
        let kind = match self.kind {
            None => 'a',
            Some(BLOCK) => 'b',
            Some(_) => 'c',
        };
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let access: String = [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| self.access & bit != 0)
            .map(|(_, letter)| *letter)
            .collect();
        format!("{kind} {}:{} {access}", number(self.major), number(self.minor))
    }
}

/// The rule at `index`, or `None` for a rule the device cgroup never sees (fifos).
fn decode(index: usize, rule: &LinuxDeviceCgroup) -> Result<Option<Rule>, DeviceFilterError> {
    let kind = match rule.typ().unwrap_or_default() {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(BLOCK),
        LinuxDeviceType::C | LinuxDeviceType::U => Some(CHAR),
        LinuxDeviceType::P => return Ok(None),
    };
    let number = |n: Option<i64>| match n {
        None | Some(-1) => Ok(None),
        // Device numbers are 12 (major) and 20 (minor) bits; the program compares
        // against 32-bit signed immediates.
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
        Some(number) => Err(DeviceFilterError::BadNumber { index, number }),
    };
    let text = rule.access().as_deref().unwrap_or("rwm");
    let mut access = 0;
    for letter in text.chars() {
        access |= match letter {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => return Err(DeviceFilterError::BadAccess { index, access: text.to_owned() }),
        };
    }
    if access == 0 {
        access = ALL_ACCESS;
    }
    Ok(Some(Rule { allow: rule.allow(), kind, major: number(rule.major())?, minor: number(rule.minor())?, access }))
}

/// What `libcgroups` appends to the rules on v1.
const DEFAULTS: &[Rule] = &[
    dev(CHAR, 1, 3), // /dev/null
    dev(CHAR, 1, 5), // /dev/zero
    dev(CHAR, 1, 7), // /dev/full
    dev(CHAR, 5, 0), // /dev/tty
    dev(CHAR, 1, 9), // /dev/urandom
    dev(CHAR, 1, 8), // /dev/random
    Rule { allow: true, kind: Some(CHAR), major: None, minor: None, access: MKNOD },
    Rule { allow: true, kind: Some(BLOCK), major: None, minor: None, access: MKNOD },
    dev(CHAR, 5, 1), // /dev/console
    Rule { allow: true, kind: Some(CHAR), major: Some(136), minor: None, access: ALL_ACCESS }, // ptys
    dev(CHAR, 5, 2), // /dev/ptmx
    dev(CHAR, 10, 200), // /dev/net/tun
];

const fn dev(kind: u32, major: u32, minor: u32) -> Rule {
    Rule { allow: true, kind: Some(kind), major: Some(major), minor: Some(minor), access: ALL_ACCESS }
}

// eBPF opcodes used by the program.
const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND_K: u8 = 0x57; // dst &= imm (64-bit)
const RSH_K: u8 = 0x77; // dst >>= imm
const MOV_K: u8 = 0xb7; // dst = imm
const MOV_X: u8 = 0xbf; // dst = src
const JNE_K: u8 = 0x55; // if dst != imm: pc += off
const JEQ_K: u8 = 0x15; // if dst == imm: pc += off
const JSET_K: u8 = 0x45; // if dst & imm: pc += off
const EXIT: u8 = 0x95;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

/// The program for `rules`, in the order of the spec (later rules win).
fn compile(rules: &[Rule]) -> Vec<Insn> {
    let mut program = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Conditions jump to the end of the block when they fail; the offset is
        // patched once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut skips = Vec::new();
        if let Some(kind) = rule.kind {
            skips.push(block.len());
            block.push(insn(JNE_K, 2, 0, 0, kind as i32));
        }
        if rule.access != ALL_ACCESS {
            if rule.allow {
                // Any requested access the rule does not grant: no match.
                skips.push(block.len());
                block.push(insn(JSET_K, 3, 0, 0, (!rule.access & ALL_ACCESS) as i32));
            } else {
                // No requested access the rule denies: no match.
                block.push(insn(MOV_X, 1, 3, 0, 0));
                block.push(insn(AND_K, 1, 0, 0, rule.access as i32));
                skips.push(block.len());
                block.push(insn(JEQ_K, 1, 0, 0, 0));
            }
        }
        if let Some(major) = rule.major {
            skips.push(block.len());
            block.push(insn(JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            skips.push(block.len());
            block.push(insn(JNE_K, 5, 0, 0, minor as i32));
        }
        block.push(insn(MOV_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let end = block.len();
        for at in skips {
            block[at].off = (end - at - 1) as i16;
        }
        program.extend(block);
        // Nothing after an unconditional verdict can run, and the verifier
        // refuses unreachable instructions.
        if rule.matches_everything() {
            return program;
        }
    }
    program.push(insn(MOV_K, 0, 0, 0, 0));
    program.push(insn(EXIT, 0, 0, 0, 0));
    program
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    use super::*;

    #[test]
    fn v1_lines_follow_the_spec_then_the_defaults() {
        let rules = vec![
            LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::B)
                .major(8)
                .access("wr")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default().allow(true).typ(LinuxDeviceType::P).build().unwrap(),
        ];
        let lines = v1_lines(Some(&rules)).unwrap();
        assert_eq!(lines[0], (false, "a *:* rwm".to_owned()));
        assert_eq!(lines[1], (true, "b 8:* rw".to_owned()), "fifos are not the device cgroup's");
        assert_eq!(lines[2], (true, "c 1:3 rwm".to_owned()));
        assert!(lines.contains(&(true, "c *:* m".to_owned())));
        assert!(lines.contains(&(true, "c 136:* rwm".to_owned())));
        assert_eq!(lines.len(), 2 + DEFAULTS.len());
        let bad = vec![LinuxDeviceCgroupBuilder::default().allow(true).access("rx").build().unwrap()];
        assert!(matches!(v1_lines(Some(&bad)), Err(DeviceFilterError::BadAccess { index: 0, .. })));
    }

    /// Runs `program` the way the kernel would for one request; only the
    /// instructions [`compile`] emits are known.
    fn run(program: &[Insn], kind: u32, major: u32, minor: u32, access: u32) -> bool {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = program[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as i64 as u64;
            pc += 1;
            let jump = match i.code {
                LDX_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                    false
                }
                AND_K => {
                    r[dst] &= imm;
                    false
                }
                RSH_K => {
                    r[dst] >>= imm;
                    false
                }
                MOV_K => {
                    r[dst] = imm;
                    false
                }
                MOV_X => {
                    r[dst] = r[src];
                    false
                }
                JNE_K => r[dst] != imm,
                JEQ_K => r[dst] == imm,
                JSET_K => r[dst] & imm != 0,
                EXIT => return r[0] == 1,
                code => panic!("unknown opcode {code:#x}"),
            };
            if jump {
                pc += i.off as usize;
            }
        }
    }

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default();
        b = b.allow(allow).typ(typ).access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    fn program_for(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
        let mut decoded: Vec<Rule> = rules.iter().enumerate().filter_map(|(i, r)| decode(i, r).unwrap()).collect();
        decoded.extend_from_slice(DEFAULTS);
        compile(&decoded)
    }

    #[test]
    fn deny_all_then_allow_one_device() {
        let program = program_for(&[
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(4), Some(64), "rw"),
        ]);
        assert!(run(&program, CHAR, 4, 64, READ | WRITE));
        assert!(!run(&program, CHAR, 4, 64, MKNOD | READ), "mknod was not granted");
        assert!(!run(&program, CHAR, 4, 65, READ));
        assert!(!run(&program, BLOCK, 4, 64, READ));
        assert!(!run(&program, BLOCK, 8, 0, READ | WRITE));
    }

    #[test]
    fn defaults_follow_the_rules() {
        let program = program_for(&[rule(false, LinuxDeviceType::A, None, None, "rwm")]);
        assert!(run(&program, CHAR, 1, 3, READ | WRITE), "/dev/null");
        assert!(run(&program, CHAR, 136, 7, READ | WRITE), "a pty");
        assert!(run(&program, BLOCK, 8, 0, MKNOD), "mknod of any block device");
        assert!(!run(&program, BLOCK, 8, 0, READ));
        assert!(!run(&program, CHAR, 10, 229, READ), "/dev/fuse is not a default");
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let program = program_for(&[
            rule(true, LinuxDeviceType::A, None, None, "rwm"),
            rule(false, LinuxDeviceType::B, Some(8), None, "w"),
        ]);
        assert!(run(&program, BLOCK, 8, 1, READ), "only writes are denied");
        assert!(!run(&program, BLOCK, 8, 1, WRITE));
        assert!(!run(&program, BLOCK, 8, 1, READ | WRITE), "a deny rule matches any overlap");
        assert!(run(&program, BLOCK, 9, 0, WRITE));
        assert!(run(&program, CHAR, 10, 229, READ | WRITE | MKNOD));
    }

    #[test]
    fn no_rules_means_defaults_only() {
        let program = program_for(&[]);
        assert!(run(&program, CHAR, 1, 5, READ));
        assert!(!run(&program, CHAR, 10, 229, READ));
    }

    #[test]
    fn nothing_follows_an_unconditional_rule() {
        let decoded = [Rule { allow: false, kind: None, major: None, minor: None, access: ALL_ACCESS }];
        let program = compile(&decoded);
        assert_eq!(program.len(), 6 + 2, "prologue and one verdict, no default block");
        assert!(!run(&program, CHAR, 1, 3, READ));
    }

    #[test]
    fn fifo_rules_are_ignored_and_bad_rules_named() {
        assert_eq!(decode(0, &rule(true, LinuxDeviceType::P, None, None, "rwm")).unwrap(), None);
        let err = decode(3, &rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwx")).unwrap_err();
        assert!(err.to_string().contains("rule 3: access \"rwx\""), "{err}");
        let err = decode(1, &rule(true, LinuxDeviceType::C, Some(1 << 40), None, "r")).unwrap_err();
        assert!(err.to_string().contains("rule 1"), "{err}");
    }
}
