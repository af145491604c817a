//! The experiment being edited: which settings the editor shows (the base or one
//! run), edits applied as a run's own fields or to the base, and validation after
//! every change. Plain data, no egui, so it is tested without a window.

use std::path::PathBuf;

use crate::config::{ConfigErrors, Experiment, RunPlan, RunSpec, Settings};

/// What the editor is editing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The base tables: a change reaches every run that does not set the field itself.
    Base,
    /// One run: a change becomes one of the run's own fields.
    Run(usize),
}

/// The experiment being edited and its validation.
#[derive(Clone, Debug)]
pub struct Editor {
    /// The experiment.
    pub experiment: Experiment,
    /// Base or one run.
    pub target: Target,
    /// Every problem, refreshed after each change.
    pub errors: ConfigErrors,
    /// Each run's resolved settings (`None` if its fields do not fit), refreshed with
    /// the errors.
    resolved: Vec<Option<Settings>>,
    /// The validated runs (sweep and seeds expanded), empty while invalid.
    plans: Vec<RunPlan>,
    /// Floating-point work of training every planned run to its last step.
    work_flops: f64,
    /// The folder of the experiment's file: its `task.file` names are relative to it.
    folder: Option<PathBuf>,
    /// Chance accuracy of the base (first) and of each run, refreshed with the errors
    /// (the text task's needs its corpus, which is never read while drawing).
    chance: Vec<f64>,
}

impl Editor {
    /// Opens an experiment for editing (one not read from a file: its text files are
    /// found from the working folder).
    pub fn new(experiment: Experiment) -> Self {
        Self::in_folder(experiment, None)
    }

    /// Opens an experiment read from a file in `folder`, whose relative `task.file`
    /// names are found there.
    pub fn in_folder(experiment: Experiment, folder: Option<PathBuf>) -> Self {
        let mut editor = Self {
            experiment,
            target: Target::Base,
            errors: ConfigErrors(Vec::new()),
            resolved: Vec::new(),
            plans: Vec::new(),
            work_flops: 0.0,
            folder,
            chance: Vec::new(),
        };
        editor.validate();
        editor
    }

    /// Re-checks the experiment and resolves every run again (text files relative to
    /// the experiment's folder).
    pub fn validate(&mut self) {
        let mut checked = self.experiment.clone();
        if let Some(folder) = &self.folder {
            checked.resolve_files(folder);
        }
        (self.errors, self.plans) = match checked.plan() {
            Ok(plans) => (ConfigErrors(Vec::new()), plans),
            Err(e) => (e, Vec::new()),
        };
        self.work_flops = self
            .plans
            .iter()
            .map(|p| crate::config::step_flops(p.settings()) * p.settings().train.steps as f64)
            .sum();
        self.resolved = (0..self.experiment.runs.len())
            .map(|i| self.experiment.run_settings(i).ok())
            .collect();
        self.chance = std::iter::once(checked.base.task.chance_accuracy())
            .chain((0..checked.runs.len()).map(|i| {
                checked
                    .run_settings(i)
                    .map_or(f64::NAN, |s| s.task.chance_accuracy())
            }))
            .collect();
    }

    /// The chance accuracy of the settings shown (NaN for a run that does not
    /// resolve), as of the last validation.
    pub fn chance_accuracy(&self) -> f64 {
        let index = match self.target {
            Target::Base => 0,
            Target::Run(i) => i + 1,
        };
        self.chance.get(index).copied().unwrap_or(f64::NAN)
    }

    /// The runs Run would train (empty while invalid).
    pub fn plans(&self) -> &[RunPlan] {
        &self.plans
    }

    /// Floating-point work of training every planned run (0 while invalid).
    pub fn work_flops(&self) -> f64 {
        self.work_flops
    }

    /// Whether every run is valid (Run is enabled).
    pub fn is_valid(&self) -> bool {
        self.errors.0.is_empty()
    }

    /// The settings the editor shows.
    pub fn settings(&self) -> &Settings {
        match self.target {
            Target::Run(i) => self.run_settings(i).unwrap_or(&self.experiment.base),
            Target::Base => &self.experiment.base,
        }
    }

    /// Run `i`'s resolved settings.
    pub fn run_settings(&self, i: usize) -> Option<&Settings> {
        self.resolved.get(i).and_then(Option::as_ref)
    }

