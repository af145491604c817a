//! Validation: an [`Experiment`] becomes a list of [`RunPlan`]s, checked once.

use serde::Serialize;

use super::experiment::{MAX_RUNS, folder_of, located};
use super::source::read_experiment_text;
use super::{ConfigError, ConfigErrors, Experiment, ModelKind, Settings, SweepAxis};
use crate::attention::{AttentionPattern, Mask};

mod eval_lengths;
mod settings_check;

pub use settings_check::check_settings;

/// Longest experiment or run name (names become folder names and table columns).
const MAX_NAME: usize = 200;

/// A run that passed every check: the only thing the trainer accepts. Its fields are
/// private, so the only ways to get one are [`Experiment::plan`] and
/// [`RunPlan::revise`], which both validate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunPlan {
    experiment: String,
    name: String,
    group: String,
    coordinates: Vec<(String, String)>,
    settings: Settings,
    reference: Option<super::RunReference>,
}

impl RunPlan {
    /// The experiment's name.
    pub fn experiment(&self) -> &str {
        &self.experiment
    }

    /// The run's name, unique within the experiment.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run of the experiment (and sweep point) this plan is a seed replicate of:
    /// its name without the `seed=` suffix (the name itself without seeds).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Where this run sits in the experiment: `("run", <run name>)` and, under a
    /// sweep, `(field, value label)` per axis (the seed is in the settings).
    pub fn coordinates(&self) -> &[(String, String)] {
        &self.coordinates
    }

    /// The resolved, valid settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The published result this run is compared with (its experiment's
    /// `[reference]` entry for the run), if any.
    pub fn reference(&self) -> Option<&super::RunReference> {
        self.reference.as_ref()
    }

    /// This plan with `change` applied to its settings, checked again as validation
    /// checks a file's runs, the memory budget included (e.g. the CLI's `--steps`,
    /// `--backend` and `--set`, a fork's changes): a change that makes a run too
    /// large is refused naming the field, never trained into an abort.
    pub fn revise(&self, change: impl FnOnce(&mut Settings)) -> Result<RunPlan, ConfigErrors> {
        self.revise_within(change, super::available_memory())
    }

