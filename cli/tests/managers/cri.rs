//! A small client of Kubernetes' CRI (`runtime.v1.RuntimeService`) over
//! containerd's gRPC socket: what the kubelet does to run a pod, without a
//! kubelet or crictl (Debian 12 packages neither).
//!
//! gRPC is HTTP/2 with length-prefixed protobuf messages. Each call opens a
//! connection, sends the preface, an empty SETTINGS frame, one HEADERS frame
//! (HPACK literals, no Huffman coding, no table) and one DATA frame ending the
//! stream; it then answers the server's SETTINGS and PINGs, collects the DATA of
//! stream 1 until the stream ends, and decodes the one response message. A
//! call that returns no message failed: the status is in the trailers, which
//! this client does not decode (HPACK with Huffman coding); containerd logs the
//! error itself, so a failing test shows containerd's log.
//!
//! Messages are built and read field by field ([`Pb`], [`field`]) with the
//! field numbers of the CRI v1 `api.proto`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;

/// The CRI runtime service at a containerd socket.
pub struct Cri {
    pub socket: PathBuf,
}

impl Cri {
    /// Calls `/runtime.v1.RuntimeService/<method>` with `request`; returns the
    /// response message's bytes.
    pub fn call(&self, method: &str, request: &Pb) -> Result<Vec<u8>, String> {
        let path = format!("/runtime.v1.RuntimeService/{method}");
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| format!("timeout: {e}"))?;
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        frame(&mut out, FRAME_SETTINGS, 0, 0, &[]);
        let mut headers = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path.as_str()),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            literal(&mut headers, name, value);
        }
        frame(&mut out, FRAME_HEADERS, FLAG_END_HEADERS, 1, &headers);
        let mut message = vec![0u8];
        message.extend_from_slice(&(request.0.len() as u32).to_be_bytes());
        message.extend_from_slice(&request.0);
        frame(&mut out, FRAME_DATA, FLAG_END_STREAM, 1, &message);
        stream.write_all(&out).map_err(|e| format!("send: {e}"))?;

        let mut data = Vec::new();
        loop {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).map_err(|e| format!("{method}: read a frame: {e}"))?;
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let (kind, flags) = (head[3], head[4]);
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).map_err(|e| format!("{method}: read a frame: {e}"))?;
            match kind {
                FRAME_SETTINGS if flags & FLAG_ACK == 0 => {
                    let mut ack = Vec::new();
                    frame(&mut ack, FRAME_SETTINGS, FLAG_ACK, 0, &[]);
                    stream.write_all(&ack).map_err(|e| format!("send: {e}"))?;
                }
                FRAME_PING if flags & FLAG_ACK == 0 => {
                    let mut pong = Vec::new();
                    frame(&mut pong, FRAME_PING, FLAG_ACK, 0, &payload);
                    stream.write_all(&pong).map_err(|e| format!("send: {e}"))?;
                }
                FRAME_DATA if id == 1 => {
                    let body = if flags & FLAG_PADDED != 0 {
                        let pad = usize::from(payload[0]);
                        &payload[1..payload.len() - pad]
                    } else {
                        &payload[..]
                    };
                    data.extend_from_slice(body);
                    if flags & FLAG_END_STREAM != 0 {
                        break;
                    }
                }
                FRAME_HEADERS if id == 1 && flags & FLAG_END_STREAM != 0 => break,
                FRAME_RST_STREAM if id == 1 => return Err(format!("{method}: stream reset")),
                FRAME_GOAWAY => return Err(format!("{method}: the server went away")),
                _ => {}
            }
        }
        if data.len() < 5 {
            return Err(format!("{method} failed (see containerd's log)"));
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        data.get(5..5 + len).map(<[u8]>::to_vec).ok_or_else(|| format!("{method}: a truncated response"))
    }

    /// [`Cri::call`] that must succeed.
    pub fn ok(&self, method: &str, request: &Pb) -> Vec<u8> {
        self.call(method, request).unwrap_or_else(|e| panic!("CRI {e}"))
    }
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK "literal header field without indexing, new name", no Huffman.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    for text in [name, value] {
        hpack_length(out, text.len());
        out.extend_from_slice(text.as_bytes());
    }
}

