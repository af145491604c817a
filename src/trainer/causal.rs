//! Causal tests of a recorded run's heads (`attnlab ablate` and `attnlab patch`): the
//! saved model at a checkpoint, evaluated with chosen heads zeroed, replaced by their
//! mean, or patched with their output on a clean input while the model reads a
//! corrupted one ([`crate::model::Interventions`]).
//!
//! Every intervention of one call sees the same seeded batches, so differences come
//! from the intervention, not from the data. Patching lives in `patching`.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use rand::{SeedableRng, rngs::StdRng};

use super::backend::select_backend;
pub use super::evaluate::Scores;
use super::evaluate::score;
use super::step::tokens_tensor;
use crate::attention::{AttentionPattern, HeadStats, StatsContext, head_stats};
use crate::config::{BackendChoice, Experiment, FieldSetting, ModelKind, RunPlan};
use crate::model::{
    AttentionKernels, HeadEdit, HeadRef, Interventions, SequenceModel, SparseMode, Transformer,
    TransformerConfig, head_mean, read_back,
};
use crate::records::RunRecord;
use crate::tasks::Batch;

/// The fields [`LoadedRun::swap_patterns`] may change.
pub const PATTERN_FIELDS: [&str; 2] = ["model.attention", "model.layer_attention"];

/// A recorded transformer loaded at one of its checkpoints.
pub struct LoadedRun {
    /// The run's name.
    pub name: String,
    /// The record's folder.
    pub dir: PathBuf,
    /// The step of the weights loaded.
    pub step: usize,
    /// What it trained with (its patterns may be swapped before evaluating).
    pub plan: RunPlan,
    pub(super) model: Transformer,
    pub(super) device: Device,
}

/// Why a record could not be loaded or tested.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", dir.display())]
pub struct CausalError {
    /// The record's folder.
    pub dir: PathBuf,
    /// What is wrong.
    pub problem: String,
}

/// The steps of `dir`'s saved weights: every kept checkpoint and the latest.
pub fn checkpoint_steps(dir: &Path) -> Result<Vec<usize>, CausalError> {
    let fail = |problem: String| CausalError {
        dir: dir.to_path_buf(),
        problem,
    };
    let mut steps: Vec<usize> = crate::records::kept_checkpoints(dir)
        .map_err(|e| fail(e.to_string()))?
        .iter()
        .map(|k| k.step)
        .collect();
    if let Some(latest) = crate::records::read_checkpoint(dir).map_err(|e| fail(e.to_string()))? {
        steps.push(latest.step);
    }
    steps.sort_unstable();
    steps.dedup();
    Ok(steps)
}

impl LoadedRun {
    /// The transformer of the record in `dir` at `step` (a kept checkpoint, or the
    /// latest), or at its latest checkpoint, on `backend`.
    pub fn load(
        dir: &Path,
        step: Option<usize>,
        backend: BackendChoice,
    ) -> Result<Self, CausalError> {
        let fail = |problem: String| CausalError {
            dir: dir.to_path_buf(),
            problem,
        };
        let record = RunRecord::open(dir).map_err(|e| fail(e.to_string()))?;
        // The run its summary names (a hand-written config.toml may hold several).
        let plan = record.resume_plan().map_err(|e| fail(e.to_string()))?;
        if plan.settings().model.kind != ModelKind::Transformer {
            return Err(fail(
                "an LSTM has no attention heads (nothing to ablate, patch or probe)".into(),
            ));
        }
        let latest = crate::records::read_checkpoint(dir)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| {
                fail("the record has no saved model (it stopped before its first checkpoint; train.checkpoint_every sets how often one is saved)".into())
            })?;
        let step = step.unwrap_or(latest.step);
        let file = crate::records::model_at(dir, step).map_err(|e| fail(e.to_string()))?;
        let (device, _) = select_backend(backend).map_err(|e| fail(e.to_string()))?;
        // Under the trainer's initialisation lock: building a model may draw from the
        // process-wide generator that a run starting beside it (in the window) seeds.
        let init = super::session::INIT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let model = TransformerConfig::from_plan(&plan).init(&device);
        drop(init);
        let model = model
            .try_load_file(&file)
            .map_err(|e| fail(format!("cannot load its model at step {step}: {e}")))?;
        Ok(Self {
            name: record.summary.name.clone(),
            dir: dir.to_path_buf(),
            step,
            plan,
            model,
            device,
        })
    }

    /// Evaluates under other attention patterns, without retraining (e.g. a
    /// dense-trained layer under a local mask): only `model.attention` and
    /// `model.layer_attention` may change; the weights stay as loaded.
    pub fn swap_patterns(&mut self, settings: &[FieldSetting]) -> Result<(), CausalError> {
        let fail = |problem: String| CausalError {
            dir: self.dir.clone(),
            problem,
        };
        let mut changed = self.plan.settings().clone();
        for setting in settings {
            if !PATTERN_FIELDS.contains(&setting.field.path) {
                return Err(fail(format!(
                    "--set {setting:?}: only the attention patterns ({}) can change without retraining",
                    PATTERN_FIELDS.join(", ")
                )));
            }
            changed = setting
                .apply(&changed)
                .map_err(|e| fail(format!("--set {setting:?}: {e}")))?;
        }
        let plans = Experiment::single(self.plan.name(), changed)
            .plan()
            .map_err(|e| fail(e.to_string()))?;
        self.plan = plans
            .into_iter()
            .next()
            .ok_or_else(|| fail("the changed settings plan no run".into()))?;
        Ok(())
    }

    /// Heads per layer and layers.
    pub fn shape(&self) -> (usize, usize) {
        let m = &self.plan.settings().model;
        (m.layers, m.heads)
    }

    pub(super) fn kernels(&self) -> AttentionKernels {
        AttentionKernels::for_plan(&self.plan, &self.device, SparseMode::WherePaysOff)
    }

    pub(super) fn tokens(&self, batch: &Batch) -> Tensor<2, Int> {
        tokens_tensor(batch, &self.device)
    }

    /// `batches` evaluation batches drawn from `seed`.
    fn batches(&self, seed: u64, batches: usize) -> Vec<Batch> {
        let settings = self.plan.settings();
        let mut rng = StdRng::seed_from_u64(seed);
        (0..batches.max(1))
            .map(|_| settings.task.eval_batch(settings.train.batch, &mut rng))
            .collect()
    }
}

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
) -> Result<(Scores, Vec<Ablation>), CausalError> {
    let fail = |problem: String| CausalError {
        dir: run.dir.clone(),
        problem,
    };
    check_heads(run, sets).map_err(fail)?;
    let kernels = run.kernels();
    let data = run.batches(seed, batches);
    let clean = score(&run.model, &kernels, &data, &run.device, run.step).map_err(fail)?;
    let means = match mode {
        AblationMode::Zero => None,
        AblationMode::Mean => Some(reference_outputs(run, &kernels, seed)),
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
            &kernels.with_interventions(edits),
            &data,
            &run.device,
            run.step,
        )
        .map_err(fail)?;
        out.push(Ablation {
            heads: set.clone(),
            scores,
        });
        progress(i + 1, sets.len());
    }
    Ok((clean, out))
}

