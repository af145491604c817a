//! Ablation of a recorded run's heads (`attnlab ablate`): the saved model at a
//! checkpoint, evaluated with chosen heads zeroed or replaced by their mean
//! ([`crate::model::Interventions`]), and the probe's attention and head statistics
//! with heads ablated (the window's Interventions pane).
//!
//! Every intervention of one call sees the same seeded batches, so differences come
//! from the intervention, not from the data. Patching lives in `patching`.

use burn::tensor::Tensor;

use super::error::InspectError;
use super::evaluate::{Scores, score};
use super::loaded::LoadedRun;
use crate::attention::{AttentionPattern, HeadStats, StatsContext, head_stats};
use crate::model::{HeadEdit, HeadRef, Interventions, Mixing, SequenceModel, head_mean, read_back};

/// How an ablated head's output is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AblationMode {
    /// Zeros.
    Zero,
    /// Its per-position mean over a reference batch (drawn from the seed, apart from
    /// the scored batches).
    Mean,
}

/// One intervention's scores beside the clean ones.
#[derive(Clone, Debug)]
pub struct Ablation {
    /// The heads ablated together.
    pub heads: Vec<HeadRef>,
    /// With them ablated.
    pub scores: Scores,
}

/// The clean scores and, for each set of `sets`, the scores with those heads ablated
/// by `mode`, on `batches` batches drawn from `seed`. `progress` is told each set done.
pub fn ablate(
    run: &LoadedRun,
    sets: &[Vec<HeadRef>],
    mode: AblationMode,
    seed: u64,
    batches: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Scores, Vec<Ablation>), InspectError> {
    run.check_heads(sets)?;
    let mixing = run.mixing();
    let data = run.batches(seed, batches)?;
    let clean =
        score(&run.model, &mixing, &data, &run.device, run.step).map_err(|e| run.fail(e))?;
    let means = match mode {
        AblationMode::Zero => None,
        AblationMode::Mean => Some(reference_outputs(run, &mixing, seed)?),
    };
    let mut out = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let mut edits = Interventions::none();
        for head in set {
            let edit = match &means {
                None => HeadEdit::Zero,
                Some(outputs) => match outputs.get(head.layer) {
                    Some(out) => HeadEdit::Replace(head_mean(out, run.shape().1, head.head)),
                    None => HeadEdit::Zero,
                },
            };
            edits.set(*head, edit);
        }
        let scores = score(
            &run.model,
            &mixing.with_interventions(edits),
            &data,
            &run.device,
            run.step,
        )
        .map_err(|e| run.fail(e))?;
        out.push(Ablation {
            heads: set.clone(),
            scores,
        });
        progress(i + 1, sets.len());
    }
    Ok((clean, out))
}

/// Every layer's head outputs on a reference batch drawn apart from the scored ones.
fn reference_outputs(
    run: &LoadedRun,
    mixing: &Mixing,
    seed: u64,
) -> Result<Vec<Tensor<3>>, InspectError> {
    let reference = run.batches(seed ^ 0x5EED_0FAB_1A7E, 1)?;
    let (capture, captured) = Interventions::capturing();
    let batch = &reference[0];
    drop(
        run.model
            .forward(run.tokens(batch), &mixing.with_interventions(capture)),
    );
    Ok((0..run.shape().0)
        .map_while(|l| captured.layer(l))
        .collect())
}

/// Every layer's attention weights on the run's probe (the example the Heads pane
/// shows) with the heads of `ablated` zeroed, at full resolution.
///
/// # Shapes
/// One `Vec` per layer, each `[heads, n, n]` row-major (query rows, key columns),
/// `n` the probe's length. An ablated head's own weights are as trained (its output
/// is zeroed after them); the layers above it see the change.
pub fn probe_attention(
    run: &LoadedRun,
    ablated: &[HeadRef],
) -> Result<Vec<Vec<f32>>, InspectError> {
    run.check_heads(&[ablated.to_vec()])?;
    let (_, batch) = run.probe_batch();
    let mixing = run
        .mixing()
        .with_interventions(Interventions::zero(ablated));
    let (_, weights) = run.model.forward_with_mixing(run.tokens(&batch), &mixing);
    weights
        .into_iter()
        .map(|w| read_back::<f32>(w.into_data(), "the attention weights").map_err(|e| run.fail(e)))
        .collect()
}

/// Each head's statistics on the run's probe (the example the Heads pane shows),
/// `[layer][head]`, at full resolution.
pub fn probe_statistics(run: &LoadedRun) -> Result<Vec<Vec<HeadStats>>, InspectError> {
    let (probe, batch) = run.probe_batch();
    let n = probe.tokens.len();
    let (_, weights) = run
        .model
        .forward_with_mixing(run.tokens(&batch), &run.mixing());
    let patterns = run.plan.layer_patterns();
    let masks = run.plan.layer_masks();
    let heads = run.shape().1;
    let mut out = Vec::with_capacity(weights.len());
    for (layer, w) in weights.into_iter().enumerate() {
        let values =
            read_back::<f32>(w.into_data(), "the attention weights").map_err(|e| run.fail(e))?;
        let pattern = patterns.get(layer);
        let sparse = pattern.is_some_and(|p| !matches!(p, AttentionPattern::Dense));
        let mask = masks.get(layer).filter(|_| sparse).cloned();
        let ctx = StatsContext::new(&probe.tokens, &probe.dependencies, n, pattern, mask);
        out.push(
            (0..heads)
                .map(|h| head_stats(&values[h * n * n..(h + 1) * n * n], n, &ctx))
                .collect(),
        );
    }
    Ok(out)
}