    /// [`Self::revise`] against `memory` bytes (`None`: no budget, as for a plan moved
    /// to an evaluation length, whose cost the run's own estimate already counts).
    pub(super) fn revise_within(
        &self,
        change: impl FnOnce(&mut Settings),
        memory: Option<u64>,
    ) -> Result<RunPlan, ConfigErrors> {
        let mut settings = self.settings.clone();
        change(&mut settings);
        let errors = replicate_problems(&settings, memory);
        if errors.is_empty() {
            Ok(RunPlan {
                experiment: self.experiment.clone(),
                name: self.name.clone(),
                group: self.group.clone(),
                coordinates: self.coordinates.clone(),
                settings,
                reference: self.reference.clone(),
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The attention pattern of each layer (empty for the LSTM).
    pub fn layer_patterns(&self) -> Vec<AttentionPattern> {
        match self.settings.model.kind {
            ModelKind::Transformer => self.settings.model.layer_patterns(),
            ModelKind::Lstm => Vec::new(),
        }
    }

    /// The mask of each layer at the task's sequence length (empty for the LSTM).
    /// Layer `l`'s BigBird random blocks are seeded by the run seed and the layer index.
    pub fn layer_masks(&self) -> Vec<Mask> {
        self.settings
            .model
            .layer_masks(self.settings.task.seq_len, self.settings.train.seed)
    }

    /// This run alone as an experiment file (what a run record stores as config.toml);
    /// running that file reproduces the run.
    pub fn config_toml(&self) -> Result<String, ConfigError> {
        // The replicate alone: its own seed, no seed list, no sweep.
        let mut settings = self.settings.clone();
        settings.train.seeds.clear();
        let mut experiment = Experiment::single(&self.experiment, settings);
        if let Some(run) = experiment.runs.first_mut() {
            run.name = self.name.clone();
        }
        experiment.reference = self
            .reference
            .as_ref()
            .map(|r| super::Reference::only(r, &self.name));
        experiment.to_toml()
    }
}

/// Where a text task's file may lie ([`Experiment::load_and_plan_with`]).
#[derive(Clone, Copy)]
enum Confinement<'a> {
    /// Anywhere: files the tests write.
    None,
    /// In the experiment file's folder, or at or under these paths.
    Experiment(&'a [std::path::PathBuf]),
    /// In the record's folder, or at or under these paths.
    Record(&'a [std::path::PathBuf]),
}

impl Experiment {
    /// Reads, parses and validates a file: every error carries the file and, where the
    /// field is written in it, the line. A text task's file is resolved against the
    /// file's folder but not confined to it: only for files the tests write; an
    /// experiment from the user goes through [`Experiment::load_and_plan_allowing`], a
    /// record's `config.toml` through [`Experiment::load_record_and_plan`].
    pub fn load_and_plan(path: &std::path::Path) -> Result<(Self, Vec<RunPlan>), ConfigErrors> {
        Self::load_and_plan_with(path, Confinement::None)
    }

    /// [`Experiment::load_and_plan`] for an experiment file from the user (what
    /// `attnlab validate` and `run` do): a text task's file outside the file's folder is
    /// refused unless at or under a path of `allowed` (`--allow-file`), before it is
    /// read ([`Experiment::confine_files`]).
    pub fn load_and_plan_allowing(
        path: &std::path::Path,
        allowed: &[std::path::PathBuf],
    ) -> Result<(Self, Vec<RunPlan>), ConfigErrors> {
        Self::load_and_plan_with(path, Confinement::Experiment(allowed))
    }

    /// [`Experiment::load_and_plan`] for a record's `config.toml` (`path`): held to the
    /// same bounds and memory budget as an experiment file, and its text task's file
    /// refused, before it is read, unless it lies in the record's folder or at or
    /// under a path of `allowed` (the record's own allowance, once verified, and the
    /// user's `--allow-file`). A record someone sent cannot name `~/.ssh/id_rsa`.
    pub fn load_record_and_plan(
        path: &std::path::Path,
        allowed: &[std::path::PathBuf],
    ) -> Result<(Self, Vec<RunPlan>), ConfigErrors> {
        Self::load_and_plan_with(path, Confinement::Record(allowed))
    }

    /// Loads and plans, text files confined as `confinement` says.
    fn load_and_plan_with(
        path: &std::path::Path,
        confinement: Confinement<'_>,
    ) -> Result<(Self, Vec<RunPlan>), ConfigErrors> {
        let shown = path.display().to_string();
        let linked = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if linked && matches!(confinement, Confinement::Record(_)) {
            // attnlab never writes a link into a record.
            return Err(ConfigErrors::from(ConfigError::new(
                "",
                "is a symbolic link (records hold no links)",
            ))
            .in_file(&shown));
        }
        let text = read_experiment_text(path)?;
        let mut experiment = Self::from_toml(&text).map_err(|e| e.in_file(&shown))?;
        let folder = folder_of(path);
        let confined = match confinement {
            Confinement::None => {
                experiment.resolve_files(folder);
                Ok(())
            }
            Confinement::Experiment(allowed) => experiment.confine_files(folder, allowed),
            Confinement::Record(allowed) => experiment.confine_record_files(folder, allowed),
        };
        confined.map_err(|e| located(e, &text).in_file(&shown))?;
        match experiment.plan() {
            Ok(plans) => Ok((experiment, plans)),
            Err(errors) => Err(located(errors, &text).in_file(&shown)),
        }
    }

    /// Checks every run and returns their plans, or every problem found.
    ///
    /// Problems inherited from the base tables are reported once, at the base field
    /// (`model.heads`); problems only a run has, at that run (`runs[1].model.heads`).
    pub fn plan(&self) -> Result<Vec<RunPlan>, ConfigErrors> {
        self.plan_within(super::available_memory())
    }

    /// [`Experiment::plan`], refusing any run whose estimated peak memory
    /// ([`super::estimate`]) exceeds `memory` bytes (`None`: not checked).
    pub fn plan_within(&self, memory: Option<u64>) -> Result<Vec<RunPlan>, ConfigErrors> {
        let mut errors = self.check_experiment();
        // The base alone is checked without its swept fields: the sweep sets those.
        errors.extend(
            check_settings(&self.base)
                .into_iter()
                .filter(|e| self.swept(&e.field).is_none()),
        );
        // Counted before any point is built: a grid of 1000 x 1000 x 1000 values is
        // refused from its size, and each run's own `train.seeds` counts too.
        let expanded = self.sweep.len().saturating_mul(self.replicates());
        if expanded > MAX_RUNS {
            let count = if expanded == usize::MAX {
                format!("more than {}", usize::MAX)
            } else {
                expanded.to_string()
            };
            errors.push(ConfigError::new(
                "sweep",
                format!(
                    "expands to {count} runs ({} runs x {} points x seeds): at most {MAX_RUNS}",
                    self.runs.len(),
                    self.sweep.len()
                ),
            ));
            return Err(ConfigErrors(errors));
        }
        let points = self.sweep.points();
        let mut planned = Planned {
            plans: Vec::with_capacity(expanded),
            errors,
        };
        let mut names = std::collections::HashSet::new();
        for (index, run) in self.runs.iter().enumerate() {
            if !names.insert(run.name.as_str()) {
                planned.errors.push(ConfigError::new(
                    format!("runs[{index}].name"),
                    format!(
                        "\"{}\" is used by an earlier run; run names must be unique",
                        run.name
                    ),
                ));
            }
            let settings = match self.run_settings(index) {
                Ok(settings) => settings,
                Err(e) => {
                    planned.errors.push(e);
                    continue;
                }
            };
            if run.name.chars().count() > MAX_NAME {
                planned.errors.push(ConfigError::new(
                    format!("runs[{index}].name"),
                    format!(
                        "is {} characters: at most {MAX_NAME}",
                        run.name.chars().count()
                    ),
                ));
            }
            for point in &points {
                self.plan_point(&mut planned, index, &settings, point, memory);
            }
        }
        if !planned.errors.is_empty() {
            return Err(ConfigErrors(planned.errors));
        }
        Ok(planned.plans)
    }

    /// The runs a point of the sweep becomes: each run once per seed of its own
    /// `train.seeds` (once without; a run that does not resolve counts once, its
    /// error reported where it is planned), saturating.
    fn replicates(&self) -> usize {
        (0..self.runs.len())
            .map(|index| {
                self.run_settings(index)
                    .map_or(1, |s| s.train.seeds.len().max(1))
            })
            .fold(0, usize::saturating_add)
    }

    /// The problems of the experiment as a whole: its name, how many runs it has, and
    /// its `[reference]` against the runs' names.
    fn check_experiment(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.name.chars().count() > MAX_NAME {
            errors.push(ConfigError::new(
                "name",
                format!(
                    "is {} characters: at most {MAX_NAME}",
                    self.name.chars().count()
                ),
            ));
        }
        if self.runs.len() > MAX_RUNS {
            errors.push(ConfigError::new(
                "runs",
                format!(
                    "{} runs in one file: at most {MAX_RUNS} (split the experiment)",
                    self.runs.len()
                ),
            ));
        }
        if self.name.trim().is_empty() {
            errors.push(ConfigError::new("name", "must not be empty"));
        }
        if self.runs.is_empty() {
            errors.push(ConfigError::new(
                "runs",
                "an experiment needs at least one run",
            ));
        }
        if let Some(reference) = &self.reference {
            let names: Vec<&str> = self.runs.iter().map(|r| r.name.as_str()).collect();
            errors.extend(reference.check(&names));
        }
        errors
    }

    /// The sweep axis that sets `field`: the field itself or a table above it.
    fn swept(&self, field: &str) -> Option<&SweepAxis> {
        self.sweep
            .axes
            .iter()
            .find(|a| field == a.field || field.starts_with(&format!("{}.", a.field)))
    }

    /// Plans run `index` (its resolved `settings`) at sweep point `point`: one plan
    /// per seed replicate, each checked (against `memory` too, when its settings pass),
    /// into `planned`.
    fn plan_point(
        &self,
        planned: &mut Planned,
        index: usize,
        settings: &Settings,
        point: &[(String, toml::Value)],
        memory: Option<u64>,
    ) {
        let run = &self.runs[index];
        let pointed = match super::run_spec::apply_point(settings, point) {
            Ok(s) => s,
            Err(e) => {
                planned.errors.push(ConfigError::new("sweep", e.message));
                return;
            }
        };
        let group = if point.is_empty() {
            run.name.clone()
        } else {
            format!("{} {}", run.name, super::point_label(point))
        };
        let replicates: Vec<Option<u64>> = if pointed.train.seeds.is_empty() {
            vec![None]
        } else {
            pointed.train.seeds.iter().copied().map(Some).collect()
        };
        for seed in replicates {
            let mut settings = pointed.clone();
            let name = match seed {
                Some(seed) => {
                    settings.train.seed = seed;
                    format!("{group} seed={seed}")
                }
                None => group.clone(),
            };
            for e in replicate_problems(&settings, memory) {
                planned.report(self.placed(e, index, point));
            }
            let mut coordinates = vec![("run".to_string(), run.name.clone())];
            coordinates.extend(
                point
                    .iter()
                    .map(|(field, value)| (field.clone(), super::value_label(value))),
            );
            planned.plans.push(RunPlan {
                experiment: self.name.clone(),
                name,
                group: group.clone(),
                coordinates,
                settings,
                reference: self.reference.as_ref().and_then(|r| r.for_run(&run.name)),
            });
        }
    }

    /// A problem of run `index` at sweep point `point`, moved to where the file sets
    /// the field: the sweep axis (the message naming the point), else the run when it
    /// sets anything itself, else the base field as it is.
    fn placed(
        &self,
        mut e: ConfigError,
        index: usize,
        point: &[(String, toml::Value)],
    ) -> ConfigError {
        if let Some(axis) = self.swept(&e.field) {
            e.message = format!("{} (at {})", e.message, super::point_label(point));
            e.field = format!("sweep.{}", axis.field);
        } else if self.runs[index].has_overrides() {
            // A run that sets nothing itself is the base: say it there.
            e.field = format!("runs[{index}].{}", e.field);
        }
        e
    }
}

/// Every problem of one replicate's settings: [`check_settings`], then, when those
/// pass and `memory` is given, its estimated peak memory against it.
fn replicate_problems(settings: &Settings, memory: Option<u64>) -> Vec<ConfigError> {
    let mut run_errors = check_settings(settings);
    if run_errors.is_empty()
        && let Some(available) = memory
        && let Some((field, message)) = super::over_budget(settings, available)
    {
        run_errors.push(ConfigError::new(field, message));
    }
    run_errors
}

/// What planning has made so far: the plans, and every problem found.
struct Planned {
    plans: Vec<RunPlan>,
    errors: Vec<ConfigError>,
}

impl Planned {
    /// Adds a run's problem unless the same one (field and message) is already
    /// reported: a base problem every run shares is said once.
    fn report(&mut self, e: ConfigError) {
        let known = self
            .errors
            .iter()
            .any(|b: &ConfigError| b.field == e.field && b.message == e.message);
        if !known {
            self.errors.push(e);
        }
    }
}
