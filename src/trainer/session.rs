//! One run, start to finish: backend, model, the training loop, evaluation,
//! snapshots and the run record.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{SeedableRng, rngs::StdRng};

use super::backend::{BackendError, select_device};
use super::protocol::{Event, Fault, RunId, StartRun};
use super::sink::EventSink;
use super::step::{tokens_tensor, train_step};
use crate::config::{ModelKind, RunPlan};
use crate::model::{
    AttentionKernels, LstmNetConfig, ReadbackError, SequenceModel, SparseMode, TransformerConfig,
    accuracy_of, masked_cross_entropy, predictions, read_back, scalar,
};
use crate::records::{
    AttentionSnapshot, BackendInfo, CheckpointState, DistanceAccuracy, LayerKernelInfo, Metrics,
    Probe, RecordError, RecordWriter, RunStatus, RunSummary, SnapshotHeader, checkpoint_dir,
    commit_checkpoint, read_checkpoint,
};
use crate::tasks::{Batch, IGNORE};

/// Draws every parameter now: burn initialises parameters lazily, at first use,
/// which in a pool would fall outside [`INIT`].
fn materialize<M: SequenceModel>(model: &M) {
    drop(model.clone().into_record());
}

/// Held while a run seeds the device and draws its parameters.
static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Largest attention map side sent in snapshots; longer probes are averaged down.
pub const MAX_SNAPSHOT_SIDE: usize = 256;

/// Why a run could not go on (it ends as `failed` with this message).
#[derive(Debug)]
struct RunError(String);

impl From<ReadbackError> for RunError {
    fn from(e: ReadbackError) -> Self {
        Self(e.to_string())
    }
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
    let selected = match run.fault {
        Some(Fault::NoBackend) => Err(BackendError::Injected),
        _ => select_device(&run.plan.settings().train.backend, run.device.as_deref()),
    };
    let (device, backend) = match selected {
        Ok(selected) => selected,
        Err(e) => {
            summary.status = RunStatus::Failed;
            summary.message = Some(e.to_string());
            return summary;
        }
    };
    summary.backend = backend.backend.clone();
    summary.adapter = backend.adapter.clone();
    let mut recorder = match Recorder::create(run, &mut summary) {
        Ok(recorder) => recorder,
        Err(message) => {
            summary.status = RunStatus::Failed;
            summary.message = Some(message);
            return summary;
        }
    };
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // Seeding and drawing the parameters happen together, one run at a time:
        // burn's CPU backend has one process-wide generator, and runs in a pool
        // would otherwise draw from each other's seeded stream.
        let init = INIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut ctx = RunContext::new(run, device, control, &mut recorder, &mut summary);
        match run.plan.settings().model.kind {
            ModelKind::Transformer => {
                let model = TransformerConfig::from_plan(&run.plan).init(&ctx.train_device);
                materialize(&model);
                drop(init);
                ctx.train_loop(model, backend)
            }
            ModelKind::Lstm => {
                let model = LstmNetConfig::from_plan(&run.plan).init(&ctx.train_device);
                materialize(&model);
                drop(init);
                ctx.train_loop(model, backend)
            }
        }
    }));
    match outcome {
        Ok(Ok((status, message))) => {
            summary.status = status;
            summary.message = message;
        }
        Ok(Err(RunError(message))) => {
            summary.status = RunStatus::Failed;
            summary.message = Some(message);
        }
        Err(panic) => {
            summary.status = RunStatus::Failed;
            summary.message = Some(format!("training panicked: {}", panic_text(panic.as_ref())));
        }
    }
    if summary.elapsed_secs == 0.0 {
        summary.elapsed_secs = started.elapsed().as_secs_f64();
    }
    if summary.status == RunStatus::Failed
        && summary.backend == "remote"
        && !super::backend::server_answers(&summary.adapter)
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
    if let Err(message) = recorder.finish(&summary) {
        summary.status = RunStatus::Failed;
        summary.message = Some(message);
    }
    summary
}

