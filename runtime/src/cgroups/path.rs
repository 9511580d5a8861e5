//! Where a container's cgroup lives: `linux.cgroupsPath`, the default, and the
//! systemd `slice:prefix:name` form. Pure functions apart from the one check that
//! systemd is running.

use std::path::{Path, PathBuf};

use super::CgroupError;

/// The directory under which containers without `linux.cgroupsPath` get their cgroup.
pub const DEFAULT_PARENT: &str = "/amphi";

/// Present when systemd is the init system (`sd_booted(3)`).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// See [`super::Cgroup::resolve_path`].
pub fn resolve(spec_path: Option<&Path>, id: &str, systemd: bool) -> Result<PathBuf, CgroupError> {
    resolve_with(spec_path, id, systemd, Path::new(SYSTEMD_RUNNING))
}

/// [`resolve`] with the marker of a running systemd given, for tests.
fn resolve_with(
    spec_path: Option<&Path>,
    id: &str,
    systemd: bool,
    systemd_marker: &Path,
) -> Result<PathBuf, CgroupError> {
    if systemd {
        if !systemd_marker.is_dir() {
            return Err(CgroupError::SystemdNotRunning);
        }
        let text = match spec_path {
            Some(p) => p.to_str().ok_or_else(|| bad_path(p, "is not valid UTF-8"))?.to_owned(),
            None => format!("system.slice:amphi:{id}"),
        };
        return systemd_to_cgroupfs(&text);
    }
    let path = match spec_path {
        Some(p) => clean(p),
        None => clean(&Path::new(DEFAULT_PARENT).join(id)),
    };
    if path == Path::new("/") {
        let shown = spec_path.unwrap_or(Path::new(id));
        return Err(bad_path(shown, "names the root cgroup"));
    }
    Ok(path)
}

/// Every path `create` could have given a container whose config names
/// `spec_path`: the cgroupfs one, and the one `--systemd-cgroup` gives (whether
/// or not systemd runs now). A later command that cannot trust the record checks
/// the recorded path against these.
pub fn candidates(spec_path: Option<&Path>, id: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = resolve_with(spec_path, id, false, Path::new("/")).into_iter().collect();
    let systemd = match spec_path {
        Some(p) => p.to_str().map(str::to_owned),
        None => Some(format!("system.slice:amphi:{id}")),
    };
    if let Some(path) = systemd.and_then(|text| systemd_to_cgroupfs(&text).ok())
        && path != Path::new("/")
    {
        paths.push(path);
    }
    paths
}

/// Makes `path` absolute and lexically clean: `.` and `..` are resolved as if the
/// path started at `/`, so no cgroup path can climb out of the hierarchy (runc's
/// `CleanPath`). A relative path is read from the hierarchy root, as runc's
/// cgroupfs driver does once it has cleaned it.
pub fn clean(path: &Path) -> PathBuf {
    crate::plan::clean_absolute(path)
}

/// Translates systemd's `slice:prefix:name` into the cgroupfs path systemd would
/// give that unit: `machine-x.slice:amphi:abc` becomes
/// `/machine.slice/machine-x.slice/amphi-abc.scope`. amphi does not talk to
/// systemd over D-Bus, so the scope unit itself is not registered; the cgroup is
/// made where systemd and the kubelet expect to find it.
pub fn systemd_to_cgroupfs(text: &str) -> Result<PathBuf, CgroupError> {
    let parts: Vec<&str> = text.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(bad_path(Path::new(text), "is not of the form slice:prefix:name (--systemd-cgroup)"));
    };
    if name.is_empty() || name.contains('/') {
        return Err(bad_path(Path::new(text), "names no unit"));
    }
    let slice = if slice.is_empty() { "system.slice" } else { slice };
    let mut path = expand_slice(slice).ok_or_else(|| bad_path(Path::new(text), "has an invalid systemd slice"))?;
    let unit = if name.ends_with(".slice") {
        // A slice as the unit: its path is the expanded slice itself.
        return expand_slice(name).ok_or_else(|| bad_path(Path::new(text), "has an invalid systemd slice"));
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push(unit);
    Ok(path)
}

