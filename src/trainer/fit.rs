//! The step loop of one run (burn-train's `fit`): each step trains on the next batch
//! and reports its metrics; evaluation, the attention snapshot and the checkpoint
//! follow when their [`Cadence`] falls due; then the driving thread is polled for
//! commands. The loop ends at the last step, on a stop, when the loss diverges, or
//! when the record cannot be written.

use std::sync::Arc;
use std::time::Instant;

use burn::optim::ModuleOptimizer;

use super::cadence::Cadence;
use super::lengths::score_lengths;
use super::protocol::{Event, Fault};
use super::session::{Ending, Flow, Prepared, RunContext, RunError};
use super::step::{StepOptions, StepOutcome, train_step};
use crate::inspect::{attention_snapshot, score_while};
use crate::model::{Mixing, ReadbackError, SequenceModel};
use crate::records::{AttentionSnapshot, LengthFigure, Probe, SnapshotHeader};

impl RunContext<'_> {
    /// The loop: step, report, evaluate, snapshot, checkpoint, poll for commands.
    pub(super) fn fit<M: SequenceModel>(
        &mut self,
        mut model: M,
        mut prepared: Prepared,
    ) -> Result<Ending, RunError> {
        let train = &self.plan.settings().train;
        let eval_at = Cadence::every(train.eval_every, train.steps);
        let snapshot_at = Cadence::every(train.snapshot_every, train.steps);
        let checkpoint_at = Cadence::every(train.checkpoint_every, train.steps);
        for step in prepared.first_step..=train.steps {
            let (next, outcome) = self.step(model, &mut prepared, step)?;
            model = next;
            if !outcome.loss.is_finite() {
                self.summary.steps = step - 1;
                return Ok(Ending::Diverged(format!(
                    "the training loss became {} at step {step}; try a smaller train.lr (now {})",
                    outcome.loss, train.lr
                )));
            }
            self.report_step(step, outcome);
            let p = &prepared;
            if eval_at.due(step) {
                self.evaluate(&model, p, step)?;
            }
            if snapshot_at.due(step) {
                self.snapshot(&model, &p.mixing_eval, &p.probe, step);
            }
            if checkpoint_at.due(step) {
                self.checkpoint(&model, &p.optim, step);
            }
            if let Some(e) = self.recorder.take_error() {
                self.finish_timing();
                return Err(e.into());
            }
            if step != train.steps && self.control.poll(self.id) == Flow::Stop {
                return self.stop(&model, p, step);
            }
        }
        self.finish_timing();
        Ok(Ending::Finished)
    }

    /// One optimiser step on the step's batch, at the step's learning rate and with its
    /// dropout masks ([`StepOptions::for_step`]), timed (an injected fault applies
    /// here).
    fn step<M: SequenceModel>(
        &mut self,
        model: M,
        prepared: &mut Prepared,
        step: usize,
    ) -> Result<(M, StepOutcome), RunError> {
        let t0 = Instant::now();
        let settings = self.plan.settings();
        let batch = prepared.data.batch(settings, step);
        let options = StepOptions::for_step(settings, step);
        let optim = &mut prepared.optim;
        let mixing = &prepared.mixing_train;
        let device = &self.train_device;
        let step_once = move |model: M| train_step(model, optim, &batch, mixing, options, device);
        // The first two steps (the second has Adam's moments live) are measured
        // alone: their peak memory is this run's own even when others train. A remote
        // run's memory is the server's, and its steps wait on the network: it takes
        // no part in the measurement (a step stuck on a frozen server must not hold
        // the gate every other run's first step waits for).
        let (model, mut outcome) = if self.summary.backend == "remote" {
            step_once(model)?
        } else if step < prepared.first_step + 2 {
            let (result, peak) = crate::memory::measure_alone(move || step_once(model));
            if let Some(peak) = peak {
                self.note_peak_memory(peak);
            }
            result?
        } else {
            crate::memory::shared(move || step_once(model))?
        };
        match self.fault {
            Some(Fault::NanLossAt(at)) if at == step => outcome.loss = f64::NAN,
            Some(Fault::PanicAt(at)) if at == step => panic!("injected fault at step {step}"),
            _ => {}
        }
        self.busy_secs += t0.elapsed().as_secs_f64();
        Ok((model, outcome))
    }

    /// Counts a trained step and sends (and records) its metrics.
    fn report_step(&mut self, step: usize, outcome: StepOutcome) {
        self.summary.steps = step;
        self.summary.train_loss = Some(outcome.loss);
        let metrics = self.metrics(step, outcome.loss, outcome.accuracy);
        self.recorder.write(|w| w.metric("train", &metrics));
        self.control.sink().send(Event::Step {
            id: self.id,
            metrics,
        });
    }

    /// Saves the checkpoint of `step`, then the summary: the summary on disk follows
    /// the checkpoints, so a run that is killed lists with the steps it can resume
    /// from.
    fn checkpoint<M: SequenceModel>(&mut self, model: &M, optim: &ModuleOptimizer, step: usize) {
        self.recorder.checkpoint(model, optim, step, self.busy_secs);
        let summary = self.summary.clone();
        self.recorder.write(|w| w.write_summary(&summary));
    }

    /// Ends the run at `step` on a stop: evaluates (one batch) unless `step` was just
    /// evaluated, and saves a checkpoint to resume from.
    fn stop<M: SequenceModel>(
        &mut self,
        model: &M,
        prepared: &Prepared,
        step: usize,
    ) -> Result<Ending, RunError> {
        self.stopping = true;
        if self.last_eval != Some(step) {
            self.evaluate(model, prepared, step)?;
        }
        self.recorder
            .checkpoint(model, &prepared.optim, step, self.busy_secs);
        self.finish_timing();
        let mut message = format!("stopped at step {step}");
        if let Some(e) = self.recorder.take_error() {
            message = format!("{message}; {e}");
        }
        Ok(Ending::Stopped(message))
    }

    /// Held-out loss and accuracy on the fixed evaluation set, then on the fixed set
    /// of each of `train.eval_lengths`. A stop (or a run stopping) cuts each to the
    /// batches scored so far: one per set once it is asked for.
    fn evaluate<M: SequenceModel>(
        &mut self,
        model: &M,
        prepared: &Prepared,
        step: usize,
    ) -> Result<(), ReadbackError> {
        let t0 = Instant::now();
        let model = model.valid();
        let (id, stopping) = (self.id, self.stopping);
        let control = &mut *self.control;
        let mut go_on = || !(stopping || control.stop_requested(id));
        let main = score_while(
            &model,
            &prepared.mixing_eval,
            &prepared.eval_set,
            &self.device,
            step,
            &mut go_on,
        )?;
        let mut lengths = score_lengths(&model, &prepared.lengths, &self.device, step, go_on)?;
        self.busy_secs += t0.elapsed().as_secs_f64();
        self.last_eval = Some(step);
        let metrics = self.metrics(step, main.loss, main.accuracy);
        for l in &mut lengths {
            l.metrics.elapsed_secs = metrics.elapsed_secs;
        }
        self.summary.final_loss = Some(metrics.loss);
        self.summary.final_accuracy = Some(metrics.accuracy);
        self.summary.final_lengths = lengths
            .iter()
            .map(|l| LengthFigure {
                seq_len: l.seq_len,
                loss: l.metrics.loss,
                accuracy: l.metrics.accuracy,
            })
            .collect();
        let by_distance = main.by_distance;
        self.recorder.write(|w| {
            w.metric("eval", &metrics)?;
            w.distance(&by_distance)?;
            w.lengths(&lengths)?;
            w.flush()
        });
        self.control.sink().send(Event::Eval {
            id: self.id,
            metrics,
            by_distance,
            lengths,
        });
        Ok(())
    }

    /// Attention of every layer and head on the probe example; a snapshot that cannot
    /// be read back is skipped with a warning (training goes on).
    pub(super) fn snapshot<M: SequenceModel>(
        &mut self,
        model: &M,
        mixing: &Mixing,
        probe: &Probe,
        step: usize,
    ) {
        let t0 = Instant::now();
        let snapshot =
            match attention_snapshot(&model.valid(), mixing, &probe.tokens, &self.device, step) {
                Ok(Some(snapshot)) => Arc::new(snapshot),
                Ok(None) => return,
                Err(e) => {
                    self.warn(format!("no attention snapshot at step {step}: {e}"));
                    return;
                }
            };
        let AttentionSnapshot {
            layers,
            heads,
            n: side,
            seq_len: n,
            ..
        } = *snapshot;
        self.busy_secs += t0.elapsed().as_secs_f64();
        let header = || SnapshotHeader {
            layers,
            heads,
            n: side,
            seq_len: n,
            probe: probe.clone(),
        };
        self.recorder.snapshot(header, &snapshot);
        self.control.sink().send_snapshot(Event::Snapshot {
            id: self.id,
            snapshot,
        });
    }
}
