//! The trainer's protocol: [`Command`]s in, [`Event`]s out.
//!
//! No egui and no burn types cross this boundary: only plain data, so the GUI, the
//! CLI and tests all drive the trainer the same way.
//!
//! # Order of events for one run
//!
//! ```text
//! Queued -> Warning* -> Started -> (Step | Eval | Snapshot | Warning | Paused | Continued)* -> Finished
//! Queued -> Warning* -> Finished          (never started)
//! ```
//!
//! [`RunPhase::after`] is this grammar as code: `tests/trainer.rs` checks every run's
//! events with it.
//!
//! Runs train in a pool: the dispatcher owns the one queue and hands runs, in queue
//! order, to its executors as they come free (one run at a time each; a pool of one
//! trains one run at a time). Every event of a run comes from one thread, so a run's
//! events keep this order; the events of runs training side by side interleave.
//!
//! * `Queued` as soon as the dispatcher reads the `Start`.
//! * `Warning` before `Started` when a layer's sparse layout cannot be built (it
//!   trains with masked dense attention), and after it when an attention snapshot
//!   cannot be read back (that snapshot is skipped). Nothing else warns.
//! * `Started` once the backend is chosen, the run record claimed (or, resuming,
//!   reopened), the model built and, resuming, the checkpoint loaded; it carries the
//!   backend, how each layer's attention is computed, the run record's folder and the
//!   probe example. A run that gets no further never starts: it goes from `Queued`
//!   (and any `Warning`) to `Finished` as `failed` with the reason: no backend
//!   (`wgpu` forced with no adapter), a record folder that cannot be created, a
//!   record or checkpoint that cannot be resumed, or a panic while setting up.
//! * A record that cannot be written once the run has started is not a warning
//!   either: the run ends as `failed` with the error at the end of the step whose
//!   writes failed (a run being stopped ends as `stopped`, the error in its message).
//! * `Step` after every optimiser step; `Eval` every `eval_every` steps, at the last
//!   step and when stopped after a step (unless that step was just evaluated);
//!   `Snapshot` at step 0 (not when resumed), every `snapshot_every` steps and at the
//!   last step. Snapshots are dropped (and counted) when the consumer is behind; the
//!   other events never are.
//! * `Paused` and `Continued` between steps, after `Pause` and `Continue`.
//! * `Finished` exactly once per queued run, also when it was stopped before it
//!   started, the trainer shut down with it queued, no remote server was left to
//!   train it, or it failed (error or panic) or diverged; its summary says which.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::RunPlan;
use crate::records::{
    AttentionSnapshot, BackendInfo, DistanceAccuracy, LayerKernelInfo, LengthScores, Metrics,
    Probe, RunStatus, RunSummary,
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
    /// Stop every running run and drop every queued one.
    StopAll,
    /// Pause every running run after its current step.
    Pause,
    /// Continue a paused run (un-pause; continuing a stopped run from its
    /// checkpoint is a `Start` with `resume`).
    Continue,
    /// Stop everything and end the trainer's threads.
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
    /// The fields a resumed run sets on purpose (`--set`, `--backend`), as dotted
    /// paths: these may differ from the settings its checkpoint was trained with
    /// where the registry lets them change mid-run; any other difference (an edited
    /// `config.toml`) refuses the resume.
    pub resume_changes: Vec<String>,
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
            resume_changes: Vec::new(),
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
            resume_changes: Vec::new(),
            device: None,
        }
    }

    /// This resumed run, changing `fields` (dotted paths) on purpose: see
    /// [`Self::resume_changes`].
    pub fn changing(mut self, fields: Vec<String>) -> Self {
        self.resume_changes = fields;
        self
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

    /// The summary of this run ending before it trained a step, saying why: the one
    /// constructor for runs stopped while queued, refused or lost with their server.
    pub fn ended_unstarted(&self, status: RunStatus, message: String) -> RunSummary {
        let mut summary = self.unstarted_summary(status);
        summary.message = Some(message);
        summary
    }
}

/// The message of a run stopped while it was still queued.
pub const STOPPED_BEFORE_START: &str = "stopped before it started";

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
        /// The in-context Markov task's closed-form losses on the held-out examples.
        baselines: Option<crate::tasks::InContextBaselines>,
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
        /// Held-out scores at each of `train.eval_lengths` (empty when it has none).
        lengths: Vec<LengthScores>,
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
    /// The paused run continues.
    Continued {
        /// The run.
        id: RunId,
    },
    /// Something worth telling that did not stop the run: a layer that trains with
    /// masked dense attention, a snapshot that could not be read back.
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
            | Event::Continued { id }
            | Event::Warning { id, .. }
            | Event::Finished { id, .. } => *id,
        }
    }
}

/// Where a run stands in the event grammar (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPhase {
    /// `Queued` (and any `Warning`) seen, not started.
    Queued,
    /// `Started` seen: steps, evaluations, snapshots, warnings, pauses follow.
    Running,
    /// `Finished` seen: nothing may follow.
    Done,
}

impl RunPhase {
    /// The phase after `event` for a run in `phase` (`None`: nothing seen yet), or
    /// `None` when the grammar does not allow `event` there.
    pub fn after(phase: Option<RunPhase>, event: &Event) -> Option<RunPhase> {
        use RunPhase::{Done, Queued, Running};
        match (phase, event) {
            (None, Event::Queued { .. }) => Some(Queued),
            (Some(Queued), Event::Warning { .. }) => Some(Queued),
            (Some(Queued), Event::Started { .. }) => Some(Running),
            (Some(Queued | Running), Event::Finished { .. }) => Some(Done),
            (
                Some(Running),
                Event::Step { .. }
                | Event::Eval { .. }
                | Event::Snapshot { .. }
                | Event::Warning { .. }
                | Event::Paused { .. }
                | Event::Continued { .. },
            ) => Some(Running),
            _ => None,
        }
    }
}
