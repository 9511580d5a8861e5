//! The intermediate stage: joins namespaces by path, makes the user and time
//! namespaces that must exist before the init does, and clones the init as a
//! sibling (`CLONE_PARENT`) so that the caller remains its parent.
//!
//! A mount namespace joined here is where the init then builds the rootfs, as
//! in a new one ([`crate::plan::namespaces`] says what that means for the
//! other processes of that namespace).

use std::os::fd::AsFd;

use nix::sched::CloneFlags;

use super::channel::{Receiver, Sender};
use super::spawn::{InitEnds, InitRequest};
use super::{FromInit, FromIntermediate, Stage, StageFailure, ToInit, ToIntermediate, init};
use crate::plan::namespaces::Kind;
use crate::sys::clone::{Forked, clone_fork};

/// Runs the intermediate and returns its exit code.
pub(crate) fn run(
    mut request: InitRequest<'_>,
    to_parent: Sender<FromIntermediate>,
    from_parent: Receiver<ToIntermediate>,
    init_to_parent: Sender<FromInit>,
    init_from_parent: Receiver<ToInit>,
) -> i32 {
    // The init inherits the cgroup from us: it does not join again.
    let entered =
        super::spawn::enter_stage(c"amphi:mid", &request.close_in_child, &mut request.cgroup, Stage::Intermediate);
    if let Err(failure) = entered {
        let _ = to_parent.send(&FromIntermediate::Failed(failure));
        return 1;
    }
    if !matches!(from_parent.recv(), Ok(ToIntermediate::Go)) {
        return 1;
    }
    match build(&request, &to_parent, &from_parent) {
        Ok(()) => {}
        Err(failure) => {
            let _ = to_parent.send(&FromIntermediate::Failed(failure));
            return 1;
        }
    }
    let flags = request.plan.namespaces.clone_flags() | libc::CLONE_PARENT;
    match clone_fork(flags) {
        Ok(Forked::Child) => {
            drop((to_parent, from_parent));
            init::run(request, InitEnds { to_parent: init_to_parent, from_parent: init_from_parent })
        }
        Ok(Forked::Parent(pid)) => match to_parent.send(&FromIntermediate::InitPid(pid.as_raw())) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(e) => {
            let failure = StageFailure::new(Stage::Intermediate, "clone", e.raw_os_error(), format!("clone init: {e}"));
            let _ = to_parent.send(&FromIntermediate::Failed(failure));
            1
        }
    }
}

fn build(
    request: &InitRequest<'_>,
    to_parent: &Sender<FromIntermediate>,
    from_parent: &Receiver<ToIntermediate>,
) -> Result<(), StageFailure> {
    let ns = &request.plan.namespaces;
    let fail = |step: &str, errno: Option<i32>, msg: String| StageFailure::new(Stage::Intermediate, step, errno, msg);

    // Open every namespace first: after joining a mount namespace, the paths of
    // the others may no longer resolve. Each is checked again as `create`
    // checked it (nsfs, and of the type asked): the path may have changed since.
    let mut files = Vec::with_capacity(ns.join.len());
    for (kind, path) in &ns.join {
        let file = crate::bundle::open_namespace(path, kind.flag()).map_err(|reason| {
            fail("join namespace", None, format!("linux.namespaces: {} namespace: {reason}", kind.spec_name()))
        })?;
        files.push((kind, path, file));
    }
    for (kind, path, file) in &files {
        nix::sched::setns(file.as_fd(), CloneFlags::from_bits_retain(kind.flag())).map_err(|e| {
            fail(
                "join namespace",
                Some(e as i32),
                format!("join {} namespace {}: {e}", kind.proc_name(), path.display()),
            )
        })?;
    }

    if ns.new_user {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(|e| fail("user namespace", Some(e as i32), format!("unshare user namespace: {e}")))?;
        to_parent.send(&FromIntermediate::NeedMaps).map_err(|e| fail("user namespace", None, e.to_string()))?;
        match from_parent.recv() {
            Ok(ToIntermediate::MapsWritten) => {}
            Ok(other) => return Err(fail("user namespace", None, format!("unexpected message {other:?}"))),
            Err(e) => return Err(fail("user namespace", None, e.to_string())),
        }
        become_root_in_userns();
    }

    if ns.new.contains(&Kind::Time) {
        nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .map_err(|e| fail("time namespace", Some(e as i32), format!("unshare time namespace: {e}")))?;
        if let Some(offsets) = &ns.time_offsets {
            std::fs::write("/proc/self/timens_offsets", offsets).map_err(|e| {
                fail("time namespace", e.raw_os_error(), format!("linux.timeOffsets: write timens_offsets: {e}"))
            })?;
        }
    }
    // The init it clones next inherits this; it may be born into a pid
    // namespace the container's processes already see.
    super::exe_guard::hide(Stage::Intermediate)
}

/// In a fresh user namespace, become its root (when root is mapped) so that the
/// stages after it act with a real uid instead of the overflow id.
pub(crate) fn become_root_in_userns() {
    let root = nix::unistd::Uid::from_raw(0);
    let root_gid = nix::unistd::Gid::from_raw(0);
    // Fails with EINVAL when 0 is not mapped; then the process keeps the
    // overflow ids and its namespace capabilities, which is all it needs.
    let _ = nix::unistd::setresgid(root_gid, root_gid, root_gid);
    let _ = nix::unistd::setresuid(root, root, root);
}
