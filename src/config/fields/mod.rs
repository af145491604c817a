//! The field registry: every configuration field declared once.
//!
//! One [`Field`] per field of [`Settings`]: its TOML path, how it is read and
//! written, its bounds and the reason for them, its label, hover help and unit,
//! whether a `[sweep]` may vary it and whether a `--set` on a resumed or forked run may
//! change it mid-run. Validation ([`super::check_settings`]), the window's editor, the
//! sweep's and `--set`'s path parsing with "did you mean", the memory budget's advice
//! and the field table in docs/experiments.md all read this table, the way one clap derive drives
//! parsing, help and errors. A new field is one entry here plus the code that uses it.
//!
//! What the table cannot say, rules between fields (a head count that divides
//! `d_model`, a distance shorter than the sequence, a pattern's parameters), stays in
//! code next to the type it concerns ([`crate::tasks::TaskConfig::check`],
//! [`crate::attention::AttentionPattern::check`], [`super::check_settings`]).

mod table;

pub use table::*;

use super::Settings;

/// Which table of the experiment file a field lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// `[task]`
    Task,
    /// `[model]`
    Model,
    /// `[train]`
    Train,
}

impl Section {
    /// Every section, in file order.
    pub const ALL: [Section; 3] = [Section::Task, Section::Model, Section::Train];

    /// The table's name (`task`).
    pub fn name(self) -> &'static str {
        match self {
            Section::Task => "task",
            Section::Model => "model",
            Section::Train => "train",
        }
    }
}

/// How a field's value is read and written, with its bounds.
#[derive(Clone, Copy)]
pub enum Access {
    /// A whole number in `min..=max`.
    Int {
        /// Reads the value.
        get: fn(&Settings) -> u64,
        /// Writes the value.
        set: fn(&mut Settings, u64),
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A finite number above (`open_min`) or from `min`, up to `max`.
    Float {
        /// Reads the value.
        get: fn(&Settings) -> f64,
        /// Writes the value.
        set: fn(&mut Settings, f64),
        /// Lower bound.
        min: f64,
        /// Whether `min` itself is excluded.
        open_min: bool,
        /// Largest allowed.
        max: f64,
    },
    /// On or off.
    Bool {
        /// Reads the value.
        get: fn(&Settings) -> bool,
        /// Writes the value.
        set: fn(&mut Settings, bool),
    },
    /// One of a few names.
    Choice {
        /// The names, in the order the docs and the editor list them.
        names: fn() -> Vec<&'static str>,
        /// Reads the value's name.
        get: fn(&Settings) -> &'static str,
        /// Writes the value by name (an unknown name changes nothing).
        set: fn(&mut Settings, &str),
    },
    /// A structured value (attention patterns, the backend, seeds, a file name): typed
    /// by serde, checked by its own type, edited by its own widget.
    Structured,
}

/// One configuration field.
pub struct Field {
    /// Dotted TOML path, `task.seq_len`.
    pub path: &'static str,
    /// The editor's label.
    pub label: &'static str,
    /// What it does: the editor's hover text and the description in docs/experiments.md.
    pub help: &'static str,
    /// The unit, if the value has one (`tokens`, `steps`).
    pub unit: &'static str,
    /// Read, write, bounds.
    pub access: Access,
    /// Why the bounds are what they are (empty: self-evident).
    pub bounds_why: &'static str,
    /// Whether a `[sweep]` may vary it.
    pub sweep: bool,
    /// Whether a resumed or forked run may change it mid-run (nothing the model's
    /// shapes or the data depend on).
    pub fork: bool,
    /// Whether the field means anything for these settings (a task's own fields, the
    /// transformer's); fields that do not apply are neither checked nor shown.
    pub applies: fn(&Settings) -> bool,
}

impl Field {
    /// The table this field lives in.
    pub fn section(&self) -> Section {
        match self.path.split_once('.').map(|(s, _)| s) {
            Some("task") => Section::Task,
            Some("model") => Section::Model,
            _ => Section::Train,
        }
    }

