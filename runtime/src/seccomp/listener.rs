//! Handing the notify descriptor to a seccomp agent, as the runtime-spec's
//! "container process state" over `listenerPath`.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use super::SeccompError;

/// Connects to the agent's socket (`AF_UNIX`, `SOCK_STREAM`) at `listener_path`
/// and sends, in one connection that is then closed:
///
/// ```json
/// {"ociVersion": "...", "fds": ["seccompFd"], "pid": 4422,
///  "metadata": "<listenerMetadata>", "state": { the container's state }}
/// ```
///
/// with `fd` attached (`SCM_RIGHTS`) to the first `sendmsg`. `pid` is the
/// container process as the runtime sees it; `state_json` is the OCI state
/// object (its `ociVersion` is repeated at the top; `metadata` is left out when
/// empty, as runc does).
pub fn send_to_listener(
    listener_path: &Path,
    metadata: &str,
    state_json: &serde_json::Value,
    pid: i32,
    fd: BorrowedFd<'_>,
) -> Result<(), SeccompError> {
    let send_err = |source| SeccompError::Send { path: listener_path.to_owned(), source };
    let oci_version =
        state_json.get("ociVersion").and_then(|v| v.as_str()).unwrap_or(oci_spec::runtime::VERSION).to_owned();
    let mut message = serde_json::json!({
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state_json,
    });
    if !metadata.is_empty() {
        message["metadata"] = serde_json::Value::from(metadata);
    }
    let bytes = serde_json::to_vec(&message).map_err(|e| send_err(std::io::Error::other(e)))?;

    let mut stream = UnixStream::connect(listener_path)
        .map_err(|source| SeccompError::Connect { path: listener_path.to_owned(), source })?;
    let fds = [fd.as_raw_fd()];
    let sent = loop {
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(send_err(e.into())),
        }
    };
    // A stream may take the message in parts; the descriptor went with the first.
    stream.write_all(&bytes[sent..]).map_err(send_err)?;
    Ok(())
}