/// The run record, if any. A write that fails ends recording and, at the next check,
/// the run: a run that cannot be recorded stops with the error, rather than train on
/// unrecorded.
struct Recorder {
    writer: Option<RecordWriter>,
    header: Option<SnapshotHeader>,
    error: Option<String>,
    /// The checkpoint a resumed run continues from.
    resume: Option<CheckpointState>,
}

impl Recorder {
    /// Claims the record's folder; `Err` says why no record can be written.
    fn create(run: &StartRun, summary: &mut RunSummary) -> Result<Self, String> {
        let mut recorder = Self {
            writer: None,
            header: None,
            error: None,
            resume: None,
        };
        if let Some(dir) = &run.resume {
            let checkpoint = read_checkpoint(dir)
                .map_err(|e| format!("cannot resume {}: {e}", dir.display()))?
                .ok_or_else(|| {
                    format!(
                        "cannot resume {}: the record has no checkpoint (it stopped before its first)",
                        dir.display()
                    )
                })?;
            let writer = RecordWriter::reopen(dir, checkpoint.step, summary)
                .map_err(|e| format!("cannot resume {}: {e}", dir.display()))?;
            recorder.writer = Some(writer);
            recorder.resume = Some(checkpoint);
            return Ok(recorder);
        }
        if let Some(root) = &run.record_root {
            let config = run
                .plan
                .config_toml()
                .map_err(|e| format!("cannot write the run's config.toml: {e}"))?;
            let writer = RecordWriter::create(
                root,
                run.plan.experiment(),
                run.plan.name(),
                &config,
                summary,
            )
            .map_err(|e| format!("cannot create the run record under {}: {e}", root.display()))?;
            recorder.writer = Some(writer);
        }
        Ok(recorder)
    }

    fn dir(&self) -> Option<PathBuf> {
        self.writer.as_ref().map(|w| w.dir().to_path_buf())
    }

    fn write(&mut self, f: impl FnOnce(&mut RecordWriter) -> Result<(), RecordError>) {
        if let Some(writer) = &mut self.writer
            && let Err(e) = f(writer)
        {
            self.writer = None;
            self.error = Some(format!("the run record could not be written: {e}"));
        }
    }

    /// Saves the model and optimiser state as the record's checkpoint of `step`.
    fn checkpoint<M: SequenceModel>(
        &mut self,
        model: &M,
        optim: &ModuleOptimizer,
        step: usize,
        busy_secs: f64,
    ) {
        let Some(dir) = self.dir() else {
            return;
        };
        let folder = checkpoint_dir(&dir);
        let state = CheckpointState {
            step,
            busy_secs,
            model: format!("model-{step}.bpk"),
            optimizer: format!("optimizer-{step}.bpk"),
        };
        let saved = std::fs::create_dir_all(&folder)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                model
                    .clone()
                    .save_file(folder.join(&state.model))
                    .map_err(|e| format!("{e:?}"))
            })
            .and_then(|()| {
                optim
                    .save(folder.join(&state.optimizer))
                    .map_err(|e| format!("{e:?}"))
            })
            .and_then(|()| commit_checkpoint(&dir, &state).map_err(|e| e.to_string()));
        if let Err(e) = saved {
            self.writer = None;
            self.error = Some(format!(
                "the checkpoint at step {step} could not be saved: {e}"
            ));
        }
    }

    /// The write error since the last call, if any.
    fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<(), String> {
        if let Some(message) = self.error.take() {
            return Err(message);
        }
        match self.writer.take() {
            Some(writer) => writer
                .finish(summary)
                .map_err(|e| format!("could not finish the run record: {e}")),
            None => Ok(()),
        }
    }
}

