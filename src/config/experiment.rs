//! Reading and writing experiment files: base settings plus per-run overrides.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::run_spec::{ResolveError, RunSpec, apply_point};
use super::source::{
    locate_field, path_string, read_experiment_text, runs_header_lines, toml_error,
};
use super::{ConfigError, ConfigErrors, Settings};
use crate::tasks::SHIPPED_NAME;

/// Most runs in one experiment file.
pub const MAX_RUNS: usize = 10_000;

/// One experiment: a base configuration and the runs that vary it.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    /// Shown in the GUI and used in record ids.
    pub name: String,
    /// Free text: what the experiment shows.
    pub description: String,
    /// The `[task]`, `[model]` and `[train]` tables every run starts from.
    pub base: Settings,
    /// The runs in file order, each with only what it sets itself; resolved against
    /// the base on demand ([`Experiment::run_settings`]), so an edit of the base
    /// reaches exactly the runs that do not set that field.
    pub runs: Vec<RunSpec>,
    /// The `[sweep]` grid every run is trained over (empty: none).
    pub sweep: super::Sweep,
    /// The published result the experiment reproduces, if any.
    pub reference: Option<super::Reference>,
}

/// The file as written: the typed base and the raw run tables, which are merged onto
/// the base before being typed (so a run may override a single field).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(default)]
    task: crate::tasks::TaskConfig,
    #[serde(default)]
    model: super::ModelConfig,
    #[serde(default)]
    train: super::TrainConfig,
    #[serde(default, skip_serializing_if = "Table::is_empty")]
    sweep: Table,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    runs: Vec<Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference: Option<super::Reference>,
}

impl Experiment {
    /// An experiment with one run of `settings`.
    pub fn single(name: &str, settings: Settings) -> Self {
        Self {
            name: name.to_string(),
            description: String::new(),
            base: settings,
            runs: vec![RunSpec::new(name)],
            sweep: super::Sweep::default(),
            reference: None,
        }
    }

    /// The sweep and the seeds written out as plain runs, one per grid point and seed,
    /// each setting its point's fields and its seed (so each can be seen and edited
    /// before training). Trains exactly what the sweep would.
    pub fn expand_sweep(&mut self) {
        let points = self.sweep.points();
        let mut runs: Vec<RunSpec> = Vec::new();
        for run in &self.runs {
            let first = runs.len();
            let seeds = run
                .resolve(&self.base)
                .map(|s| s.train.seeds)
                .unwrap_or_default();
            for point in &points {
                let group = if point.is_empty() {
                    run.name.clone()
                } else {
                    format!("{} {}", run.name, super::point_label(point))
                };
                let mut spec = run.clone();
                for (field, value) in point {
                    spec.set(field, value.clone());
                }
                if seeds.is_empty() {
                    spec.name = group;
                    runs.push(spec);
                    continue;
                }
                spec.set("train.seeds", Value::Array(Vec::new()));
                for &seed in &seeds {
                    let mut replicate = spec.clone();
                    replicate.name = format!("{group} seed={seed}");
                    replicate.set("train.seed", Value::Integer(seed as i64));
                    runs.push(replicate);
                }
            }
            if let Some(reference) = &mut self.reference {
                let names: Vec<&str> = runs[first..].iter().map(|r| r.name.as_str()).collect();
                reference.rename_run(&run.name, &names);
            }
        }
        // The base takes the first point's values (every run sets its own), so it
        // stays valid without the sweep; its seeds are now the runs' own.
        if let Some(first) = points.first()
            && let Ok(base) = apply_point(&self.base, first)
        {
            self.base = base;
        }
        self.base.train.seeds.clear();
        self.runs = runs;
        self.sweep = super::Sweep::default();
    }

    /// The settings of run `index`: the base with the run's own fields.
    pub fn run_settings(&self, index: usize) -> Result<Settings, ConfigError> {
        let run = self
            .runs
            .get(index)
            .ok_or_else(|| ConfigError::new(format!("runs[{index}]"), "no such run"))?;
        run.resolve(&self.base)
            .map_err(|e| run_error(index, &run.name, e, None))
    }

