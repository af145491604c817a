//! The trainer's side of the event channel: never blocks training.

use std::collections::VecDeque;

use crossbeam_channel::{Sender, TrySendError};

use super::protocol::Event;

/// Sends events without blocking: when the channel is full, metric events wait in a
/// backlog (sent first next time) and snapshots are dropped and counted.
pub(crate) struct EventSink {
    tx: Sender<Event>,
    wake: Box<dyn Fn() + Send>,
    backlog: VecDeque<Event>,
    /// Snapshots dropped since the last [`EventSink::take_dropped`].
    dropped: usize,
    /// The consumer hung up: nobody listens any more.
    pub(crate) disconnected: bool,
}

impl EventSink {
    pub(crate) fn new(tx: Sender<Event>, wake: Box<dyn Fn() + Send>) -> Self {
        Self {
            tx,
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

    /// Sends a snapshot if there is room right now; otherwise drops it.
    pub(crate) fn send_snapshot(&mut self, event: Event) {
        if self.disconnected {
            return;
        }
        if !self.flush_backlog() {
            self.dropped += 1;
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => (self.wake)(),
            Err(TrySendError::Full(_)) => self.dropped += 1,
            Err(TrySendError::Disconnected(_)) => self.disconnected = true,
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
    use std::sync::Arc;

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
        let mut sink = EventSink::new(tx, Box::new(|| {}));
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
