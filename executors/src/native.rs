//! The native executor: `execve` of the entrypoint.
//!
//! ## Which file runs
//!
//! `prepare` resolves the entrypoint inside the rootfs and opens it only once
//! it is known to be a regular file ([`entrypoint`]). An ELF program is then
//! executed from that very descriptor (`execveat` with `AT_EMPTY_PATH`): what
//! runs is the file that was checked, whatever the path leads to by the time
//! `start` comes (a swap for a symlink to `/proc/self/exe` or for a fifo does
//! nothing). The descriptor is close-on-exec, which is fine for an ELF program
//! and is why the rest is executed by path: for a `#!` script (or a format of
//! a binfmt_misc handler) the kernel hands the interpreter the name of the
//! file, which for a descriptor is `/dev/fd/N`, closed by then, so the exec
//! would fail with `ENOENT`; keeping the descriptor open instead would hand
//! it to the workload and need the container's `/proc`. A script's interpreter
//! opens the script by name anyway.
//!
//! The process's name (`/proc/<pid>/comm`, what `ps` shows) must stay what
//! `execve` of the path gives, the path's last component. From Linux 6.14 a
//! process exec'd from a descriptor is named after the file itself, which is
//! the same name unless the last component is a symlink (a busybox applet:
//! `/bin/sh` would show as `busybox`); earlier kernels name it after the
//! descriptor's number. So the descriptor is used from 6.14 on, for a path
//! whose last component is the file itself; otherwise the program is
//! executed by path, as it always was.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use amphi_runtime::executor::{ExecContext, Executor, ExecutorError, PrepareContext};
use amphi_runtime::inroot::{FileKind, open_in_root};
use nix::fcntl::{AtFlags, OFlag};

use crate::entrypoint::{self, Require};

/// The first kernel that names a process exec'd from a descriptor after the
/// file rather than after the descriptor's number.
const FD_EXEC_NAMES_THE_FILE: (u32, u32) = (6, 14);

/// Runs a native program. `prepare` finds it inside the rootfs and builds the
/// argument and environment vectors (no allocation is left for after the
/// barrier); `exec` replaces the process with it.
#[derive(Debug, Default)]
pub struct NativeExecutor {
    prepared: Option<Prepared>,
}

#[derive(Debug)]
struct Prepared {
    path: CString,
    /// The checked file, for an ELF program executed by descriptor.
    file: Option<File>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// Why the native executor failed.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error(transparent)]
    Entrypoint(#[from] entrypoint::EntrypointError),
    #[error("config.json: {field}: contains a NUL byte")]
    Nul { field: &'static str },
    #[error("exec {path:?}: {source}")]
    Exec { path: String, source: nix::Error },
    #[error("exec: reset the signals: {source}")]
    Signals { source: nix::Error },
    #[error("exec: the executor was not prepared")]
    NotPrepared,
}

impl NativeExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Executor for NativeExecutor {
    fn name(&self) -> &'static str {
        "native"
    }

    fn prepare(&mut self, ctx: &PrepareContext<'_>) -> Result<(), ExecutorError> {
        let found = entrypoint::resolve(ctx, Require::Executable).map_err(NativeError::from)?;
        let cstrings = |items: &[String], field| -> Result<Vec<CString>, NativeError> {
            items.iter().map(|s| CString::new(s.as_bytes()).map_err(|_| NativeError::Nul { field })).collect()
        };
        let argv: Vec<CString> = cstrings(ctx.process.args().as_deref().unwrap_or_default(), "process.args")?;
        let envp: Vec<CString> = cstrings(ctx.process.env().as_deref().unwrap_or_default(), "process.env")?;
        let path =
            CString::new(found.path.as_os_str().as_bytes()).map_err(|_| NativeError::Nul { field: "process.args" })?;
        let by_fd = is_elf(&found.file) && fd_exec_keeps_names() && names_itself(ctx, &found);
        let file = by_fd.then_some(found.file);
        self.prepared = Some(Prepared { path, file, argv, envp });
        Ok(())
    }

    fn exec(self: Box<Self>, ctx: &ExecContext<'_>) -> Result<i32, ExecutorError> {
        let prepared = self.prepared.ok_or(NativeError::NotPrepared)?;
        // An ignored or blocked signal would survive `execve` into the program.
        ctx.handover.reset_signals_for_execve().map_err(|source| NativeError::Signals { source })?;
        let result = match &prepared.file {
            Some(file) => nix::unistd::execveat(
                Some(file.as_raw_fd()),
                c"",
                &prepared.argv,
                &prepared.envp,
                AtFlags::AT_EMPTY_PATH,
            ),
            None => nix::unistd::execve(&prepared.path, &prepared.argv, &prepared.envp),
        };
        let error = match result {
            Err(e) => e,
            Ok(never) => match never {},
        };
        Err(NativeError::Exec { path: prepared.path.to_string_lossy().into_owned(), source: error }.into())
    }
}

/// Whether `file` starts with the ELF magic number.
fn is_elf(file: &File) -> bool {
    let mut magic = [0u8; 4];
    matches!(file.read_at(&mut magic, 0), Ok(4)) && magic == *b"\x7fELF"
}

/// Whether the last component of the entrypoint's path is the file itself (not
/// a symlink to it), so that it names the process as `execve` of the path would.
fn names_itself(ctx: &PrepareContext<'_>, found: &entrypoint::Entrypoint) -> bool {
    let last = open_in_root(ctx.rootfs_fd, &found.path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .and_then(|fd| FileKind::of(std::os::fd::AsFd::as_fd(&fd)));
    let file = FileKind::of(std::os::fd::AsFd::as_fd(&found.file));
    matches!((last, file), (Ok(last), Ok(file)) if last.same_file(&file))
}

/// Whether this kernel names a process exec'd from a descriptor after its file.
fn fd_exec_keeps_names() -> bool {
    amphi_runtime::kernel::version().is_ok_and(|version| version >= FD_EXEC_NAMES_THE_FILE)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn elf_is_told_by_its_magic() {
        let mut elf = tempfile::tempfile().unwrap();
        elf.write_all(b"\x7fELF\x02\x01\x01").unwrap();
        assert!(is_elf(&elf));
        let mut script = tempfile::tempfile().unwrap();
        script.write_all(b"#!/bin/sh\n").unwrap();
        assert!(!is_elf(&script));
        assert!(!is_elf(&tempfile::tempfile().unwrap()));
    }
}
