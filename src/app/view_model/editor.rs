//! The experiment being edited: which settings the editor shows (the base or one
//! run), edits applied as a run's own fields or to the base, and validation after
//! every change. Plain data, no egui, so it is tested without a window.
//!
//! A text task's file must lie in the experiment's folder tree (a shared experiment
//! must not read, nor send to a remote server, a file such as `../.ssh/id_rsa`),
//! unless the user allows that file, for this session only: the window's counterpart
//! of the command line's `--allow-file`, never something the experiment says.

use std::path::{Path, PathBuf};

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
    /// Files outside the experiment's folder the user allowed (as the links lead,
    /// canonical): kept for the session, never saved.
    allowed: Vec<PathBuf>,
    /// The experiment's files that lie outside its folder, each with whether it is
    /// allowed, refreshed with the errors.
    outside: Vec<(PathBuf, bool)>,
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
        Self::in_folder_allowing(experiment, folder, Vec::new())
    }

    /// [`Editor::in_folder`], the files at or under the paths of `allowed` readable
    /// wherever they are (what the user allowed earlier in the session).
    pub fn in_folder_allowing(
        experiment: Experiment,
        folder: Option<PathBuf>,
        allowed: Vec<PathBuf>,
    ) -> Self {
        // A bare file name's folder is the working folder.
        let folder = folder.filter(|f| !f.as_os_str().is_empty());
        let mut editor = Self {
            experiment,
            target: Target::Base,
            errors: ConfigErrors(Vec::new()),
            resolved: Vec::new(),
            plans: Vec::new(),
            work_flops: 0.0,
            folder,
            chance: Vec::new(),
            allowed,
            outside: Vec::new(),
        };
        editor.validate();
        editor
    }

    /// Re-checks the experiment and resolves every run again (text files relative to
    /// the experiment's folder, or to the working folder for an experiment not read
    /// from a file). A text file outside that folder and not allowed is refused
    /// before anything reads it: then the refusals are the only errors.
    pub fn validate(&mut self) {
        let mut checked = self.experiment.clone();
        let folder = self.folder.clone().unwrap_or_else(|| PathBuf::from("."));
        let confined = checked.confine_files(&folder, &self.allowed);
        let files = text_files(&checked);
        (self.errors, self.plans) = match confined.and_then(|()| checked.plan()) {
            Ok(plans) => (ConfigErrors(Vec::new()), plans),
            Err(e) => (e, Vec::new()),
        };
        self.outside = files
            .into_iter()
            .filter_map(|real| {
                let allowed = self.allowed.iter().any(|a| real.starts_with(a));
                let refused = self.errors.0.iter().any(|e| {
                    e.message.contains("lies outside")
                        && e.message.contains(&real.display().to_string())
                });
                (allowed || refused).then_some((real, allowed))
            })
            .collect();
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

    /// The experiment's text files that lie outside its folder tree (links
    /// followed), each with whether the user allowed it; sorted. A file refused is
    /// among the errors.
    pub fn outside_files(&self) -> &[(PathBuf, bool)] {
        &self.outside
    }

    /// Allows (or no longer allows) reading `file` wherever it lies, for this
    /// session, and validates again.
    pub fn set_allowed(&mut self, file: &Path, allow: bool) {
        let file = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
        self.allowed.retain(|a| *a != file);
        if allow {
            self.allowed.push(file);
        }
        self.validate();
    }

    /// The files the user allowed this session (kept when another experiment opens).
    pub fn allowed_files(&self) -> &[PathBuf] {
        &self.allowed
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
            let removed = self.experiment.runs.remove(i);
            if let Some(reference) = &mut self.experiment.reference {
                reference.rename_run(&removed.name, &[]);
            }
            self.target = Target::Base;
            self.validate();
        }
    }
}

