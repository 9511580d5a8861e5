//! Which executor runs a workload.

use amphi_runtime::Executor;
use oci_spec::runtime::Spec;

use crate::native::NativeExecutor;

/// Chooses the executor for the process of `spec`.
pub fn select(_spec: &Spec) -> Box<dyn Executor> {
    Box::new(NativeExecutor::new())
}
