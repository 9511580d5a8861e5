//! The test side of a service: a way into the container's network namespace
//! (a service listens there, not on the host's loopback) and a small HTTP/1.1
//! client that writes a request and reads the response (content-length,
//! chunked, or to the end of the connection).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// The port every service test listens on (each container has its own
/// network namespace, so they never clash).
pub const PORT: u16 = 8080;

/// How long a read may wait for a response: a bound on a wait, far past what
/// any answer takes.
const READ_BOUND: Duration = Duration::from_secs(30);

/// Brings `lo` up in the network namespace of `pid`: a new namespace starts
/// with its loopback down, and a network manager (CNI, podman) brings it up.
pub fn loopback_up(pid: i64) {
    let status = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "link", "set", "lo", "up"])
        .status()
        .expect("run nsenter");
    assert!(status.success(), "bring lo up in the network namespace of {pid}");
}

/// Runs `f` on a thread that entered the network namespace of `pid` (a
/// socket made there stays in that namespace on any thread).
pub fn in_netns<T: Send + 'static>(pid: i64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let netns = File::open(format!("/proc/{pid}/ns/net")).expect("open the container's netns");
    std::thread::spawn(move || {
        nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the netns");
        f()
    })
    .join()
    .expect("the netns thread")
}

/// A connection to 127.0.0.1:`port` in the network namespace of `pid`.
pub fn connect(pid: i64, port: u16) -> io::Result<Conn> {
    let stream = in_netns(pid, move || TcpStream::connect(("127.0.0.1", port)))?;
    stream.set_read_timeout(Some(READ_BOUND))?;
    Ok(Conn { reader: BufReader::new(stream) })
}

/// A listener on 127.0.0.1 (any port) in the network namespace of `pid`.
pub fn listen(pid: i64) -> TcpListener {
    in_netns(pid, || TcpListener::bind("127.0.0.1:0")).expect("listen in the container's netns")
}

/// One client connection, keep-alive.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Sends `request` and reads its response.
    pub fn call(&mut self, request: &[u8]) -> Response {
        self.send(request).expect("send the request");
        self.response().expect("read the response")
    }

    /// `GET /` with `headers`.
    pub fn get(&mut self, headers: &[(&str, &str)]) -> Response {
        self.call(&request("GET", headers, b""))
    }

    /// Whether any byte of a response arrives within `wait` (a negative check
    /// for a server that cannot answer yet, not a measure of speed).
    pub fn answers_within(&mut self, wait: Duration) -> bool {
        self.stream().set_read_timeout(Some(wait)).expect("set a read timeout");
        let answered = loop {
            match self.reader.fill_buf() {
                Ok(buf) => break !buf.is_empty(),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break false,
                // A signal to the test process (a child of another test ended):
                // read again, as `read_line` does on its own.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read: {e}"),
            }
        };
        self.stream().set_read_timeout(Some(READ_BOUND)).expect("set a read timeout");
        answered
    }

    /// Reads one response.
    pub fn response(&mut self) -> io::Result<Response> {
        let status_line = self.line()?;
        if status_line.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the connection closed before a response"));
        }
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("header {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = Response { status, headers, body: Vec::new() };
        if response.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            loop {
                let size_line = self.line()?;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {size_line:?}")))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line()?.is_empty() {}
                    break;
                }
                let mut chunk = vec![0; size];
                self.reader.read_exact(&mut chunk)?;
                response.body.extend_from_slice(&chunk);
                self.line()?;
            }
        } else if let Some(length) = response.header("content-length") {
            let length: usize =
                length.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "content-length"))?;
            response.body = vec![0; length];
            self.reader.read_exact(&mut response.body)?;
        } else if !matches!(status, 100..=199 | 204 | 304) {
            self.reader.read_to_end(&mut response.body)?;
        }
        Ok(response)
    }

    /// A line without its CRLF; empty at the end of the stream.
    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Waits (up to 10 s) until the server has read every byte sent on this
    /// connection, as the kernel's socket table in the container's network
    /// namespace shows: the request is then in the server's hands.
    pub fn wait_until_read(&self, pid: i64) {
        let ours = self.stream().local_addr().expect("local address").port();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if unread_by_server(pid, ours) == Some(0) {
                return;
            }
            assert!(Instant::now() < deadline, "the server never read the request sent from port {ours}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The receive queue of the server's side of the connection from client port
/// `client` (`/proc/PID/net/tcp`: local 127.0.0.1:PORT, remote that port).
fn unread_by_server(pid: i64, client: u16) -> Option<u64> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |addr: &str| addr.split_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        let (local, remote, queues) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
        (port(local)? == PORT && port(remote)? == client)
            .then(|| queues.split_once(':').and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok()))
            .flatten()
    })
}

/// A request for `/`: `content-length` when it has a body.
pub fn request(method: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} / HTTP/1.1\r\nhost: service\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Whether a new connection to `port` in the network namespace of `pid` is
/// refused (nothing listens there any more).
pub fn refused(pid: i64, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    in_netns(pid, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused)
    })
}
