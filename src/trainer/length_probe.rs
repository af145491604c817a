//! The probe example at another length (the window's Length pane): a recorded
//! transformer's attention, every layer and head, on the task's probe example
//! generated at a chosen length with the patterns planned for it, so the user sees
//! what a head does beyond the lengths it trained on.

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};

use super::causal::LoadedRun;
use super::evaluate::EvalError;
use super::fit::downsample;
use super::session::MAX_SNAPSHOT_SIDE;
use crate::config::{BackendChoice, ModelKind};
use crate::model::{AttentionKernels, SequenceModel, SparseMode, read_back};
use crate::records::{AttentionSnapshot, Probe, RunRecord};

/// A recorded model's attention on its task's probe example at one length.
#[derive(Clone, Debug, PartialEq)]
pub struct LengthProbe {
    /// The step of the weights: the record's latest checkpoint.
    pub step: usize,
    /// The length the probe was generated at.
    pub seq_len: usize,
    /// The probe example at that length (its tokens and dependencies).
    pub probe: Probe,
    /// Every layer's and head's attention on it (stamped with `step`), averaged down
    /// to at most [`MAX_SNAPSHOT_SIDE`] per side as training snapshots are.
    pub snapshot: AttentionSnapshot,
}

/// The attention of the transformer recorded in `dir` (its last checkpoint, on
/// `backend`) on its task's probe example generated at `seq_len` (drawn from the
/// run's seed, as the training probe is), with every layer's pattern planned for that
/// length. Learned positions are refused beyond the trained length, naming
/// `model.positions` (never clamped or wrapped), as is a length the task or a pattern
/// does not allow, and an LSTM (no attention). The weights are read back at full
/// resolution before they are averaged down: `layers x heads x seq_len^2` floats.
pub fn probe_at_length(
    dir: &Path,
    seq_len: usize,
    backend: BackendChoice,
) -> Result<LengthProbe, EvalError> {
    let fail = |problem: String| EvalError {
        dir: dir.to_path_buf(),
        problem,
    };
    let record = RunRecord::open(dir).map_err(|e| fail(e.to_string()))?;
    let trained = record.resume_plan().map_err(|e| fail(e.to_string()))?;
    if trained.settings().model.kind == ModelKind::Lstm {
        return Err(fail(
            "an LSTM has no attention to show, at any length".into(),
        ));
    }
    let plan = if seq_len == trained.settings().task.seq_len {
        trained
    } else {
        trained
            .at_length(seq_len)
            .map_err(|e| fail(format!("seq_len {seq_len}: {e}")))?
    };
    let run = LoadedRun::load(dir, None, backend).map_err(|e| EvalError {
        dir: e.dir,
        problem: e.problem,
    })?;
    let settings = plan.settings();
    let example = settings.task.probe(settings.train.seed);
    let n = example.tokens.len();
    let tokens =
        Tensor::<2, Int>::from_data(TensorData::new(example.tokens.clone(), [1, n]), &run.device);
    let kernels = AttentionKernels::for_plan(&plan, &run.device, SparseMode::WherePaysOff);
    let (_, weights) = run.model.forward_with_attention(tokens, &kernels);
    let Some(first) = weights.first() else {
        return Err(fail("the model computed no attention weights".into()));
    };
    let layers = weights.len();
    let [_, heads, _, _] = first.dims();
    let all = read_back::<f32>(Tensor::cat(weights, 0).into_data(), "the attention weights")
        .map_err(|e| fail(e.to_string()))?;
    let (side, all) = downsample(&all, layers * heads, n, MAX_SNAPSHOT_SIDE);
    Ok(LengthProbe {
        step: run.step,
        seq_len: n,
        probe: Probe {
            tokens: example.tokens,
            dependencies: example.dependencies,
        },
        snapshot: AttentionSnapshot {
            step: run.step,
            layers,
            heads,
            n: side,
            seq_len: n,
            weights: all,
        },
    })
}
