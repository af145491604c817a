//! Evaluating a recorded run's saved model again, on fresh seeded examples
//! (`attnlab eval`): held-out loss, accuracy, and accuracy by the distance of each
//! answer's dependency, without training.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use rand::{SeedableRng, rngs::StdRng};

use super::error::{InspectError, Problem};
use crate::config::{BackendChoice, ModelKind, RunPlan};
use crate::device::select_backend;
use crate::model::{
    LstmNetConfig, Mixing, ReadbackError, SequenceModel, SparseMode, TransformerConfig,
    accuracy_of, masked_cross_entropy, predictions, scalar, tokens_tensor,
};
use crate::records::{DistanceAccuracy, RunRecord, checkpoint_dir, read_checkpoint};
use crate::tasks::{Batch, IGNORE};

/// What `attnlab eval` measured for one record.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordEval {
    /// The run's name.
    pub run: String,
    /// The record's folder.
    pub dir: PathBuf,
    /// The step of the checkpoint evaluated.
    pub step: usize,
    /// The sequence length evaluated at (the run's own unless asked otherwise).
    pub seq_len: usize,
    /// Mean loss over the answers.
    pub loss: f64,
    /// Fraction of answers right.
    pub accuracy: f64,
    /// Answers right and counted per distance.
    pub by_distance: DistanceAccuracy,
}

/// Evaluates the last checkpoint of the record in `dir` on `batches` batches drawn
/// from `seed` (fresh: not the run's training or evaluation stream unless the seed
/// says so), on `backend`; at `seq_len` when given (the task generated at that length,
/// the masks planned for it: [`RunPlan::at_length`]), which learned positions refuse
/// beyond their own length. The batches are drawn and scored one at a time; the
/// record's settings are read as [`crate::records::RunRecord::plan_allowing`] says,
/// `allowed` being the user's `--allow-file`.
pub fn evaluate_record(
    dir: &Path,
    seed: u64,
    batches: usize,
    backend: BackendChoice,
    seq_len: Option<usize>,
    allowed: &[std::path::PathBuf],
) -> Result<RecordEval, InspectError> {
    let fail = |problem: Problem| InspectError::new(dir, problem);
    let record = RunRecord::open(dir).map_err(|e| fail(e.into()))?;
    // The run its summary names (a hand-written config.toml may hold several).
    let trained = record.plan_allowing(allowed).map_err(|e| fail(e.into()))?;
    let plan = &match seq_len {
        Some(n) if n != trained.settings().task.seq_len => trained
            .at_length(n)
            .map_err(|errors| fail(Problem::Length { seq_len: n, errors }))?,
        _ => trained.clone(),
    };
    let checkpoint = read_checkpoint(dir)
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(Problem::NoSavedModel))?;
    let file = checkpoint_dir(dir).join(&checkpoint.model);
    let (device, _) = select_backend(backend).map_err(|e| fail(e.into()))?;
    let unloadable = |reason: String| fail(Problem::Load { step: None, reason });
    // The model as it trained (its learned positions, if any, as long as they were);
    // the kernels and the examples at the length asked for.
    let measured = match trained.settings().model.kind {
        ModelKind::Transformer => {
            let model = TransformerConfig::from_plan(&trained).init(&device);
            let model = model
                .try_load_file(&file)
                .map_err(|e| unloadable(e.to_string()))?;
            measure(&model, plan, &device, seed, batches)
        }
        ModelKind::Lstm => {
            let model = LstmNetConfig::from_plan(&trained).init(&device);
            let model = model
                .try_load_file(&file)
                .map_err(|e| unloadable(e.to_string()))?;
            measure(&model, plan, &device, seed, batches)
        }
    };
    let (loss, accuracy, mut by_distance) = measured.map_err(|e| fail(e.into()))?;
    by_distance.step = checkpoint.step;
    Ok(RecordEval {
        run: record.summary.name.clone(),
        dir: dir.to_path_buf(),
        step: checkpoint.step,
        seq_len: plan.settings().task.seq_len,
        loss,
        accuracy,
        by_distance,
    })
}

