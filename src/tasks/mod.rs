//! Synthetic long-range tasks, generated on the fly from a seed.
//!
//! Every task produces sequences of `seq_len` tokens and, per position, either a
//! target token or [`IGNORE`]. Loss and accuracy count only the positions with a
//! target. Each task also names its *dependencies*: for a query position, the key
//! position the answer must come from, which the GUI marks on attention maps.

mod check;
mod data;
mod finite;
mod generate;
mod markov;
mod patching;
mod text;
mod zoology;

use serde::{Deserialize, Serialize};

pub use data::{Batch, Example};
pub use finite::FiniteSet;
pub use markov::{InContextBaselines, MAX_MARKOV_STATES};
pub use patching::{PatchPair, PatchRefusal};
pub use text::{Corpus, CorpusError, MAX_ALPHABET, SHIPPED_NAME, Split};

/// Target value for positions that carry no loss.
pub const IGNORE: i64 = -1;

/// Which synthetic task to train on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Every position `t >= distance` must output the token at `t - distance`.
    #[default]
    Recall,
    /// Multi-query associative recall: key-value pairs at the start, then each key
    /// again later; at a repeated key the model must output its value.
    Mqar,
    /// MQAR exactly as Zoology generates it (HazyResearch/zoology,
    /// `zoology/data/associative_recall.py`, `_mqar`): keys from the lower half of the
    /// vocabulary, values from the upper half, each key queried once after the pairs
    /// at a gap drawn from a power law (`power_a`), the other positions random
    /// (`random_fill`).
    ZoologyMqar,
    /// Content tokens scattered among filler; at the final marker positions the model
    /// must output them in order.
    SelectiveCopy,
    /// A trigger token followed by a value, `distance` positions before the end; at the
    /// last position the trigger appears again and the model must output the value.
    Induction,
    /// Real text: predict every next character of a UTF-8 file (`file`).
    Text,
    /// In-context Markov chains (Edelman et al. 2024): every sequence walks a fresh
    /// random transition matrix over `vocab` states; predict every next state.
    Markov,
}

impl TaskKind {
    /// Every kind, in the order the docs and the GUI list them.
    pub const ALL: [TaskKind; 7] = [
        TaskKind::Recall,
        TaskKind::Mqar,
        TaskKind::ZoologyMqar,
        TaskKind::SelectiveCopy,
        TaskKind::Induction,
        TaskKind::Text,
        TaskKind::Markov,
    ];

    /// The name as written in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Recall => "recall",
            TaskKind::Mqar => "mqar",
            TaskKind::ZoologyMqar => "zoology_mqar",
            TaskKind::SelectiveCopy => "selective_copy",
            TaskKind::Induction => "induction",
            TaskKind::Text => "text",
            TaskKind::Markov => "markov",
        }
    }

    /// For the next-token tasks (text, markov), what one token is (`"character"`,
    /// `"state"`): every position predicts the next token, so the model must be
    /// causal, and the loss (shown in bits per token) is the task's measure, accuracy
    /// a secondary one. `None` for the tasks scored at query positions.
    pub fn next_token_unit(self) -> Option<&'static str> {
        match self {
            TaskKind::Text => Some("character"),
            TaskKind::Markov => Some("state"),
            TaskKind::Recall
            | TaskKind::Mqar
            | TaskKind::ZoologyMqar
            | TaskKind::SelectiveCopy
            | TaskKind::Induction => None,
        }
    }

    /// Whether the task is measured by its loss rather than its accuracy (the
    /// next-token tasks, see [`TaskKind::next_token_unit`]).
    pub fn measured_by_loss(self) -> bool {
        self.next_token_unit().is_some()
    }

    /// The short unit of a next-token task's loss in bits, as tables and logs show it
    /// (`bits/char`, `bits/state`); `None` for the other tasks.
    pub fn bits_unit(self) -> Option<&'static str> {
        match self {
            TaskKind::Text => Some("bits/char"),
            TaskKind::Markov => Some("bits/state"),
            _ => None,
        }
    }
}

/// The `[task]` table of an experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// Which task.
    pub kind: TaskKind,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Number of distinct tokens (including any filler or marker tokens); for the
    /// Markov task, the number of states.
    pub vocab: usize,
    /// Recall and induction: how far back the answer lies.
    pub distance: usize,
    /// MQAR and Zoology's MQAR: key-value pairs per sequence.
    pub pairs: usize,
    /// Selective copy: content tokens to copy.
    pub tokens: usize,
    /// Text: the UTF-8 file, relative to the experiment file (or the shipped
    /// `text/fsf-licenses.txt`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file: String,
    /// Zoology's MQAR: the exponent of the query gaps' power law (gap `g` has weight
    /// `(g + 1)^(power_a - 1)`; 1 is uniform). Written only when not the default.
    #[serde(skip_serializing_if = "is_default_power_a")]
    pub power_a: f64,
    /// Zoology's MQAR: fill the positions after the pairs that hold no query with
    /// uniformly random tokens (Zoology's `random_non_queries`), else 0. Written only
    /// when false.
    #[serde(skip_serializing_if = "is_true")]
    pub random_fill: bool,
    /// Induction: put the pair at a uniformly random distance from 1 to `distance`
    /// (else at `distance`), so no position alone finds it. Written only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub vary_distance: bool,
}

/// Zoology's default `power_a` (`train_power_a` and `test_power_a`).
pub const DEFAULT_POWER_A: f64 = 0.01;

/// Whether `power_a` is the default (left out of written files).
fn is_default_power_a(v: &f64) -> bool {
    *v == DEFAULT_POWER_A
}

