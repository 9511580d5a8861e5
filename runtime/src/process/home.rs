//! `HOME` for a process whose `process.env` gives none.
//!
//! Like runc, a process started without `HOME` (or with an empty one) gets the
//! home directory of its uid (`process.user.uid`) from the container's
//! `/etc/passwd`, and `/` when there is no such file, no entry for the uid, or
//! the entry's home is empty. A `HOME` with a value is kept as it is. Docker
//! relies on this: it passes no `HOME` of its own.
//!
//! The file is the container's, never the host's: it is opened inside the
//! rootfs through its verified descriptor ([`crate::sys::inroot`]: `..` stops at
//! the root, an absolute symlink is read against it, no magic link is followed),
//! before the identity change (it may be readable by root alone), only if it is
//! a regular file (a fifo or a device is never opened for real), and at most
//! [`MAX_PASSWD`] bytes of it are read. A file that cannot be read counts as
//! missing. The init looks it up with its mounts in place (a bind-mounted
//! `/etc/passwd` is the one the workload sees); an exec'd process once it has
//! joined the container's mount namespace.

use std::borrow::Cow;
use std::io::Read;
use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use oci_spec::runtime::Process;

use crate::sys::inroot::open_verified_in_root;

/// The most of `/etc/passwd` that is read: entries past it are not seen.
pub(crate) const MAX_PASSWD: u64 = 4 << 20;

/// What `HOME` is when nothing better is known.
const FALLBACK: &str = "/";

/// `process` with `HOME` added when its env has none with a value: the home of
/// `uid` in the `/etc/passwd` of the root `root` is open on. An empty `HOME=`
/// is replaced, not shadowed.
pub(crate) fn with_home<'a>(process: &'a Process, root: BorrowedFd<'_>, uid: u32) -> Cow<'a, Process> {
    let env = process.env().as_deref().unwrap_or_default();
    if has_home(env) {
        return Cow::Borrowed(process);
    }
    let passwd = read_passwd(root);
    let home = passwd.as_deref().and_then(|p| home_of(p, uid)).unwrap_or(FALLBACK);
    let mut env: Vec<String> = env.iter().filter(|e| e.as_str() != "HOME=").cloned().collect();
    env.push(format!("HOME={home}"));
    let mut process = process.clone();
    process.set_env(Some(env));
    Cow::Owned(process)
}

/// Whether `env` sets `HOME` to something.
fn has_home(env: &[String]) -> bool {
    env.iter().any(|e| e.strip_prefix("HOME=").is_some_and(|v| !v.is_empty()))
}

/// The home directory of `uid` in the text of a passwd file (`name:password:
/// uid:gid:gecos:home:shell`): the first entry for the uid; `None` when there is
/// none, or its home is empty or not text. Blank lines, comments and entries
/// whose uid is no number (`+` NIS lines) are skipped; a last line without its
/// newline counts unless the file was cut at [`MAX_PASSWD`] (see
/// [`read_passwd`], which drops it then).
pub(crate) fn home_of(passwd: &[u8], uid: u32) -> Option<&str> {
    passwd
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty() && !line.starts_with(b"#"))
        .find_map(|line| {
            let mut fields = line.split(|&b| b == b':');
            let entry_uid = fields.nth(2)?;
            if std::str::from_utf8(entry_uid).ok()?.parse::<u32>().ok()? != uid {
                return None;
            }
            Some(fields.nth(2))
        })
        .flatten()
        .and_then(|home| std::str::from_utf8(home).ok())
        .filter(|home| !home.is_empty())
}

