//! Which container a cgroup directory belongs to, written on the directory
//! itself.
//!
//! The state record under `--root` names the container's cgroup, but whoever can
//! write `--root` can rewrite the record, so the record alone cannot tell amphi
//! which cgroup is the container's. [`super::Cgroup::create`] therefore marks the
//! container's directory in every hierarchy with an extended attribute,
//! `trusted.amphi.container`, whose value says whether amphi made the directory
//! or adopted an empty one that existed, and for which container (its state
//! directory): `created /run/amphi/abc`. Setting or even seeing a `trusted.`
//! attribute takes `CAP_SYS_ADMIN`, so a writer of `--root` without it cannot
//! forge or copy a mark, and a directory's mark names one container only.
//!
//! An amphi without `CAP_SYS_ADMIN` (rootless, in a delegated cgroup v2) uses
//! `user.amphi.container`, which only the directory's owner may set: someone who
//! could forge it owns that cgroup and its processes already. A kernel that keeps
//! no attributes on cgroupfs answers `EOPNOTSUPP`; the mark is then
//! [`Mark::Unsupported`] and callers fall back to what the record and the
//! container's config say.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use super::{Cgroup, CgroupError, Layout, collect_pids, hierarchy, proc_dir};
use crate::sys::xattr;

const TRUSTED: &str = "trusted.amphi.container";
const USER: &str = "user.amphi.container";

/// How a directory came to be the container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// amphi made it for the container.
    Created,
    /// It existed, empty, and the container was placed in it.
    Adopted,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Adopted => "adopted",
        }
    }
}

/// What a directory's mark says about one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The directory is this container's.
    Ours(Kind),
    /// No mark, another container's mark, or no directory at all.
    NotOurs,
    /// The kernel keeps no attributes on this hierarchy.
    Unsupported,
}

/// Marks `dir` as `owner`'s. A kernel that keeps no attributes there is not an
/// error: the mark is then [`Mark::Unsupported`] for every reader.
pub fn set(dir: &Path, kind: Kind, owner: &str) -> Result<(), CgroupError> {
    let value = format!("{} {owner}", kind.word());
    let result = match xattr::set(dir, TRUSTED, value.as_bytes()) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => xattr::set(dir, USER, value.as_bytes()),
        other => other,
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if unsupported(&e) => Ok(()),
        Err(source) => Err(CgroupError::Io { op: "mark", file: dir.to_owned(), source }),
    }
}

/// What `dir`'s mark says about `owner`.
pub fn read(dir: &Path, owner: &str) -> Mark {
    let mut unsupported_everywhere = true;
    for name in [TRUSTED, USER] {
        match xattr::get(dir, name) {
            Ok(value) => {
                return match parse(&value, owner) {
                    Some(kind) => Mark::Ours(kind),
                    None => Mark::NotOurs,
                };
            }
            Err(e) if unsupported(&e) => {}
            Err(_) => unsupported_everywhere = false,
        }
    }
    if unsupported_everywhere { Mark::Unsupported } else { Mark::NotOurs }
}

/// Removes `owner`'s mark from `dir` (a directory amphi adopted and leaves
/// behind); another container's mark is left alone.
pub fn clear(dir: &Path, owner: &str) {
    for name in [TRUSTED, USER] {
        if xattr::get(dir, name).is_ok_and(|value| parse(&value, owner).is_some()) {
            let _ = xattr::remove(dir, name);
        }
    }
}

/// Where a cgroup says whose it is and which processes are in it: its
/// directory in the cgroup2 tree where one is mounted, else in the v1 hierarchy
/// whose processes amphi lists (freezer). Found from the layout alone where
/// cgroup2 is mounted, without reading the mount table, so that checking a
/// container's init on every command costs a few syscalls.
#[derive(Debug)]
pub struct Anchor {
    /// The cgroup path, clean.
    path: PathBuf,
    dir: PathBuf,
    /// The v1 hierarchy's controllers, when there is no cgroup2.
    v1: Option<Vec<String>>,
}

