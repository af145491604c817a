//! Reading and writing experiment files: base settings plus per-run overrides.

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::suggest::did_you_mean;
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

/// One `[[runs]]` entry: a name and the fields it sets, as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSpec {
    /// Unique within the experiment.
    pub name: String,
    /// `section -> field -> value` (`task.distance = 12` is `{task: {distance: 12}}`);
    /// a field's value (a whole attention pattern, say) replaces the base's.
    overrides: Table,
}

impl RunSpec {
    /// A run that sets nothing of its own.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            overrides: Table::new(),
        }
    }

    /// The fields this run sets itself, as dotted paths (`task.distance`), sorted.
    pub fn overridden_fields(&self) -> Vec<String> {
        let mut fields = Vec::new();
        for (section, value) in &self.overrides {
            match value {
                Value::Table(t) => fields.extend(t.keys().map(|k| format!("{section}.{k}"))),
                _ => fields.push(section.clone()),
            }
        }
        fields
    }

    /// Whether this run sets nothing of its own.
    pub fn has_overrides(&self) -> bool {
        !self.overrides.is_empty()
    }

    /// Sets `field` (dotted, `task.distance`) as one of the run's own.
    pub fn set(&mut self, field: &str, value: Value) {
        let (section, key) = field.split_once('.').unwrap_or((field, ""));
        if key.is_empty() {
            self.overrides.insert(section.to_string(), value);
            return;
        }
        let entry = self
            .overrides
            .entry(section.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(t) = entry {
            t.insert(key.to_string(), value);
        }
    }

    /// Stops setting `field` (dotted, `task.distance`): the run inherits the base's.
    pub fn clear_override(&mut self, field: &str) {
        let (section, key) = field.split_once('.').unwrap_or((field, ""));
        if key.is_empty() {
            self.overrides.remove(section);
            return;
        }
        if let Some(Value::Table(t)) = self.overrides.get_mut(section) {
            t.remove(key);
            if t.is_empty() {
                self.overrides.remove(section);
            }
        }
    }

    /// This run's settings: the base with the run's fields merged over it (the one
    /// merge every caller goes through).
    pub fn resolve(&self, base: &Settings) -> Result<Settings, ResolveError> {
        let mut merged = Value::try_from(base).map_err(|e| ResolveError {
            path: String::new(),
            message: e.to_string(),
        })?;
        if let Value::Table(sections) = &mut merged {
            for (section, value) in &self.overrides {
                match (sections.get_mut(section), value) {
                    (Some(Value::Table(fields)), Value::Table(over)) => {
                        for (k, v) in over {
                            fields.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        sections.insert(section.clone(), value.clone());
                    }
                }
            }
        }
        serde_path_to_error::deserialize(merged).map_err(|e| ResolveError {
            path: path_string(e.path()),
            message: did_you_mean(e.inner().message().trim()),
        })
    }

    /// Makes the run's settings equal `new`, given that they are `old` now: each
    /// field that differs becomes (or stays) one of the run's own. A list `new` leaves
    /// out because it is empty is set to `[]`.
    pub fn record_changes(&mut self, old: &Settings, new: &Settings) {
        let (Ok(Value::Table(old)), Ok(Value::Table(new))) =
            (Value::try_from(old), Value::try_from(new))
        else {
            return;
        };
        let empty = Table::new();
        for (section, new_fields) in &new {
            let Value::Table(new_fields) = new_fields else {
                continue;
            };
            let old_fields = match old.get(section) {
                Some(Value::Table(t)) => t,
                _ => &empty,
            };
            let keys: std::collections::BTreeSet<&String> =
                old_fields.keys().chain(new_fields.keys()).collect();
            for key in keys {
                let (before, after) = (old_fields.get(key), new_fields.get(key));
                if before == after {
                    continue;
                }
                match after {
                    Some(v) => {
                        let entry = self
                            .overrides
                            .entry(section.clone())
                            .or_insert_with(|| Value::Table(Table::new()));
                        if let Value::Table(t) = entry {
                            t.insert(key.clone(), v.clone());
                        }
                    }
                    // A field left out when empty (the per-layer patterns): the run
                    // sets it to empty, so a base that has it does not leak through.
                    None => {
                        if let Some(Value::Array(_)) = before {
                            let entry = self
                                .overrides
                                .entry(section.clone())
                                .or_insert_with(|| Value::Table(Table::new()));
                            if let Value::Table(t) = entry {
                                t.insert(key.clone(), Value::Array(Vec::new()));
                            }
                        } else {
                            self.clear_override(&format!("{section}.{key}"));
                        }
                    }
                }
            }
        }
    }
}

/// `settings` with a point's values set.
pub fn apply_point(
    settings: &Settings,
    point: &[(String, Value)],
) -> Result<Settings, ResolveError> {
    let mut spec = RunSpec::new("sweep");
    for (field, value) in point {
        spec.set(field, value.clone());
    }
    spec.resolve(settings)
}

/// A run's fields do not fit the settings (wrong type, unknown field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ResolveError {
    /// Dotted path of the field, relative to the run (`model.heads`); empty if unknown.
    pub path: String,
    /// What is wrong.
    pub message: String,
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
            match run_spec(index, table, line) {
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
            self.runs
                .iter()
                .map(|run| {
                    let mut table = Table::new();
                    table.insert("name".into(), Value::String(run.name.clone()));
                    table.extend(run.overrides.clone());
                    table
                })
                .collect()
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
                .overrides
                .get("task")
                .and_then(|t| t.get("file"))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            if let Some(file) = written.as_deref().and_then(resolve) {
                run.set("task.file", Value::String(file));
            }
        }
    }
}