/// Every layer's head outputs on a reference batch drawn apart from the scored ones.
fn reference_outputs(run: &LoadedRun, kernels: &AttentionKernels, seed: u64) -> Vec<Tensor<3>> {
    let reference = run.batches(seed ^ 0x5EED_0FAB_1A7E, 1);
    let (capture, captured) = Interventions::capturing();
    let batch = &reference[0];
    drop(
        run.model
            .forward(run.tokens(batch), &kernels.with_interventions(capture)),
    );
    (0..run.shape().0)
        .map_while(|l| captured.layer(l))
        .collect()
}

pub(super) fn check_heads(run: &LoadedRun, sets: &[Vec<HeadRef>]) -> Result<(), String> {
    let (layers, heads) = run.shape();
    for head in sets.iter().flatten() {
        if head.layer >= layers || head.head >= heads {
            return Err(format!(
                "head {head} does not exist: the model has {layers} layers of {heads} heads (heads are named LAYER.HEAD from 1.1)"
            ));
        }
    }
    Ok(())
}

/// The run's probe (the example the Heads pane shows) as a batch of one.
fn probe_batch(run: &LoadedRun) -> (crate::tasks::Example, Batch) {
    let settings = run.plan.settings();
    let probe = settings.task.probe(settings.train.seed);
    let n = probe.tokens.len();
    let batch = Batch {
        batch: 1,
        seq_len: n,
        tokens: probe.tokens.clone(),
        targets: probe.targets.clone(),
        distances: vec![0; n],
    };
    (probe, batch)
}

/// Every layer's attention weights on the run's probe (the example the Heads pane
/// shows) with the heads of `ablated` zeroed, at full resolution.
///
/// # Shapes
/// One `Vec` per layer, each `[heads, n, n]` row-major (query rows, key columns),
/// `n` the probe's length. An ablated head's own weights are as trained (its output
/// is zeroed after them); the layers above it see the change.
pub fn probe_attention(run: &LoadedRun, ablated: &[HeadRef]) -> Result<Vec<Vec<f32>>, CausalError> {
    let fail = |problem: String| CausalError {
        dir: run.dir.clone(),
        problem,
    };
    check_heads(run, &[ablated.to_vec()]).map_err(fail)?;
    let (_, batch) = probe_batch(run);
    let kernels = run
        .kernels()
        .with_interventions(Interventions::zero(ablated));
    let (_, weights) = run
        .model
        .forward_with_attention(run.tokens(&batch), &kernels);
    weights
        .into_iter()
        .map(|w| {
            read_back::<f32>(w.into_data(), "the attention weights")
                .map_err(|e| fail(e.to_string()))
        })
        .collect()
}

/// Each head's statistics on the run's probe (the example the Heads pane shows),
/// `[layer][head]`, at full resolution.
pub fn probe_statistics(run: &LoadedRun) -> Result<Vec<Vec<HeadStats>>, CausalError> {
    let fail = |problem: String| CausalError {
        dir: run.dir.clone(),
        problem,
    };
    let (probe, batch) = probe_batch(run);
    let n = probe.tokens.len();
    let (_, weights) = run
        .model
        .forward_with_attention(run.tokens(&batch), &run.kernels());
    let patterns = run.plan.layer_patterns();
    let masks = run.plan.layer_masks();
    let heads = run.shape().1;
    let mut out = Vec::with_capacity(weights.len());
    for (layer, w) in weights.into_iter().enumerate() {
        let values = read_back::<f32>(w.into_data(), "the attention weights")
            .map_err(|e| fail(e.to_string()))?;
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
