//! Task events to containerd, in order, from one thread.
//!
//! A task call queues its event and returns; the publisher thread forwards
//! each to containerd's ttrpc socket. When containerd is away (restarting),
//! the thread reconnects and retries the same event with a growing pause, so
//! an exit that happens meanwhile still reaches the new containerd (which also
//! asks the shim for every task's state when it reconnects).

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::protos::{EventsClient, ttrpc};

/// How long one event is retried while containerd cannot be reached.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// A task event: its message and the type name containerd decodes it by.
/// The names are spelled out, not read from protobuf's reflection, which
/// would build every descriptor of the events' files in each shim.
pub trait TaskEvent: Message {
    /// The message's full protobuf name.
    const TYPE: &'static str;
}

macro_rules! task_events {
    ($($event:ident),*) => {$(
        impl TaskEvent for $event {
            const TYPE: &'static str = concat!("containerd.events.", stringify!($event));
        }
    )*};
}
task_events!(
    TaskCreate,
    TaskStart,
    TaskExit,
    TaskOOM,
    TaskExecAdded,
    TaskExecStarted,
    TaskPaused,
    TaskResumed,
    TaskDelete
);

/// An event, encoded, and its topic.
struct Queued {
    topic: &'static str,
    event: Any,
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
    /// Starts the publisher thread for `namespace`, with containerd's ttrpc
    /// socket at `address`.
    pub fn start(address: String, namespace: String) -> Self {
        let (queue, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || publish_all(&address, &namespace, &rx));
        if let Err(e) = spawned {
            tracing::error!("no events thread: {e}");
        }
        Self { queue }
    }

    /// Queues `event` on `topic`.
    pub fn send<E: TaskEvent>(&self, topic: &'static str, event: E) {
        let event = match event.write_to_bytes() {
            Ok(value) => Any { type_url: E::TYPE.into(), value, ..Default::default() },
            Err(e) => {
                tracing::error!(topic, "encode an event: {e}");
                return;
            }
        };
        if self.queue.send(Queued { topic, event }).is_err() {
            tracing::warn!(topic, "events thread gone: event dropped");
        }
    }
}

fn publish_all(address: &str, namespace: &str, rx: &Receiver<Queued>) {
    let mut client = None;
    for queued in rx {
        let mut pause = Duration::from_millis(50);
        let mut waited = Duration::ZERO;
        let request = ForwardRequest {
            envelope: Some(Envelope {
                timestamp: Some(crate::task::now()).into(),
                namespace: namespace.to_owned(),
                topic: queued.topic.to_owned(),
                event: Some(queued.event).into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        loop {
            if client.is_none() {
                client = connect(address);
            }
            let sent = client.as_ref().map(|c: &EventsClient| c.forward(Context::default(), &request));
            match sent {
                Some(Ok(_)) => break,
                Some(Err(e)) => {
                    tracing::debug!(topic = queued.topic, "publish failed, reconnecting: {e}");
                    client = None;
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

/// A client of containerd's events service at `address`.
fn connect(address: &str) -> Option<EventsClient> {
    let fd = containerd_shim::util::connect(address).ok()?;
    ttrpc::Client::new(fd).ok().map(EventsClient::new)
}

#[cfg(test)]
mod tests {
    use containerd_shim::protos::protobuf::MessageFull;

    use super::*;

    fn named_as_protobuf_names<E: TaskEvent + MessageFull>() {
        assert_eq!(E::TYPE, E::descriptor().full_name());
    }

    #[test]
    fn event_type_names_are_protobufs() {
        named_as_protobuf_names::<TaskCreate>();
        named_as_protobuf_names::<TaskStart>();
        named_as_protobuf_names::<TaskExit>();
        named_as_protobuf_names::<TaskOOM>();
        named_as_protobuf_names::<TaskExecAdded>();
        named_as_protobuf_names::<TaskExecStarted>();
        named_as_protobuf_names::<TaskPaused>();
        named_as_protobuf_names::<TaskResumed>();
        named_as_protobuf_names::<TaskDelete>();
    }
}