impl Anchor {
    /// The anchor of the cgroup at `path`; the root cgroup is refused.
    pub fn of(path: &Path) -> Result<Self, CgroupError> {
        let clean = super::path::clean(path);
        let relative = clean.strip_prefix("/").unwrap_or(&clean).to_owned();
        let unified = match super::layout()? {
            Layout::V2 => Path::new(hierarchy::CGROUP_ROOT).to_owned(),
            Layout::Hybrid => hierarchy::hybrid_unified(),
            Layout::V1 => return Ok(Cgroup::open(path)?.anchor()),
        };
        if relative.as_os_str().is_empty() {
            return Err(CgroupError::BadPath { path: path.to_owned(), reason: "names the root cgroup" });
        }
        Ok(Self { dir: unified.join(relative), path: clean, v1: None })
    }

    /// The cgroup path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the directory's mark says about `owner`.
    pub fn mark_of(&self, owner: &str) -> Mark {
        read(&self.dir, owner)
    }

    /// Whether process `pid` is in this cgroup or a cgroup below it, as the
    /// kernel says (`/proc/<pid>/cgroup`, in this anchor's hierarchy).
    pub fn holds(&self, pid: Pid) -> Result<bool, CgroupError> {
        let file = proc_dir(pid).join("cgroup");
        let text = fs::read_to_string(&file).map_err(CgroupError::io("read", &file))?;
        let mut mounted: Vec<&str> = self.v1.iter().flatten().map(String::as_str).collect();
        mounted.sort_unstable();
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
                continue;
            };
            let this_one = match &self.v1 {
                None => id == "0" && controllers.is_empty(),
                Some(_) => {
                    let mut listed: Vec<&str> = controllers.split(',').collect();
                    listed.sort_unstable();
                    listed == mounted
                }
            };
            if this_one {
                return Ok(Path::new(path).starts_with(&self.path));
            }
        }
        Ok(false)
    }
}

impl Cgroup {
    /// The cgroup at `path`, belonging to `owner` (the container's state
    /// directory): a hierarchy counts as made by amphi ([`Cgroup::remove`]
    /// removes its directory) only where the directory's mark says `owner`'s
    /// create made it, and, when `recorded` is given, the record lists it too.
    /// Where the kernel keeps no marks, the record alone says.
    pub fn open_owned(path: &Path, owner: &str, recorded: Option<&[String]>) -> Result<Self, CgroupError> {
        let mut cgroup = Self::open(path)?;
        let listed = |name: &str| recorded.is_some_and(|r| r.iter().any(|n| n == name));
        cgroup.created = cgroup
            .named_dirs()
            .filter(|(name, dir)| match read(dir, owner) {
                Mark::Ours(Kind::Created) => recorded.is_none() || listed(name),
                Mark::Unsupported => listed(name) && dir.exists(),
                Mark::Ours(Kind::Adopted) | Mark::NotOurs => false,
            })
            .map(|(name, _)| name)
            .collect();
        cgroup.owner = Some(owner.to_owned());
        Ok(cgroup)
    }

    /// The hierarchies in which amphi made the cgroup's directory, by name: a v1
    /// hierarchy's controllers (`cpu,cpuacct`, `name=systemd`), or `unified`.
    pub fn created(&self) -> &[String] {
        &self.created
    }

    /// Whether amphi made the directory that lists the cgroup's processes (what
    /// [`Cgroup::signal_all`] acts on).
    pub fn procs_created(&self) -> bool {
        self.made_dir(&self.procs_dir())
    }

    /// Whether the cgroup's directory exists in any hierarchy.
    pub fn exists(&self) -> bool {
        self.dirs().any(|d| d.exists())
    }

    /// What the mark of the cgroup's directory says about `owner`, in the
    /// hierarchy [`Cgroup::holds`] reads.
    pub fn mark_of(&self, owner: &str) -> Mark {
        self.anchor().mark_of(owner)
    }

    /// Whether process `pid` is in this cgroup or a cgroup below it
    /// ([`Anchor::holds`]).
    #[cfg(test)]
    pub fn holds(&self, pid: Pid) -> Result<bool, CgroupError> {
        self.anchor().holds(pid)
    }