    /// Every run that resolves, with its name, in file order.
    pub fn resolved_runs(&self) -> Vec<(String, Settings)> {
        self.experiment
            .runs
            .iter()
            .zip(&self.resolved)
            .filter_map(|(run, s)| s.clone().map(|s| (run.name.clone(), s)))
            .collect()
    }

    /// The field path prefix of the target in error messages (`runs[1].`).
    pub fn prefix(&self) -> String {
        match self.target {
            Target::Base => String::new(),
            Target::Run(i) => format!("runs[{i}]."),
        }
    }

    /// Applies edited settings to the target: the base (reaching every run that does
    /// not set the changed fields itself) or the run (each changed field becomes its
    /// own). Returns whether anything changed.
    pub fn apply(&mut self, new: Settings) -> bool {
        let old = self.settings().clone();
        if new == old {
            return false;
        }
        match self.target {
            Target::Run(i) if i < self.experiment.runs.len() => {
                self.experiment.runs[i].record_changes(&old, &new);
            }
            _ => self.experiment.base = new,
        }
        self.validate();
        true
    }

    /// Makes run `i` inherit everything from the base again.
    pub fn reset_run(&mut self, i: usize) {
        if let Some(run) = self.experiment.runs.get_mut(i) {
            for field in run.overridden_fields() {
                run.clear_override(&field);
            }
            self.validate();
        }
    }

    /// Writes the sweep and seeds out as plain runs, each editable.
    pub fn expand_sweep(&mut self) {
        self.experiment.expand_sweep();
        self.target = Target::Base;
        self.validate();
    }

    /// Duplicates the run being edited (or the last run) and edits the copy.
    pub fn duplicate_run(&mut self) {
        let source = match self.target {
            Target::Run(i) if i < self.experiment.runs.len() => self.experiment.runs[i].clone(),
            _ => self
                .experiment
                .runs
                .last()
                .cloned()
                .unwrap_or_else(|| RunSpec::new("run")),
        };
        let mut name = format!("{} copy", source.name);
        let mut k = 2;
        while self.experiment.runs.iter().any(|r| r.name == name) {
            name = format!("{} copy {k}", source.name);
            k += 1;
        }
        let mut copy = source;
        copy.name = name;
        self.experiment.runs.push(copy);
        self.target = Target::Run(self.experiment.runs.len() - 1);
        self.validate();
    }

    /// Removes run `i` (an experiment keeps at least one).
    pub fn remove_run(&mut self, i: usize) {
        if self.experiment.runs.len() > 1 && i < self.experiment.runs.len() {
            self.experiment.runs.remove(i);
            self.target = Target::Base;
            self.validate();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(text: &str) -> Editor {
        Editor::new(Experiment::from_toml(text).expect("valid"))
    }

    #[test]
    fn base_changes_reach_runs_that_do_not_set_the_field() {
        let mut e = editor(
            "name = \"x\"\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\ntask.seq_len = 64\n",
        );
        let mut new = e.settings().clone();
        new.task.seq_len = 256;
        new.train.steps = 9;
        assert!(e.apply(new));
        assert_eq!(e.run_settings(0).map(|s| s.task.seq_len), Some(256));
        assert_eq!(
            e.run_settings(1).map(|s| s.task.seq_len),
            Some(64),
            "b sets seq_len"
        );
        assert!((0..2).all(|i| e.run_settings(i).map(|s| s.train.steps) == Some(9)));
    }

    #[test]
    fn a_run_edit_becomes_its_own_field_and_reset_drops_it() {
        let mut e = editor("name = \"x\"\n[[runs]]\nname = \"a\"\n");
        e.target = Target::Run(0);
        let mut new = e.settings().clone();
        new.model.heads = 2;
        e.apply(new);
        assert_eq!(e.experiment.runs[0].overridden_fields(), ["model.heads"]);
        e.reset_run(0);
        assert!(!e.experiment.runs[0].has_overrides());
        assert_eq!(e.run_settings(0).map(|s| s.model.heads), Some(4));
    }

    #[test]
    fn duplicate_gets_a_unique_name_and_becomes_the_target() {
        let mut e = editor("name = \"x\"\n[[runs]]\nname = \"a\"\n");
        e.duplicate_run();
        e.duplicate_run();
        let names: Vec<_> = e.experiment.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "a copy", "a copy copy"]);
        assert_eq!(e.target, Target::Run(2));
        assert!(e.is_valid());
    }
}
