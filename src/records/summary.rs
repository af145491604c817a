//! `summary.json` and the metric rows of `metrics.csv`: how a run ended and what it
//! measured. The trainer fills these in; the window and the CLI read them back.

use serde::{Deserialize, Serialize};

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

/// How a run ended (or where it stands).
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
    /// The process ended while it trained (its record still said `running`).
    Interrupted,
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
            RunStatus::Interrupted => "interrupted",
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

/// How one layer's attention is computed in training (named in the `Started` event
/// and in `summary.json`, so a sparse pattern that quietly fell back to O(n^2) shows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerKernelInfo {
    /// `dense`, `block_sparse` or `masked_dense`.
    pub kernel: String,
    /// Why, when it is not the obvious choice (e.g. `gathering would compute 75% of
    /// the pairs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The final word on a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's name.
    pub name: String,
    /// The experiment's name.
    pub experiment: String,
    /// The record folder's name (`YYYYMMDD-HHMMSS-<experiment>-<run>`), when recorded.
    #[serde(alias = "run_id")]
    pub record_id: Option<String>,
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
    /// How each layer's attention was computed (empty for the LSTM or when it never
    /// started).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernels: Vec<LayerKernelInfo>,
    /// Trainable parameters.
    pub params: usize,
    /// Floats of state the model carries per sequence at inference, at its training
    /// length (`config::state_floats`: attention's KV cache, a recurrent mixer's
    /// state); `None` in records written before it was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_floats: Option<u64>,
    /// Wall time training, seconds.
    pub elapsed_secs: f64,
    /// Mean optimiser steps per second.
    pub steps_per_sec: f64,
    /// Snapshots dropped because the consumer was behind.
    pub dropped_snapshots: usize,
    /// Why it did not finish, when it did not.
    pub message: Option<String>,
    /// The process writing the record, while it runs (a `running` record whose
    /// process is gone reads as `interrupted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Peak memory of a training step, measured with the run alone: the bytes its
    /// first steps allocated beyond those live before them, plus the parameters and
    /// Adam's moments. `None` where memory is not counted (tests) or no step ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// The run this one was forked from (`attnlab run --fork`), and at which step:
    /// its curves up to that step are the parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<ForkOrigin>,
    /// The in-context Markov task's closed-form losses on the run's held-out examples
    /// (uniform, unigram and bigram predictors); `None` for other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baselines: Option<crate::tasks::InContextBaselines>,
    /// The run beside the published figure of its experiment's `[reference]`, once it
    /// has ended; `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<crate::config::ReferenceCheck>,
    /// Held-out loss and accuracy at each of `train.eval_lengths` at the last
    /// evaluation, shortest first (empty without such lengths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub final_lengths: Vec<LengthFigure>,
}

/// The held-out figures at one evaluation length other than the run's own.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthFigure {
    /// The sequence length evaluated at.
    pub seq_len: usize,
    /// Mean loss over the answers.
    pub loss: f64,
    /// Fraction of answers right.
    pub accuracy: f64,
}

/// Where a forked run starts: its parent's record and step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOrigin {
    /// The parent's record folder name (its record id).
    pub record: String,
    /// The parent's step whose weights the child started from.
    pub step: usize,
}

impl RunSummary {
    /// The summary of a run that has not trained a step (yet): `status` says why.
    pub fn unstarted(
        experiment: &str,
        name: &str,
        planned_steps: usize,
        status: RunStatus,
    ) -> Self {
        Self {
            name: name.to_string(),
            experiment: experiment.to_string(),
            record_id: None,
            status,
            steps: 0,
            planned_steps,
            final_loss: None,
            final_accuracy: None,
            train_loss: None,
            backend: String::new(),
            adapter: String::new(),
            kernels: Vec::new(),
            params: 0,
            state_floats: None,
            elapsed_secs: 0.0,
            steps_per_sec: 0.0,
            dropped_snapshots: 0,
            message: None,
            pid: None,
            peak_memory_bytes: None,
            forked_from: None,
            baselines: None,
            reference: None,
            final_lengths: Vec::new(),
        }
    }
}

/// Mean and sample standard deviation (0 for one value); `None` for none.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() < 2 {
        0.0
    } else {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    Some((mean, sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        assert_eq!(mean_sd(&[]), None);
        assert_eq!(mean_sd(&[2.0]), Some((2.0, 0.0)));
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]).expect("values");
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
    }

    #[test]
    fn records_written_before_the_rename_still_read() {
        let mut old = serde_json::to_value(RunSummary::unstarted("e", "r", 5, RunStatus::Finished))
            .expect("serialises");
        let map = old.as_object_mut().expect("object");
        map.remove("record_id");
        map.insert("run_id".into(), "20261125-120000-e-r".into());
        let back: RunSummary = serde_json::from_value(old).expect("reads");
        assert_eq!(back.record_id.as_deref(), Some("20261125-120000-e-r"));
    }
}