    /// Whether amphi made the directory of hierarchy `name`.
    pub(super) fn made(&self, name: &str) -> bool {
        self.created.iter().any(|n| n == name)
    }

    /// Whether `dir` is one of the cgroup's directories that amphi made.
    pub(super) fn made_dir(&self, dir: &Path) -> bool {
        self.named_dirs().any(|(name, d)| d == dir && self.made(&name))
    }

    /// The cgroup's [`Anchor`].
    pub(super) fn anchor(&self) -> Anchor {
        let (dir, v1) = match &self.hierarchies.unified {
            Some(unified) => (unified.join(self.relative()), None),
            None => {
                let h = self.hierarchies.v1_with("freezer").or(self.hierarchies.v1.first());
                (self.procs_dir(), h.map(|h| h.subsystems.clone()))
            }
        };
        Anchor { path: self.path.clone(), dir, v1 }
    }

    /// Refuses an existing directory `dir` (not `new`) of hierarchy `name` that
    /// holds a process, itself or in a cgroup below it.
    pub(super) fn check_empty(&self, dir: &Path, new: bool, name: &str) -> Result<(), CgroupError> {
        if new {
            return Ok(());
        }
        let mut pids = Vec::new();
        collect_pids(dir, &mut pids)?;
        if pids.is_empty() {
            return Ok(());
        }
        Err(CgroupError::NotEmpty { cgroup: self.path.clone(), hierarchy: name.to_owned() })
    }
}

fn parse(value: &[u8], owner: &str) -> Option<Kind> {
    let text = std::str::from_utf8(value).ok()?;
    let (word, named) = text.split_once(' ')?;
    if named != owner {
        return None;
    }
    [Kind::Created, Kind::Adopted].into_iter().find(|k| k.word() == word)
}

fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::hierarchy::UNIFIED;
    use crate::cgroups::tests::{OWNER, Sleeper, create, root_or_skip, test_path};

    const OTHER: &str = "/run/amphi-test/other";

    /// A hierarchy other than the one whose processes amphi lists: where systemd
    /// on a v1 host lays out a service that has no freezer cgroup. On a v2-only
    /// host, the one hierarchy there is.
    fn side_hierarchy(cgroup: &Cgroup) -> (String, PathBuf) {
        match cgroup.hierarchies.v1_with("memory") {
            Some(h) => (h.name(), h.mount.join(cgroup.relative())),
            None => (UNIFIED.to_owned(), cgroup.anchor().dir),
        }
    }

    /// A cgroup directory the test made by hand (and its parent), with the
    /// process it put there, removed however the test ends.
    struct HandMade {
        dir: PathBuf,
        sleeper: Option<Sleeper>,
    }

    impl HandMade {
        fn new(dir: PathBuf, populated: bool) -> Self {
            fs::create_dir_all(&dir).unwrap();
            let made = Self { dir, sleeper: populated.then(Sleeper::spawn) };
            if let Some(sleeper) = &made.sleeper {
                fs::write(made.dir.join("cgroup.procs"), sleeper.pid().to_string()).unwrap();
            }
            made
        }
    }

    impl Drop for HandMade {
        fn drop(&mut self) {
            drop(self.sleeper.take());
            let _ = fs::remove_dir(&self.dir);
            let _ = fs::remove_dir(self.dir.parent().unwrap());
        }
    }

    #[test]
    fn a_process_in_one_hierarchy_keeps_the_cgroup_from_being_used() {
        if !root_or_skip("a_process_in_one_hierarchy_keeps_the_cgroup_from_being_used") {
            return;
        }
        let path = test_path("busy");
        let probe = Cgroup::open(&path).unwrap();
        let (name, dir) = side_hierarchy(&probe);
        let busy = HandMade::new(dir.clone(), true);
        let err = Cgroup::create(&path, None, OWNER).unwrap_err();
        let want = format!("linux.cgroupsPath {}: cgroup already holds processes ({name} hierarchy)", path.display());
        assert_eq!(err.to_string(), want);
        for other in probe.dirs().filter(|d| *d != dir) {
            assert!(!other.exists(), "{} is left behind", other.display());
            assert!(!other.parent().unwrap().exists(), "{} is left behind", other.parent().unwrap().display());
        }
        let sleeper = busy.sleeper.as_ref().unwrap().pid();
        let stat = crate::sys::proc::ProcStat::read(sleeper).unwrap();
        assert!(!stat.is_exited(), "the process in {} was killed", dir.display());
        assert!(!matches!(read(&dir, OWNER), Mark::Ours(_)), "{} was marked", dir.display());
    }

    #[test]
    fn an_empty_cgroup_that_existed_is_used_and_left() {
        if !root_or_skip("an_empty_cgroup_that_existed_is_used_and_left") {
            return;
        }
        let path = test_path("adopted");
        let (name, dir) = side_hierarchy(&Cgroup::open(&path).unwrap());
        let _existing = HandMade::new(dir.clone(), false);
        let cgroup = create(&path, None);
        assert!(!cgroup.created().contains(&name), "{name} counted as made: {:?}", cgroup.created());
        assert_eq!(cgroup.created().len(), cgroup.dirs().count() - 1);
        let marked = read(&dir, OWNER);
        assert!(matches!(marked, Mark::Ours(Kind::Adopted) | Mark::Unsupported), "{marked:?}");
        cgroup.remove().unwrap();
        assert!(dir.is_dir(), "{} was removed", dir.display());
        assert!(!matches!(read(&dir, OWNER), Mark::Ours(_)), "the mark stayed on {}", dir.display());
        for other in cgroup.dirs().filter(|d| *d != dir) {
            assert!(!other.exists(), "{} is left behind", other.display());
        }
    }

    #[test]
    fn the_mark_not_the_record_says_what_amphi_made() {
        if !root_or_skip("the_mark_not_the_record_says_what_amphi_made") {
            return;
        }
        let cgroup = create(&test_path("marks"), None);
        let all: Vec<String> = cgroup.named_dirs().map(|(name, _)| name).collect();
        assert_eq!(cgroup.created(), all);
        if cgroup.mark_of(OWNER) == Mark::Unsupported {
            return; // No attributes on this kernel's cgroupfs: the record alone says.
        }
        assert_eq!(cgroup.mark_of(OWNER), Mark::Ours(Kind::Created));
        assert_eq!(cgroup.mark_of(OTHER), Mark::NotOurs);
        // Another container's record, listing every hierarchy, makes nothing removable.
        let other = Cgroup::open_owned(cgroup.path(), OTHER, Some(&all)).unwrap();
        assert!(other.created().is_empty(), "{:?}", other.created());
        other.remove().unwrap();
        assert!(cgroup.dirs().all(|d| d.is_dir()), "another container's remove took a directory");
        // A record that lists nothing is believed; no record, the marks say.
        assert!(Cgroup::open_owned(cgroup.path(), OWNER, Some(&[])).unwrap().created().is_empty());
        assert_eq!(Cgroup::open_owned(cgroup.path(), OWNER, None).unwrap().created(), all);

        let mut child = Sleeper::spawn();
        cgroup.add_process(child.pid()).unwrap();
        assert!(cgroup.holds(child.pid()).unwrap());
        assert!(!cgroup.holds(nix::unistd::getpid()).unwrap());
        let own = Cgroup::open_owned(cgroup.path(), OWNER, Some(&all)).unwrap();
        assert_eq!(own.created(), all);
        own.remove().unwrap();
        assert_eq!(child.wait_signal(), Some(libc::SIGKILL));
        assert!(cgroup.dirs().all(|d| !d.exists()));
    }

    #[test]
    fn a_mark_names_one_owner_and_how() {
        assert_eq!(parse(b"created /run/amphi/a", "/run/amphi/a"), Some(Kind::Created));
        assert_eq!(parse(b"adopted /run/amphi/a", "/run/amphi/a"), Some(Kind::Adopted));
        assert_eq!(parse(b"created /run/amphi/a", "/run/amphi/b"), None);
        assert_eq!(parse(b"created /run/amphi/a b", "/run/amphi/a"), None);
        assert_eq!(parse(b"made /run/amphi/a", "/run/amphi/a"), None);
        assert_eq!(parse(b"", "/run/amphi/a"), None);
    }
}
