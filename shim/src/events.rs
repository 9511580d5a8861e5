//! Task events to containerd, in order, from one thread.
//!
//! A task call queues its event and returns; the publisher thread forwards
//! each to containerd's ttrpc socket. When containerd is away (restarting),
//! the thread reconnects and retries the same event with a growing pause, so
//! an exit that happens meanwhile still reaches the new containerd (which also
//! asks the shim for every task's state when it reconnects).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;

/// How long one event is retried while containerd cannot be reached.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// An event and its topic.
struct Queued {
    topic: &'static str,
    event: Box<dyn MessageDyn>,
}

/// The sending end, shared by the task calls.
#[derive(Debug, Clone)]
pub struct Events {
    queue: Sender<Queued>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.topic)
    }
}

impl Events {
    /// Starts the publisher thread for `namespace`, with containerd at
    /// `address` and its first connection `first`.
    pub fn start(address: String, namespace: String, first: RemotePublisher) -> Self {
        let (queue, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || publish_all(&address, &namespace, first, &rx));
        if let Err(e) = spawned {
            tracing::error!("no events thread: {e}");
        }
        Self { queue }
    }

    /// Queues `event` on `topic`.
    pub fn send(&self, topic: &'static str, event: impl MessageDyn) {
        if self.queue.send(Queued { topic, event: Box::new(event) }).is_err() {
            tracing::warn!(topic, "events thread gone: event dropped");
        }
    }
}

fn publish_all(address: &str, namespace: &str, first: RemotePublisher, rx: &Receiver<Queued>) {
    let mut publisher = Some(first);
    for queued in rx {
        let mut pause = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        loop {
            if publisher.is_none() {
                publisher = RemotePublisher::new(address).ok();
            }
            let sent = publisher
                .as_ref()
                .map(|p| p.publish(Context::default(), queued.topic, namespace, clone_event(&*queued.event)));
            match sent {
                Some(Ok(())) => break,
                Some(Err(e)) => {
                    tracing::debug!(topic = queued.topic, "publish failed, reconnecting: {e}");
                    publisher = None;
                }
                None => {}
            }
            if waited >= GIVE_UP_AFTER {
                tracing::error!(topic = queued.topic, "containerd unreachable: event dropped");
                break;
            }
            std::thread::sleep(pause);
            waited += pause;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

fn clone_event(event: &dyn MessageDyn) -> Box<dyn MessageDyn> {
    event.clone_box()
}