/// An HPACK integer with a 7-bit prefix (the Huffman bit clear).
fn hpack_length(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// A protobuf message being built.
#[derive(Debug, Clone, Default)]
pub struct Pb(pub Vec<u8>);

impl Pb {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, field: u32, wire: u64) {
        varint(&mut self.0, u64::from(field) << 3 | wire);
    }

    fn bytes(mut self, field: u32, bytes: &[u8]) -> Self {
        self.key(field, 2);
        varint(&mut self.0, bytes.len() as u64);
        self.0.extend_from_slice(bytes);
        self
    }

    /// A string field (a repeated one when called again with the same field).
    pub fn str(self, field: u32, text: &str) -> Self {
        self.bytes(field, text.as_bytes())
    }

    /// A nested message.
    pub fn msg(self, field: u32, message: Pb) -> Self {
        self.bytes(field, &message.0)
    }

    /// An integer or enum field.
    pub fn int(mut self, field: u32, value: u64) -> Self {
        self.key(field, 0);
        varint(&mut self.0, value);
        self
    }

    /// One entry of a `map<string, string>` field.
    pub fn map(self, field: u32, key: &str, value: &str) -> Self {
        self.msg(field, Pb::new().str(1, key).str(2, value))
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One decoded field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(u64),
    Bytes(Vec<u8>),
}

/// The fields of a protobuf message, in order (fixed-width fields skipped).
pub fn fields(mut bytes: &[u8]) -> Vec<(u32, Value)> {
    fn read_varint(bytes: &mut &[u8]) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&byte, rest)) = bytes.split_first() else { break };
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        value
    }
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes);
        let field = (key >> 3) as u32;
        match key & 7 {
            0 => found.push((field, Value::Int(read_varint(&mut bytes)))),
            2 => {
                let len = (read_varint(&mut bytes) as usize).min(bytes.len());
                found.push((field, Value::Bytes(bytes[..len].to_vec())));
                bytes = &bytes[len..];
            }
            1 => bytes = &bytes[8.min(bytes.len())..],
            5 => bytes = &bytes[4.min(bytes.len())..],
            _ => break,
        }
    }
    found
}

/// The bytes of field `field` (empty when absent).
pub fn field(bytes: &[u8], field: u32) -> Vec<u8> {
    fields(bytes)
        .into_iter()
        .find_map(|(f, v)| match v {
            Value::Bytes(b) if f == field => Some(b),
            _ => None,
        })
        .unwrap_or_default()
}

/// The string field `field`.
pub fn string(bytes: &[u8], n: u32) -> String {
    String::from_utf8_lossy(&field(bytes, n)).into_owned()
}

/// The integer field `field` (0 when absent, as proto3 leaves defaults out).
pub fn int(bytes: &[u8], field: u32) -> u64 {
    fields(bytes)
        .into_iter()
        .find_map(|(f, v)| match v {
            Value::Int(n) if f == field => Some(n),
            _ => None,
        })
        .unwrap_or(0)
}

#[test]
fn protobuf_messages_round_trip() {
    let message = Pb::new().str(1, "id").int(3, 2).msg(2, Pb::new().str(1, "name").int(2, 300)).map(7, "k", "v");
    assert_eq!(string(&message.0, 1), "id");
    assert_eq!(int(&message.0, 3), 2);
    let nested = field(&message.0, 2);
    assert_eq!(string(&nested, 1), "name");
    assert_eq!(int(&nested, 2), 300);
    let entry = field(&message.0, 7);
    assert_eq!((string(&entry, 1), string(&entry, 2)), ("k".to_owned(), "v".to_owned()));
    // A negative int32 (an exit code) is a ten-byte varint.
    let negative = Pb::new().int(7, -1i64 as u64);
    assert_eq!(int(&negative.0, 7) as i64 as i32, -1);
    let mut long = Vec::new();
    hpack_length(&mut long, 300);
    assert_eq!(long, [127, 173, 1]);
}
