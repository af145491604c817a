//! The trainer's side of the event channel: never blocks training.

use std::collections::VecDeque;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{
    Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError, TrySendError,
};

use super::protocol::Event;

/// The bytes of a snapshot event's weights (0 for other events).
fn snapshot_bytes(event: &Event) -> usize {
    match event {
        Event::Snapshot { snapshot, .. } => snapshot.weights.len() * 4,
        _ => 0,
    }
}

/// The front end's side of the event channel: a crossbeam receiver that also counts
/// the snapshot bytes it has taken, so the trainer bounds what waits in bytes.
pub struct EventReceiver {
    rx: Receiver<Event>,
    snapshot_bytes: Arc<AtomicUsize>,
}

impl EventReceiver {
    pub(crate) fn new(rx: Receiver<Event>, snapshot_bytes: Arc<AtomicUsize>) -> Self {
        Self { rx, snapshot_bytes }
    }

    fn taken(&self, event: Event) -> Event {
        let bytes = snapshot_bytes(&event);
        if bytes > 0 {
            self.snapshot_bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        event
    }

    /// The next event, waiting for it.
    pub fn recv(&self) -> Result<Event, RecvError> {
        self.rx.recv().map(|e| self.taken(e))
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Result<Event, TryRecvError> {
        self.rx.try_recv().map(|e| self.taken(e))
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(|e| self.taken(e))
    }
}

/// The callback that tells a front end something is waiting: the trainer's events
/// (shared by every thread of a pool), or a helper thread's result in the window.
/// Plain Rust, so nothing below the window depends on egui.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Most snapshot bytes waiting in the channel; a snapshot beyond it is dropped (one
/// is always let through when none waits, however large).
pub(crate) const MAX_SNAPSHOT_BYTES_AHEAD: usize = 64 << 20;

/// Sends events without blocking: when the channel is full, metric events wait in a
/// backlog (sent first next time) and snapshots are dropped and counted.
pub(crate) struct EventSink {
    tx: Sender<Event>,
    /// Snapshot bytes sent and not yet received (shared with [`EventReceiver`]).
    snapshot_bytes: Arc<AtomicUsize>,
    wake: Wake,
    backlog: VecDeque<Event>,
    /// Snapshots dropped since the last [`EventSink::take_dropped`].
    dropped: usize,
    /// The consumer hung up: nobody listens any more.
    pub(crate) disconnected: bool,
}

impl EventSink {
    pub(crate) fn new(tx: Sender<Event>, snapshot_bytes: Arc<AtomicUsize>, wake: Wake) -> Self {
        Self {
            tx,
            snapshot_bytes,
            wake,
            backlog: VecDeque::new(),
            dropped: 0,
            disconnected: false,
        }
    }

    /// Tries to empty the backlog; returns whether it is empty.
    fn flush_backlog(&mut self) -> bool {
        while let Some(event) = self.backlog.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.backlog.push_front(event);
                    return false;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.disconnected = true;
                    self.backlog.clear();
                    return true;
                }
            }
        }
        true
    }

    /// Sends an event that must arrive (metrics, lifecycle).
    pub(crate) fn send(&mut self, event: Event) {
        if self.disconnected {
            return;
        }
        if self.flush_backlog() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => self.backlog.push_back(event),
                Err(TrySendError::Disconnected(_)) => self.disconnected = true,
            }
        } else {
            self.backlog.push_back(event);
        }
        (self.wake)();
    }

    /// Sends a snapshot if there is room right now, in the channel and within
    /// [`MAX_SNAPSHOT_BYTES_AHEAD`] of snapshot bytes not yet received; otherwise drops
    /// it (snapshots are the large events: the channel is bounded in bytes, not only
    /// in count).
    pub(crate) fn send_snapshot(&mut self, event: Event) {
        if self.disconnected {
            return;
        }
        let bytes = snapshot_bytes(&event);
        let ahead = self.snapshot_bytes.load(Ordering::Acquire);
        if !self.flush_backlog() || (ahead > 0 && ahead + bytes > MAX_SNAPSHOT_BYTES_AHEAD) {
            self.dropped += 1;
            return;
        }
        self.snapshot_bytes.fetch_add(bytes, Ordering::AcqRel);
        match self.tx.try_send(event) {
            Ok(()) => (self.wake)(),
            Err(e) => {
                self.snapshot_bytes.fetch_sub(bytes, Ordering::AcqRel);
                match e {
                    TrySendError::Full(_) => self.dropped += 1,
                    TrySendError::Disconnected(_) => self.disconnected = true,
                }
            }
        }
    }

    /// Delivers the backlog, waiting for the consumer if need be (between runs, where
    /// waiting costs no training time).
    pub(crate) fn drain_blocking(&mut self) {
        while let Some(event) = self.backlog.pop_front() {
            if self.tx.send(event).is_err() {
                self.disconnected = true;
                self.backlog.clear();
            }
        }
        (self.wake)();
    }

    /// Snapshots dropped since the last call.
    pub(crate) fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AttentionSnapshot, Metrics};

    fn step(id: u64) -> Event {
        Event::Step {
            id,
            metrics: Metrics {
                step: id as usize,
                loss: 1.0,
                accuracy: 0.0,
                elapsed_secs: 0.0,
            },
        }
    }

    #[test]
    fn metrics_are_kept_and_snapshots_dropped_when_full() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let mut sink = EventSink::new(tx, Arc::default(), Arc::new(|| {}));
        for i in 0..5 {
            sink.send(step(i));
        }
        let snap = Arc::new(AttentionSnapshot {
            step: 0,
            layers: 1,
            heads: 1,
            n: 1,
            seq_len: 1,
            weights: vec![1.0],
        });
        sink.send_snapshot(Event::Snapshot {
            id: 9,
            snapshot: snap,
        });
        assert_eq!(sink.take_dropped(), 1);
        let mut got = Vec::new();
        got.extend(rx.try_iter().map(|e| e.run_id()));
        sink.send(step(5));
        got.extend(rx.try_iter().map(|e| e.run_id()));
        sink.drain_blocking();
        got.extend(rx.try_iter().map(|e| e.run_id()));
        assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    }
}

#[cfg(test)]
mod byte_bound_tests {
    use super::*;
    use crate::records::AttentionSnapshot;

    fn snapshot(floats: usize) -> Event {
        Event::Snapshot {
            id: 1,
            snapshot: Arc::new(AttentionSnapshot {
                step: 0,
                layers: 1,
                heads: 1,
                n: 1,
                seq_len: 1,
                weights: vec![0.0; floats],
            }),
        }
    }

    #[test]
    fn snapshots_waiting_are_bounded_in_bytes_not_count() {
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let bytes = Arc::new(AtomicUsize::new(0));
        let mut sink = EventSink::new(tx, bytes.clone(), Arc::new(|| {}));
        let receiver = EventReceiver::new(rx, bytes.clone());
        let quarter = MAX_SNAPSHOT_BYTES_AHEAD / 4 / 4;
        for _ in 0..10 {
            sink.send_snapshot(snapshot(quarter));
        }
        assert_eq!(sink.take_dropped(), 6, "4 fit in the byte budget, not 10");
        while receiver.try_recv().is_ok() {}
        assert_eq!(
            bytes.load(Ordering::Acquire),
            0,
            "receiving frees the budget"
        );
        sink.send_snapshot(snapshot(quarter));
        assert_eq!(sink.take_dropped(), 0);
    }
}
