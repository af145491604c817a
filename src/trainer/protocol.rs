//! The trainer's protocol: [`Command`]s in, [`Event`]s out.
//!
//! No egui and no burn types cross this boundary: only plain data, so the GUI, the
//! CLI and tests all drive the trainer the same way.
//!
//! # Order of events for one run
//!
//! ```text
//! Queued -> Started -> (Step | Eval | Snapshot | Paused | Resumed)* -> Finished
//! ```
//!
//! * `Queued` as soon as the `Start` command is read; runs execute one at a time in
//!   the order they were queued.
//! * `Started` once the backend is up and the model is built; it carries the backend,
//!   the run record's folder and the probe example.
//! * `Step` after every optimiser step; `Eval` every `eval_every` steps and once at the
//!   end; `Snapshot` every `snapshot_every` steps, at step 0 and at the end. Snapshots
//!   are dropped (and counted) when the consumer is behind; the other events never are.
//! * `Finished` exactly once per queued run, also when it was stopped before starting,
//!   failed (error or panic) or diverged; its summary says which.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::RunPlan;

/// Identifies a run within one trainer session; chosen by whoever queues it.
pub type RunId = u64;

/// What the GUI or CLI asks of the trainer.
#[derive(Clone, Debug)]
pub enum Command {
    /// Queue a run.
    Start(Box<StartRun>),
    /// Stop a queued or running run; a running one stops within one step and
    /// finishes as `stopped`.
    Stop(RunId),
    /// Stop the running run and drop every queued one.
    StopAll,
    /// Pause the running run after its current step.
    Pause,
    /// Resume a paused run.
    Resume,
    /// Stop everything and end the trainer thread.
    Shutdown,
}

/// A run to train.
#[derive(Clone, Debug)]
pub struct StartRun {
    /// Chosen by the caller; echoed in every event of this run.
    pub id: RunId,
    /// The validated run.
    pub plan: RunPlan,
    /// Where to write the run record (`<root>/<run-id>/...`); `None` records nothing.
    pub record_root: Option<PathBuf>,
    /// A failure to inject, so the failure paths (divergence, a panic inside training)
    /// can be tested end to end. `None` for real runs.
    pub fault: Option<Fault>,
}

impl StartRun {
    /// A run to train and record under `record_root`.
    pub fn new(id: RunId, plan: RunPlan, record_root: Option<PathBuf>) -> Self {
        Self {
            id,
            plan,
            record_root,
            fault: None,
        }
    }
}

/// An injected failure (see [`StartRun::fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The training loss reads as NaN at this step.
    NanLossAt(usize),
    /// Training panics at this step.
    PanicAt(usize),
}

/// Which backend a run trains on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `cpu` or `wgpu`.
    pub backend: String,
    /// The adapter or CPU description, e.g. `flex (CPU, 2 threads)` or the GPU name.
    pub adapter: String,
    /// Why this backend was chosen, e.g. `auto: only a software adapter (llvmpipe)`.
    pub reason: String,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Queued, not started yet.
    Queued,
    /// Training.
    Running,
    /// Trained every step.
    Finished,
    /// Stopped by the user.
    Stopped,
    /// An error or a panic ended it.
    Failed,
    /// The loss became NaN or infinite.
    Diverged,
}

impl RunStatus {
    /// The name used in run records.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
            RunStatus::Diverged => "diverged",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

/// Training or held-out metrics at one step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Optimiser steps done.
    pub step: usize,
    /// Mean cross-entropy over positions with a target.
    pub loss: f64,
    /// Fraction of positions with a target predicted exactly.
    pub accuracy: f64,
    /// Seconds since the run started training.
    pub elapsed_secs: f64,
}

/// The probe example whose attention is snapshotted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Input tokens.
    pub tokens: Vec<i64>,
    /// `(query, key)`: where each answer must come from.
    pub dependencies: Vec<(usize, usize)>,
}

