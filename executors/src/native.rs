//! The native executor: `execve` of the entrypoint.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use amphi_runtime::executor::{ExecContext, Executor, ExecutorError, PrepareContext};

use crate::entrypoint::{self, Require};

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
        self.prepared = Some(Prepared { path, argv, envp });
        Ok(())
    }

    fn exec(self: Box<Self>, _ctx: &ExecContext<'_>) -> Result<i32, ExecutorError> {
        let prepared = self.prepared.ok_or(NativeError::NotPrepared)?;
        let error = match nix::unistd::execve(&prepared.path, &prepared.argv, &prepared.envp) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        Err(NativeError::Exec { path: prepared.path.to_string_lossy().into_owned(), source: error }.into())
    }
}
