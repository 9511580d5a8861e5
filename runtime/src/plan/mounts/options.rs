//! The `options` of one `mounts[]` entry, sorted into what carries them out.
//!
//! An option is one of: a `mount(2)` flag that is set or cleared (`ro`, `rw`,
//! `nosuid`, `suid`, ...), `bind`/`rbind`, a propagation type (`rprivate`, ...),
//! a recursive attribute applied with `mount_setattr(2)` and `AT_RECURSIVE`
//! (`rro`, `rnosuid`, ...), or filesystem data: any option amphi does not know
//! (`mode=755`, `size=64k`, `nr_inodes=1k`, `newinstance`), kept in order and
//! handed to the filesystem as it is, as `mount(8)`, runc and crun do. Whether
//! the filesystem takes it is the filesystem's to say when it is mounted. The
//! last word on one flag wins (`ro,rw` is `rw`).
//!
//! Only a malformed option is refused here: an empty one, or an option amphi
//! knows given a value (`ro=1`, `nosuid=x`, `rbind=1`): such an option was
//! never meant for the filesystem.

use nix::mount::MsFlags;

use crate::sys::mount::MountAttr;

/// How a bind mount copies its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// `bind`: the source mount only.
    Single,
    /// `rbind`: the source with every mount below it.
    Recursive,
}

/// The parsed options of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set (never `MS_BIND`/`MS_REC`: see `bind`).
    pub flags: MsFlags,
    /// Flags the options explicitly clear (`rw`, `suid`, `dev`, ...).
    pub cleared: MsFlags,
    pub bind: Option<Bind>,
    /// Propagation types in the order given, each with `MS_REC` for the `r` forms.
    pub propagation: Vec<MsFlags>,
    /// `rro`, `rnosuid`, ...: attributes applied to the whole tree.
    pub recursive: MountAttr,
    /// Everything else, for the filesystem.
    pub data: Vec<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            bind: None,
            propagation: Vec::new(),
            recursive: MountAttr::default(),
            data: Vec::new(),
        }
    }
}

/// Options that name a runtime feature amphi does not implement; passing them to
/// the filesystem as data would fail in a confusing way, so they are refused.
const UNSUPPORTED: &[&str] = &["tmpcopyup", "idmap", "ridmap", "remount", "copy-symlink", "src-nofollow"];

impl MountOptions {
    /// Parses `options`; the error names the option that cannot be used.
    pub fn parse(options: &[String]) -> Result<Self, String> {
        let mut out = Self::default();
        for (n, option) in options.iter().enumerate() {
            let option = option.as_str();
            if option.is_empty() {
                return Err(format!("option {n} is empty"));
            }
            if let Some((key, _)) = option.split_once('=')
                && is_known(key)
            {
                return Err(format!("option {option:?}: {key:?} takes no value"));
            }
            if let Some((flag, clear)) = flag(option) {
                if clear {
                    out.flags.remove(flag);
                    out.cleared.insert(flag);
                } else {
                    out.flags.insert(flag);
                    out.cleared.remove(flag);
                }
            } else if let Some((attr, clear)) = recursive_attr(option) {
                out.recursive = merge_attr(out.recursive, attr, clear);
            } else if let Some(propagation) = propagation(option) {
                out.propagation.push(propagation);
            } else {
                match option {
                    "bind" => out.bind = Some(out.bind.unwrap_or(Bind::Single)),
                    "rbind" => out.bind = Some(Bind::Recursive),
                    "defaults" => {}
                    o if UNSUPPORTED.contains(&o) => return Err(format!("option {o:?} is not supported")),
                    o => out.data.push(o.to_owned()),
                }
            }
        }
        Ok(out)
    }

    /// What a bind mount's options change on the new mount, as `mount_setattr`
    /// attributes: each flag set or cleared by an option, nothing else. This is
    /// how `mount(8)` treats a remount, and it keeps whatever the source had (and
    /// the kernel may have locked) that the options do not mention.
    pub fn bind_attr(&self) -> MountAttr {
        attr_from_flags(self.flags, self.cleared)
    }
}

/// Whether `name` is an option amphi itself acts on (never filesystem data).
fn is_known(name: &str) -> bool {
    flag(name).is_some()
        || recursive_attr(name).is_some()
        || propagation(name).is_some()
        || matches!(name, "bind" | "rbind" | "defaults")
        || UNSUPPORTED.contains(&name)
}

