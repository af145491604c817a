//! Reading and writing experiment files: base settings plus per-run overrides.

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::suggest::did_you_mean;
use super::{ConfigError, ConfigErrors, Settings};

/// One experiment: a base configuration and the runs that vary it.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    /// Shown in the GUI and used in run ids.
    pub name: String,
    /// Free text: what the experiment shows.
    pub description: String,
    /// The `[task]`, `[model]` and `[train]` tables every run starts from.
    pub base: Settings,
    /// The resolved runs (base merged with each run's overrides), in file order.
    pub runs: Vec<Run>,
}

/// One run of an experiment, with its overrides already applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Unique within the experiment.
    pub name: String,
    /// The full settings of this run.
    pub settings: Settings,
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    runs: Vec<Table>,
}

impl Experiment {
    /// An experiment with one run of `settings`.
    pub fn single(name: &str, settings: Settings) -> Self {
        Self {
            name: name.to_string(),
            description: String::new(),
            base: settings.clone(),
            runs: vec![Run {
                name: name.to_string(),
                settings,
            }],
        }
    }

    /// Parses an experiment file and applies each run's overrides. Syntax and type
    /// errors carry the line; value checks happen later in [`Experiment::plan`].
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
        let base_value = Value::try_from(&base).map_err(|e| ConfigError::new("", e.to_string()))?;
        let mut runs = Vec::new();
        let mut errors = Vec::new();
        for (index, table) in file.runs.iter().enumerate() {
            match resolve_run(index, table, &base_value, text) {
                Ok(run) => runs.push(run),
                Err(e) => errors.push(e),
            }
        }
        if file.runs.is_empty() {
            runs.push(Run {
                name: file.name.clone(),
                settings: base.clone(),
            });
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            name: file.name,
            description: file.description,
            base,
            runs,
        })
    }

    /// Writes the experiment back as TOML: the base tables, then each run with only
    /// the fields that differ from the base. `from_toml(to_toml(e)) == e`.
    pub fn to_toml(&self) -> String {
        let implicit = self.runs.len() == 1
            && self.runs[0].name == self.name
            && self.runs[0].settings == self.base;
        let base_value = Value::try_from(&self.base).unwrap_or(Value::Table(Table::new()));
        let runs = if implicit {
            Vec::new()
        } else {
            self.runs
                .iter()
                .map(|run| {
                    let mut table = Table::new();
                    table.insert("name".into(), Value::String(run.name.clone()));
                    let value =
                        Value::try_from(&run.settings).unwrap_or(Value::Table(Table::new()));
                    if let (Value::Table(over), Value::Table(base)) = (value, &base_value) {
                        for (section, fields) in over {
                            if let (Value::Table(fields), Some(Value::Table(base_fields))) =
                                (fields, base.get(&section))
                            {
                                let changed: Table = fields
                                    .into_iter()
                                    .filter(|(k, v)| base_fields.get(k) != Some(v))
                                    .collect();
                                if !changed.is_empty() {
                                    table.insert(section, Value::Table(changed));
                                }
                            }
                        }
                    }
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
            runs,
        };
        toml::to_string_pretty(&file).unwrap_or_default()
    }

    /// Reads and parses a file; errors carry its path.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigErrors> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::from(ConfigError::new("", format!("cannot read the file: {e}")))
                .in_file(&shown)
        })?;
        Self::from_toml(&text).map_err(|e| e.in_file(&shown))
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

/// Merges one `[[runs]]` table onto the base: sections merge field by field, a
/// field's value (a whole attention pattern, say) replaces the base's.
fn resolve_run(index: usize, table: &Table, base: &Value, text: &str) -> Result<Run, ConfigError> {
    let line = nth_runs_header_line(text, index);
    let at = |field: String, message: String| ConfigError {
        file: None,
        line,
        field,
        message,
    };
    let name = match table.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(other) => {
            return Err(at(
                format!("runs[{index}].name"),
                format!("must be a non-empty string, found {other}"),
            ));
        }
        None => {
            return Err(at(
                format!("runs[{index}].name"),
                "every run needs a `name`".into(),
            ));
        }
    };
    let mut merged = base.clone();
    if let Value::Table(merged_sections) = &mut merged {
        for (section, value) in table.iter().filter(|(k, _)| k.as_str() != "name") {
            match (merged_sections.get_mut(section), value) {
                (Some(Value::Table(fields)), Value::Table(over)) => {
                    for (k, v) in over {
                        fields.insert(k.clone(), v.clone());
                    }
                }
                _ => {
                    merged_sections.insert(section.clone(), value.clone());
                }
            }
        }
    }
    let settings: Settings = serde_path_to_error::deserialize(merged).map_err(|e| {
        let path = path_string(e.path());
        let field = if path.is_empty() {
            format!("runs[{index}]")
        } else {
            format!("runs[{index}].{path}")
        };
        at(
            field,
            format!(
                "{} (in run \"{name}\")",
                did_you_mean(e.inner().message().trim())
            ),
        )
    })?;
    Ok(Run { name, settings })
}

fn nth_runs_header_line(text: &str, index: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[runs]]"))
        .nth(index)
        .map(|(i, _)| i + 1)
}