/// Loss, accuracy and accuracy by distance over some batches.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// Mean loss over the answers.
    pub loss: f64,
    /// Fraction of answers right.
    pub accuracy: f64,
    /// Answers right and counted per distance (tallied at `step`).
    pub by_distance: DistanceAccuracy,
}

/// `model`'s scores on `batches` with `mixing` (interventions included), on `device`;
/// the distance tally is stamped with `step`.
pub fn score<M: SequenceModel, B: std::borrow::Borrow<Batch>>(
    model: &M,
    mixing: &Mixing,
    batches: impl IntoIterator<Item = B>,
    device: &Device,
    step: usize,
) -> Result<Scores, ReadbackError> {
    score_while(model, mixing, batches, device, step, || true)
}

/// [`score`], asking `go_on` after each batch whether to score the next: when it says
/// no, the scores cover the batches scored so far (a run being stopped evaluates
/// one batch).
pub fn score_while<M: SequenceModel, B: std::borrow::Borrow<Batch>>(
    model: &M,
    mixing: &Mixing,
    batches: impl IntoIterator<Item = B>,
    device: &Device,
    step: usize,
    mut go_on: impl FnMut() -> bool,
) -> Result<Scores, ReadbackError> {
    let (mut loss_sum, mut correct, mut total) = (0.0, 0.0, 0.0);
    let mut by_distance = DistanceAccuracy {
        step,
        counts: Vec::new(),
    };
    for batch in batches {
        let batch = batch.borrow();
        let logits = model.forward(tokens_tensor(batch, device), mixing);
        let counted = batch.targets.iter().filter(|&&t| t != IGNORE).count() as f64;
        let loss = scalar(
            masked_cross_entropy(logits.clone(), &batch.targets),
            "the evaluation loss",
        )?;
        let predicted = predictions(logits)?;
        loss_sum += loss * counted;
        correct += accuracy_of(&predicted, &batch.targets) * counted;
        total += counted;
        by_distance.merge(&DistanceAccuracy::tally(
            step,
            &predicted,
            &batch.targets,
            &batch.distances,
        ));
        if !go_on() {
            break;
        }
    }
    let total = f64::max(total, 1.0);
    Ok(Scores {
        loss: loss_sum / total,
        accuracy: correct / total,
        by_distance,
    })
}

/// Loss, accuracy and accuracy by distance of `model` over `batches` batches.
fn measure<M: SequenceModel>(
    model: &M,
    plan: &RunPlan,
    device: &Device,
    seed: u64,
    batches: usize,
) -> Result<(f64, f64, DistanceAccuracy), ReadbackError> {
    let mixing = Mixing::for_plan(plan, device, SparseMode::WherePaysOff);
    // Drawn one at a time as they are scored: `--batches` costs time, not memory.
    let s = score(
        model,
        &mixing,
        eval_batch_stream(plan, seed, batches),
        device,
        0,
    )?;
    Ok((s.loss, s.accuracy, s.by_distance))
}

/// `batches` (at least one) evaluation batches of `plan`'s task, `train.batch`
/// examples each, drawn from `seed`: the same seed gives the same examples, so every
/// measurement of one call sees the same data.
pub(super) fn eval_batches(plan: &RunPlan, seed: u64, batches: usize) -> Vec<Batch> {
    eval_batch_stream(plan, seed, batches).collect()
}

/// [`eval_batches`], each batch drawn when it is asked for.
fn eval_batch_stream(plan: &RunPlan, seed: u64, batches: usize) -> impl Iterator<Item = Batch> {
    let settings = plan.settings().clone();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..batches.max(1)).map(move |_| settings.task.eval_batch(settings.train.batch, &mut rng))
}
