//! One `[[runs]]` entry ([`RunSpec`]): the fields a run sets itself, and the one
//! merge of those fields over the base settings.

use toml::{Table, Value};

use super::source::path_string;
use super::suggest::did_you_mean;
use super::{ConfigError, Settings};

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

    /// A `[[runs]]` table as written (the `index`th, its header on `line`): its name
    /// and the fields it sets.
    pub(super) fn from_table(
        index: usize,
        mut table: Table,
        line: Option<usize>,
    ) -> Result<Self, ConfigError> {
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
        Ok(Self {
            name,
            overrides: table,
        })
    }

    /// The run as a `[[runs]]` table: its name, then the fields it sets.
    pub(super) fn to_table(&self) -> Table {
        let mut table = Table::new();
        table.insert("name".into(), Value::String(self.name.clone()));
        table.extend(self.overrides.clone());
        table
    }

    /// The value this run sets for `field` (dotted, `task.file`), if it sets it.
    pub(super) fn own_value(&self, field: &str) -> Option<&Value> {
        let (section, key) = field.split_once('.').unwrap_or((field, ""));
        let value = self.overrides.get(section)?;
        if key.is_empty() {
            Some(value)
        } else {
            value.get(key)
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
        let settings = new;
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
                        } else if let Ok(field) = super::fields::lookup(&format!("{section}.{key}"))
                            && let Some(value) = field.toml_value(settings)
                        {
                            // A field left out at its default (model.dropout = 0): the
                            // run sets the default, so a base that differs does not leak
                            // through.
                            let entry = self
                                .overrides
                                .entry(section.clone())
                                .or_insert_with(|| Value::Table(Table::new()));
                            if let Value::Table(t) = entry {
                                t.insert(key.clone(), value);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that sets a field back to the default files leave out (`model.dropout =
    /// 0`) keeps it, though the base sets another value.
    #[test]
    fn a_run_setting_a_default_left_out_of_files_keeps_it() {
        let mut base = Settings::default();
        base.model.dropout = 0.1;
        base.task.power_a = 0.5;
        let mut run = RunSpec::new("r");
        let mut wanted = base.clone();
        wanted.model.dropout = 0.0;
        wanted.task.power_a = crate::tasks::DEFAULT_POWER_A;
        run.record_changes(&base, &wanted);
        let resolved = run.resolve(&base).expect("resolves");
        assert_eq!(resolved.model.dropout, 0.0);
        assert_eq!(resolved.task.power_a, crate::tasks::DEFAULT_POWER_A);
    }
}
