//! Whether a record can be resumed with a plan, decided before anything in it is
//! touched: the run the record holds (by name: a hand-written `config.toml` may hold
//! several), its checkpoint, and the settings that checkpoint was trained with against
//! the plan's. A resumed run may train further (`train.steps`) and change, on purpose,
//! the fields the registry lets change mid-run (`fork`); any other difference, such as
//! an edited `config.toml`, is refused, naming the fields.
//!
//! Checkpoints store the settings they were trained with (`state.json`'s `settings`).
//! Checkpoints written before they did are compared with the record's `config.toml`
//! instead, which catches a `--set` of a field that may not change but not an edit of
//! the file itself.

use std::path::Path;

use super::checkpoint::{CheckpointState, checkpoint_dir, read_checkpoint};
use super::files::RecordError;
use super::record::RunRecord;
use crate::config::fields::FIELDS;
use crate::config::{Experiment, RunPlan, Settings};

/// Settings left out of the fingerprint, as `(table, key)`: the steps (a resumed run
/// may train further) and the seed list (a record holds one replicate).
const UNCOMPARED: [(&str, &str); 2] = [("train", "steps"), ("train", "seeds")];

/// Why a record cannot be resumed with a plan.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// A file of the record cannot be read, or is not what a record holds.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The record stopped before its first checkpoint.
    #[error("the record has no checkpoint (it stopped before its first)")]
    NoCheckpoint,
    /// The record's `config.toml` has no run of the summary's name.
    #[error("its config.toml has no run named \"{name}\" (summary.json's); its runs: {runs}")]
    NoSuchRun {
        /// The name in `summary.json`.
        name: String,
        /// The runs `config.toml` has, quoted.
        runs: String,
    },
    /// The plan is another run than the one the record holds.
    #[error(
        "the record holds run \"{record_run}\" of \"{record_experiment}\", not \"{plan_run}\" of \"{plan_experiment}\""
    )]
    OtherRun {
        /// The record's run (`summary.json`).
        record_run: String,
        /// The record's experiment.
        record_experiment: String,
        /// The plan's run.
        plan_run: String,
        /// The plan's experiment.
        plan_experiment: String,
    },
    /// The plan does not train beyond the checkpoint.
    #[error(
        "its checkpoint is at step {step} and the run plans {steps} steps: nothing is left to train (pass --steps to train further)"
    )]
    NothingLeft {
        /// The checkpoint's step.
        step: usize,
        /// The plan's steps.
        steps: usize,
    },
    /// Settings differ from those the checkpoint was trained with.
    #[error("{}", changed_text(.0))]
    Changed(Vec<SettingChange>),
    /// The settings cannot be written as TOML to be compared.
    #[error("cannot compare the settings: {0}")]
    Settings(#[from] toml::ser::Error),
}

/// A setting whose value differs between a checkpoint and a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingChange {
    /// Its dotted path, `train.lr`.
    pub path: String,
    /// Its value in the checkpoint's settings, as TOML (`(none)` when absent).
    pub checkpoint: String,
    /// Its value in the plan.
    pub plan: String,
    /// Whether `--set` could change it on purpose (a registry field marked `fork`).
    pub mid_run: bool,
}

/// The refusal's text: each field that differs, with both values, and what may change.
fn changed_text(changes: &[SettingChange]) -> String {
    let list: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{} (the checkpoint trained with {}, the plan has {})",
                c.path, c.checkpoint, c.plan
            )
        })
        .collect();
    let settable: Vec<String> = changes
        .iter()
        .filter(|c| c.mid_run)
        .map(|c| format!("--set {}={}", c.path, c.plan))
        .collect();
    let mut text = format!(
        "its settings differ from those its checkpoint was trained with: {}. A resumed run \
         keeps its settings, but for train.steps and the fields set on purpose that may \
         change mid-run",
        list.join(", ")
    );
    if !settable.is_empty() {
        text.push_str(&format!(
            " (to change those on purpose: {})",
            settable.join(" ")
        ));
    }
    text
}

/// The settings as a TOML table, without the uncompared fields.
fn comparable(settings: &Settings) -> Result<toml::Table, toml::ser::Error> {
    let mut table = toml::Table::try_from(settings)?;
    for (section, key) in UNCOMPARED {
        if let Some(toml::Value::Table(t)) = table.get_mut(section) {
            t.remove(key);
        }
    }
    Ok(table)
}

/// What a checkpoint stores of the settings it was trained with: canonical TOML of
/// them without `train.steps` and `train.seeds`.
pub fn settings_fingerprint(settings: &Settings) -> Result<String, toml::ser::Error> {
    toml::to_string(&comparable(settings)?)
}

/// The registry's field at `path`, if it has one.
fn field(path: &str) -> Option<&'static crate::config::Field> {
    FIELDS.iter().copied().find(|f| f.path == path)
}

/// Every `table.key` (or top-level key) whose value differs between the two, in the
/// registry's order (others after, by name).
fn differences(checkpoint: &toml::Table, plan: &toml::Table) -> Vec<(String, String, String)> {
    let shown = |v: Option<&toml::Value>| v.map_or_else(|| "(none)".into(), |v| v.to_string());
    let mut out = Vec::new();
    let mut top: Vec<&String> = checkpoint.keys().chain(plan.keys()).collect();
    top.sort();
    top.dedup();
    for name in top {
        match (checkpoint.get(name), plan.get(name)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    if a.get(key) != b.get(key) {
                        out.push((
                            format!("{name}.{key}"),
                            shown(a.get(key)),
                            shown(b.get(key)),
                        ));
                    }
                }
            }
            (a, b) if a != b => out.push((name.clone(), shown(a), shown(b))),
            _ => {}
        }
    }
    let order = |path: &str| FIELDS.iter().position(|f| f.path == path);
    out.sort_by(|a, b| {
        (order(&a.0).is_none(), order(&a.0), &a.0).cmp(&(order(&b.0).is_none(), order(&b.0), &b.0))
    });
    out
}

