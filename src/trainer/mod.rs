//! The background trainer: a named thread that trains queued runs one at a time and
//! streams [`Event`]s back.
//!
//! The GUI and the CLI hold a [`Trainer`] handle: commands go in through a bounded
//! channel, events come out through another. The trainer never blocks on a slow
//! consumer: metric events wait in a small backlog on the trainer's side, attention
//! snapshots are dropped (and counted) instead. A callback (`wake`) tells the consumer
//! that events are waiting, so the GUI can request a repaint without the trainer
//! knowing about egui.

mod backend;
mod protocol;
mod session;
mod sink;
mod worker;

pub use backend::{CpuBackend, select_backend};
pub use protocol::{
    AttentionSnapshot, BackendInfo, Command, Event, Fault, Metrics, Probe, RunId, RunStatus,
    RunSummary, StartRun,
};
pub use worker::{Trainer, TrainerGone};

/// Largest attention map side sent in snapshots; longer probes are averaged down.
pub const MAX_SNAPSHOT_SIDE: usize = 256;
