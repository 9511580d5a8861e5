//! `--rootless` and the defaults that change when amphi does not run as root.
//!
//! - `--rootless true|false|auto` (runc's flag; `auto`, the default, means
//!   "rootless when the effective uid is not 0"): whether cgroups are used only
//!   where the caller may write them (see `amphi_runtime`'s rootless docs).
//! - The state root when `--root` is not given, with runc's rule for
//!   `$XDG_RUNTIME_DIR` (honoured by a non-root user, and by root inside a user
//!   namespace unless `$USER` is `root`): `$XDG_RUNTIME_DIR/amphi`, else
//!   `/run/amphi` for root. A non-root user without `$XDG_RUNTIME_DIR` gets
//!   `/tmp/amphi-<uid>` (where runc would fail on `/run/runc`): since `/tmp` is
//!   everyone's, amphi makes that directory itself and uses it only when it is a
//!   real directory owned by the user with no access for anyone else.
//! - The wasm compile cache of a non-root user lives under their home: see
//!   [`crate::cache_location`], which reads [`Env`] too.

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::bail;

/// The root's state root.
const ROOT_STATE: &str = "/run/amphi";

/// Parses `--rootless` as runc does (Go's `strconv.ParseBool`, or `auto`) and
/// decides it: `auto` is rootless when the effective uid is not 0.
pub fn parse_rootless(text: &str, euid: u32) -> anyhow::Result<bool> {
    match text {
        "" | "auto" | "AUTO" | "Auto" => Ok(euid != 0),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => bail!("--rootless {text:?}: expected true, false or auto"),
    }
}

/// What the defaults are computed from: the process's ids and environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub euid: u32,
    /// Whether the process is in a user namespace other than the initial one.
    pub in_user_ns: bool,
    pub xdg_runtime_dir: Option<OsString>,
    pub user: Option<OsString>,
    pub xdg_cache_home: Option<OsString>,
    pub home: Option<OsString>,
    /// `$AMPHI_WASM_CACHE` ([`crate::cache_location`]).
    pub wasm_cache: Option<OsString>,
}

impl Env {
    pub fn current() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            euid: nix::unistd::geteuid().as_raw(),
            in_user_ns: in_user_namespace(),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            user: std::env::var_os("USER"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME"),
            wasm_cache: crate::cache_location::from_environment(),
        }
    }
}

/// Where the state lives without `--root`, and whether it is the shared-`/tmp`
/// fallback that must be checked before use ([`private_fallback`]).
pub fn default_root(env: &Env) -> (PathBuf, bool) {
    let honor_xdg = env.euid != 0 || (env.in_user_ns && env.user.as_deref() != Some("root".as_ref()));
    match &env.xdg_runtime_dir {
        Some(dir) if honor_xdg => (Path::new(dir).join("amphi"), false),
        _ if env.euid != 0 => (PathBuf::from(format!("/tmp/amphi-{}", env.euid)), true),
        _ => (PathBuf::from(ROOT_STATE), false),
    }
}

/// Makes the fallback state root `dir` (mode 0700) if it is missing, and
/// refuses it unless it is a directory (not a symlink) owned by `euid` that no
/// one else may enter: anyone may have made it first in `/tmp`.
pub fn private_fallback(dir: &Path, euid: u32) -> anyhow::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => bail!("state directory {}: {e} (set XDG_RUNTIME_DIR or pass --root)", dir.display()),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| anyhow::anyhow!("state directory {}: {e}", dir.display()))?;
    let why = if !meta.file_type().is_dir() {
        Some("not a directory".to_owned())
    } else if meta.uid() != euid {
        Some(format!("owned by uid {}, not by amphi's user {euid}", meta.uid()))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!("mode {:o} lets others in (want 0700)", meta.mode() & 0o7777))
    } else {
        None
    };
    match why {
        Some(why) => bail!("state directory {}: {why} (set XDG_RUNTIME_DIR or pass --root)", dir.display()),
        None => Ok(()),
    }
}

/// Whether this process is in a user namespace other than the initial one
/// (whose uid map is the identity over every uid).
fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields != ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(euid: u32, xdg: Option<&str>) -> Env {
        Env { euid, xdg_runtime_dir: xdg.map(OsString::from), ..Env::default() }
    }

    #[test]
    fn rootless_parses_as_runc_takes_it() {
        assert!(!parse_rootless("auto", 0).unwrap());
        assert!(parse_rootless("auto", 1000).unwrap());
        assert!(parse_rootless("true", 0).unwrap());
        assert!(parse_rootless("1", 0).unwrap());
        assert!(!parse_rootless("false", 1000).unwrap());
        assert!(!parse_rootless("F", 1000).unwrap());
        let err = parse_rootless("maybe", 0).unwrap_err();
        assert_eq!(err.to_string(), "--rootless \"maybe\": expected true, false or auto");
    }

    #[test]
    fn the_state_root_follows_runc_rules() {
        assert_eq!(default_root(&env(0, None)), (PathBuf::from("/run/amphi"), false));
        // Root in the initial namespace ignores XDG_RUNTIME_DIR (/run/user/0).
        assert_eq!(default_root(&env(0, Some("/run/user/0"))), (PathBuf::from("/run/amphi"), false));
        assert_eq!(default_root(&env(1000, Some("/run/user/1000"))), (PathBuf::from("/run/user/1000/amphi"), false));
        assert_eq!(default_root(&env(1000, None)), (PathBuf::from("/tmp/amphi-1000"), true));
        // Root in a user namespace honours it, unless $USER says root.
        let mut in_ns = env(0, Some("/run/user/1000"));
        in_ns.in_user_ns = true;
        assert_eq!(default_root(&in_ns).0, PathBuf::from("/run/user/1000/amphi"));
        in_ns.user = Some("root".into());
        assert_eq!(default_root(&in_ns).0, PathBuf::from("/run/amphi"));
    }

    #[test]
    fn a_fallback_root_must_be_private() {
        let tmp = tempfile::tempdir().unwrap();
        let euid = nix::unistd::geteuid().as_raw();
        let dir = tmp.path().join("amphi-x");
        private_fallback(&dir, euid).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // Made already by us: fine again.
        private_fallback(&dir, euid).unwrap();
        let err = private_fallback(&dir, euid + 1).unwrap_err().to_string();
        assert!(err.contains("owned by uid"), "{err}");
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let err = private_fallback(&dir, euid).unwrap_err().to_string();
        assert!(err.contains("mode 755"), "{err}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = private_fallback(&link, euid).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
