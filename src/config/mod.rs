//! Experiment files: what the user wrote (TOML, serde) and the validated plan.
//!
//! One file is one experiment: a base configuration (`[task]`, `[model]`, `[train]`)
//! and one or more `[[runs]]` that override parts of it. [`Experiment::from_toml`]
//! parses and resolves the overrides; [`Experiment::plan`] validates every run once
//! into [`RunPlan`]s, which is all the trainer ever sees.

mod error;
mod experiment;
mod plan;
mod settings;
mod suggest;

pub use error::{ConfigError, ConfigErrors};
pub use experiment::{Experiment, Run};
pub use plan::RunPlan;
pub use settings::{BackendChoice, ModelConfig, ModelKind, Settings, TrainConfig};
pub use suggest::did_you_mean;

pub use crate::attention::AttentionPattern;
pub use crate::tasks::{TaskConfig, TaskKind};
