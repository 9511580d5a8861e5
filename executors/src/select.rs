//! Which executor runs a workload, decided once per process.
//!
//! The de-facto annotation keys are read exactly as crun and youki read them, and
//! then the entrypoint's content decides:
//!
//! 1. `io.kubernetes.cri.container-type=sandbox` (a pod's pause container) →
//!    native, whatever else is set.
//! 2. `run.oci.handler=wasm` or `module.wasm.image/variant=compat` → wasm. An
//!    ELF entrypoint under these is refused: the annotation and the file disagree.
//! 3. `run.oci.handler=wasm-smart` or `module.wasm.image/variant=compat-smart` →
//!    wasm if the entrypoint's content is wasm, native otherwise.
//! 4. No annotation → by content: a binary module or component (`\0asm`) or
//!    WebAssembly text → wasm; anything else (ELF, `#!`, a format a binfmt_misc
//!    handler knows) → native.
//!
//! The content is only known once the container's mounts are in place, so the
//! choice is made in [`Executor::prepare`]: [`select`] returns an executor that
//! reads the entrypoint (resolved inside the rootfs, PATH included) and becomes
//! the native or the wasm one. An `exec` into a running container chooses again
//! for its own process, so a native debug tool can be exec'd into a wasm
//! container and a wasm tool into a native one.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use amphi_runtime::executor::{ArmContext, ExecContext, Executor, ExecutorError, PrepareContext};
use oci_spec::runtime::Spec;

use crate::entrypoint::{self, Require};
use crate::native::NativeExecutor;
use crate::wasm::WasmExecutor;
use crate::wasm::engine::detect;

/// The annotation naming a pod's sandbox (pause) container.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// crun's handler annotation.
pub const HANDLER: &str = "run.oci.handler";
/// The wasm image variant annotation (from the image spec's compat work).
pub const VARIANT: &str = "module.wasm.image/variant";

/// Every annotation key amphi reads, each of which changes how a workload
/// runs: `features` lists them as potentially unsafe, as crun does.
pub const WASM_ANNOTATIONS: &[&str] = &[CONTAINER_TYPE, HANDLER, VARIANT, crate::wasm::PREOPENS_ANNOTATION];

/// What the annotations say, before the content is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Native,
    /// Wasm, named explicitly: the content must not be a native program.
    Wasm,
    /// Wasm when the content is wasm (the `-smart` variants).
    WasmIfWasm,
    /// No annotation: the content decides.
    ByContent,
}

impl Decision {
    pub fn from_annotations(annotations: &HashMap<String, String>) -> Self {
        let get = |key: &str| annotations.get(key).map(String::as_str);
        if get(CONTAINER_TYPE) == Some("sandbox") {
            return Decision::Native;
        }
        match (get(HANDLER), get(VARIANT)) {
            (Some("wasm"), _) | (_, Some("compat")) => Decision::Wasm,
            (Some("wasm-smart"), _) | (_, Some("compat-smart")) => Decision::WasmIfWasm,
            _ => Decision::ByContent,
        }
    }

    /// The key and value that made the decision, for messages.
    fn source(annotations: &HashMap<String, String>) -> String {
        [HANDLER, VARIANT]
            .iter()
            .find_map(|key| annotations.get(*key).map(|value| format!("{key}={value}")))
            .unwrap_or_default()
    }
}

/// Why the choice could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("exec: {path:?}: {annotation} asks for a wasm workload, but the file is a native (ELF) program")]
    ElfUnderWasmAnnotation { path: String, annotation: String },
    #[error("exec: {path:?}: read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("exec: the executor was not prepared")]
    NotPrepared,
}

/// The executor for the init of the container `spec` describes: decided by the
/// annotations now and by the entrypoint's content in `prepare`.
pub fn select(spec: &Spec) -> Box<dyn Executor> {
    let annotations = spec.annotations().clone().unwrap_or_default();
    executor_for(Decision::from_annotations(&annotations), &annotations)
}

/// The executor for a process exec'd into the container `spec` describes. The
/// container's annotations describe its workload, not every tool exec'd into
/// it: an explicit wasm annotation only means "wasm if the file is wasm" here,
/// so a native debug tool can be exec'd into a wasm container (podman and the
/// CRI copy the annotation into config.json).
pub fn select_for_exec(spec: &Spec) -> Box<dyn Executor> {
    let annotations = spec.annotations().clone().unwrap_or_default();
    let decision = match Decision::from_annotations(&annotations) {
        Decision::Wasm => Decision::WasmIfWasm,
        other => other,
    };
    executor_for(decision, &annotations)
}

fn executor_for(decision: Decision, annotations: &HashMap<String, String>) -> Box<dyn Executor> {
    match decision {
        Decision::Native => Box::new(NativeExecutor::new()),
        _ => Box::new(Selected { state: State::Undecided { decision, annotation: Decision::source(annotations) } }),
    }
}

/// An executor whose kind is settled by the entrypoint's content.
#[derive(Debug)]
struct Selected {
    state: State,
}