/// The attention of every layer and head on the probe example at one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionSnapshot {
    /// Optimiser steps done when it was taken.
    pub step: usize,
    /// Layers.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Side of each stored map: the sequence length, or less when downsampled.
    pub n: usize,
    /// The probe's sequence length (`n` < `seq_len` means each cell averages a tile).
    pub seq_len: usize,
    /// `[layers][heads][n][n]`, row = query, column = key; each row sums to 1.
    pub weights: Vec<f32>,
}

impl AttentionSnapshot {
    /// The `n x n` map of one layer and head.
    pub fn map(&self, layer: usize, head: usize) -> &[f32] {
        let size = self.n * self.n;
        let start = (layer * self.heads + head) * size;
        &self.weights[start..start + size]
    }
}

/// The final word on a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's name.
    pub name: String,
    /// The experiment's name.
    pub experiment: String,
    /// The record folder's name, when recorded.
    pub run_id: Option<String>,
    /// How it ended.
    pub status: RunStatus,
    /// Optimiser steps done.
    pub steps: usize,
    /// Steps the run was configured for.
    pub planned_steps: usize,
    /// Held-out loss at the end (the last training loss when no evaluation ran).
    pub final_loss: Option<f64>,
    /// Held-out accuracy at the end.
    pub final_accuracy: Option<f64>,
    /// Last training loss.
    pub train_loss: Option<f64>,
    /// Backend it trained on (empty when it never started).
    pub backend: String,
    /// Adapter / device description.
    pub adapter: String,
    /// Trainable parameters.
    pub params: usize,
    /// Wall time training, seconds.
    pub elapsed_secs: f64,
    /// Mean optimiser steps per second.
    pub steps_per_sec: f64,
    /// Snapshots dropped because the consumer was behind.
    pub dropped_snapshots: usize,
    /// Why it did not finish, when it did not.
    pub message: Option<String>,
}

/// What the trainer reports.
#[derive(Clone, Debug)]
pub enum Event {
    /// A `Start` was accepted and queued.
    Queued {
        /// The run.
        id: RunId,
    },
    /// The run began training.
    Started {
        /// The run.
        id: RunId,
        /// Where it trains.
        backend: BackendInfo,
        /// Its run record, when recorded.
        record_dir: Option<PathBuf>,
        /// Trainable parameters.
        params: usize,
        /// The example whose attention is snapshotted.
        probe: Probe,
    },
    /// Training metrics after one optimiser step.
    Step {
        /// The run.
        id: RunId,
        /// The metrics.
        metrics: Metrics,
    },
    /// Held-out metrics.
    Eval {
        /// The run.
        id: RunId,
        /// The metrics.
        metrics: Metrics,
    },
    /// Attention on the probe example (shared: the GUI and the recorder both keep it).
    Snapshot {
        /// The run.
        id: RunId,
        /// The weights.
        snapshot: Arc<AttentionSnapshot>,
    },
    /// The run is paused (after `Pause`).
    Paused {
        /// The run.
        id: RunId,
    },
    /// The run resumed.
    Resumed {
        /// The run.
        id: RunId,
    },
    /// Something worth telling that did not stop the run (e.g. a record write failed).
    Warning {
        /// The run.
        id: RunId,
        /// What happened.
        message: String,
    },
    /// The run ended; sent exactly once per queued run.
    Finished {
        /// The run.
        id: RunId,
        /// How it ended, with final metrics.
        summary: Box<RunSummary>,
    },
}

impl Event {
    /// The run this event is about.
    pub fn run_id(&self) -> RunId {
        match self {
            Event::Queued { id }
            | Event::Started { id, .. }
            | Event::Step { id, .. }
            | Event::Eval { id, .. }
            | Event::Snapshot { id, .. }
            | Event::Paused { id }
            | Event::Resumed { id }
            | Event::Warning { id, .. }
            | Event::Finished { id, .. } => *id,
        }
    }
}
