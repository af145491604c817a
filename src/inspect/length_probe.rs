//! The probe example at another length (the window's Length pane): a recorded
//! transformer's attention, every layer and head, on the task's probe example
//! generated at a chosen length with the patterns planned for it, so the user sees
//! what a head does beyond the lengths it trained on.

use std::path::Path;

use super::error::{InspectError, Problem};
use super::loaded::LoadedRun;
use super::snapshot::attention_snapshot;
use crate::config::BackendChoice;
use crate::model::{Mixing, SparseMode};
use crate::records::{AttentionSnapshot, Probe};

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
    /// to at most [`MAX_SNAPSHOT_SIDE`](super::MAX_SNAPSHOT_SIDE) per side as training snapshots are.
    pub snapshot: AttentionSnapshot,
}

/// The attention of the transformer recorded in `dir` (its last checkpoint, on
/// `backend`) on its task's probe example generated at `seq_len` (drawn from the
/// run's seed, as the training probe is), with every layer's pattern planned for that
/// length. An LSTM is refused (no attention heads), and so are learned positions
/// beyond the trained length, naming `model.positions` (never clamped or wrapped),
/// and a length the task or a pattern does not allow. The weights are read back at full
/// resolution before they are averaged down: `layers x heads x seq_len^2` floats.
pub fn probe_at_length(
    dir: &Path,
    seq_len: usize,
    backend: BackendChoice,
) -> Result<LengthProbe, InspectError> {
    let run = LoadedRun::load(dir, None, backend, &[])?;
    let plan = if seq_len == run.plan.settings().task.seq_len {
        run.plan.clone()
    } else {
        run.plan
            .at_length(seq_len)
            .map_err(|errors| run.fail(Problem::Length { seq_len, errors }))?
    };
    let settings = plan.settings();
    let example = settings.task.probe(settings.train.seed);
    // Only the masks and ALiBi's bias serve the weights: no sparse layout is built.
    let mixing = Mixing::for_plan(&plan, &run.device, SparseMode::Off);
    let snapshot = attention_snapshot(&run.model, &mixing, &example.tokens, &run.device, run.step)
        .map_err(|e| run.fail(e))?
        .ok_or_else(|| run.fail(Problem::NoAttention))?;
    Ok(LengthProbe {
        step: run.step,
        seq_len: snapshot.seq_len,
        probe: Probe {
            tokens: example.tokens,
            dependencies: example.dependencies,
        },
        snapshot,
    })
}
