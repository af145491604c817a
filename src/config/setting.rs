//! One `--set FIELD=VALUE` of the command line ([`FieldSetting`]): a registry field
//! and a value for it, applied to settings the way a run table in a file would set
//! it. Beside the registry rather than in it: applying goes through the run tables'
//! resolution (`run_spec`), which itself looks fields up in the registry.

use super::Settings;
use super::fields::{Field, FieldPathError, lookup};
use super::run_spec::{ResolveError, RunSpec};

/// One `--set FIELD=VALUE` of the command line: a registry field and a value for it.
#[derive(Clone)]
pub struct FieldSetting {
    /// The field.
    pub field: &'static Field,
    /// The value, as TOML (`8`, `1e-3`, `"dense"`, `{ kind = "local", window = 8 }`).
    pub value: toml::Value,
}

impl std::fmt::Debug for FieldSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.field.path, self.value)
    }
}

impl FieldSetting {
    /// Parses `task.distance=32`: the path must be a registry field (with "did you
    /// mean" when it is not), the value a TOML value or else a bare string
    /// (`train.backend=cpu`).
    pub fn parse(text: &str) -> Result<Self, FieldPathError> {
        let Some((path, value)) = text.split_once('=') else {
            return Err(FieldPathError::NotASetting(text.to_string()));
        };
        let field = lookup(path.trim())?;
        let value = value.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        Ok(Self { field, value })
    }

    /// `settings` with this value set, typed as the file would be (a wrong type or
    /// unknown name is an error saying so); bounds are checked when the plan is made.
    pub fn apply(&self, settings: &Settings) -> Result<Settings, ResolveError> {
        let mut spec = RunSpec::new("--set");
        spec.set(self.field.path, self.value.clone());
        spec.resolve(settings)
    }
}