/// Everything the training loop of one run shares.
struct RunContext<'a> {
    id: RunId,
    plan: &'a RunPlan,
    device: Device,
    train_device: Device,
    control: &'a mut dyn Control,
    recorder: &'a mut Recorder,
    summary: &'a mut RunSummary,
    /// Seconds spent stepping, evaluating and snapshotting (pauses excluded).
    busy_secs: f64,
    /// Injected failure, for tests.
    fault: Option<Fault>,
    /// The run is stopping: evaluations take one batch.
    stopping: bool,
    /// The step of the last evaluation.
    last_eval: Option<usize>,
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

    /// Records a measured step's peak: the bytes it allocated beyond those live
    /// before it, plus the parameters and Adam's two moments (f32) that were.
    fn note_peak_memory(&mut self, step_peak: usize) {
        if self.summary.backend == "remote" {
            return; // the memory is the server's, not this process's
        }
        let resident = self.summary.params as u64 * 3 * 4;
        let peak = step_peak as u64 + resident;
        let known = self.summary.peak_memory_bytes.unwrap_or(0);
        self.summary.peak_memory_bytes = Some(known.max(peak));
    }

    fn metrics(&self, step: usize, loss: f64, accuracy: f64) -> Metrics {
        Metrics {
            step,
            loss,
            accuracy,
            elapsed_secs: self.busy_secs,
        }
    }

    fn warn(&mut self, message: String) {
        let id = self.id;
        self.control.sink().send(Event::Warning { id, message });
    }

    /// The loop: step, report, evaluate, snapshot, poll for commands.
    fn train_loop<M: SequenceModel>(
        &mut self,
        mut model: M,
        backend: BackendInfo,
    ) -> Result<(RunStatus, Option<String>), RunError> {
        let settings = self.plan.settings();
        let task = &settings.task;
        let train = &settings.train;
        let kernels_train =
            AttentionKernels::for_plan(self.plan, &self.train_device, SparseMode::WherePaysOff);
        let kernels_eval =
            AttentionKernels::for_plan(self.plan, &self.device, SparseMode::WherePaysOff);
        let kernels: Vec<LayerKernelInfo> = kernels_train
            .layers()
            .iter()
            .map(|k| LayerKernelInfo {
                kernel: k.kind.name().into(),
                reason: k.reason.clone(),
            })
            .collect();
        for (l, k) in kernels_train.layers().iter().enumerate() {
            if k.fault
                && let Some(reason) = &k.reason
            {
                self.warn(format!(
                    "layer {}: {reason}; it trains with masked dense attention (O(n^2))",
                    l + 1
                ));
            }
        }
        let mut data_rng = StdRng::seed_from_u64(train.seed);
        let mut eval_rng = StdRng::seed_from_u64(train.seed ^ 0x5EED_E7A1);
        let eval_set: Vec<Batch> = (0..train.eval_batches)
            .map(|_| task.eval_batch(train.batch, &mut eval_rng))
            .collect();
        let probe = task.probe(train.seed);
        let probe = Probe {
            tokens: probe.tokens,
            dependencies: probe.dependencies,
        };
        self.summary.params = model.num_params();
        self.summary.kernels = kernels.clone();
        let mut optim = AdamConfig::new().init();
        let mut first_step = 1;
        let resumed_from = self.recorder.resume.clone();
        if let Some(checkpoint) = &resumed_from {
            let folder = self
                .recorder
                .dir()
                .map(|d| checkpoint_dir(&d))
                .unwrap_or_default();
            model = model
                .try_load_file(folder.join(&checkpoint.model))
                .map_err(|e| RunError(format!("cannot load the checkpoint's model: {e:?}")))?;
            optim = optim
                .load(folder.join(&checkpoint.optimizer))
                .map_err(|e| RunError(format!("cannot load the checkpoint's optimiser: {e:?}")))?;
            // The batches the first steps drew, drawn again so the data continues as it
            // would have.
            for _ in 0..checkpoint.step {
                task.batch(train.batch, &mut data_rng);
            }
            first_step = checkpoint.step + 1;
            self.busy_secs = checkpoint.busy_secs;
            self.summary.steps = checkpoint.step;
        }

        self.control.sink().send(Event::Started {
            id: self.id,
            backend,
            kernels,
            record_dir: self.recorder.dir(),
            params: self.summary.params,
            probe: probe.clone(),
            resumed_from: resumed_from.as_ref().map(|c| c.step),
        });
        if resumed_from.is_none() {
            self.snapshot(&model, &kernels_eval, &probe, 0);
        }
        if self.control.stop_requested(self.id) {
            return Ok((
                RunStatus::Stopped,
                Some(format!("stopped at step {}", first_step - 1)),
            ));
        }

        for step in first_step..=train.steps {
            let t0 = Instant::now();
            let batch = task.batch(train.batch, &mut data_rng);
            let mut step_once = |model| {
                train_step(
                    model,
                    &mut optim,
                    &batch,
                    &kernels_train,
                    train.lr,
                    &self.train_device,
                )
            };
            // The first two steps (the second has Adam's moments live) are measured
            // alone: their peak memory is this run's own even when others train.
            let (next, outcome) = if step < first_step + 2 {
                let (result, peak) = crate::memory::measure_alone(move || step_once(model));
                if let Some(peak) = peak {
                    self.note_peak_memory(peak);
                }
                result?
            } else {
                crate::memory::shared(move || step_once(model))?
            };
            model = next;
            let mut loss = outcome.loss;
            match self.fault {
                Some(Fault::NanLossAt(at)) if at == step => loss = f64::NAN,
                Some(Fault::PanicAt(at)) if at == step => panic!("injected fault at step {step}"),
                _ => {}
            }
            self.busy_secs += t0.elapsed().as_secs_f64();
            if !loss.is_finite() {
                self.summary.steps = step - 1;
                return Ok((
                    RunStatus::Diverged,
                    Some(format!(
                        "the training loss became {loss} at step {step}; try a smaller train.lr (now {})",
                        train.lr
                    )),
                ));
            }

            self.summary.steps = step;
            self.summary.train_loss = Some(loss);
            let metrics = self.metrics(step, loss, outcome.accuracy);
            self.recorder.write(|w| w.metric("train", &metrics));
            self.control.sink().send(Event::Step {
                id: self.id,
                metrics,
            });

            let last = step == train.steps;
            if last || (train.eval_every > 0 && step % train.eval_every == 0) {
                self.evaluate(&model, &kernels_eval, &eval_set, step)?;
            }
            if last || (train.snapshot_every > 0 && step % train.snapshot_every == 0) {
                self.snapshot(&model, &kernels_eval, &probe, step);
            }
            if last || (train.checkpoint_every > 0 && step % train.checkpoint_every == 0) {
                self.recorder
                    .checkpoint(&model, &optim, step, self.busy_secs);
                // The summary on disk follows the checkpoints, so a run that is killed
                // lists with the steps it can resume from.
                let summary = self.summary.clone();
                self.recorder.write(|w| w.write_summary(&summary));
            }
            if let Some(message) = self.recorder.take_error() {
                self.finish_timing();
                return Ok((RunStatus::Failed, Some(message)));
            }
            if !last && self.control.poll(self.id) == Flow::Stop {
                self.stopping = true;
                if self.last_eval != Some(step) {
                    self.evaluate(&model, &kernels_eval, &eval_set, step)?;
                }
                self.recorder
                    .checkpoint(&model, &optim, step, self.busy_secs);
                self.finish_timing();
                let mut message = format!("stopped at step {step}");
                if let Some(e) = self.recorder.take_error() {
                    message = format!("{message}; {e}");
                }
                return Ok((RunStatus::Stopped, Some(message)));
            }
        }
        self.finish_timing();
        Ok((RunStatus::Finished, None))
    }

    fn finish_timing(&mut self) {
        self.summary.elapsed_secs = self.busy_secs;
        if self.busy_secs > 0.0 {
            self.summary.steps_per_sec = self.summary.steps as f64 / self.busy_secs;
        }
    }

    /// Held-out loss and accuracy on the fixed evaluation set.
    fn evaluate<M: SequenceModel>(
        &mut self,
        model: &M,
        kernels: &AttentionKernels,
        eval_set: &[Batch],
        step: usize,
    ) -> Result<(), ReadbackError> {
        let t0 = Instant::now();
        let model = model.valid();
        let (mut loss_sum, mut correct, mut total) = (0.0, 0.0, 0.0);
        let mut by_distance = DistanceAccuracy {
            step,
            counts: Vec::new(),
        };
        for batch in eval_set {
            let logits = model.forward(tokens_tensor(batch, &self.device), kernels);
            let counted = batch.targets.iter().filter(|&&t| t != IGNORE).count() as f64;
            let loss = scalar(
                masked_cross_entropy(logits.clone(), &batch.targets),
                "the evaluation loss",
            )?;
            loss_sum += loss * counted;
            let predicted = predictions(logits)?;
            correct += accuracy_of(&predicted, &batch.targets) * counted;
            by_distance.merge(&DistanceAccuracy::tally(
                step,
                &predicted,
                &batch.targets,
                &batch.distances,
            ));
            total += counted;
            if self.stopping || self.control.stop_requested(self.id) {
                break; // the metrics cover the batches evaluated so far
            }
        }
        self.busy_secs += t0.elapsed().as_secs_f64();
        self.last_eval = Some(step);
        let total = total.max(1.0);
        let metrics = self.metrics(step, loss_sum / total, correct / total);
        self.summary.final_loss = Some(metrics.loss);
        self.summary.final_accuracy = Some(metrics.accuracy);
        self.recorder.write(|w| {
            w.metric("eval", &metrics)?;
            w.distance(&by_distance)?;
            w.flush()
        });
        self.control.sink().send(Event::Eval {
            id: self.id,
            metrics,
            by_distance,
        });
        Ok(())
    }

    /// Attention of every layer and head on the probe example; a snapshot that cannot
    /// be read back is skipped with a warning (training goes on).
    fn snapshot<M: SequenceModel>(
        &mut self,
        model: &M,
        kernels: &AttentionKernels,
        probe: &Probe,
        step: usize,
    ) {
        let t0 = Instant::now();
        let n = probe.tokens.len();
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(probe.tokens.clone(), [1, n]),
            &self.device,
        );
        let (_, weights) = model.valid().forward_with_attention(tokens, kernels);
        if weights.is_empty() {
            return;
        }
        let layers = weights.len();
        let [_, heads, _, _] = weights[0].dims();
        let all = match read_back::<f32>(Tensor::cat(weights, 0).into_data(), "attention weights") {
            Ok(all) => all,
            Err(e) => {
                self.warn(format!("no attention snapshot at step {step}: {e}"));
                return;
            }
        };
        let (side, all) = downsample(&all, layers * heads, n, MAX_SNAPSHOT_SIDE);
        let snapshot = Arc::new(AttentionSnapshot {
            step,
            layers,
            heads,
            n: side,
            seq_len: n,
            weights: all,
        });
        self.busy_secs += t0.elapsed().as_secs_f64();
        let header = self.recorder.header.get_or_insert_with(|| SnapshotHeader {
            layers,
            heads,
            n: side,
            seq_len: n,
            probe: probe.clone(),
        });
        let header = header.clone();
        self.recorder.write(|w| w.snapshot(&header, &snapshot));
        self.control.sink().send_snapshot(Event::Snapshot {
            id: self.id,
            snapshot,
        });
    }
}

