//! Activation patching of a recorded run's heads (`attnlab patch`): the task's clean
//! and corrupted inputs ([`crate::tasks::TaskConfig::patch_pair`]), and how much of
//! the clean answer's logit lead a head's clean output restores in the corrupted run
//! (TransformerLens `patching.py`'s normalised logit difference).

use burn::tensor::{Int, Tensor, TensorData};
use rand::{SeedableRng, rngs::StdRng};

use super::error::{InspectError, Problem};
use super::loaded::LoadedRun;
use crate::model::{HeadEdit, HeadRef, Interventions, SequenceModel, head_columns, read_back};

/// The logit differences of activation patching, averaged over the scored answers:
/// `logit(clean answer) - logit(corrupted answer)` at each example's scored position.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchBase {
    /// On the clean input.
    pub clean: f64,
    /// On the corrupted input.
    pub corrupted: f64,
    /// Examples scored.
    pub examples: usize,
}

/// One set of heads patched from the clean run into the corrupted one.
#[derive(Clone, Debug)]
pub struct Patched {
    /// The heads patched together.
    pub heads: Vec<HeadRef>,
    /// The mean logit difference with them patched.
    pub logit_diff: f64,
    /// `(patched - corrupted) / (clean - corrupted)`: 0 restores nothing, 1 all;
    /// `None` when clean and corrupted do not differ (an untrained model).
    pub recovered: Option<f64>,
}

/// Activation patching: for each set of `sets`, those heads' outputs on the clean
/// input put into the model reading the corrupted input (the task's pair, see
/// [`crate::tasks::TaskConfig::patch_pair`]).
pub fn patch(
    run: &LoadedRun,
    sets: &[Vec<HeadRef>],
    seed: u64,
    batches: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(PatchBase, Vec<Patched>), InspectError> {
    run.check_heads(sets)?;
    let settings = run.plan.settings();
    let heads = run.shape().1;
    let mixing = run.mixing();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut clean_sum, mut corrupted_sum, mut examples) = (0.0, 0.0, 0usize);
    let mut patched_sum = vec![0.0; sets.len()];
    let rounds = batches.max(1);
    for round in 0..rounds {
        let pair = settings
            .task
            .patch_pair(settings.train.batch, &mut rng)
            .map_err(|e| run.fail(Problem::Task(e.to_string())))?;
        let at = |logits: Tensor<3>| -> Result<f64, InspectError> {
            logit_diff(
                logits,
                &pair.positions,
                &pair.clean_answers,
                &pair.corrupted_answers,
            )
            .map_err(|e| run.fail(e))
        };
        let (capture, captured) = Interventions::capturing();
        let clean_logits = run
            .model
            .forward(run.tokens(&pair.clean), &mixing.with_interventions(capture));
        clean_sum += at(clean_logits)?;
        let corrupted_tokens = run.tokens(&pair.corrupted);
        corrupted_sum += at(run.model.forward(corrupted_tokens.clone(), &mixing))?;
        for (i, set) in sets.iter().enumerate() {
            let mut edits = Interventions::none();
            for head in set {
                if let Some(out) = captured.layer(head.layer) {
                    edits.set(
                        *head,
                        HeadEdit::Replace(head_columns(&out, heads, head.head)),
                    );
                }
            }
            let logits = run
                .model
                .forward(corrupted_tokens.clone(), &mixing.with_interventions(edits));
            patched_sum[i] += at(logits)?;
            progress(round * sets.len() + i + 1, rounds * sets.len());
        }
        examples += pair.positions.len();
    }
    let n = rounds as f64;
    let base = PatchBase {
        clean: clean_sum / n,
        corrupted: corrupted_sum / n,
        examples,
    };
    let span = base.clean - base.corrupted;
    let patched = sets
        .iter()
        .zip(patched_sum)
        .map(|(set, sum)| {
            let logit_diff = sum / n;
            Patched {
                heads: set.clone(),
                logit_diff,
                recovered: (span.abs() > 1e-6).then(|| (logit_diff - base.corrupted) / span),
            }
        })
        .collect();
    Ok((base, patched))
}

/// Mean of `logit(clean answer) - logit(corrupted answer)` at each flat position.
fn logit_diff(
    logits: Tensor<3>,
    positions: &[usize],
    clean: &[i64],
    corrupted: &[i64],
) -> Result<f64, Problem> {
    let [batch, seq, vocab] = logits.dims();
    let device = logits.device();
    let index = Tensor::<1, Int>::from_data(
        TensorData::new(
            positions.iter().map(|&p| p as i64).collect::<Vec<_>>(),
            [positions.len()],
        ),
        &device,
    );
    let rows = logits.reshape([batch * seq, vocab]).select(0, index);
    let values = read_back::<f32>(rows.into_data(), "the answers' logits")?;
    let mut sum = 0.0;
    for (i, (&a, &b)) in clean.iter().zip(corrupted).enumerate() {
        let row = &values[i * vocab..(i + 1) * vocab];
        let pick = |t: i64| usize::try_from(t).ok().and_then(|t| row.get(t)).copied();
        match (pick(a), pick(b)) {
            (Some(x), Some(y)) => sum += f64::from(x - y),
            _ => {
                return Err(Problem::Task(format!(
                    "an answer token ({a} or {b}) is outside the vocabulary"
                )));
            }
        }
    }
    Ok(sum / positions.len().max(1) as f64)
}