/// `MOUNT_ATTR_*` bits for the per-mount `MS_*` flags in `set` and `cleared`.
pub fn attr_from_flags(set: MsFlags, cleared: MsFlags) -> MountAttr {
    let mut attr = MountAttr::default();
    for (ms, ma) in [
        (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
        (nosymfollow(), libc::MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if set.contains(ms) {
            attr.set |= ma;
        } else if cleared.contains(ms) {
            attr.clear |= ma;
        }
    }
    // The access-time mode is one setting of three bits; changing it means
    // clearing all of them (mount_setattr(2) insists). Clearing `noatime`
    // (`atime`) falls back to the kernel's default, relatime.
    let atime = if set.contains(MsFlags::MS_NOATIME) {
        Some(libc::MOUNT_ATTR_NOATIME)
    } else if set.contains(MsFlags::MS_STRICTATIME) {
        Some(libc::MOUNT_ATTR_STRICTATIME)
    } else if set.contains(MsFlags::MS_RELATIME) || cleared.contains(MsFlags::MS_NOATIME) {
        Some(libc::MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    if let Some(mode) = atime {
        attr.set |= mode;
        attr.clear |= libc::MOUNT_ATTR__ATIME;
    }
    attr
}

/// The superblock flags among `flags`, as the names `fsconfig(2)` takes them
/// (`FSCONFIG_SET_FLAG`): what `mount(2)` would give a new filesystem's
/// superblock. The per-mount flags are [`attr_from_flags`]'s; `iversion` and
/// `silent` have no such name (the filesystem decides on i_version itself, and
/// `silent` only quiets the kernel's log), so a new filesystem ignores them.
pub fn superblock_flags(flags: MsFlags) -> impl Iterator<Item = &'static str> {
    [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_MANDLOCK, "mand"),
        (MsFlags::MS_LAZYTIME, "lazytime"),
        (MsFlags::MS_POSIXACL, "posixacl"),
    ]
    .into_iter()
    .filter(move |(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name)
}

/// `MS_NOSYMFOLLOW` (Linux 5.10), which `nix` does not name.
pub fn nosymfollow() -> MsFlags {
    MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)
}

/// A `mount(2)` flag option: the flag and whether the option clears it.
fn flag(option: &str) -> Option<(MsFlags, bool)> {
    use MsFlags as F;
    Some(match option {
        "ro" => (F::MS_RDONLY, false),
        "rw" => (F::MS_RDONLY, true),
        "nosuid" => (F::MS_NOSUID, false),
        "suid" => (F::MS_NOSUID, true),
        "nodev" => (F::MS_NODEV, false),
        "dev" => (F::MS_NODEV, true),
        "noexec" => (F::MS_NOEXEC, false),
        "exec" => (F::MS_NOEXEC, true),
        "sync" => (F::MS_SYNCHRONOUS, false),
        "async" => (F::MS_SYNCHRONOUS, true),
        "dirsync" => (F::MS_DIRSYNC, false),
        "mand" => (F::MS_MANDLOCK, false),
        "nomand" => (F::MS_MANDLOCK, true),
        "noatime" => (F::MS_NOATIME, false),
        "atime" => (F::MS_NOATIME, true),
        "nodiratime" => (F::MS_NODIRATIME, false),
        "diratime" => (F::MS_NODIRATIME, true),
        "relatime" => (F::MS_RELATIME, false),
        "norelatime" => (F::MS_RELATIME, true),
        "strictatime" => (F::MS_STRICTATIME, false),
        "nostrictatime" => (F::MS_STRICTATIME, true),
        "nosymfollow" => (nosymfollow(), false),
        "symfollow" => (nosymfollow(), true),
        "lazytime" => (F::MS_LAZYTIME, false),
        "nolazytime" => (F::MS_LAZYTIME, true),
        "iversion" => (F::MS_I_VERSION, false),
        "noiversion" => (F::MS_I_VERSION, true),
        "acl" => (F::MS_POSIXACL, false),
        "noacl" => (F::MS_POSIXACL, true),
        "silent" => (F::MS_SILENT, false),
        "loud" => (F::MS_SILENT, true),
        _ => return None,
    })
}

/// A recursive attribute option: the `MOUNT_ATTR_*` value and whether the option
/// clears it.
fn recursive_attr(option: &str) -> Option<(u64, bool)> {
    Some(match option {
        "rro" => (libc::MOUNT_ATTR_RDONLY, false),
        "rrw" => (libc::MOUNT_ATTR_RDONLY, true),
        "rnosuid" => (libc::MOUNT_ATTR_NOSUID, false),
        "rsuid" => (libc::MOUNT_ATTR_NOSUID, true),
        "rnodev" => (libc::MOUNT_ATTR_NODEV, false),
        "rdev" => (libc::MOUNT_ATTR_NODEV, true),
        "rnoexec" => (libc::MOUNT_ATTR_NOEXEC, false),
        "rexec" => (libc::MOUNT_ATTR_NOEXEC, true),
        "rnodiratime" => (libc::MOUNT_ATTR_NODIRATIME, false),
        "rdiratime" => (libc::MOUNT_ATTR_NODIRATIME, true),
        "rnoatime" => (libc::MOUNT_ATTR_NOATIME, false),
        "ratime" => (libc::MOUNT_ATTR_NOATIME, true),
        "rrelatime" => (libc::MOUNT_ATTR_RELATIME, false),
        "rnorelatime" => (libc::MOUNT_ATTR_RELATIME, true),
        "rstrictatime" => (libc::MOUNT_ATTR_STRICTATIME, false),
        "rnostrictatime" => (libc::MOUNT_ATTR_STRICTATIME, true),
        "rnosymfollow" => (libc::MOUNT_ATTR_NOSYMFOLLOW, false),
        "rsymfollow" => (libc::MOUNT_ATTR_NOSYMFOLLOW, true),
        _ => return None,
    })
}

/// Adds one recursive option to `attr`. The access-time values are a mode, not
/// bits: `rrelatime` is 0, so any atime option resets the whole mode; clearing one
/// (`ratime`, `rnostrictatime`) goes back to relatime.
fn merge_attr(mut attr: MountAttr, value: u64, clear: bool) -> MountAttr {
    let is_atime = value & libc::MOUNT_ATTR__ATIME == value;
    if is_atime {
        attr.set &= !libc::MOUNT_ATTR__ATIME;
        attr.clear |= libc::MOUNT_ATTR__ATIME;
        if !clear {
            attr.set |= value;
        }
    } else if clear {
        attr.set &= !value;
        attr.clear |= value;
    } else {
        attr.clear &= !value;
        attr.set |= value;
    }
    attr
}

/// The propagation types, by name, as the flags `mount(2)` takes: the four of
/// one mount, then the four of a tree (`r`, with `MS_REC`).
pub const PROPAGATIONS: [(&str, MsFlags); 8] = [
    ("shared", MsFlags::MS_SHARED),
    ("slave", MsFlags::MS_SLAVE),
    ("private", MsFlags::MS_PRIVATE),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// A propagation option, as the flags `mount(2)` takes.
pub fn propagation(option: &str) -> Option<MsFlags> {
    PROPAGATIONS.iter().find(|(name, _)| *name == option).map(|(_, flags)| *flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &[&str]) -> MountOptions {
        MountOptions::parse(&options.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_and_data_are_split() {
        let o = parse(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV);
        assert_eq!(o.data, ["mode=755", "size=65536k"]);
        assert_eq!(o.bind, None);
        assert!(o.cleared.is_empty());
    }

    #[test]
    fn last_word_on_a_flag_wins() {
        let o = parse(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        let o = parse(&["rw", "ro"]);
        assert!(o.flags.contains(MsFlags::MS_RDONLY));
        assert!(!o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn every_documented_flag_is_known() {
        for name in [
            "ro",
            "rw",
            "nosuid",
            "suid",
            "nodev",
            "dev",
            "noexec",
            "exec",
            "sync",
            "async",
            "dirsync",
            "mand",
            "nomand",
            "atime",
            "noatime",
            "diratime",
            "nodiratime",
            "relatime",
            "norelatime",
            "strictatime",
            "nostrictatime",
            "nosymfollow",
            "symfollow",
        ] {
            let o = parse(&[name]);
            assert!(o.data.is_empty(), "{name} went to data");
            assert!(!(o.flags | o.cleared).is_empty(), "{name} changed nothing");
        }
        assert_eq!(parse(&["nosymfollow"]).flags.bits(), libc::MS_NOSYMFOLLOW);
    }

    #[test]
    fn bind_and_rbind() {
        assert_eq!(parse(&["bind"]).bind, Some(Bind::Single));
        assert_eq!(parse(&["rbind"]).bind, Some(Bind::Recursive));
        assert_eq!(parse(&["rbind", "bind"]).bind, Some(Bind::Recursive));
    }

    #[test]
    fn propagation_keeps_order_and_recursion() {
        let o = parse(&["rprivate", "shared", "runbindable", "slave"]);
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                MsFlags::MS_SHARED,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
                MsFlags::MS_SLAVE
            ]
        );
        assert!(o.flags.is_empty() && o.data.is_empty());
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rro", "rnosuid", "rnodev", "rnoexec", "rnosymfollow"]);
        assert_eq!(
            o.recursive.set,
            libc::MOUNT_ATTR_RDONLY
                | libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV
                | libc::MOUNT_ATTR_NOEXEC
                | libc::MOUNT_ATTR_NOSYMFOLLOW
        );
        assert_eq!(o.recursive.clear, 0);
        assert!(o.flags.is_empty(), "recursive options are not mount(2) flags");

        let o = parse(&["rro", "rrw", "rexec", "rsuid", "rdev", "rsymfollow"]);
        assert_eq!(o.recursive.set, 0);
        assert_eq!(
            o.recursive.clear,
            libc::MOUNT_ATTR_RDONLY
                | libc::MOUNT_ATTR_NOEXEC
                | libc::MOUNT_ATTR_NOSUID
                | libc::MOUNT_ATTR_NODEV
                | libc::MOUNT_ATTR_NOSYMFOLLOW
        );
    }

    #[test]
    fn recursive_atime_is_a_mode() {
        let o = parse(&["rnoatime"]);
        assert_eq!(o.recursive.set, libc::MOUNT_ATTR_NOATIME);
        assert_eq!(o.recursive.clear, libc::MOUNT_ATTR__ATIME);
        let o = parse(&["rnoatime", "rstrictatime"]);
        assert_eq!(o.recursive.set, libc::MOUNT_ATTR_STRICTATIME);
        let o = parse(&["rnoatime", "ratime"]);
        assert_eq!((o.recursive.set, o.recursive.clear), (0, libc::MOUNT_ATTR__ATIME));
        let o = parse(&["rnodiratime"]);
        assert_eq!((o.recursive.set, o.recursive.clear), (libc::MOUNT_ATTR_NODIRATIME, 0));
    }

    #[test]
    fn bind_attr_sets_and_clears_only_what_was_named() {
        let o = parse(&["rbind", "ro", "nosuid", "dev"]);
        let a = o.bind_attr();
        assert_eq!(a.set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
        assert_eq!(a.clear, libc::MOUNT_ATTR_NODEV);
        assert_eq!(a.propagation, 0);
        assert!(parse(&["rbind"]).bind_attr().is_empty());
        assert_eq!(parse(&["bind", "rw"]).bind_attr().clear, libc::MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn bind_attr_atime() {
        let a = parse(&["bind", "noatime"]).bind_attr();
        assert_eq!((a.set, a.clear), (libc::MOUNT_ATTR_NOATIME, libc::MOUNT_ATTR__ATIME));
        let a = parse(&["bind", "strictatime"]).bind_attr();
        assert_eq!((a.set, a.clear), (libc::MOUNT_ATTR_STRICTATIME, libc::MOUNT_ATTR__ATIME));
        let a = parse(&["bind", "atime"]).bind_attr();
        assert_eq!((a.set, a.clear), (libc::MOUNT_ATTR_RELATIME, libc::MOUNT_ATTR__ATIME));
        assert!(parse(&["bind", "norelatime"]).bind_attr().is_empty());
    }

    #[test]
    fn unsupported_runtime_options_are_named() {
        let err = MountOptions::parse(&["rbind".into(), "idmap".into()]).unwrap_err();
        assert!(err.contains("\"idmap\""), "{err}");
        assert!(MountOptions::parse(&["tmpcopyup".into()]).is_err());
    }

    #[test]
    fn unknown_options_are_filesystem_data_in_order() {
        let o = parse(&["nosuid", "nr_inodes=1k", "mode=755", "huge=never", "size=65536k", "uid=0", "gid=5", "noswap"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        assert_eq!(o.data, ["nr_inodes=1k", "mode=755", "huge=never", "size=65536k", "uid=0", "gid=5", "noswap"]);
        // A value may hold `=` and `,`-free text of any kind.
        assert_eq!(parse(&["context=system_u:object_r:tmp_t:s0"]).data, ["context=system_u:object_r:tmp_t:s0"]);
        assert_eq!(parse(&["lowerdir=/a:/b", "x=a=b"]).data, ["lowerdir=/a:/b", "x=a=b"]);
    }

    #[test]
    fn an_empty_option_is_malformed() {
        let err = MountOptions::parse(&["nosuid".into(), String::new()]).unwrap_err();
        assert_eq!(err, "option 1 is empty");
    }

    #[test]
    fn a_known_option_with_a_value_is_malformed() {
        for option in
            ["ro=1", "nosuid=x", "rw=", "noatime=yes", "rro=1", "rprivate=1", "rbind=1", "bind=x", "defaults=1"]
        {
            let err = MountOptions::parse(&[option.into()]).unwrap_err();
            let key = option.split_once('=').unwrap().0;
            assert_eq!(err, format!("option {option:?}: {key:?} takes no value"));
        }
        assert!(MountOptions::parse(&["idmap=1".into()]).is_err());
    }

    #[test]
    fn superblock_flags_are_named_as_fsconfig_takes_them() {
        let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_SYNCHRONOUS | MsFlags::MS_NOATIME;
        assert_eq!(superblock_flags(flags).collect::<Vec<_>>(), ["ro", "sync"]);
        assert_eq!(superblock_flags(parse(&["dirsync", "lazytime", "acl", "mand"]).flags).count(), 4);
        assert_eq!(superblock_flags(MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME).count(), 0);
    }

    #[test]
    fn defaults_is_nothing() {
        assert_eq!(parse(&["defaults"]), MountOptions::default());
    }
}
