//! Why a record could not be loaded or measured: [`InspectError`] names the record's
//! folder, [`Problem`] what went wrong.

use std::path::PathBuf;

use crate::config::ConfigErrors;
use crate::device::BackendError;
use crate::model::{HeadRef, ReadbackError};
use crate::records::{ModelAtError, RecordError, ResumeError};

/// A record that could not be loaded or measured, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", dir.display())]
pub struct InspectError {
    /// The record's folder.
    pub dir: PathBuf,
    /// What is wrong.
    pub problem: Problem,
}

/// What went wrong loading or measuring a record.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// A file of the record cannot be read, or is not what a record holds.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The record's `config.toml` gives no plan for its run.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// No model of the step asked for was saved.
    #[error(transparent)]
    ModelAt(#[from] ModelAtError),
    /// The record stopped before its first checkpoint.
    #[error(
        "the record has no saved model (it stopped before its first checkpoint; train.checkpoint_every sets how often one is saved)"
    )]
    NoSavedModel,
    /// An LSTM was asked for heads.
    #[error("an LSTM has no attention heads (nothing to ablate, patch or probe)")]
    NoHeads,
    /// No device for the backend asked for.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The saved weights do not fit the model the record's config builds.
    #[error("cannot load its model{}: {reason}", step.map(|s| format!(" at step {s}")).unwrap_or_default())]
    Load {
        /// The step asked for (`None`: the latest).
        step: Option<usize>,
        /// burn's reason.
        reason: String,
    },
    /// The run cannot be planned at the length asked for.
    #[error("seq_len {seq_len}: {errors}")]
    Length {
        /// The length asked for.
        seq_len: usize,
        /// Why not.
        errors: ConfigErrors,
    },
    /// A `--set` that may not change without retraining, or does not apply.
    #[error("--set {setting}: {reason}")]
    Setting {
        /// The setting as given.
        setting: String,
        /// Why it is refused.
        reason: String,
    },
    /// The changed settings plan no run at all.
    #[error("the changed settings plan no run")]
    NoRun,
    /// The changed settings do not plan.
    #[error(transparent)]
    Plan(#[from] ConfigErrors),
    /// A head that the model does not have.
    #[error(
        "head {head} does not exist: the model has {layers} layers of {heads} heads (heads are named LAYER.HEAD from 1.1)"
    )]
    NoSuchHead {
        /// The head asked for.
        head: HeadRef,
        /// The model's layers.
        layers: usize,
        /// Heads per layer.
        heads: usize,
    },
    /// The batches asked for, held together (ablation and patching score every
    /// intervention on the same examples), would not fit in memory.
    #[error(
        "--batches {batches}: holding them takes about {needed} of memory, more than the {available} available (fewer batches, or `attnlab eval`, which scores them one at a time)"
    )]
    Batches {
        /// The batches asked for.
        batches: usize,
        /// The memory they need, in words.
        needed: String,
        /// The memory available, in words.
        available: String,
    },
    /// The task has no clean/corrupted pairs, or an answer is outside the vocabulary.
    #[error("{0}")]
    Task(String),
    /// A tensor could not be read back.
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    /// The model computed no attention weights (it has no attention layers).
    #[error("the model computed no attention weights")]
    NoAttention,
}

impl InspectError {
    /// `problem` with the record folder `dir`.
    pub fn new(dir: impl Into<PathBuf>, problem: impl Into<Problem>) -> Self {
        Self {
            dir: dir.into(),
            problem: problem.into(),
        }
    }
}
