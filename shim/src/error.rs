//! The shim's errors, and the ttrpc status each becomes: containerd turns the
//! code into its own error kinds (`not found`, `failed precondition`…), and the
//! message is what `ctr` and the kubelet show, so it is amphi's one line.

use containerd_shim::protos::ttrpc;
use ttrpc::Code;

/// Any error of a task call.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// No task or exec with this id.
    #[error("{0}")]
    NotFound(String),
    /// A request field was refused.
    #[error("{0}")]
    InvalidArgument(String),
    /// The task's state does not permit the call.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A task with this id already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The call is not supported.
    #[error("{0}")]
    Unimplemented(String),
    /// amphi's runtime refused or failed (its one-line error).
    #[error("{0}")]
    Runtime(String),
    /// The shim itself failed.
    #[error("{0}")]
    Internal(String),
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> Self {
        let code = match &e {
            ShimError::NotFound(_) => Code::NOT_FOUND,
            ShimError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            ShimError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            ShimError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            ShimError::Unimplemented(_) => Code::UNIMPLEMENTED,
            ShimError::Runtime(_) | ShimError::Internal(_) => Code::UNKNOWN,
        };
        ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
    }
}

impl From<amphi_runtime::Error> for ShimError {
    fn from(e: amphi_runtime::Error) -> Self {
        match e {
            amphi_runtime::Error::State(amphi_runtime::state::StateError::NotFound(_)) => Self::NotFound(e.to_string()),
            // As containerd's runc shim: a process that has finished is not
            // found (containerd ignores that on kill).
            amphi_runtime::Error::BadStatus { status: amphi_runtime::state::Status::Stopped, .. } => {
                Self::NotFound(e.to_string())
            }
            amphi_runtime::Error::BadStatus { .. } => Self::FailedPrecondition(e.to_string()),
            amphi_runtime::Error::Spec(_) | amphi_runtime::Error::Id(_) => Self::InvalidArgument(e.to_string()),
            other => Self::Runtime(other.to_string()),
        }
    }
}

/// The result of a task call.
pub type Result<T> = std::result::Result<T, ShimError>;