/// Every text file `experiment` (its files resolved) may read, as the links lead,
/// sorted: the base's, each run's and each sweep value. Names with no file behind
/// them (the shipped corpus's, a typo) are left out.
fn text_files(experiment: &Experiment) -> Vec<PathBuf> {
    let mut files = vec![experiment.base.task.file.clone()];
    files.extend(
        (0..experiment.runs.len())
            .filter_map(|i| experiment.run_settings(i).ok().map(|s| s.task.file)),
    );
    for axis in experiment
        .sweep
        .axes
        .iter()
        .filter(|a| a.field == "task.file")
    {
        files.extend(
            axis.values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
    }
    let mut real: Vec<PathBuf> = files
        .iter()
        .map(Path::new)
        .filter(|p| p.is_file())
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    real.sort();
    real.dedup();
    real
}

/// `train.eval_lengths` as the editor writes it: `128, 256, 512`.
pub fn format_lengths(lengths: &[usize]) -> String {
    lengths
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `train.eval_lengths` from what the user typed: whole numbers separated by commas
/// or spaces, brackets allowed (`[128, 256]`); empty is no other length. Whether each
/// length suits the run is validation's to say.
pub fn parse_lengths(text: &str) -> Result<Vec<usize>, String> {
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<usize>().map_err(|_| {
                format!("\"{part}\" is not a whole number of tokens: write lengths like 128, 256")
            })
        })
        .collect()
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

    /// A text experiment reading `file`, small enough to plan quickly.
    fn text_experiment(file: &str) -> Experiment {
        Experiment::from_toml(&format!(
            "name = \"t\"\n[task]\nkind = \"text\"\nfile = {file:?}\nseq_len = 16\nvocab = 32\n\
             [model]\nlayers = 1\nheads = 2\nd_model = 16\nd_ff = 32\ncausal = true\n\
             [train]\nsteps = 2\nbatch = 4\neval_every = 2\neval_batches = 1\nbackend = \"cpu\"\n"
        ))
        .expect("valid")
    }

    #[test]
    fn a_text_file_outside_the_folder_is_refused_until_the_user_allows_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let secret = root.path().join("secret.txt");
        let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
        std::fs::write(&secret, &text).expect("write");
        let folder = root.path().join("exp");
        std::fs::create_dir(&folder).expect("mkdir");
        std::fs::write(folder.join("corpus.txt"), &text).expect("write");
        let real = secret.canonicalize().expect("real path");

        let mut e = Editor::in_folder(text_experiment("../secret.txt"), Some(folder.clone()));
        assert!(!e.is_valid());
        assert!(e.plans().is_empty(), "nothing to run");
        assert!(
            e.errors
                .0
                .iter()
                .any(|x| x.field == "task.file" && x.message.contains("lies outside")),
            "{}",
            e.errors
        );
        assert_eq!(e.outside_files(), [(real.clone(), false)]);

        e.set_allowed(&secret, true);
        assert!(e.is_valid(), "{}", e.errors);
        assert_eq!(e.plans().len(), 1);
        assert_eq!(
            e.outside_files(),
            [(real.clone(), true)],
            "still shown, ticked"
        );
        assert_eq!(e.allowed_files(), std::slice::from_ref(&real));

        // Kept for the next experiment of the session; unticked, refused again.
        let mut next = Editor::in_folder_allowing(
            text_experiment("../secret.txt"),
            Some(folder.clone()),
            e.allowed_files().to_vec(),
        );
        assert!(next.is_valid(), "{}", next.errors);
        next.set_allowed(&secret, false);
        assert!(!next.is_valid());
        assert_eq!(next.outside_files(), [(real.clone(), false)]);

        // An experiment not read from a file is confined to the working folder.
        let absolute = secret.display().to_string();
        assert!(!Editor::new(text_experiment(&absolute)).is_valid());

        // A file in the experiment's folder needs nothing.
        let inside = Editor::in_folder(text_experiment("corpus.txt"), Some(folder));
        assert!(inside.is_valid(), "{}", inside.errors);
        assert!(inside.outside_files().is_empty());
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

    #[test]
    fn evaluation_lengths_are_typed_as_a_list() {
        use super::{format_lengths, parse_lengths};
        assert_eq!(parse_lengths("128, 256 512"), Ok(vec![128, 256, 512]));
        assert_eq!(parse_lengths("[128,256]"), Ok(vec![128, 256]));
        assert_eq!(parse_lengths("  "), Ok(vec![]));
        let e = parse_lengths("128, 2x6").expect_err("not a number");
        assert!(e.contains("\"2x6\""), "{e}");
        assert!(parse_lengths("-5").is_err());
        assert_eq!(format_lengths(&[128, 256]), "128, 256");
        assert_eq!(
            parse_lengths(&format_lengths(&[64, 4096])),
            Ok(vec![64, 4096])
        );
    }
}