    /// The key within its table (`seq_len`).
    pub fn key(&self) -> &'static str {
        self.path.split_once('.').map_or(self.path, |(_, k)| k)
    }

    /// The lowest and highest value of an integer field, as `usize` (the whole
    /// range for other kinds).
    pub fn usize_range(&self) -> (usize, usize) {
        let wide = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        match self.access {
            Access::Int { min, max, .. } => (wide(min), wide(max)),
            _ => (0, usize::MAX),
        }
    }

    /// What values are allowed, in words (`2 to 8192`), empty for structured fields.
    pub fn allowed(&self) -> String {
        match self.access {
            Access::Int { min, max, .. } => match (min > 0, max < u64::MAX) {
                (true, true) => format!("{min} to {max}"),
                (true, false) => format!("at least {min}"),
                (false, true) => format!("0 to {max}"),
                (false, false) => String::new(),
            },
            Access::Float {
                min, open_min, max, ..
            } => {
                let above = if open_min { "above" } else { "from" };
                format!("{above} {min} to {max}")
            }
            Access::Bool { .. } => "true or false".into(),
            Access::Choice { names, .. } => names().join(", "),
            Access::Structured => String::new(),
        }
    }

    /// What is wrong with this field's value in `s` by its own bounds, if anything:
    /// `9000 is not allowed: must be at most 8192 (why)`.
    pub fn check(&self, s: &Settings) -> Option<String> {
        let rule = match self.access {
            Access::Int { get, min, max, .. } => {
                let v = get(s);
                if (min..=max).contains(&v) {
                    return None;
                }
                let rule = match (min > 0, max < u64::MAX) {
                    (true, true) => format!("must be between {min} and {max}"),
                    (true, false) => format!("must be at least {min}"),
                    _ => format!("must be at most {max}"),
                };
                (v.to_string(), rule)
            }
            Access::Float {
                get,
                min,
                open_min,
                max,
                ..
            } => {
                let v = get(s);
                let low_ok = if open_min { v > min } else { v >= min };
                if v.is_finite() && low_ok && v <= max {
                    return None;
                }
                let above = if open_min { "above" } else { "at least" };
                (
                    v.to_string(),
                    format!("must be a number {above} {min} and at most {max}"),
                )
            }
            Access::Bool { .. } | Access::Choice { .. } | Access::Structured => return None,
        };
        let (value, rule) = rule;
        Some(if self.bounds_why.is_empty() {
            format!("{value} is not allowed: {rule}")
        } else {
            format!("{value} is not allowed: {rule} ({})", self.bounds_why)
        })
    }

    /// The value in `s` as docs/experiments.md and the editor show it (`128`, `1e-3`, `recall`);
    /// `None` for structured fields.
    pub fn value_text(&self, s: &Settings) -> Option<String> {
        Some(match self.access {
            Access::Int { get, .. } => get(s).to_string(),
            Access::Float { get, .. } => get(s).to_string(),
            Access::Bool { get, .. } => get(s).to_string(),
            Access::Choice { get, .. } => get(s).to_string(),
            Access::Structured => return None,
        })
    }
}

impl Field {
    /// The value in `s` as TOML writes it; `None` for structured fields.
    pub fn toml_value(&self, s: &Settings) -> Option<toml::Value> {
        Some(match self.access {
            Access::Int { get, .. } => toml::Value::Integer(i64::try_from(get(s)).ok()?),
            Access::Float { get, .. } => toml::Value::Float(get(s)),
            Access::Bool { get, .. } => toml::Value::Boolean(get(s)),
            Access::Choice { get, .. } => toml::Value::String(get(s).to_string()),
            Access::Structured => return None,
        })
    }
}

/// The fields of one section, in file order.
pub fn in_section(section: Section) -> impl Iterator<Item = &'static Field> {
    FIELDS
        .iter()
        .copied()
        .filter(move |f| f.section() == section)
}

