//! What a helper's worker does ([`crate::helper`]): one runtime verb, in a
//! fresh single-threaded process, exactly as the `amphi` command calls it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use amphi_executors::cache::CacheConfig;
use amphi_runtime::container::{self, CreateOptions, ExecOptions};
use amphi_runtime::executor::{CacheDirSource, HostDir};
use amphi_runtime::state::{StateError, Store};
use amphi_runtime::{Bundle, ContainerId};
use nix::mount::{MntFlags, MsFlags};

use crate::helper::{Place, Reply, Request, RootfsMount, Stdio};

/// Does `request` with `stdio` as the new process's standard streams.
pub fn run(request: Request, stdio: Stdio) -> Reply {
    if let Err(e) = take_stdio(stdio) {
        return Reply::Failed(format!("set up the process's stdio: {e}"));
    }
    match perform(request) {
        Ok(pid) => Reply::Done(pid),
        Err(message) => Reply::Failed(message),
    }
}

fn perform(request: Request) -> Result<Option<i32>, String> {
    match request {
        Request::Create { place, bundle, rootfs, systemd_cgroup, console_socket } => {
            let target = bundle.join("rootfs");
            mount_rootfs(&rootfs, &target)?;
            let made = create(&place, &bundle, systemd_cgroup, console_socket);
            if made.is_err() && !rootfs.is_empty() {
                unmount(&target);
            }
            made.map(Some)
        }
        Request::Start { place } => {
            let (store, id) = open(&place)?;
            container::start(&store, &id).map_err(|e| e.to_string())?;
            Ok(None)
        }
        Request::Exec { place, process, console_socket, pid_file } => {
            let (store, id) = open(&place)?;
            let options = ExecOptions {
                tty: process.terminal().unwrap_or(false),
                process: Some(*process),
                detach: true,
                pid_file: Some(pid_file.clone()),
                console_socket,
                cache_dir: cache_dir(place.cache_dir.as_deref()),
                ..ExecOptions::default()
            };
            let choose = |spec: &oci_spec::runtime::Spec, _: &oci_spec::runtime::Process| {
                amphi_executors::select::select_for_exec(spec)
            };
            container::exec(&store, &id, &options, &choose).map_err(|e| e.to_string())?;
            let pid = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .ok_or_else(|| format!("exec: no pid in {}", pid_file.display()))?;
            let _ = std::fs::remove_file(&pid_file);
            Ok(Some(pid))
        }
        Request::Delete { place, force, bundle } => {
            let (store, id) = open(&place)?;
            match container::delete(&store, &id, force) {
                Ok(()) => {}
                Err(container::Error::State(StateError::NotFound(_))) if force => {}
                Err(e) => return Err(e.to_string()),
            }
            unmount(&bundle.join("rootfs"));
            Ok(None)
        }
    }
}

fn open(place: &Place) -> Result<(Store, ContainerId), String> {
    let id = ContainerId::new(&place.id).map_err(|e| e.to_string())?;
    Ok((Store::new(&place.root), id))
}

fn create(place: &Place, bundle: &Path, systemd_cgroup: bool, console_socket: Option<PathBuf>) -> Result<i32, String> {
    let (store, id) = open(place)?;
    let bundle = Bundle::load(bundle).map_err(|e| e.to_string())?;
    let options = CreateOptions {
        console_socket,
        systemd_cgroup,
        cache_dir: cache_dir(place.cache_dir.as_deref()),
        ..CreateOptions::default()
    };
    let executor = amphi_executors::select(&bundle.spec);
    let created = container::create(&store, &id, &bundle, executor, &options).map_err(|e| e.to_string())?;
    Ok(created.pid.as_raw())
}

/// The wasm cache as the CLI hands it over: opened on the host only when a
/// wasm workload asks.
fn cache_dir(dir: Option<&Path>) -> CacheDirSource {
    let cache = dir.map_or_else(CacheConfig::disabled, CacheConfig::at);
    let path = dir.map(Path::to_owned).unwrap_or_default();
    CacheDirSource::new(move || match cache.open_dir() {
        Ok(Some(fd)) => Ok(Some(HostDir { fd, path: path.clone() })),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    })
}

/// Puts the passed streams on 0, 1 and 2 (`/dev/null` where none came).
fn take_stdio(stdio: Stdio) -> std::io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for (target, fd) in stdio.fds.into_iter().enumerate() {
        let source: Option<OwnedFd> = fd;
        let raw = source.as_ref().map_or(null.as_raw_fd(), AsRawFd::as_raw_fd);
        // SAFETY: dup2 onto a standard descriptor of this single-threaded
        // worker; `raw` is open for the call.
        if unsafe { libc::dup2(raw, target as i32) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Mounts containerd's snapshot on `target`, in order.
fn mount_rootfs(mounts: &[RootfsMount], target: &Path) -> Result<(), String> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(target).map_err(|e| format!("make {}: {e}", target.display()))?;
    for (i, m) in mounts.iter().enumerate() {
        let (flags, data) = mount_flags(&m.options);
        let kind = if m.kind == "bind" || m.kind.is_empty() { None } else { Some(m.kind.as_str()) };
        let base = flags & !(MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT);
        let data = (!data.is_empty()).then_some(data.as_str());
        let made = nix::mount::mount(Some(m.source.as_str()), target, kind, base | (flags & MsFlags::MS_RDONLY), data)
            .and_then(|()| {
                // A bind mount takes `ro` only on a remount.
                if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
                    let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                    nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = made {
            if i > 0 {
                unmount(target);
            }
            return Err(format!("rootfs[{i}]: mount {} ({}) on {}: {e}", m.source, m.kind, target.display()));
        }
    }
    Ok(())
}

/// The mount flags among `options`, and the rest as filesystem data.
fn mount_flags(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for option in options {
        match option.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Unmounts everything on `target` (the rootfs), innermost first.
pub fn unmount(target: &Path) {
    while nix::mount::umount2(target, MntFlags::MNT_DETACH).is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let options: Vec<String> =
            ["ro", "rbind", "lowerdir=/a:/b", "nosuid", "index=off"].iter().map(|s| (*s).to_owned()).collect();
        let (flags, data) = mount_flags(&options);
        assert!(flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID));
        assert_eq!(data, "lowerdir=/a:/b,index=off");
    }
}
