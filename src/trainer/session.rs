//! One run, start to finish, split the way burn-train splits `train` (set-up,
//! checkpoint, events) from `fit` (the loop): [`train`] claims the backend and the run
//! record (a resumed one checked and locked), builds the model, restores the
//! checkpoint a resumed run continues from and only then reopens its record,
//! announces the run (`Warning`s, `Started`, the step-0 snapshot) and, once the loop
//! is done, ends it (its summary, the record's last write). `fit` (`fit.rs`) is
//! the step loop alone: steps, and evaluation, snapshots and checkpoints as their
//! [`Cadence`](super::cadence::Cadence) falls due, until the last step or a stop.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use rand::{SeedableRng, rngs::StdRng};

use super::lengths::{EVAL_SEED_MIX, LengthSet, length_sets};
use super::protocol::{Event, Fault, RunId, StartRun};
use super::recorder::{CheckpointError, Recorder, RecorderError, Resume};
use super::sink::EventSink;
use super::step::optimizer;
use crate::config::{ModelKind, RunPlan, Settings};
use crate::device::{BackendError, select_device};
use crate::model::{
    LayerMixer, LstmNetConfig, Mixing, ReadbackError, SequenceModel, SparseMode, TransformerConfig,
};
use crate::records::{BackendInfo, LayerKernelInfo, Metrics, Probe, RunStatus, RunSummary};
use crate::tasks::{Batch, FiniteSet};

/// Draws every parameter now: burn initialises parameters lazily, at first use,
/// which in a pool would fall outside [`crate::model::init_lock`].
fn materialize<M: SequenceModel>(model: &M) {
    drop(model.clone().into_record());
}

/// Why a run could not go on: it ends as `failed`, with this error as its message.
#[derive(Debug, thiserror::Error)]
pub(super) enum RunError {
    /// No backend could be had.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The run record could not be claimed, written or finished.
    #[error(transparent)]
    Record(#[from] RecorderError),
    /// The checkpoint a resumed run continues from could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A value could not be read back from the device.
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    /// A length of `train.eval_lengths` cannot be planned (validation refuses those).
    #[error("{0}")]
    Lengths(String),
    /// Training panicked (the text of the panic).
    #[error("training panicked: {0}")]
    Panicked(String),
}

/// How a run that did not fail ended.
#[derive(Debug)]
pub(super) enum Ending {
    /// Every step trained.
    Finished,
    /// Stopped by a command; the message says at which step.
    Stopped(String),
    /// The training loss stopped being finite; the message says when and what to try.
    Diverged(String),
}

/// Whether the run goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// What a run needs from the thread that drives it.
pub(crate) trait Control {
    /// Handles pending commands (blocking while paused); called after every step.
    fn poll(&mut self, current: RunId) -> Flow;
    /// Handles pending commands without blocking and says whether the running run
    /// must stop (checked during set-up and between evaluation batches, so a stop
    /// never waits for a long evaluation).
    fn stop_requested(&mut self, current: RunId) -> bool;
    /// Where events go.
    fn sink(&mut self) -> &mut EventSink;
    /// The run claimed its record folder (`None`: it writes none).
    fn opened(&mut self, _record: Option<&std::path::Path>) {}
    /// Whether whoever drives the run gave up on it (a step stuck on a remote server
    /// that stopped answering): it then writes and sends nothing more.
    fn abandoned(&self) -> bool {
        false
    }
}

/// The text of a caught panic.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Trains one run and returns its summary; never panics (a panic inside training
/// ends the run as `failed`).
pub(crate) fn train(run: &StartRun, control: &mut dyn Control) -> RunSummary {
    let mut summary = run.unstarted_summary(RunStatus::Running);
    let (device, backend, mut recorder) = match open(run, &mut summary) {
        Ok(opened) => opened,
        Err(e) => {
            summary.status = RunStatus::Failed;
            summary.message = Some(e.to_string());
            return summary;
        }
    };
    control.opened(recorder.dir().as_deref());
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        build_and_fit(run, device, backend, control, &mut recorder, &mut summary)
    }))
    .unwrap_or_else(|panic| Err(RunError::Panicked(panic_text(panic.as_ref()))));
    (summary.status, summary.message) = match outcome {
        Ok(Ending::Finished) => (RunStatus::Finished, None),
        Ok(Ending::Stopped(message)) => (RunStatus::Stopped, Some(message)),
        Ok(Ending::Diverged(message)) => (RunStatus::Diverged, Some(message)),
        Err(e) => (RunStatus::Failed, Some(e.to_string())),
    };
    if let Some(reference) = run.plan.reference() {
        summary.reference = Some(reference.compare(
            (summary.status != RunStatus::Finished).then(|| summary.status.name()),
            summary.final_accuracy,
            summary.final_loss,
            run.plan.settings().task.chance_accuracy(),
            summary.baselines.as_ref(),
        ));
    }
    finish(&mut summary, started, &mut recorder, control);
    summary
}

