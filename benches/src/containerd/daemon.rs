//! The harness's own containerd: config, root, state and sockets under the work
//! directory, the CRI plugin off, a namespace of its own per run, the directory
//! of the amphi under test first on its PATH (containerd looks a shim binary up
//! on its PATH, and `containerd-shim-amphi-v1` is built next to `amphi`), and a
//! process group of its own (the terminal's Ctrl-C is the harness's to handle).
//!
//! [`Daemon::shutdown`] (or its drop, on an error) leaves nothing: see
//! [`super::teardown`].

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::teardown::{self, Leftovers};

/// A private containerd; torn down (tasks, containers, containerd, shims,
/// cgroups, state, mounts) by [`Daemon::shutdown`] or on drop.
#[derive(Debug)]
pub struct Daemon {
    pub dir: PathBuf,
    pub namespace: String,
    child: Option<Child>,
}

impl Daemon {
    /// Starts containerd in `dir` with `first_on_path` prepended to its PATH and
    /// waits until it answers.
    pub fn start(dir: &Path, namespace: &str, first_on_path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let d = dir.display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).with_context(|| format!("write {}", config_path.display()))?;
        let log = std::fs::File::create(dir.join("containerd.log")).context("containerd log")?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(std::iter::once(first_on_path.to_owned()).chain(std::env::split_paths(&path)))
            .context("containerd's PATH")?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .env("PATH", path)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start containerd")?;
        let daemon = Daemon { dir: dir.to_owned(), namespace: namespace.to_owned(), child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(dir.join("c.sock").exists() && daemon.ctr(&["version"]).output().is_ok_and(|o| o.status.success())) {
            if Instant::now() > deadline {
                bail!("containerd never answered; its log: {}", dir.join("containerd.log").display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    /// `ctr --address SOCKET --namespace NS ARGS…`, stdin null.
    pub fn ctr<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(self.dir.join("c.sock")).args(["--namespace", &self.namespace]).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `ctr ARGS…`: its stdout, or an error quoting its stderr.
    pub fn ctr_ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> anyhow::Result<String> {
        let mut cmd = self.ctr(args);
        let shown = crate::process::describe(&cmd);
        let out = cmd.output().with_context(|| shown.clone())?;
        if !out.status.success() {
            bail!("{shown}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The rows of a `ctr … ls` listing, without its header.
    pub fn listing(&self, args: &[&str]) -> anyhow::Result<Vec<String>> {
        Ok(self.ctr_ok(args)?.lines().skip(1).filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
    }

    /// `(id, pid, status)` of every task (`ctr task ls`).
    pub fn tasks(&self) -> anyhow::Result<Vec<(String, i32, String)>> {
        let rows = self.listing(&["task", "ls"])?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let mut fields = row.split_whitespace();
                let (id, pid, status) = (fields.next()?, fields.next()?.parse().ok()?, fields.next()?);
                Some((id.to_owned(), pid, status.to_owned()))
            })
            .collect())
    }

    /// Removes task `id` (killing it first) and container `id`; what failed.
    pub fn remove(&self, id: &str) -> anyhow::Result<()> {
        let task = self.ctr_ok(&["task", "rm", "--force", id]);
        let container = self.ctr_ok(&["containers", "rm", id]);
        match (task, container) {
            (_, Ok(_)) => Ok(()),
            (Ok(_), Err(e)) => Err(e),
            (Err(t), Err(c)) => Err(c.context(format!("{t:#}"))),
        }
    }

    /// What the section left (asked before anything is forced), then the
    /// teardown, then what is still there after it (nothing, when all went
    /// well).
    pub fn shutdown(&mut self) -> (Leftovers, Leftovers) {
        let scope = teardown::Scope { namespace: &self.namespace, dir: &self.dir };
        let before = match &self.child {
            Some(_) => teardown::survey(&scope, Some(self)),
            None => Leftovers::default(),
        };
        self.teardown();
        let scope = teardown::Scope { namespace: &self.namespace, dir: &self.dir };
        let after = teardown::survey(&scope, None);
        (before, after)
    }

    /// Forces everything away: tasks and containers through containerd, then
    /// containerd itself, then whatever containerd could not remove.
    fn teardown(&mut self) {
        let Some(child) = self.child.take() else { return };
        if let Ok(tasks) = self.tasks() {
            for (id, _, _) in tasks {
                let _ = self.ctr_ok(&["task", "rm", "--force", &id]);
            }
        }
        if let Ok(rows) = self.listing(&["containers", "ls"]) {
            for id in rows.iter().filter_map(|row| row.split_whitespace().next()) {
                let _ = self.ctr_ok(&["containers", "rm", id]);
            }
        }
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM);
        let _ = crate::process::wait_or_kill(child, Duration::from_secs(10));
        let scope = teardown::Scope { namespace: &self.namespace, dir: &self.dir };
        teardown::force(&scope);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.teardown();
    }
}
