//! Reading and writing experiment files: base settings plus per-run overrides.

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::run_spec::{ResolveError, RunSpec, apply_point};
use super::source::{
    locate_field, path_string, read_experiment_text, runs_header_lines, toml_error,
};
use super::{ConfigError, ConfigErrors, Settings};

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
        }
    }

    /// The sweep and the seeds written out as plain runs, one per grid point and seed,
    /// each setting its point's fields and its seed (so each can be seen and edited
    /// before training). Trains exactly what the sweep would.
    pub fn expand_sweep(&mut self) {
        let points = self.sweep.points();
        let mut runs = Vec::new();
        for run in &self.runs {
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
    /// opened, so nothing blocks or fills memory).
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigErrors> {
        let text = read_experiment_text(path)?;
        let mut experiment =
            Self::from_toml(&text).map_err(|e| e.in_file(&path.display().to_string()))?;
        experiment.resolve_files(path.parent().unwrap_or(std::path::Path::new(".")));
        Ok(experiment)
    }

    /// Makes `task.file` (the text task's file), where written relative to the
    /// experiment file in `dir`, absolute, so the experiment finds it from any working
    /// folder, and so do the records it writes. A name that is no file there stays as
    /// written (the shipped corpus is built in).
    pub fn resolve_files(&mut self, dir: &std::path::Path) {
        let resolve = |file: &str| -> Option<String> {
            let path = std::path::Path::new(file);
            (!file.is_empty() && path.is_relative())
                .then(|| dir.join(path))
                .filter(|p| p.is_file())
                .and_then(|p| std::path::absolute(p).ok())
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
    }
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