/// Picks the device and claims the run record (the summary it writes names the
/// backend). Nothing has been sent for the run yet.
fn open(
    run: &StartRun,
    summary: &mut RunSummary,
) -> Result<(Device, BackendInfo, Recorder), RunError> {
    let (device, backend) = match run.fault {
        Some(Fault::NoBackend) => Err(BackendError::Injected),
        _ => select_device(&run.plan.settings().train.backend, run.device.as_deref()),
    }?;
    summary.backend = backend.backend.clone();
    summary.adapter = backend.adapter.clone();
    let recorder = Recorder::create(run, summary)?;
    Ok((device, backend, recorder))
}

/// Seeds the device, builds the model the plan names and trains it.
fn build_and_fit(
    run: &StartRun,
    device: Device,
    backend: BackendInfo,
    control: &mut dyn Control,
    recorder: &mut Recorder,
    summary: &mut RunSummary,
) -> Result<Ending, RunError> {
    // Seeding and drawing the parameters happen together, one run at a time: burn's
    // CPU backend has one process-wide generator, and runs in a pool would otherwise
    // draw from each other's seeded stream. A remote server seeds its own generator
    // (one executor per server), and its calls may stall on the network: a remote run
    // never takes the lock, so a frozen server cannot hold up the other runs.
    let init = (backend.backend != "remote").then(crate::model::init_lock);
    let mut ctx = RunContext::new(run, device, control, recorder, summary);
    match run.plan.settings().model.kind {
        ModelKind::Transformer => {
            let model = TransformerConfig::from_plan(&run.plan).init(&ctx.train_device);
            materialize(&model);
            drop(init);
            ctx.run(model, backend)
        }
        ModelKind::Lstm => {
            let model = LstmNetConfig::from_plan(&run.plan).init(&ctx.train_device);
            materialize(&model);
            drop(init);
            ctx.run(model, backend)
        }
    }
}

/// Completes the summary of a run that got a backend and a record, and finishes the
/// record with it (a record that cannot be finished fails the run).
fn finish(
    summary: &mut RunSummary,
    started: Instant,
    recorder: &mut Recorder,
    control: &mut dyn Control,
) {
    if control.abandoned() {
        // The pool already ended the run and wrote its record.
        return;
    }
    if summary.elapsed_secs == 0.0 {
        summary.elapsed_secs = started.elapsed().as_secs_f64();
    }
    if summary.status == RunStatus::Failed
        && summary.backend == "remote"
        && !crate::device::server_answers(&summary.adapter)
    {
        summary.message = Some(format!(
            "the remote server {} stopped answering at step {} ({})",
            summary.adapter,
            summary.steps,
            summary.message.as_deref().unwrap_or("no reason given")
        ));
    }
    summary.dropped_snapshots += control.sink().take_dropped();
    summary.pid = None;
    if let Err(e) = recorder.finish(summary) {
        summary.status = RunStatus::Failed;
        summary.message = Some(e.to_string());
    }
}

/// What set-up hands to the loop, besides the model.
pub(super) struct Prepared {
    pub(super) optim: ModuleOptimizer,
    /// The layers' mixing on the autodiff device (training).
    pub(super) mixing_train: Mixing,
    /// The layers' mixing on the plain device (evaluation, snapshots).
    pub(super) mixing_eval: Mixing,
    /// Where the training batches come from.
    pub(super) data: TrainingData,
    /// The fixed held-out batches.
    pub(super) eval_set: Vec<Batch>,
    /// The fixed held-out sets and mixing at `train.eval_lengths`.
    pub(super) lengths: Vec<LengthSet>,
    /// The example whose attention is snapshotted.
    pub(super) probe: Probe,
    /// The first step to train (1, or the one after the checkpoint resumed from).
    pub(super) first_step: usize,
}

