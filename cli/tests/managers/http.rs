//! A small HTTP/1.1 client for the service tests: one `GET` per connection
//! (`connection: close`), sent from the test's network namespace or from
//! another one (a namespace the test made, a container's), as a client beside
//! the service would. The request runs on a thread of its own that joins the
//! namespace with `setns(CLONE_NEWNET)`: a network namespace is a per-thread
//! attribute, so the test's other threads stay where they are, and the thread
//! ends with the request.
//!
//! The response is read to the end of the connection; a `transfer-encoding:
//! chunked` body is decoded, a `content-length` one cut to its length.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A response: its status, headers (names lowercased) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// `GET path` with `headers` at `addr`, from the network namespace at `netns`
/// (`/var/run/netns/NAME`, `/proc/PID/ns/net`), or from the test's own when
/// `None`. The connection must be accepted at once: the services are listening
/// before their `start` returns.
pub fn get(netns: Option<&Path>, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    let netns: Option<PathBuf> = netns.map(Path::to_owned);
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    std::thread::spawn(move || {
        if let Some(netns) = &netns {
            let file = std::fs::File::open(netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns {}: {e}", netns.display()))?;
        }
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| format!("timeout: {e}"))?;
        stream.write_all(request.as_bytes()).map_err(|e| format!("send to {addr}: {e}"))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| format!("read from {addr}: {e}"))?;
        parse(&raw)
    })
    .join()
    .map_err(|_| "the request's thread panicked".to_owned())?
}

/// [`get`] that must succeed.
pub fn get_ok(netns: Option<&Path>, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    get(netns, addr, path, headers).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// A whole response, as read until the server closed the connection.
fn parse(raw: &[u8]) -> Result<Response, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no end of the headers in {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut response = Response { status, headers, body: String::new() };
    response.body = if response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().map_err(|_| format!("content-length {length:?}"))?;
        rest.get(..length).ok_or_else(|| format!("a body shorter than its content-length {length}"))?.to_owned()
    } else {
        rest.to_owned()
    };
    Ok(response)
}

/// A chunked body's content.
fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("a chunk without its size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|_| format!("chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).ok_or("a chunk shorter than its size")?);
        rest = after.get(size..).and_then(|r| r.strip_prefix("\r\n")).ok_or("a chunk without its end")?;
    }
}

#[test]
fn responses_are_parsed_with_either_body_framing() {
    let plain = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Echo: hi\r\n\r\nabcdef").expect("parse");
    assert_eq!((plain.status, plain.body.as_str(), plain.header("x-echo")), (200, "abc", Some("hi")));
    let chunked =
        parse(b"HTTP/1.1 500 Internal\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
            .expect("parse");
    assert_eq!((chunked.status, chunked.body.as_str()), (500, "abcde"));
    assert!(parse(b"HTTP/1.0 200 OK\r\n\r\n").is_err());
}
