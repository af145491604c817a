//! Errors in experiment files: each names where, what and what would be valid.

use std::fmt;

/// One problem in an experiment file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, when the experiment came from one.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending field, e.g. `runs[1].model.attention.window`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// An error about `field` with no position.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
        } else if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in one experiment (validation reports them all at once).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Sets the file name on every error.
    pub fn in_file(mut self, file: &str) -> Self {
        for e in &mut self.0 {
            e.file = Some(file.to_string());
        }
        self
    }

    /// The error for a given field path, if any.
    pub fn for_field(&self, field: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.field == field)
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// The most problems a [`ConfigErrors`] prints (a hostile file may hold thousands);
/// the rest are counted.
pub const MAX_SHOWN_ERRORS: usize = 50;

/// The most characters of one problem's message that are printed.
pub const MAX_MESSAGE_CHARS: usize = 2_000;

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(MAX_SHOWN_ERRORS).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let text = e.to_string();
            match text.char_indices().nth(MAX_MESSAGE_CHARS) {
                Some((cut, _)) => write!(f, "{}... (cut)", &text[..cut])?,
                None => write!(f, "{text}")?,
            }
        }
        if self.0.len() > MAX_SHOWN_ERRORS {
            write!(
                f,
                "\n... and {} more problems",
                self.0.len() - MAX_SHOWN_ERRORS
            )?;
        }
        Ok(())
    }
}
