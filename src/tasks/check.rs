//! The rules between a task's fields ([`TaskConfig::check`]): a distance inside the
//! sequence, enough vocabulary for the task, room for the pairs. Each kind has its own
//! rules, checked in the order written here; the first broken one is the error.

use super::text;
use super::{MAX_MARKOV_STATES, TaskConfig, TaskError, TaskKind};

/// The refusal of `field` at `value`, saying what is allowed.
fn refuse(field: &'static str, value: usize, reason: String) -> Result<(), TaskError> {
    Err(TaskError {
        field,
        value: value.to_string(),
        reason,
    })
}

impl TaskConfig {
    /// Checks the rules between fields (a distance inside the sequence, enough
    /// vocabulary for the task); the error names the field, its value and what is
    /// allowed. Each field's own bounds (`seq_len` 2 to 8192, ...) are declared once in
    /// the configuration's field registry, which checks them first.
    pub fn check(&self) -> Result<(), TaskError> {
        match self.kind {
            TaskKind::Recall => self.check_recall(),
            TaskKind::Induction => self.check_induction(),
            TaskKind::Mqar => self.check_mqar(),
            TaskKind::ZoologyMqar => self.check_zoology_mqar(),
            TaskKind::Markov => self.check_markov(),
            TaskKind::Text => self.check_text(),
            TaskKind::SelectiveCopy => self.check_selective_copy(),
        }
    }

    /// Recall: the answer `distance` back lies inside the sequence.
    fn check_recall(&self) -> Result<(), TaskError> {
        if self.distance == 0 || self.distance >= self.seq_len {
            return refuse(
                "distance",
                self.distance,
                format!(
                    "must be between 1 and seq_len - 1 = {}",
                    self.seq_len.saturating_sub(1)
                ),
            );
        }
        Ok(())
    }

    /// Induction: a trigger and two values in the vocabulary, and the trigger-value
    /// pair `distance` before the end, inside the sequence.
    fn check_induction(&self) -> Result<(), TaskError> {
        if self.vocab < 3 {
            return refuse(
                "vocab",
                self.vocab,
                "must be at least 3 (a trigger token and two values)".into(),
            );
        }
        if self.distance == 0 || self.distance + 2 > self.seq_len {
            return refuse(
                "distance",
                self.distance,
                format!(
                    "must be between 1 and seq_len - 2 = {}",
                    self.seq_len.saturating_sub(2)
                ),
            );
        }
        Ok(())
    }

    /// MQAR: filler, keys and values in the vocabulary, distinct keys for the pairs,
    /// and room for the pairs and one query per key.
    fn check_mqar(&self) -> Result<(), TaskError> {
        if self.vocab < 5 {
            return refuse(
                "vocab",
                self.vocab,
                "must be at least 5 (filler, keys, values)".into(),
            );
        }
        let keys = (self.vocab - 1) / 2;
        if self.pairs == 0 || self.pairs > keys {
            return refuse(
                "pairs",
                self.pairs,
                format!(
                    "must be between 1 and {keys} (half the non-filler vocabulary, as keys must differ)"
                ),
            );
        }
        if 3 * self.pairs > self.seq_len {
            return refuse(
                "pairs",
                self.pairs,
                format!(
                    "must be at most seq_len / 3 = {} (pairs, then one query per key)",
                    self.seq_len / 3
                ),
            );
        }
        Ok(())
    }

    /// Zoology's MQAR: keys and values from their halves of the vocabulary, an even
    /// length for its query offsets, distinct keys and values for the pairs, and room
    /// for the pairs and their query gaps.
    fn check_zoology_mqar(&self) -> Result<(), TaskError> {
        if self.vocab < 4 {
            return refuse(
                "vocab",
                self.vocab,
                "must be at least 4 (0, keys from 1 to vocab / 2 - 1, values from vocab / 2)"
                    .into(),
            );
        }
        if !self.seq_len.is_multiple_of(2) {
            return refuse(
                "seq_len",
                self.seq_len,
                "must be even (Zoology's MQAR places its queries at even offsets after the pairs)"
                    .into(),
            );
        }
        // Keys from 1..vocab/2 and values from vocab/2..vocab, each distinct
        // within an example; the values' half is never the smaller one.
        let keys = self.vocab / 2 - 1;
        if self.pairs == 0 || self.pairs > keys {
            return refuse(
                "pairs",
                self.pairs,
                format!(
                    "must be between 1 and vocab / 2 - 1 = {keys} (distinct keys from 1 to vocab / 2 - 1, distinct values from vocab / 2)"
                ),
            );
        }
        if 4 * self.pairs > self.seq_len {
            return refuse(
                "pairs",
                self.pairs,
                format!(
                    "must be at most seq_len / 4 = {} (the pairs, then a query gap for each pair among (seq_len - 2 x pairs) / 2)",
                    self.seq_len / 4
                ),
            );
        }
        Ok(())
    }

    /// Markov: between 2 and [`MAX_MARKOV_STATES`] states.
    fn check_markov(&self) -> Result<(), TaskError> {
        if !(2..=MAX_MARKOV_STATES).contains(&self.vocab) {
            return refuse(
                "vocab",
                self.vocab,
                format!(
                    "must be between 2 and {MAX_MARKOV_STATES}: the number of states, and every sequence draws a fresh vocab x vocab transition matrix"
                ),
            );
        }
        Ok(())
    }

    /// Text: the file loads, the vocabulary holds its alphabet, and a sequence (and
    /// its next character) fits in the text's shorter part.
    fn check_text(&self) -> Result<(), TaskError> {
        let corpus = text::load(&self.file).map_err(|e| TaskError {
            field: "file",
            value: format!("{:?}", self.file),
            reason: e.to_string(),
        })?;
        if self.vocab < corpus.alphabet.len() {
            return refuse(
                "vocab",
                self.vocab,
                format!(
                    "must be at least {0}: the text has {0} distinct characters",
                    corpus.alphabet.len()
                ),
            );
        }
        if self.seq_len + 1 > corpus.shortest_part() {
            return refuse(
                "seq_len",
                self.seq_len,
                format!(
                    "must be below {}: the text's evaluation part (its last 10%) is that long",
                    corpus.shortest_part()
                ),
            );
        }
        Ok(())
    }

    /// Selective copy: filler, marker and content in the vocabulary, and room for the
    /// content tokens and as many answer positions.
    fn check_selective_copy(&self) -> Result<(), TaskError> {
        if self.vocab < 3 {
            return refuse(
                "vocab",
                self.vocab,
                "must be at least 3 (filler, marker, content)".into(),
            );
        }
        if self.tokens == 0 || 2 * self.tokens > self.seq_len {
            return refuse(
                "tokens",
                self.tokens,
                format!("must be between 1 and seq_len / 2 = {}", self.seq_len / 2),
            );
        }
        Ok(())
    }
}
