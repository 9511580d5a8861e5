//! The service's listening socket: bound in `arm`, in the container's network
//! namespace and under its final identity and capabilities, so that it listens
//! before `start` returns and a port the container may not bind fails `create`.

use std::net::{SocketAddr, TcpListener};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, socket, sockopt,
};

use super::config::ADDR_VAR;

/// Binding or listening failed: the message names the variable and the address.
#[derive(Debug, thiserror::Error)]
#[error("process.env {ADDR_VAR}={addr}: {step}: {reason}")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub step: &'static str,
    pub reason: String,
}

/// A TCP socket bound to `addr` and listening with `backlog`, close-on-exec.
/// `SO_REUSEADDR` lets a restarted service bind while old connections linger in
/// TIME_WAIT; an IPv6 wildcard also takes IPv4 (the kernel's default).
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> Result<TcpListener, ListenError> {
    let failed = |step: &'static str, errno: Errno| ListenError { addr, step, reason: describe(addr, errno) };
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| failed("socket", e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| failed("SO_REUSEADDR", e))?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(addr)).map_err(|e| failed("bind", e))?;
    let backlog = Backlog::new(i32::try_from(backlog).unwrap_or(i32::MAX)).map_err(|e| failed("listen", e))?;
    listen(&fd, backlog).map_err(|e| failed("listen", e))?;
    Ok(TcpListener::from(fd))
}

fn describe(addr: SocketAddr, errno: Errno) -> String {
    let text = std::io::Error::from(errno).to_string().to_lowercase();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    match errno {
        Errno::EACCES if addr.port() < 1024 => {
            format!("{text}: a port below 1024 needs CAP_NET_BIND_SERVICE in the container's capabilities")
        }
        Errno::EADDRNOTAVAIL => format!("{text}: no such address in the container's network namespace"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_before_anyone_accepts() {
        let listener = bind_listener("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let addr = listener.local_addr().unwrap();
        // The kernel completes the handshake from the backlog: no accept yet.
        std::net::TcpStream::connect(addr).unwrap();
    }

    #[test]
    fn ipv6_addresses_listen_too() {
        let listener = bind_listener("[::1]:0".parse().unwrap(), 4).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        std::net::TcpStream::connect(addr).unwrap();
    }

    #[test]
    fn an_address_in_use_names_the_variable() {
        let first = bind_listener("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let addr = first.local_addr().unwrap();
        let error = bind_listener(addr, 4).unwrap_err().to_string();
        assert_eq!(error, format!("process.env {ADDR_VAR}={addr}: bind: address already in use"));
    }
}
