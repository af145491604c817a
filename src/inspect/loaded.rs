//! A recorded transformer loaded at one of its saved steps ([`LoadedRun`]), and the
//! steps a record holds weights for ([`checkpoint_steps`]).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use super::error::{InspectError, Problem};
use crate::config::{BackendChoice, Experiment, FieldSetting, ModelKind, RunPlan};
use crate::device::select_backend;
use crate::model::{HeadRef, Mixing, SparseMode, Transformer, TransformerConfig, tokens_tensor};
use crate::records::RunRecord;
use crate::tasks::{Batch, Example};

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

/// The steps of `dir`'s saved weights: every kept checkpoint and the latest.
pub fn checkpoint_steps(dir: &Path) -> Result<Vec<usize>, InspectError> {
    let fail = |e: crate::records::RecordError| InspectError::new(dir, e);
    let mut steps: Vec<usize> = crate::records::kept_checkpoints(dir)
        .map_err(fail)?
        .iter()
        .map(|k| k.step)
        .collect();
    if let Some(latest) = crate::records::read_checkpoint(dir).map_err(fail)? {
        steps.push(latest.step);
    }
    steps.sort_unstable();
    steps.dedup();
    Ok(steps)
}

impl LoadedRun {
    /// The transformer of the record in `dir` at `step` (a kept checkpoint, or the
    /// latest), or at its latest checkpoint, on `backend`. Its settings are read as
    /// every record's are ([`RunRecord::plan_allowing`]: bounds, budget, its text file
    /// confined unless this machine allowed it or it is under a path of `allowed`).
    pub fn load(
        dir: &Path,
        step: Option<usize>,
        backend: BackendChoice,
        allowed: &[PathBuf],
    ) -> Result<Self, InspectError> {
        let fail = |problem: Problem| InspectError::new(dir, problem);
        let record = RunRecord::open(dir).map_err(|e| fail(e.into()))?;
        // The run its summary names (a hand-written config.toml may hold several).
        let plan = record.plan_allowing(allowed).map_err(|e| fail(e.into()))?;
        if plan.settings().model.kind != ModelKind::Transformer {
            return Err(fail(Problem::NoHeads));
        }
        let latest = crate::records::read_checkpoint(dir)
            .map_err(|e| fail(e.into()))?
            .ok_or_else(|| fail(Problem::NoSavedModel))?;
        let step = step.unwrap_or(latest.step);
        let file = crate::records::model_at(dir, step).map_err(|e| fail(e.into()))?;
        let (device, _) = select_backend(backend).map_err(|e| fail(e.into()))?;
        // Under the model's initialisation lock: building a model may draw from the
        // process-wide generator that a run starting beside it (in the window) seeds.
        let init = crate::model::init_lock();
        let model = TransformerConfig::from_plan(&plan).init(&device);
        drop(init);
        let model = model.try_load_file(&file).map_err(|e| {
            fail(Problem::Load {
                step: Some(step),
                reason: e.to_string(),
            })
        })?;
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
    pub fn swap_patterns(&mut self, settings: &[FieldSetting]) -> Result<(), InspectError> {
        let fail = |problem: Problem| InspectError::new(&self.dir, problem);
        let mut changed = self.plan.settings().clone();
        for setting in settings {
            let refuse = |reason: String| {
                fail(Problem::Setting {
                    setting: format!("{setting:?}"),
                    reason,
                })
            };
            if !PATTERN_FIELDS.contains(&setting.field.path) {
                return Err(refuse(format!(
                    "only the attention patterns ({}) can change without retraining",
                    PATTERN_FIELDS.join(", ")
                )));
            }
            changed = setting.apply(&changed).map_err(|e| refuse(e.to_string()))?;
        }
        let plans = Experiment::single(self.plan.name(), changed)
            .plan()
            .map_err(|e| fail(e.into()))?;
        self.plan = plans
            .into_iter()
            .next()
            .ok_or_else(|| fail(Problem::NoRun))?;
        Ok(())
    }

    /// Layers and heads per layer: `(layers, heads)`.
    pub fn shape(&self) -> (usize, usize) {
        let m = &self.plan.settings().model;
        (m.layers, m.heads)
    }

    /// An error about this record.
    pub(super) fn fail(&self, problem: impl Into<Problem>) -> InspectError {
        InspectError::new(&self.dir, problem)
    }

    /// Refuses a head of `sets` that the model does not have.
    pub(super) fn check_heads(&self, sets: &[Vec<HeadRef>]) -> Result<(), InspectError> {
        let (layers, heads) = self.shape();
        match sets
            .iter()
            .flatten()
            .find(|h| h.layer >= layers || h.head >= heads)
        {
            Some(&head) => Err(self.fail(Problem::NoSuchHead {
                head,
                layers,
                heads,
            })),
            None => Ok(()),
        }
    }

    pub(super) fn mixing(&self) -> Mixing {
        Mixing::for_plan(&self.plan, &self.device, SparseMode::WherePaysOff)
    }

    pub(super) fn tokens(&self, batch: &Batch) -> Tensor<2, Int> {
        tokens_tensor(batch, &self.device)
    }

    /// `batches` evaluation batches drawn from `seed`, held together: refused when
    /// they would not fit in the memory available (tokens, targets and distances,
    /// 8 bytes each per position).
    pub(super) fn batches(&self, seed: u64, batches: usize) -> Result<Vec<Batch>, InspectError> {
        let s = self.plan.settings();
        let needed = (batches as u64)
            .saturating_mul(s.train.batch as u64)
            .saturating_mul(s.task.seq_len as u64)
            .saturating_mul(24);
        if let Some(available) = crate::config::available_memory().filter(|&a| needed > a / 2) {
            return Err(self.fail(Problem::Batches {
                batches,
                needed: crate::config::human_bytes(needed),
                available: crate::config::human_bytes(available),
            }));
        }
        Ok(super::evaluate::eval_batches(&self.plan, seed, batches))
    }

    /// The run's probe (the example the Heads pane shows) as a batch of one.
    pub(super) fn probe_batch(&self) -> (Example, Batch) {
        let settings = self.plan.settings();
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
}