/// Averages `maps` square maps of side `n` down to at most `max_side` (rows stay
/// distributions: the mean of rows that each sum to one sums to one).
fn downsample(weights: &[f32], maps: usize, n: usize, max_side: usize) -> (usize, Vec<f32>) {
    if n <= max_side {
        return (n, weights.to_vec());
    }
    let factor = n.div_ceil(max_side);
    let side = n.div_ceil(factor);
    let mut out = vec![0.0f32; maps * side * side];
    for m in 0..maps {
        let src = &weights[m * n * n..(m + 1) * n * n];
        let dst = &mut out[m * side * side..(m + 1) * side * side];
        for i in 0..n {
            for j in 0..n {
                dst[(i / factor) * side + j / factor] += src[i * n + j];
            }
        }
        for (r, row) in dst.chunks_mut(side).enumerate() {
            let rows_in_tile = (n - r * factor).min(factor) as f32;
            for v in row {
                *v /= rows_in_tile;
            }
        }
    }
    (side, out)
}

#[cfg(test)]
mod tests {
    use super::downsample;

    #[test]
    fn downsampled_rows_stay_distributions() {
        let n = 10;
        let mut w = vec![0.0f32; n * n];
        for i in 0..n {
            w[i * n + (i * 7) % n] = 1.0;
        }
        let (side, d) = downsample(&w, 1, n, 4);
        assert_eq!(side, 4);
        for row in d.chunks(side) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "{s}");
        }
    }
}
