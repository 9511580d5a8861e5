//! Resource limits by their raw `RLIMIT_*` number (nix's enum lacks none, but the
//! plan keeps the number the spec named).

/// `setrlimit(resource, {soft, hard})`.
pub fn set(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> nix::Result<()> {
    let value = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit reads one rlimit struct that lives on our stack for the
    // whole call.
    let ret = unsafe { libc::setrlimit(resource, &value) };
    if ret != 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}