/// `a-b.slice` → `/a.slice/a-b.slice`; `-.slice` (the root slice) → `/`.
fn expand_slice(slice: &str) -> Option<PathBuf> {
    let stem = slice.strip_suffix(".slice")?;
    if slice.contains('/') {
        return None;
    }
    let mut path = PathBuf::from("/");
    if stem == "-" {
        return Some(path);
    }
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Some(path)
}

fn bad_path(path: &Path, reason: &'static str) -> CgroupError {
    CgroupError::BadPath { path: path.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_under_amphi() {
        assert_eq!(resolve(None, "abc", false).unwrap(), Path::new("/amphi/abc"));
    }

    #[test]
    fn absolute_path_is_kept() {
        assert_eq!(resolve(Some(Path::new("/a/b")), "x", false).unwrap(), Path::new("/a/b"));
    }

    #[test]
    fn relative_path_is_read_from_the_hierarchy_root() {
        assert_eq!(resolve(Some(Path::new("a/b")), "x", false).unwrap(), Path::new("/a/b"));
        assert_eq!(resolve(Some(Path::new("./a//b/")), "x", false).unwrap(), Path::new("/a/b"));
    }

    #[test]
    fn dot_dot_cannot_climb_out_of_the_hierarchy() {
        assert_eq!(clean(Path::new("../../etc")), Path::new("/etc"));
        assert_eq!(clean(Path::new("/a/../../b/./c/..")), Path::new("/b"));
    }

    #[test]
    fn root_cgroup_is_refused() {
        for p in ["/", "", "..", "/a/..", "."] {
            let err = resolve(Some(Path::new(p)), "x", false).unwrap_err();
            assert!(err.to_string().contains("root cgroup"), "{p}: {err}");
        }
    }

    #[test]
    fn systemd_paths_translate_like_systemd_names_its_cgroups() {
        let cases = [
            ("system.slice:amphi:abc", "/system.slice/amphi-abc.scope"),
            ("machine-x.slice:cri:c1", "/machine.slice/machine-x.slice/cri-c1.scope"),
            (
                "kubepods-besteffort-pod1.slice:cri-containerd:c2",
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-c2.scope",
            ),
            ("-.slice::solo", "/solo.scope"),
            (":amphi:abc", "/system.slice/amphi-abc.scope"),
            ("system.slice:amphi:sub.slice", "/sub.slice"),
        ];
        for (text, want) in cases {
            assert_eq!(systemd_to_cgroupfs(text).unwrap(), Path::new(want), "{text}");
        }
    }

    #[test]
    fn malformed_systemd_paths_are_refused() {
        for text in ["/abs/path", "a:b", "a:b:c:d", "bad:amphi:x", "a--b.slice:p:x", "a.slice:p:", "a/b.slice:p:x"] {
            let err = systemd_to_cgroupfs(text).unwrap_err();
            assert!(err.to_string().contains(text), "{text}: {err}");
        }
    }

    #[test]
    fn candidates_are_the_cgroupfs_and_the_systemd_reading() {
        assert_eq!(candidates(None, "abc"), [Path::new("/amphi/abc"), Path::new("/system.slice/amphi-abc.scope")]);
        assert_eq!(candidates(Some(Path::new("/a/../b")), "x"), [Path::new("/b")]);
        assert_eq!(
            candidates(Some(Path::new("user.slice:podman:x")), "x"),
            [Path::new("/user.slice:podman:x"), Path::new("/user.slice/podman-x.scope")]
        );
        assert!(candidates(Some(Path::new("/")), "x").is_empty());
    }

    #[test]
    fn systemd_flag_without_systemd_names_the_flag() {
        let missing = Path::new("/nonexistent/run/systemd/system");
        let err = resolve_with(None, "abc", true, missing).unwrap_err();
        assert!(err.to_string().contains("--systemd-cgroup"), "{err}");
    }

    #[test]
    fn systemd_flag_with_systemd_translates() {
        let running = tempfile::tempdir().unwrap();
        let path = resolve_with(None, "abc", true, running.path()).unwrap();
        assert_eq!(path, Path::new("/system.slice/amphi-abc.scope"));
        let given = Path::new("user.slice:podman:x");
        let path = resolve_with(Some(given), "abc", true, running.path()).unwrap();
        assert_eq!(path, Path::new("/user.slice/podman-x.scope"));
    }
}
