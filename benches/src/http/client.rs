//! A minimal HTTP/1.1 client for what wrk cannot do: one request on a
//! connection opened before the server was started (the time to the first
//! 200), and an exact number of requests (the memory after 1k and 100k).
//! It reads `Content-Length` and chunked bodies and follows `Connection: close`
//! (busybox httpd closes after every response).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The request every measurement sends.
pub const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: amphi-bench\r\n\r\n";

/// How long one response may take before the client gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a server.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

/// What came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Whether the server keeps the connection open for another request.
    pub keep_alive: bool,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
        Self::from_stream(stream)
    }

    /// Connects, trying again every 100 µs while the connection is refused
    /// (the server is not listening yet), until `deadline`.
    pub fn connect_when_listening(addr: SocketAddr, deadline: Instant) -> anyhow::Result<Self> {
        loop {
            match TcpStream::connect(addr) {
                Ok(stream) => return Self::from_stream(stream),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(e) => return Err(e).with_context(|| format!("connect to {addr}")),
            }
        }
    }

    fn from_stream(stream: TcpStream) -> anyhow::Result<Self> {
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        stream.set_read_timeout(Some(READ_TIMEOUT)).context("SO_RCVTIMEO")?;
        Ok(Self { reader: BufReader::new(stream) })
    }

    /// Sends the request (without waiting for the response).
    pub fn send(&mut self) -> anyhow::Result<()> {
        self.reader.get_mut().write_all(REQUEST).context("send the request")
    }

    /// Reads one whole response.
    pub fn receive(&mut self) -> anyhow::Result<Response> {
        let mut line = String::new();
        self.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let version = words.next().unwrap_or_default().to_owned();
        let status: u16 = words
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("malformed status line {:?}", line.trim_end()))?;
        let (mut length, mut chunked, mut close) = (None, false, version == "HTTP/1.0");
        loop {
            line.clear();
            self.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else { bail!("malformed header {header:?}") };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<u64>().context("content-length")?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        if chunked {
            loop {
                line.clear();
                self.read_line(&mut line)?;
                let size = u64::from_str_radix(line.trim_end().split(';').next().unwrap_or_default(), 16)
                    .with_context(|| format!("malformed chunk size {:?}", line.trim_end()))?;
                self.skip(size + 2)?;
                if size == 0 {
                    break;
                }
            }
        } else if let Some(length) = length {
            self.skip(length)?;
        } else {
            // No length: the body ends with the connection.
            std::io::copy(&mut self.reader, &mut std::io::sink()).context("read the body")?;
            close = true;
        }
        Ok(Response { status, keep_alive: !close })
    }

    fn read_line(&mut self, line: &mut String) -> anyhow::Result<()> {
        if self.reader.read_line(line).context("read the response")? == 0 {
            bail!("the server closed the connection before a whole response");
        }
        Ok(())
    }

    fn skip(&mut self, n: u64) -> anyhow::Result<()> {
        let copied = std::io::copy(&mut (&mut self.reader).take(n), &mut std::io::sink()).context("read the body")?;
        if copied != n {
            bail!("the body ended after {copied} of {n} bytes");
        }
        Ok(())
    }
}

/// Sends `total` requests to `addr` over `connections` connections at once
/// (threads, joined before returning), each kept alive while the server
/// allows; every response must be a 200.
pub fn drive(addr: SocketAddr, total: usize, connections: usize) -> anyhow::Result<()> {
    let connections = connections.clamp(1, total.max(1));
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|k| {
                let share = total / connections + usize::from(k < total % connections);
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut conn: Option<Conn> = None;
                    for _ in 0..share {
                        let c = match &mut conn {
                            Some(c) => c,
                            None => conn.insert(Conn::connect(addr)?),
                        };
                        c.send()?;
                        let response = c.receive()?;
                        if response.status != 200 {
                            bail!("{addr} answered {}", response.status);
                        }
                        if !response.keep_alive {
                            conn = None;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))?)
    })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// A server that answers each request on one connection with `responses`
    /// in turn, then closes.
    fn serve(responses: &'static [&'static str]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream);
            for response in responses {
                let mut line = String::new();
                while reader.read_line(&mut line).expect("read") > 0 && line != "\r\n" {
                    line.clear();
                }
                reader.get_mut().write_all(response.as_bytes()).expect("write");
            }
        });
        addr
    }

    #[test]
    fn reads_chunked_and_sized_bodies_and_sees_close() {
        let addr = serve(&[
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        ]);
        let mut conn = Conn::connect(addr).expect("connect");
        let mut next = || {
            conn.send().expect("send");
            conn.receive().expect("receive")
        };
        assert_eq!(next(), Response { status: 200, keep_alive: true });
        assert_eq!(next(), Response { status: 404, keep_alive: true });
        assert_eq!(next(), Response { status: 200, keep_alive: false });
    }

    #[test]
    fn drive_fails_on_a_status_other_than_200() {
        let addr = serve(&["HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"]);
        let error = drive(addr, 1, 1).expect_err("503").to_string();
        assert!(error.contains("answered 503"), "{error}");
    }
}
