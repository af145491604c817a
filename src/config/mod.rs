//! Experiment files: what the user wrote (TOML, serde) and the validated plan.
//!
//! One file is one experiment: a base configuration (`[task]`, `[model]`, `[train]`)
//! and one or more `[[runs]]` that set some fields themselves. [`Experiment`] keeps
//! each run as its name and the fields it sets ([`RunSpec`]) and resolves them
//! against the base on demand; [`Experiment::plan`] validates every run once into
//! [`RunPlan`]s, which is all the trainer ever sees.

mod budget;
mod error;
mod experiment;
pub mod fields;
mod limits;
mod mixer;
mod plan;
mod reference;
mod run_spec;
mod schedule;
mod setting;
mod settings;
mod source;
mod suggest;
mod sweep;
mod train_choices;

pub use budget::{
    MemoryEstimate, checkpoint_disk_bytes, estimate, evaluation_estimate, human_bytes,
    kept_checkpoints, over_budget, parameter_count, state_floats, step_flops,
};
pub use error::{ConfigError, ConfigErrors};
pub use experiment::Experiment;
pub use fields::{Field, FieldPathError, Section};
pub use limits::{MemoryLimit, MemorySource, available_memory, memory_limit};
pub use mixer::{MAX_FEATURE_DIM, MAX_SSM_STATE, Mixer};
pub use plan::{RunPlan, check_settings};
pub use reference::{
    Published, PublishedRun, Reference, ReferenceCheck, ReferenceMetric, Rule, RunReference,
    Verdict,
};
pub use run_spec::{ResolveError, RunSpec};
pub use schedule::lr_at;
pub use setting::FieldSetting;
pub use settings::{
    BackendChoice, BackendSetting, BackendSettingError, MAX_EVAL_LENGTHS, ModelConfig, ModelKind,
    RemoteAddresses, Settings, TrainConfig,
};
pub use suggest::did_you_mean;
pub use sweep::{Sweep, SweepAxis, group_of, point_label, value_label};
pub use train_choices::{KeepCheckpoints, LrSchedule, MAX_KEPT_CHECKPOINTS, PositionScheme};

pub use crate::attention::AttentionPattern;
pub use crate::tasks::{TaskConfig, TaskKind};