/// Where a run's training batches come from.
pub(super) enum TrainingData {
    /// Fresh examples every step, from the run's data stream (advanced past the
    /// trained steps when resumed).
    Fresh(StdRng),
    /// A fixed set (`train.examples`), reshuffled every epoch: each step's batch is a
    /// function of the step.
    Finite(FiniteSet),
}

impl TrainingData {
    /// The data of a run with `settings`, drawn from its data stream `rng`.
    fn new(settings: &Settings, mut rng: StdRng) -> Self {
        let train = &settings.train;
        match train.examples {
            0 => Self::Fresh(rng),
            n => Self::Finite(FiniteSet::draw(&settings.task, n, train.seed, &mut rng)),
        }
    }

    /// The batch step `step` (from 1) trains on; fresh data must be asked for every
    /// step in order.
    pub(super) fn batch(&mut self, settings: &Settings, step: usize) -> Batch {
        let batch = settings.train.batch;
        match self {
            Self::Fresh(rng) => settings.task.batch(batch, rng),
            Self::Finite(set) => set.batch(step, batch),
        }
    }

    /// Skips the batches of steps `1..=steps` (a resumed run's trained steps): fresh
    /// data draws them again; a finite set needs nothing.
    fn skip(&mut self, settings: &Settings, steps: usize) {
        if let Self::Fresh(rng) = self {
            for _ in 0..steps {
                settings.task.batch(settings.train.batch, rng);
            }
        }
    }
}

/// Everything the training loop of one run shares.
pub(super) struct RunContext<'a> {
    pub(super) id: RunId,
    pub(super) plan: &'a RunPlan,
    pub(super) device: Device,
    pub(super) train_device: Device,
    pub(super) control: &'a mut dyn Control,
    pub(super) recorder: &'a mut Recorder,
    pub(super) summary: &'a mut RunSummary,
    /// Seconds spent stepping, evaluating and snapshotting (pauses excluded).
    pub(super) busy_secs: f64,
    /// Injected failure, for tests.
    pub(super) fault: Option<Fault>,
    /// The run is stopping: evaluations take one batch.
    pub(super) stopping: bool,
    /// The step of the last evaluation.
    pub(super) last_eval: Option<usize>,
}

impl<'a> RunContext<'a> {
    fn new(
        run: &'a StartRun,
        device: Device,
        control: &'a mut dyn Control,
        recorder: &'a mut Recorder,
        summary: &'a mut RunSummary,
    ) -> Self {
        device.seed(run.plan.settings().train.seed);
        let train_device = device.clone().autodiff();
        Self {
            id: run.id,
            plan: &run.plan,
            device,
            train_device,
            control,
            recorder,
            summary,
            busy_secs: 0.0,
            fault: run.fault,
            stopping: false,
            last_eval: None,
        }
    }

    /// Sets the run up, then trains it unless a stop came meanwhile.
    fn run<M: SequenceModel>(
        &mut self,
        model: M,
        backend: BackendInfo,
    ) -> Result<Ending, RunError> {
        let (model, prepared) = self.set_up(model, backend)?;
        if self.control.stop_requested(self.id) {
            let at = prepared.first_step - 1;
            return Ok(Ending::Stopped(format!("stopped at step {at}")));
        }
        self.fit(model, prepared)
    }

