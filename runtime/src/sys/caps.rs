//! Setting the three per-thread capability sets in one `capset(2)` call.
//!
//! Set one at a time, the sets can fail each other's checks (effective must stay
//! within permitted; inheritable may only grow with CAP_SETPCAP in effective), so
//! the kernel sees the final triple at once, as runc does.

use std::io;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets effective, permitted and inheritable of the calling thread to the given
/// bit masks (bit N = capability N).
pub fn set_sets(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let mut header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let split = |mask: u64| [(mask & 0xffff_ffff) as u32, (mask >> 32) as u32];
    let (e, p, i) = (split(effective), split(permitted), split(inheritable));
    let data = [
        Data { effective: e[0], permitted: p[0], inheritable: i[0] },
        Data { effective: e[1], permitted: p[1], inheritable: i[1] },
    ];
    // SAFETY: header and data are valid, properly laid out (repr(C)) structures
    // of the v3 ABI (two data elements), and both outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
