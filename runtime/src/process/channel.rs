//! The typed channel between the stages that build a container process.
//!
//! Each direction between two stages is its own `SOCK_SEQPACKET` socket pair that
//! carries one message type, so a message can only be read by the stage it is for:
//! a [`Sender<M>`] can only send `M`, a [`Receiver<M>`] can only receive `M`. A
//! message is one JSON datagram, optionally with file descriptors (`SCM_RIGHTS`).
//! A closed peer reads as [`ChannelError::Closed`], which is how a stage learns that
//! the other one died.

use std::io::IoSlice;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest message: stage messages are small (a failure's text at most).
const MAX_MESSAGE: usize = 64 * 1024;
const MAX_FDS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the other stage closed the channel")]
    Closed,
    #[error("stage channel: {0}")]
    Sys(#[from] nix::Error),
    #[error("stage channel: malformed message: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The sending end of a one-way channel of `M`.
#[derive(Debug)]
pub struct Sender<M> {
    fd: OwnedFd,
    _message: PhantomData<fn(M)>,
}

/// The receiving end of a one-way channel of `M`.
#[derive(Debug)]
pub struct Receiver<M> {
    fd: OwnedFd,
    _message: PhantomData<fn() -> M>,
}

/// A new one-way channel. Both ends are close-on-exec.
pub fn channel<M>() -> Result<(Sender<M>, Receiver<M>), ChannelError> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((Sender { fd: a, _message: PhantomData }, Receiver { fd: b, _message: PhantomData }))
}

impl<M: Serialize> Sender<M> {
    pub fn send(&self, message: &M) -> Result<(), ChannelError> {
        self.send_with_fds(message, &[])
    }

    /// Sends `message` with descriptors that the receiver gets as its own.
    pub fn send_with_fds(&self, message: &M, fds: &[RawFd]) -> Result<(), ChannelError> {
        let bytes = serde_json::to_vec(message)?;
        let iov = [IoSlice::new(&bytes)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        loop {
            match sendmsg::<()>(self.fd.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => return Err(ChannelError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<M: DeserializeOwned> Receiver<M> {
    pub fn recv(&self) -> Result<M, ChannelError> {
        let (message, fds) = self.recv_with_fds()?;
        drop(fds);
        Ok(message)
    }

    /// Receives a message and the descriptors sent with it.
    pub fn recv_with_fds(&self) -> Result<(M, Vec<OwnedFd>), ChannelError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (len, fds) = match crate::sys::fd::recv_with_fds(self.fd.as_fd(), &mut buf, MAX_FDS) {
            Ok(received) => received,
            Err(nix::errno::Errno::ECONNRESET) => return Err(ChannelError::Closed),
            Err(e) => return Err(e.into()),
        };
        if len == 0 {
            return Err(ChannelError::Closed);
        }
        Ok((serde_json::from_slice(&buf[..len])?, fds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Ping {
        Hello(String),
        Number(i32),
    }

    #[test]
    fn messages_arrive_in_order_and_typed() {
        let (tx, rx) = channel::<Ping>().unwrap();
        tx.send(&Ping::Hello("x".into())).unwrap();
        tx.send(&Ping::Number(7)).unwrap();
        assert_eq!(rx.recv().unwrap(), Ping::Hello("x".into()));
        assert_eq!(rx.recv().unwrap(), Ping::Number(7));
    }

    #[test]
    fn a_closed_sender_reads_as_closed() {
        let (tx, rx) = channel::<Ping>().unwrap();
        drop(tx);
        assert!(matches!(rx.recv(), Err(ChannelError::Closed)));
    }

    #[test]
    fn descriptors_travel_with_a_message() {
        let (tx, rx) = channel::<Ping>().unwrap();
        let file = tempfile::tempfile().unwrap();
        tx.send_with_fds(&Ping::Number(1), &[file.as_raw_fd()]).unwrap();
        let (msg, fds) = rx.recv_with_fds().unwrap();
        assert_eq!(msg, Ping::Number(1));
        assert_eq!(fds.len(), 1);
        assert_ne!(fds[0].as_raw_fd(), file.as_raw_fd());
    }
}