/// The text of an experiment file, read defensively (see [`Experiment::load`]).
pub(super) fn read_experiment_text(path: &std::path::Path) -> Result<String, ConfigErrors> {
    const MAX_BYTES: u64 = 1 << 20;
    let shown = path.display().to_string();
    let fail = |message: String| ConfigErrors::from(ConfigError::new("", message)).in_file(&shown);
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    if meta.is_dir() {
        return Err(fail("is a folder, not an experiment file".into()));
    }
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (a device, FIFO or socket)".into(),
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(fail(format!(
            "is {} bytes; experiment files are text of at most {MAX_BYTES} bytes",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let mut error = ConfigError::new("", "is not UTF-8 text");
        error.line = Some(line);
        ConfigErrors::from(error).in_file(&shown)
    })
}

/// The 1-based line where `field` (a dotted error path such as `model.heads` or
/// `runs[1].model.attention.window`) is written in `text`, if it is: the line of the
/// longest written prefix of the path within its table or run.
pub fn locate_field(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| l.trim_start().starts_with('[');
    let key_of = |l: &str| -> Option<String> {
        let (key, _) = l.split_once('=')?;
        Some(key.trim().replace(['"', ' '], ""))
    };
    let path: Vec<String> = field
        .split('.')
        .map(|seg| seg.split('[').next().unwrap_or(seg).to_string())
        .collect();
    // The block of lines to search, and the path inside it.
    let (range, inner): (std::ops::Range<usize>, &[String]) = if let Some(index) = field
        .strip_prefix("runs[")
        .and_then(|r| r.split(']').next())
    {
        let index: usize = index.parse().ok()?;
        let start = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("[[runs]]"))
            .nth(index)
            .map(|(i, _)| i)?;
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with("[[runs]]"))
            .map_or(lines.len(), |p| start + 1 + p);
        (start..end, &path[1..])
    } else if path.len() > 1 {
        let name = format!("[{}]", path[0]);
        let start = lines.iter().position(|l| l.trim() == name)?;
        let end = lines[start + 1..]
            .iter()
            .position(|l| header(l))
            .map_or(lines.len(), |p| start + 1 + p);
        (start..end, &path[1..])
    } else {
        let end = lines.iter().position(|l| header(l)).unwrap_or(lines.len());
        (0..end, &path[..])
    };
    for len in (1..=inner.len()).rev() {
        let want = inner[..len].join(".");
        if let Some(i) = range
            .clone()
            .find(|&i| !header(lines[i]) && key_of(lines[i]).as_deref() == Some(want.as_str()))
        {
            return Some(i + 1);
        }
    }
    (range.start < lines.len() && header(lines[range.start])).then_some(range.start + 1)
}

/// Deserialises with the dotted path of the failing field and the line it is on.
fn parse_with_path(text: &str) -> Result<FileRepr, ConfigErrors> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| toml_error(text, "", &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = path_string(e.path());
        toml_error(text, &path, e.inner()).into()
    })
}

fn toml_error(text: &str, field: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError {
        file: None,
        line: e.span().map(|span| line_of(text, span.start)),
        field: field.to_string(),
        message: did_you_mean(e.message().trim()),
    }
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// A `[[runs]]` table as written: its name and the fields it sets.
fn run_spec(index: usize, mut table: Table, line: Option<usize>) -> Result<RunSpec, ConfigError> {
    let at = |message: String| ConfigError {
        file: None,
        line,
        field: format!("runs[{index}].name"),
        message,
    };
    let name = match table.remove("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name,
        Some(other) => return Err(at(format!("must be a non-empty string, found {other}"))),
        None => return Err(at("every run needs a `name`".into())),
    };
    Ok(RunSpec {
        name,
        overrides: table,
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

/// The 1-based line of every `[[runs]]` header, in order.
fn runs_header_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[runs]]"))
        .map(|(i, _)| i + 1)
        .collect()
}

#[cfg(test)]
mod locate_tests {
    use super::locate_field;

    #[test]
    fn fields_are_found_in_their_table_or_run() {
        let text = "name = \"x\"\n[task]\nseq_len = 64\n[model]\nheads = 3\nattention = { kind = \"local\", window = 0 }\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\nmodel.heads = 5\n";
        assert_eq!(locate_field(text, "name"), Some(1));
        assert_eq!(locate_field(text, "task.seq_len"), Some(3));
        assert_eq!(locate_field(text, "model.heads"), Some(5));
        assert_eq!(locate_field(text, "model.attention.window"), Some(6));
        assert_eq!(locate_field(text, "runs[1].model.heads"), Some(11));
        assert_eq!(locate_field(text, "runs[1].name"), Some(10));
        assert_eq!(locate_field(text, "train.lr"), None);
    }
}