/// Checks that the record in `dir` can be resumed with `plan`, reading only: it holds
/// the plan's run, has a checkpoint (whose files are there) before the plan's last
/// step, and the checkpoint's settings are the plan's but for `train.steps` and the
/// fields in `set_on_purpose` (given by `--set` or `--backend`) that the registry lets
/// change mid-run. Returns the checkpoint.
pub fn check_resume(
    dir: &Path,
    plan: &RunPlan,
    set_on_purpose: &[String],
) -> Result<CheckpointState, ResumeError> {
    let record = RunRecord::open(dir)?;
    if record.summary.name != plan.name() || record.summary.experiment != plan.experiment() {
        return Err(ResumeError::OtherRun {
            record_run: record.summary.name,
            record_experiment: record.summary.experiment,
            plan_run: plan.name().to_string(),
            plan_experiment: plan.experiment().to_string(),
        });
    }
    let state = read_checkpoint(dir)?.ok_or(ResumeError::NoCheckpoint)?;
    let steps = plan.settings().train.steps;
    if steps <= state.step {
        return Err(ResumeError::NothingLeft {
            step: state.step,
            steps,
        });
    }
    let trained = match &state.settings {
        Some(text) => toml::from_str::<toml::Table>(text).map_err(|e| RecordError::Damaged {
            path: checkpoint_dir(dir).join("state.json"),
            problem: format!("its settings are not TOML: {e}"),
        })?,
        // An older checkpoint: the record's config.toml stands in for its settings.
        None => comparable(record.resume_plan()?.settings())?,
    };
    let changes: Vec<SettingChange> = differences(&trained, &comparable(plan.settings())?)
        .into_iter()
        .filter(|(path, ..)| field(path).is_none_or(|f| (f.applies)(plan.settings())))
        .map(|(path, checkpoint, now)| SettingChange {
            mid_run: field(&path).is_some_and(|f| f.fork),
            path,
            checkpoint,
            plan: now,
        })
        .filter(|c| !(c.mid_run && set_on_purpose.contains(&c.path)))
        .collect();
    if changes.is_empty() {
        Ok(state)
    } else {
        Err(ResumeError::Changed(changes))
    }
}

impl RunRecord {
    /// The plan that resumes this record: [`RunRecord::plan_allowing`] with only the
    /// record's own verified allowance.
    pub fn resume_plan(&self) -> Result<RunPlan, ResumeError> {
        self.plan_allowing(&[])
    }

    /// The run's settings, for showing its record (export, the window) where it does
    /// not plan (over this machine's memory budget, say): its text file confined as
    /// [`RunRecord::plan_allowing`] confines it (nothing else allowed) and every
    /// setting within the bounds an experiment file's are held to, so nothing sized
    /// from them (masks, overlays) can exhaust memory; else the reason.
    pub fn checked_settings(&self) -> Result<Settings, RecordError> {
        let shown = self.dir.join("config.toml").display().to_string();
        let mut experiment = self.experiment()?;
        experiment
            .confine_record_files(&self.dir, &super::verified_allowance(&self.dir))
            .map_err(|e| e.in_file(&shown))?;
        let name = &self.summary.name;
        let index = experiment
            .runs
            .iter()
            .position(|r| &r.name == name)
            .unwrap_or(0);
        let settings = experiment
            .run_settings(index)
            .map_err(|e| crate::config::ConfigErrors::from(e).in_file(&shown))?;
        let errors = crate::config::check_settings(&settings);
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(crate::config::ConfigErrors(errors).in_file(&shown).into())
        }
    }

    /// The one way a record's settings are read to be run or measured (eval, ablate,
    /// patch, the Length probe, resume, fork, the window): its `config.toml` held to
    /// the same bounds and memory budget as an experiment file, its text task's file
    /// confined to the record's folder unless this machine allowed it when the run
    /// trained ([`super::verified_allowance`]) or it lies at or under a path of
    /// `allowed` (the user's `--allow-file`). Then the run of the file that
    /// `summary.json` names (a hand-written file may hold several; none of that name
    /// is an error listing those it has), planned for the steps the summary last
    /// planned when that is more than the file says (a run extended with `--steps`).
    pub fn plan_allowing(&self, allowed: &[std::path::PathBuf]) -> Result<RunPlan, ResumeError> {
        let path = self.dir.join("config.toml");
        let mut allowance = super::verified_allowance(&self.dir);
        allowance.extend(allowed.iter().cloned());
        let (_, plans) =
            Experiment::load_record_and_plan(&path, &allowance).map_err(RecordError::from)?;
        let names: Vec<String> = plans.iter().map(|p| format!("\"{}\"", p.name())).collect();
        let plan = plans
            .into_iter()
            .find(|p| p.name() == self.summary.name)
            .ok_or_else(|| ResumeError::NoSuchRun {
                name: self.summary.name.clone(),
                runs: names.join(", "),
            })?;
        let planned = self.summary.planned_steps;
        if planned > plan.settings().train.steps {
            // A count the checks refuse is not the summary's to impose: the file's stands.
            if let Ok(extended) = plan.revise(|s| s.train.steps = planned) {
                return Ok(extended);
            }
        }
        Ok(plan)
    }
}
