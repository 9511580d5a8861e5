//! PROVISIONAL: a minimal cgroupfs layer (mkdir + cgroup.procs in every mounted
//! hierarchy, no resources) so the lifecycle can be exercised while the libcgroups
//! layer is written on its own branch. The full module replaces this file.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {source}")]
pub struct CgroupError {
    path: PathBuf,
    source: std::io::Error,
}

#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    dirs: Vec<PathBuf>,
}

fn hierarchies() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return Vec::new() };
    entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("cgroup.procs").exists()).collect()
}

impl Cgroup {
    pub fn resolve_path(spec_path: Option<&Path>, id: &str, _systemd: bool) -> Result<PathBuf, CgroupError> {
        Ok(match spec_path {
            Some(p) => Path::new("/").join(p),
            None => PathBuf::from(format!("/amphi/{id}")),
        })
    }

    pub fn create(path: &Path, _resources: Option<&oci_spec::runtime::LinuxResources>) -> Result<Self, CgroupError> {
        let cg = Self::open(path)?;
        for dir in &cg.dirs {
            std::fs::create_dir_all(dir).map_err(|source| CgroupError { path: dir.clone(), source })?;
            let mut chain: Vec<&Path> =
                dir.ancestors().take_while(|p| p.starts_with("/sys/fs/cgroup/cpuset/")).collect();
            chain.reverse();
            for d in chain {
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    let current = std::fs::read_to_string(d.join(file)).unwrap_or_default();
                    if current.trim().is_empty()
                        && let Ok(value) = std::fs::read_to_string(d.parent().unwrap_or(d).join(file))
                    {
                        let _ = std::fs::write(d.join(file), value.trim());
                    }
                }
            }
        }
        Ok(cg)
    }

    pub fn open(path: &Path) -> Result<Self, CgroupError> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        Ok(Self { path: path.to_owned(), dirs: hierarchies().into_iter().map(|h| h.join(rel)).collect() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            let f = dir.join("cgroup.procs");
            std::fs::write(&f, pid.to_string()).map_err(|source| CgroupError { path: f.clone(), source })?;
        }
        Ok(())
    }

    pub fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        let Some(dir) = self.dirs.first() else { return Ok(Vec::new()) };
        let f = dir.join("cgroup.procs");
        match std::fs::read_to_string(&f) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.parse().ok()).map(Pid::from_raw).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(CgroupError { path: f, source }),
        }
    }

    pub fn signal_all(&self, sig: Signal) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            let _ = nix::sys::signal::kill(pid, sig);
        }
        Ok(())
    }

    pub fn remove(&self) -> Result<(), CgroupError> {
        self.signal_all(Signal::SIGKILL)?;
        for dir in &self.dirs {
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(2))
                    }
                    Err(source) => return Err(CgroupError { path: dir.clone(), source }),
                }
            }
        }
        Ok(())
    }
}