/// The container's `/etc/passwd`, at most [`MAX_PASSWD`] bytes of it (a file
/// longer than that loses its last, cut line); `None` when it is missing, not
/// a regular file or unreadable.
fn read_passwd(root: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let (fd, _) = open_verified_in_root(root, Path::new("/etc/passwd"), OFlag::O_RDONLY, |k| k.is_regular()).ok()?;
    let mut text = Vec::new();
    std::fs::File::from(fd).take(MAX_PASSWD + 1).read_to_end(&mut text).ok()?;
    if text.len() as u64 > MAX_PASSWD {
        text.truncate(MAX_PASSWD as usize);
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |n| n + 1);
        text.truncate(whole);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n\
        # a comment:x:1000:1000::/comment:/bin/sh\n\
        \n\
        +::::::\n\
        probe:x:1000:1000:The Probe:/home/probe:/bin/sh\n\
        again:x:1000:1000::/home/again:/bin/sh\n\
        empty:x:1001:1001:::/bin/sh\n\
        short:x:1002:1002\n\
          spaced:x:1003:1003::/home/spaced:/bin/sh  \n\
        last:x:1004:1004::/home/last:/bin/sh";

    #[test]
    fn the_first_entry_of_the_uid_gives_the_home() {
        assert_eq!(home_of(PASSWD, 0), Some("/root"));
        assert_eq!(home_of(PASSWD, 1000), Some("/home/probe"), "first entry, not comment, not the second");
        assert_eq!(home_of(PASSWD, 1003), Some("/home/spaced"));
        assert_eq!(home_of(PASSWD, 1004), Some("/home/last"), "a last line without newline");
    }

    #[test]
    fn no_entry_or_an_empty_home_gives_none() {
        assert_eq!(home_of(PASSWD, 1001), None, "empty home");
        assert_eq!(home_of(PASSWD, 1002), None, "no home field");
        assert_eq!(home_of(PASSWD, 4242), None);
        assert_eq!(home_of(b"", 0), None);
        assert_eq!(home_of(b"x:x:0:0::\xff/home:/bin/sh\n", 0), None, "not text");
        assert_eq!(home_of(b"x:x:zero:0::/z:/bin/sh\n", 0), None, "a uid that is no number");
    }

    fn process(env: &[&str]) -> Process {
        let mut p = Process::default();
        p.set_env(Some(env.iter().map(|s| (*s).to_owned()).collect()));
        p
    }

    fn env_of(p: &Process) -> Vec<String> {
        p.env().clone().unwrap_or_default()
    }

    /// A root directory holding `etc/passwd` (when given) and the descriptor on it.
    fn root(passwd: Option<&[u8]>) -> (tempfile::TempDir, std::fs::File) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        if let Some(text) = passwd {
            std::fs::write(dir.path().join("etc/passwd"), text).unwrap();
        }
        let fd = std::fs::File::open(dir.path()).unwrap();
        (dir, fd)
    }

    #[test]
    fn home_is_added_from_the_roots_passwd_or_is_slash() {
        use std::os::fd::AsFd;
        let (_dir, fd) = root(Some(PASSWD));
        let p = process(&["PATH=/bin"]);
        assert_eq!(env_of(&with_home(&p, fd.as_fd(), 1000)), ["PATH=/bin", "HOME=/home/probe"]);
        assert_eq!(env_of(&with_home(&p, fd.as_fd(), 1001)), ["PATH=/bin", "HOME=/"]);
        assert_eq!(env_of(&with_home(&p, fd.as_fd(), 7)), ["PATH=/bin", "HOME=/"]);
        let (_none, fd) = root(None);
        assert_eq!(env_of(&with_home(&p, fd.as_fd(), 0)), ["PATH=/bin", "HOME=/"]);
    }

    #[test]
    fn a_home_with_a_value_is_kept_an_empty_one_replaced() {
        use std::os::fd::AsFd;
        let (_dir, fd) = root(Some(PASSWD));
        let p = process(&["HOME=/mine", "PATH=/bin"]);
        assert!(matches!(with_home(&p, fd.as_fd(), 1000), Cow::Borrowed(_)));
        let p = process(&["HOME=", "PATH=/bin"]);
        assert_eq!(env_of(&with_home(&p, fd.as_fd(), 0)), ["PATH=/bin", "HOME=/root"]);
        let mut p = Process::default();
        p.set_env(None);
        assert_eq!(with_home(&p, fd.as_fd(), 0).env().as_deref().unwrap_or_default(), ["HOME=/root"]);
    }

    #[test]
    fn a_symlinked_passwd_is_read_inside_the_root() {
        use std::os::fd::AsFd;
        let (dir, fd) = root(None);
        // An absolute link to the host's /etc/passwd is the root's own.
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
        assert_eq!(env_of(&with_home(&process(&[]), fd.as_fd(), 0)), ["HOME=/"], "the host's passwd was read");
        std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        std::fs::write(dir.path().join("etc/real"), "root:x:0:0::/inside:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/../../etc/real", dir.path().join("etc/passwd")).unwrap();
        assert_eq!(env_of(&with_home(&process(&[]), fd.as_fd(), 0)), ["HOME=/inside"]);
    }

    #[test]
    fn a_passwd_that_is_no_regular_file_is_not_read() {
        use std::os::fd::AsFd;
        let (dir, fd) = root(None);
        nix::unistd::mkfifo(&dir.path().join("etc/passwd"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        assert_eq!(env_of(&with_home(&process(&[]), fd.as_fd(), 0)), ["HOME=/"], "a fifo would have hung");
    }

    #[test]
    fn a_huge_passwd_is_read_up_to_the_bound() {
        use std::os::fd::AsFd;
        let line = b"filler:x:5:5::/filler:/bin/sh\n";
        let mut text = line.repeat(MAX_PASSWD as usize / line.len());
        text.extend_from_slice(b"cut:x:9:9::/cut-here:/bin/sh\n");
        text.extend_from_slice(b"past:x:10:10::/past:/bin/sh\n");
        let (_dir, fd) = root(Some(&text));
        assert_eq!(env_of(&with_home(&process(&[]), fd.as_fd(), 5)), ["HOME=/filler"]);
        assert_eq!(env_of(&with_home(&process(&[]), fd.as_fd(), 9)), ["HOME=/"], "the cut line is dropped");
        assert_eq!(env_of(&with_home(&process(&[]), fd.as_fd(), 10)), ["HOME=/"]);
    }
}