/// Why a `--set` or a sweep names no field, or gives no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    /// No field has that path; the nearest known one when one is close.
    #[error("{}", unknown_text(.path, .near.as_deref()))]
    Unknown {
        /// The path as written.
        path: String,
        /// The closest known path (`task.seqlen`: `task.seq_len`).
        near: Option<&'static str>,
    },
    /// Not `FIELD=VALUE`.
    #[error(
        "{0:?} is not FIELD=VALUE (e.g. train.lr=3e-4 or model.attention='{{ kind = \"local\", window = 8 }}')"
    )]
    NotASetting(String),
}

fn unknown_text(path: &str, near: Option<&str>) -> String {
    match near {
        Some(near) => format!("`{path}` is not a field (did you mean `{near}`?)"),
        None => {
            format!("`{path}` is not a field: write section.field, e.g. task.distance or train.lr")
        }
    }
}

/// The field at a dotted path (`task.seq_len`), or why there is none, with the
/// closest known path when one is near (`task.seqlen`: did you mean `task.seq_len`?).
pub fn lookup(path: &str) -> Result<&'static Field, FieldPathError> {
    if let Some(f) = FIELDS.iter().find(|f| f.path == path) {
        return Ok(f);
    }
    let best = FIELDS
        .iter()
        .map(|f| (strsim::normalized_damerau_levenshtein(path, f.path), f.path))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Err(FieldPathError::Unknown {
        path: path.to_string(),
        near: best.map(|(_, near)| near),
    })
}

/// The table of every field in docs/experiments.md: path, default, allowed values,
/// whether a sweep and a mid-run `--set` may change it, and what it does.
/// `tests/config.rs` checks docs/experiments.md holds exactly this.
pub fn markdown_table() -> String {
    let defaults = Settings::default();
    let default_toml = toml::Value::try_from(&defaults).ok();
    let mut out = String::from(
        "| field | default | allowed | sweep | mid-run | what it does |\n|---|---|---|---|---|---|\n",
    );
    for f in FIELDS {
        let default = f
            .value_text(&defaults)
            .or_else(|| {
                let (section, key) = f.path.split_once('.')?;
                let value = default_toml.as_ref()?.get(section)?.get(key)?;
                Some(value.to_string())
            })
            .unwrap_or_else(|| "(none)".into());
        let unit = if f.unit.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.unit)
        };
        let yes = |b: bool| if b { "yes" } else { "" };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} | {}{} |\n",
            f.path,
            default,
            f.allowed().replace('|', "\\|"),
            yes(f.sweep),
            yes(f.fork),
            f.help.replace('|', "\\|"),
            unit
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_name_their_section() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert!(
                FIELDS[..i].iter().all(|g| g.path != f.path),
                "{} twice",
                f.path
            );
            assert_eq!(format!("{}.{}", f.section().name(), f.key()), f.path);
        }
    }

    #[test]
    fn bounds_messages_name_the_rule() {
        let mut s = Settings::default();
        s.task.seq_len = 9000;
        assert_eq!(
            SEQ_LEN.check(&s).as_deref(),
            Some("9000 is not allowed: must be between 2 and 8192")
        );
        s.train.steps = 0;
        assert_eq!(
            STEPS.check(&s).as_deref(),
            Some("0 is not allowed: must be between 1 and 100000000")
        );
        s.train.lr = 0.0;
        assert!(LR.check(&s).is_some_and(|m| m.contains("above 0")));
        assert!(DISTANCE.check(&Settings::default()).is_none());
    }

    #[test]
    fn lookup_suggests_the_nearest_path() {
        assert_eq!(lookup("task.seq_len").map(|f| f.path), Ok("task.seq_len"));
        let e = lookup("task.seqlen")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("did you mean `task.seq_len`"), "{e}");
        assert!(lookup("zzz.qqq").is_err());
    }
}