    /// Parses an experiment file and checks that each run's fields fit. Syntax and
    /// type errors carry the line; value checks happen later in [`Experiment::plan`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        if text.trim().is_empty() {
            return Err(ConfigError::new(
                "",
                "the file is empty: an experiment needs at least `name = \"...\"` (see experiments/ for examples)",
            )
            .into());
        }
        let file: FileRepr = parse_with_path(text)?;
        let base = Settings {
            task: file.task,
            model: file.model,
            train: file.train,
        };
        let sweep = super::Sweep::from_table(&file.sweep).map_err(|mut e| {
            e.line = locate_field(text, &e.field);
            ConfigErrors::from(e)
        })?;
        for axis in &sweep.axes {
            for value in &axis.values {
                if let Err(e) = apply_point(&base, &[(axis.field.clone(), value.clone())]) {
                    let field = format!("sweep.{}", axis.field);
                    let mut error = ConfigError::new(
                        field.clone(),
                        format!("{} is not a value for {}: {}", value, axis.field, e.message),
                    );
                    error.line = locate_field(text, &field);
                    return Err(error.into());
                }
            }
        }
        let header_lines = runs_header_lines(text);
        if file.runs.len() > MAX_RUNS {
            let mut e = ConfigError::new(
                "runs",
                format!(
                    "{} runs in one file: at most {MAX_RUNS} (split the experiment)",
                    file.runs.len()
                ),
            );
            e.line = header_lines.get(MAX_RUNS).copied();
            return Err(e.into());
        }
        let mut runs = Vec::new();
        let mut errors = Vec::new();
        for (index, table) in file.runs.into_iter().enumerate() {
            let line = header_lines.get(index).copied();
            match RunSpec::from_table(index, table, line) {
                Ok(run) => match run.resolve(&base) {
                    Ok(_) => runs.push(run),
                    Err(e) => errors.push(run_error(index, &run.name, e, line)),
                },
                Err(e) => errors.push(e),
            }
        }
        if runs.is_empty() && errors.is_empty() {
            runs.push(RunSpec::new(file.name.clone()));
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            base,
            runs,
            sweep,
            reference: file.reference,
        })
    }

    /// Writes the experiment back as TOML: the base tables, then each run with the
    /// fields it sets. `from_toml(to_toml(e)) == e`. Fails (and nothing should be
    /// written) only for values TOML cannot hold, such as a seed above `i64::MAX`.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let implicit =
            self.runs.len() == 1 && self.runs[0].name == self.name && !self.runs[0].has_overrides();
        let runs = if implicit {
            Vec::new()
        } else {
            self.runs.iter().map(RunSpec::to_table).collect()
        };
        let file = FileRepr {
            name: self.name.clone(),
            description: self.description.clone(),
            task: self.base.task.clone(),
            model: self.base.model.clone(),
            train: self.base.train.clone(),
            sweep: self.sweep.to_table(),
            runs,
            reference: self.reference.clone(),
        };
        toml::to_string_pretty(&file).map_err(|e| {
            ConfigError::new(
                "",
                format!(
                    "cannot be written as TOML ({e}); seeds must be at most {}",
                    i64::MAX
                ),
            )
        })
    }

    /// Reads and parses a file; errors carry its path. Only a regular file of at
    /// most 1 MiB is read (a directory, a FIFO or a device is refused before it is
    /// opened, so nothing blocks or fills memory). A text task's file outside the
    /// file's folder is refused ([`Experiment::confine_files`], nothing allowed): what
    /// the window opens.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_allowing(path, &[])
    }

    /// [`Experiment::load`], a text task also allowed the files at or under the paths
    /// of `allowed` (the user's `--allow-file`).
    pub fn load_allowing(path: &Path, allowed: &[PathBuf]) -> Result<Self, ConfigErrors> {
        let shown = path.display().to_string();
        let text = read_experiment_text(path)?;
        let mut experiment = Self::from_toml(&text).map_err(|e| e.in_file(&shown))?;
        experiment
            .confine_files(folder_of(path), allowed)
            .map_err(|e| located(e, &text).in_file(&shown))?;
        Ok(experiment)
    }

    /// Makes `task.file` (the text task's file), where written relative to the
    /// experiment file in `dir`, absolute, so the experiment finds it from any working
    /// folder, and so do the records it writes. The shipped corpus's name stays as
    /// written when no file of that name is there (it is built in).
    pub fn resolve_files(&mut self, dir: &Path) {
        let resolve = |file: &str| -> Option<String> {
            let path = Path::new(file);
            if file.is_empty() || !path.is_relative() {
                return None;
            }
            let joined = dir.join(path);
            if !joined.is_file() && file.replace('\\', "/").ends_with(SHIPPED_NAME) {
                return None;
            }
            std::path::absolute(joined)
                .ok()
                .map(|p| p.display().to_string())
        };
        if let Some(file) = resolve(&self.base.task.file) {
            self.base.task.file = file;
        }
        for run in &mut self.runs {
            let written = run
                .own_value("task.file")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            if let Some(file) = written.as_deref().and_then(resolve) {
                run.set("task.file", Value::String(file));
            }
        }
        for axis in self.sweep.axes.iter_mut().filter(|a| a.field == FILE_FIELD) {
            for value in &mut axis.values {
                if let Some(file) = value.as_str().and_then(resolve) {
                    *value = Value::String(file);
                }
            }
        }
    }

    /// [`Experiment::resolve_files`], then refuses every text file that lies outside
    /// `dir`'s folder tree once links are followed (a shared experiment must not read,
    /// nor with a remote backend send, a file from elsewhere such as `../.ssh/id_rsa`)
    /// unless it is at or under a path of `allowed`, which the user names (the CLI's
    /// `--allow-file`), never the file. The shipped corpus's name is built in and
    /// allowed; a name with no file behind it reads nothing and is left to
    /// [`Experiment::plan`] (which says it is missing).
    pub fn confine_files(&mut self, dir: &Path, allowed: &[PathBuf]) -> Result<(), ConfigErrors> {
        self.confine_within(dir, allowed, Scope::Experiment)
    }

    /// [`Experiment::confine_files`] for a record's `config.toml` in `dir`: a text
    /// file outside the record's folder is refused unless at or under a path of
    /// `allowed` (what this machine allowed the run when it trained, verified, and the
    /// user's `--allow-file`).
    pub fn confine_record_files(
        &mut self,
        dir: &Path,
        allowed: &[PathBuf],
    ) -> Result<(), ConfigErrors> {
        self.confine_within(dir, allowed, Scope::Record)
    }

    /// Resolves the text files against `dir` and refuses those outside it and
    /// `allowed`; `scope` says what `dir` is, for the message.
    fn confine_within(
        &mut self,
        dir: &Path,
        allowed: &[PathBuf],
        scope: Scope,
    ) -> Result<(), ConfigErrors> {
        self.resolve_files(dir);
        if !self.reads_text() {
            return Ok(());
        }
        let root = dir.canonicalize().map_err(|e| {
            ConfigError::new(
                FILE_FIELD,
                format!("the experiment's folder {}: {e}", dir.display()),
            )
        })?;
        let allowed: Vec<PathBuf> = allowed
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        let errors: Vec<ConfigError> = self
            .written_files()
            .into_iter()
            .filter_map(|(field, file)| {
                outside(&file, &root, &allowed, scope)
                    .map(|message| ConfigError::new(field, message))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Whether any run (or sweep point) may be a text task, which reads `task.file`.
    fn reads_text(&self) -> bool {
        use crate::tasks::TaskKind;
        self.base.task.kind == TaskKind::Text
            || self.sweep.axes.iter().any(|a| a.field == "task.kind")
            || (0..self.runs.len()).any(|i| {
                self.run_settings(i)
                    .is_ok_and(|s| s.task.kind == TaskKind::Text)
            })
    }

    /// Every `task.file` written, with the field that writes it: the base's, each
    /// run's own and each sweep value.
    fn written_files(&self) -> Vec<(String, String)> {
        let mut files = vec![(FILE_FIELD.to_string(), self.base.task.file.clone())];
        for (index, run) in self.runs.iter().enumerate() {
            if let Some(file) = run.own_value(FILE_FIELD).and_then(|v| v.as_str()) {
                files.push((format!("runs[{index}].{FILE_FIELD}"), file.to_string()));
            }
        }
        for axis in self.sweep.axes.iter().filter(|a| a.field == FILE_FIELD) {
            for file in axis.values.iter().filter_map(|v| v.as_str()) {
                files.push((format!("sweep.{FILE_FIELD}"), file.to_string()));
            }
        }
        files
    }
}

/// The dotted name of the text task's file.
const FILE_FIELD: &str = "task.file";

/// The folder of an experiment file (`.` for a bare file name).
pub(super) fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Errors placed on the line of `text` that writes their field, where they have none.
pub(super) fn located(mut errors: ConfigErrors, text: &str) -> ConfigErrors {
    for e in &mut errors.0 {
        if e.line.is_none() {
            e.line = locate_field(text, &e.field);
        }
    }
    errors
}

/// Why the text task may not read `file`, if it may not: the file it would read (what
/// `tasks::text::load` opens: the path as it stands) lies, links followed, outside
/// `root` and every path of `allowed`.
/// What a folder that confines text files is, for the refusal's words.
#[derive(Clone, Copy)]
enum Scope {
    /// An experiment file's folder.
    Experiment,
    /// A run record's folder.
    Record,
}

fn outside(file: &str, root: &Path, allowed: &[PathBuf], scope: Scope) -> Option<String> {
    let path = Path::new(file);
    if file.is_empty() || !path.is_file() {
        return None;
    }
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) => return Some(format!("{file:?}: {e}")),
    };
    if real.starts_with(root) || allowed.iter().any(|a| real.starts_with(a)) {
        return None;
    }
    let via = if real.as_path() == Path::new(file) {
        String::new()
    } else {
        format!(" (it is {})", real.display())
    };
    let (root, real) = (root.display(), real.display());
    Some(match scope {
        Scope::Experiment => format!(
            "{file:?}{via} lies outside the experiment's folder {root}: an experiment reads only files in its own folder; if you trust this one, allow it with `--allow-file {real}` (attnlab run or validate)"
        ),
        Scope::Record => format!(
            "{file:?}{via} lies outside the record {root}, and this machine did not allow this record to read it when it trained (a record from elsewhere, or one whose config.toml was edited); if you trust it, allow it with `--allow-file {real}`"
        ),
    })
}

/// Deserialises with the dotted path of the failing field and the line it is on.
fn parse_with_path(text: &str) -> Result<FileRepr, ConfigErrors> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(text, "", &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = path_string(e.path());
        toml_error(text, &path, e.inner()).into()
    })
}

/// A run's resolve error as a config error at `runs[index].<path>`.
fn run_error(index: usize, name: &str, e: ResolveError, line: Option<usize>) -> ConfigError {
    let field = if e.path.is_empty() {
        format!("runs[{index}]")
    } else {
        format!("runs[{index}].{}", e.path)
    };
    ConfigError {
        file: None,
        line,
        field,
        message: format!("{} (in run \"{name}\")", e.message),
    }
}