    /// Kernels, data, the evaluation set and the probe; the checkpoint when resuming;
    /// then `Started` and, for a fresh run, the step-0 snapshot. The random draws
    /// happen in this order, so a plan trains to the same losses every time.
    fn set_up<M: SequenceModel>(
        &mut self,
        model: M,
        backend: BackendInfo,
    ) -> Result<(M, Prepared), RunError> {
        let plan = self.plan;
        let (task, train) = (&plan.settings().task, &plan.settings().train);
        let mixing_train = Mixing::for_plan(plan, &self.train_device, SparseMode::WherePaysOff);
        let mixing_eval = Mixing::for_plan(plan, &self.device, SparseMode::WherePaysOff);
        let kernels = self.kernel_infos(&mixing_train);
        let mut data = TrainingData::new(plan.settings(), StdRng::seed_from_u64(train.seed));
        let mut eval_rng = StdRng::seed_from_u64(train.seed ^ EVAL_SEED_MIX);
        let eval_set: Vec<Batch> = (0..train.eval_batches)
            .map(|_| task.eval_batch(train.batch, &mut eval_rng))
            .collect();
        let lengths = length_sets(plan, &self.device).map_err(RunError::Lengths)?;
        let probe = task.probe(train.seed);
        let probe = Probe {
            tokens: probe.tokens,
            dependencies: probe.dependencies,
        };
        self.summary.params = model.num_params();
        self.summary.state_floats = Some(crate::config::state_floats(plan.settings()));
        self.summary.kernels = kernels.clone();
        self.summary.baselines = task.in_context_baselines(&eval_set);
        let resume = self.recorder.take_resume();
        let (model, optim) = match &resume {
            Some(resume) => {
                let restored = self.restore(resume, model, &mut data)?;
                // The checkpoint loaded: only now is the record rewritten.
                self.recorder.reopen(resume.state.step, self.summary)?;
                restored
            }
            None => (model, optimizer(train)),
        };
        self.control.sink().send(Event::Started {
            id: self.id,
            backend,
            kernels,
            record_dir: self.recorder.dir(),
            params: self.summary.params,
            probe: probe.clone(),
            resumed_from: resume.as_ref().map(|r| r.state.step),
            baselines: self.summary.baselines,
        });
        if resume.is_none() {
            self.snapshot(&model, &mixing_eval, &probe, 0);
        }
        let prepared = Prepared {
            optim,
            mixing_train,
            mixing_eval,
            data,
            eval_set,
            lengths,
            probe,
            first_step: resume.map_or(1, |r| r.state.step + 1),
        };
        Ok((model, prepared))
    }

    /// How each layer mixes its tokens, read through [`Mixing::layer`] (one pass per
    /// layer; a new kind of mixer is one more arm here); warns about each attention
    /// layer whose sparse layout could not be built.
    fn kernel_infos(&mut self, mixing: &Mixing) -> Vec<LayerKernelInfo> {
        let mut infos = Vec::new();
        for (l, mixer) in (0..).map_while(|l| mixing.layer(l)).enumerate() {
            let k = match mixer {
                LayerMixer::Attention(k) => k,
                LayerMixer::Other(m) => {
                    infos.push(LayerKernelInfo {
                        kernel: m.name().into(),
                        reason: Some(format!("{}, composed burn ops", m.label())),
                    });
                    continue;
                }
            };
            if k.fault
                && let Some(reason) = &k.reason
            {
                self.warn(format!(
                    "layer {}: {reason}; it trains with masked dense attention (O(n^2))",
                    l + 1
                ));
            }
            infos.push(LayerKernelInfo {
                kernel: k.kind.name().into(),
                reason: k.reason.clone(),
            });
        }
        infos
    }

    /// Continues from `resume`: loads its model and optimiser state, skips the
    /// batches its steps trained on (so the data goes on as it would have; the
    /// learning-rate schedule and dropout follow the step number), and carries on its
    /// clock and step count.
    fn restore<M: SequenceModel>(
        &mut self,
        resume: &Resume,
        model: M,
        data: &mut TrainingData,
    ) -> Result<(M, ModuleOptimizer), CheckpointError> {
        let (model, optim) = resume.restore(model, optimizer(&self.plan.settings().train))?;
        data.skip(self.plan.settings(), resume.state.step);
        self.busy_secs = resume.state.busy_secs;
        self.summary.steps = resume.state.step;
        Ok((model, optim))
    }

    /// Records a measured step's peak: the bytes it allocated beyond those live
    /// before it, plus the parameters and Adam's two moments (f32) that were.
    pub(super) fn note_peak_memory(&mut self, step_peak: usize) {
        if self.summary.backend == "remote" {
            return; // the memory is the server's, not this process's
        }
        let resident = self.summary.params as u64 * 3 * 4;
        let peak = step_peak as u64 + resident;
        let known = self.summary.peak_memory_bytes.unwrap_or(0);
        self.summary.peak_memory_bytes = Some(known.max(peak));
    }

    pub(super) fn metrics(&self, step: usize, loss: f64, accuracy: f64) -> Metrics {
        Metrics {
            step,
            loss,
            accuracy,
            elapsed_secs: self.busy_secs,
        }
    }

    pub(super) fn warn(&mut self, message: String) {
        let id = self.id;
        self.control.sink().send(Event::Warning { id, message });
    }

    pub(super) fn finish_timing(&mut self) {
        self.summary.elapsed_secs = self.busy_secs;
        if self.busy_secs > 0.0 {
            self.summary.steps_per_sec = self.summary.steps as f64 / self.busy_secs;
        }
    }
}