/// Whether a flag is at its default, true (left out of written files).
fn is_true(v: &bool) -> bool {
    *v
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            kind: TaskKind::Recall,
            seq_len: 128,
            vocab: 16,
            distance: 64,
            pairs: 8,
            tokens: 8,
            file: String::new(),
            power_a: DEFAULT_POWER_A,
            random_fill: true,
            vary_distance: false,
        }
    }
}

impl TaskConfig {
    /// Accuracy of guessing uniformly among the possible answers (defined for any
    /// vocabulary, even one [`TaskConfig::check`] rejects, so editors can show it).
    /// Reads no file: the text task's alphabet counts once [`TaskConfig::check`] has
    /// loaded its corpus.
    pub fn chance_accuracy(&self) -> f64 {
        let v = self.vocab;
        let answers = match self.kind {
            TaskKind::Recall => v,
            TaskKind::Induction => v.saturating_sub(1),
            TaskKind::Mqar => v.saturating_sub(1) - v.saturating_sub(1) / 2,
            TaskKind::ZoologyMqar => v - v / 2,
            TaskKind::Markov => v,
            TaskKind::SelectiveCopy => v.saturating_sub(2),
            // Never read here (editors call this every frame): the corpus counts once
            // validation has loaded it, the vocabulary until then.
            TaskKind::Text => text::loaded(&self.file).map_or(v, |c| c.alphabet.len()),
        };
        1.0 / answers.max(1) as f64
    }

    /// How a token reads in the window: the character for text, else its number.
    pub fn token_label(&self, token: i64) -> String {
        match self.kind {
            TaskKind::Text => {
                text::load(&self.file).map_or_else(|_| token.to_string(), |c| c.label(token))
            }
            _ => token.to_string(),
        }
    }
}

/// A task setting that is not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task.{field} = {value}: {reason}")]
pub struct TaskError {
    /// The field of `[task]`, e.g. `distance`.
    pub field: &'static str,
    /// Its value, as written.
    pub value: String,
    /// What is allowed.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn cfg(kind: TaskKind) -> TaskConfig {
        TaskConfig {
            kind,
            seq_len: 64,
            vocab: 16,
            distance: 20,
            pairs: 6,
            tokens: 5,
            file: SHIPPED_NAME.into(),
            ..TaskConfig::default()
        }
    }

    /// The tasks whose answers come from a dependency (not the next-token tasks).
    fn query_tasks() -> impl Iterator<Item = TaskKind> {
        TaskKind::ALL.into_iter().filter(|k| !k.measured_by_loss())
    }

    #[test]
    fn every_task_answers_from_its_dependencies() {
        let mut rng = StdRng::seed_from_u64(3);
        for kind in query_tasks() {
            let c = cfg(kind);
            c.check().unwrap();
            for _ in 0..20 {
                let ex = c.example(&mut rng);
                assert_eq!(ex.tokens.len(), 64);
                assert!(!ex.dependencies.is_empty(), "{kind:?}");
                for &(q, k) in &ex.dependencies {
                    assert_eq!(ex.targets[q], ex.tokens[k], "{kind:?} q={q} k={k}");
                }
                let with_target = ex.targets.iter().filter(|&&t| t != IGNORE).count();
                assert_eq!(with_target, ex.dependencies.len(), "{kind:?}");
                assert!(ex.tokens.iter().all(|&t| (0..16).contains(&t)));
            }
        }
    }

    #[test]
    fn a_batch_knows_each_answers_distance() {
        let mut rng = StdRng::seed_from_u64(5);
        for kind in query_tasks() {
            let c = cfg(kind);
            let b = c.batch(3, &mut rng);
            assert_eq!(b.distances.len(), b.targets.len());
            for (t, d) in b.targets.iter().zip(&b.distances) {
                assert_eq!(*t != IGNORE, *d > 0, "{kind:?}");
            }
            if matches!(kind, TaskKind::Recall | TaskKind::Induction) {
                assert!(b.distances.iter().all(|&d| d == 0 || d == 20), "{kind:?}");
            }
        }
    }

    #[test]
    fn recall_dependencies_are_at_distance() {
        let c = cfg(TaskKind::Recall);
        let ex = c.probe(1);
        assert!(ex.dependencies.iter().all(|&(q, k)| q - k == 20));
        assert_eq!(ex.dependencies.len(), 64 - 20);
    }

    #[test]
    fn same_seed_same_data() {
        let c = cfg(TaskKind::Mqar);
        assert_eq!(c.probe(7), c.probe(7));
        assert_ne!(c.probe(7), c.probe(8));
    }

    #[test]
    fn text_predicts_the_next_character_and_evaluates_on_held_out_text() {
        let mut c = cfg(TaskKind::Text);
        assert_eq!(c.check().unwrap_err().field, "vocab", "77 characters > 16");
        c.vocab = 77;
        c.check().expect("valid");
        let mut rng = StdRng::seed_from_u64(2);
        let b = c.eval_batch(2, &mut rng);
        assert!(b.targets.iter().all(|&t| (0..77).contains(&t)));
        assert_eq!(b.tokens[1..64], b.targets[..63]);
        assert!(c.probe(1).dependencies.is_empty());
        assert_eq!(c.token_label(0), "\\n");
        c.file = "missing.txt".into();
        let e = c.check().unwrap_err();
        assert_eq!((e.field, e.value.as_str()), ("file", "\"missing.txt\""));
    }

    #[test]
    fn bad_combinations_name_the_field() {
        let mut c = cfg(TaskKind::Recall);
        c.distance = 64;
        assert_eq!(c.check().unwrap_err().field, "distance");
        let mut c = cfg(TaskKind::Mqar);
        c.pairs = 9;
        assert_eq!(c.check().unwrap_err().field, "pairs");
    }
}
