//! The trainer's protocol: [`Command`]s in, [`Event`]s out.
//!
//! No egui and no burn types cross this boundary: only plain data, so the GUI, the
//! CLI and tests all drive the trainer the same way.
//!
//! # Order of events for one run
//!
//! ```text
//! Queued -> Started -> (Step | Eval | Snapshot | Warning | Paused | Resumed)* -> Finished
//! Queued -> (Warning)* -> Finished                  (never started: stopped while queued,
//!                                                   or no backend / model could be built)
//! ```
//!
//! * `Queued` as soon as the `Start` command is read; runs execute one at a time in
//!   the order they were queued.
//! * `Started` once the backend is up and the model is built; it carries the backend,
//!   how each layer's attention is computed, the run record's folder and the probe
//!   example. A run whose backend cannot be had (`wgpu` forced with no adapter) goes
//!   from `Queued` straight to `Finished` as `failed`, with the reason.
//! * `Warning` whenever something went wrong that does not end the run: the run
//!   record cannot be written (the run trains on, unrecorded), a layer's sparse
//!   layout cannot be built (it trains with masked dense attention).
//! * `Step` after every optimiser step; `Eval` every `eval_every` steps and once at the
//!   end; `Snapshot` every `snapshot_every` steps, at step 0 and at the end. Snapshots
//!   are dropped (and counted) when the consumer is behind; the other events never are.
//! * `Finished` exactly once per queued run, also when it was stopped before starting,
//!   failed (error or panic) or diverged; its summary says which.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::RunPlan;
use crate::records::{
    AttentionSnapshot, BackendInfo, DistanceAccuracy, LayerKernelInfo, Metrics, Probe, RunStatus,
    RunSummary,
};

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
    /// Continue the run recorded in this folder from its last checkpoint (then
    /// `record_root` is ignored: the run goes on writing that record).
    pub resume: Option<PathBuf>,
    /// The remote server this run trains on, set by the trainer pool that hands it to
    /// that server's worker (a run whose backend is remote and that has none uses its
    /// first address).
    pub device: Option<String>,
}

impl StartRun {
    /// A run to train and record under `record_root`.
    pub fn new(id: RunId, plan: RunPlan, record_root: Option<PathBuf>) -> Self {
        Self {
            id,
            plan,
            record_root,
            device: None,
            fault: None,
            resume: None,
        }
    }

    /// Continues the run recorded in `record_dir` (its `config.toml` is `plan`) from
    /// its last checkpoint.
    pub fn resume(id: RunId, plan: RunPlan, record_dir: PathBuf) -> Self {
        Self {
            id,
            plan,
            record_root: None,
            fault: None,
            resume: Some(record_dir),
            device: None,
        }
    }

    /// The summary of this run before (or without) training a step.
    pub fn unstarted_summary(&self, status: RunStatus) -> RunSummary {
        RunSummary::unstarted(
            self.plan.experiment(),
            self.plan.name(),
            self.plan.settings().train.steps,
            status,
        )
    }
}

/// An injected failure (see [`StartRun::fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The training loss reads as NaN at this step.
    NanLossAt(usize),
    /// Training panics at this step.
    PanicAt(usize),
    /// No backend can be had (as when `wgpu` is forced on a machine without one).
    NoBackend,
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
        /// How each layer's attention is computed (empty for the LSTM).
        kernels: Vec<LayerKernelInfo>,
        /// Its run record, when recorded.
        record_dir: Option<PathBuf>,
        /// Trainable parameters.
        params: usize,
        /// The example whose attention is snapshotted.
        probe: Probe,
        /// When resumed: the checkpoint's step (steps up to it were trained before;
        /// events continue after it).
        resumed_from: Option<usize>,
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
        /// Held-out accuracy by the distance of each answer's dependency.
        by_distance: DistanceAccuracy,
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