#[derive(Debug)]
enum State {
    Undecided { decision: Decision, annotation: String },
    Native(NativeExecutor),
    Wasm(Box<WasmExecutor>),
}

/// How much of the entrypoint is read to tell its kind (WebAssembly text may
/// start with comments).
const HEAD: usize = 4096;

impl Executor for Selected {
    fn name(&self) -> &'static str {
        match &self.state {
            State::Undecided { .. } => "auto",
            State::Native(native) => native.name(),
            State::Wasm(wasm) => wasm.name(),
        }
    }

    fn runs_in_process(&self) -> bool {
        matches!(self.state, State::Wasm(_))
    }

    fn prepare(&mut self, ctx: &PrepareContext<'_>) -> Result<(), ExecutorError> {
        let State::Undecided { decision, annotation } = &self.state else {
            return Err(SelectError::NotPrepared.into());
        };
        let (decision, annotation) = (*decision, annotation.clone());
        // A wasm entrypoint needs no execute bit: look for any readable file.
        let found = entrypoint::resolve(ctx, Require::Readable)?;
        let path = found.path.display().to_string();
        let mut head = vec![0u8; HEAD];
        let len =
            read_head(&found.file, &mut head).map_err(|source| SelectError::Read { path: path.clone(), source })?;
        head.truncate(len);
        let is_wasm = detect(&head).is_some();
        let wasm = match decision {
            Decision::Wasm => {
                if head.starts_with(b"\x7fELF") {
                    return Err(SelectError::ElfUnderWasmAnnotation { path, annotation }.into());
                }
                true
            }
            Decision::WasmIfWasm | Decision::ByContent => is_wasm,
            Decision::Native => false,
        };
        if wasm {
            let mut executor = WasmExecutor::new();
            executor.prepare_from_file(found.file, &found.path, ctx)?;
            self.state = State::Wasm(Box::new(executor));
        } else {
            // Native resolution again, with execute bits: PATH lookup skips a
            // non-executable file for a native program, as execvp does.
            let mut executor = NativeExecutor::new();
            executor.prepare(ctx)?;
            self.state = State::Native(executor);
        }
        Ok(())
    }

    fn arm(&mut self, ctx: &ArmContext<'_>) -> Result<(), ExecutorError> {
        match &mut self.state {
            State::Undecided { .. } => Err(SelectError::NotPrepared.into()),
            State::Native(native) => native.arm(ctx),
            State::Wasm(wasm) => Executor::arm(wasm.as_mut(), ctx),
        }
    }

    fn exec(self: Box<Self>, ctx: &ExecContext<'_>) -> Result<i32, ExecutorError> {
        match self.state {
            State::Undecided { .. } => Err(SelectError::NotPrepared.into()),
            State::Native(native) => Box::new(native).exec(ctx),
            State::Wasm(wasm) => wasm.exec(ctx),
        }
    }
}

/// Reads up to `buf.len()` bytes from the start of `file` without moving its
/// position (the wasm executor reads it whole afterwards).
fn read_head(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_sandbox_is_always_native() {
        let a = annotations(&[(CONTAINER_TYPE, "sandbox"), (HANDLER, "wasm")]);
        assert_eq!(Decision::from_annotations(&a), Decision::Native);
    }

    #[test]
    fn explicit_wasm_keys() {
        assert_eq!(Decision::from_annotations(&annotations(&[(HANDLER, "wasm")])), Decision::Wasm);
        assert_eq!(Decision::from_annotations(&annotations(&[(VARIANT, "compat")])), Decision::Wasm);
        assert_eq!(
            Decision::from_annotations(&annotations(&[(CONTAINER_TYPE, "container"), (VARIANT, "compat")])),
            Decision::Wasm
        );
    }

    #[test]
    fn smart_keys_defer_to_the_content() {
        assert_eq!(Decision::from_annotations(&annotations(&[(HANDLER, "wasm-smart")])), Decision::WasmIfWasm);
        assert_eq!(Decision::from_annotations(&annotations(&[(VARIANT, "compat-smart")])), Decision::WasmIfWasm);
    }

    #[test]
    fn no_or_other_annotations_mean_content() {
        assert_eq!(Decision::from_annotations(&HashMap::new()), Decision::ByContent);
        assert_eq!(Decision::from_annotations(&annotations(&[(HANDLER, "krun")])), Decision::ByContent);
        assert_eq!(Decision::from_annotations(&annotations(&[("x", "y")])), Decision::ByContent);
    }

    #[test]
    fn the_source_names_the_key() {
        assert_eq!(Decision::source(&annotations(&[(VARIANT, "compat")])), "module.wasm.image/variant=compat");
    }

    #[test]
    fn read_head_does_not_move_the_file() {
        use std::io::{Read, Seek, Write};
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"\0asm\x01\0\0\0rest").unwrap();
        file.rewind().unwrap();
        let mut head = [0u8; 4];
        assert_eq!(read_head(&file, &mut head).unwrap(), 4);
        assert_eq!(&head, b"\0asm");
        let mut all = Vec::new();
        file.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 12);
    }
}
