//! The `[reference]` table: a published result an experiment reproduces, and the
//! comparison of a finished run with it.
//!
//! ```toml
//! [reference]
//! source = "Arora et al. 2023 (Zoology), Figure 2: attention at sequence length 64"
//! follows = "HazyResearch/zoology: zoology/experiments/examples/basic.py"
//! metric = "accuracy"      # or "loss": the run's final held-out value is compared
//! rule = "at_least"        # at_least | at_most | within
//! tolerance = 0.05
//!
//! [reference.runs.attention]          # keyed by a [[runs]] name
//! published = 0.99                    # a number, or a level: chance, uniform, unigram, bigram
//! note = "near-perfect in the figure"
//! ```
//!
//! A run named in `runs` is compared when it finishes: reproduced when its value
//! meets the rule, not reproduced when it does not, and not comparable when it did not
//! finish, has no published figure, or names a level its task does not define. The
//! verdict never changes an exit code; `summary.json` records it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::tasks::InContextBaselines;

/// Which held-out value a reference compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceMetric {
    /// Final held-out accuracy.
    #[default]
    Accuracy,
    /// Final held-out loss (nats per answer).
    Loss,
}

impl ReferenceMetric {
    /// The name as written.
    pub fn name(self) -> &'static str {
        match self {
            ReferenceMetric::Accuracy => "accuracy",
            ReferenceMetric::Loss => "loss",
        }
    }
}

/// When ours counts as the published figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Ours is at least the published value minus the tolerance.
    #[default]
    AtLeast,
    /// Ours is at most the published value plus the tolerance.
    AtMost,
    /// Ours is within the tolerance of the published value.
    Within,
}

impl Rule {
    /// Whether `ours` meets the rule against `published`.
    pub fn holds(self, ours: f64, published: f64, tolerance: f64) -> bool {
        match self {
            Rule::AtLeast => ours >= published - tolerance,
            Rule::AtMost => ours <= published + tolerance,
            Rule::Within => (ours - published).abs() <= tolerance,
        }
    }

    /// The rule in words, e.g. `>= 0.99 - 0.05`.
    pub fn describe(self, published: &str, tolerance: f64) -> String {
        match self {
            Rule::AtLeast => format!(">= {published} - {tolerance}"),
            Rule::AtMost => format!("<= {published} + {tolerance}"),
            Rule::Within => format!("within {tolerance} of {published}"),
        }
    }
}

/// A published figure: a number, or a level the task computes (`chance` accuracy;
/// the in-context Markov task's `uniform`, `unigram` and `bigram` losses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Published {
    /// The number printed in the paper (read off its figure or table).
    Value(f64),
    /// A level computed for the task and the run's held-out examples.
    Level(String),
}

/// The levels [`Published::Level`] may name, with the metric each is a value of.
const LEVELS: [(&str, ReferenceMetric); 4] = [
    ("chance", ReferenceMetric::Accuracy),
    ("uniform", ReferenceMetric::Loss),
    ("unigram", ReferenceMetric::Loss),
    ("bigram", ReferenceMetric::Loss),
];

/// One run's published figure, with any rule of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedRun {
    /// The figure.
    pub published: Published,
    /// Overrides the table's metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<ReferenceMetric>,
    /// Overrides the table's rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// Overrides the table's tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Where the figure is read from, or how it was read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The `[reference]` table of an experiment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The paper and its figure or table.
    pub source: String,
    /// The repository and path of the configuration the experiment follows.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub follows: String,
    /// Which value is compared (default accuracy).
    #[serde(default)]
    pub metric: ReferenceMetric,
    /// When ours counts as the published figure (default `at_least`).
    #[serde(default)]
    pub rule: Rule,
    /// The slack the rule allows (default 0).
    #[serde(default)]
    pub tolerance: f64,
    /// Published figure per `[[runs]]` name; a run not named is not comparable.
    #[serde(default)]
    pub runs: BTreeMap<String, PublishedRun>,
}

/// The runs listed in a refusal: the nearest name, or the first few of many (a file
/// of 10,000 runs and as many wrong keys must not print every name per key).
fn some_runs(name: &str, run_names: &[&str]) -> String {
    const LISTED: usize = 8;
    // Bounded: a suggestion is looked for among a few short names only.
    let nearest = (run_names.len() <= LISTED * 8 && name.len() <= 64)
        .then(|| run_names.iter().filter(|r| r.len() <= 64))
        .into_iter()
        .flatten()
        .map(|r| (strsim::levenshtein(name, r), *r))
        .min()
        .filter(|(d, _)| *d <= 3);
    if let Some((_, r)) = nearest {
        return format!("did you mean \"{r}\"?");
    }
    let listed: Vec<&str> = run_names.iter().take(LISTED).copied().collect();
    let more = run_names.len().saturating_sub(LISTED);
    if more == 0 {
        format!("its runs: {}", listed.join(", "))
    } else {
        format!("its runs: {}, and {more} more", listed.join(", "))
    }
}

impl Reference {
    /// Checks the table against the experiment's run names: every named run exists,
    /// every level is known and fits its metric, tolerances are finite and >= 0.
    pub fn check(&self, run_names: &[&str]) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            errors.push(ConfigError::new(
                "reference.tolerance",
                format!("{} must be a number >= 0", self.tolerance),
            ));
        }
        for (name, run) in &self.runs {
            let field = |f: &str| format!("reference.runs.{name}.{f}");
            if !run_names.contains(&name.as_str()) {
                errors.push(ConfigError::new(
                    format!("reference.runs.{name}"),
                    format!(
                        "names no run of this experiment ({})",
                        some_runs(name, run_names)
                    ),
                ));
            }
            if let Some(t) = run.tolerance
                && !(t.is_finite() && t >= 0.0)
            {
                errors.push(ConfigError::new(
                    field("tolerance"),
                    format!("{t} must be a number >= 0"),
                ));
            }
            let metric = run.metric.unwrap_or(self.metric);
            match &run.published {
                Published::Value(v) if !v.is_finite() => errors.push(ConfigError::new(
                    field("published"),
                    format!("{v} is not a number"),
                )),
                Published::Value(_) => {}
                Published::Level(level) => match LEVELS.iter().find(|(l, _)| l == level) {
                    None => errors.push(ConfigError::new(
                        field("published"),
                        format!(
                            "\"{level}\" is neither a number nor a level: chance, uniform, unigram or bigram"
                        ),
                    )),
                    Some((_, m)) if *m != metric => errors.push(ConfigError::new(
                        field("published"),
                        format!(
                            "\"{level}\" is a level of {}, but the metric compared is {}",
                            m.name(),
                            metric.name()
                        ),
                    )),
                    Some(_) => {}
                },
            }
        }
        errors
    }

    /// Moves run `old`'s entry to each name of `new`: a renamed run (one name), a run
    /// expanded into sweep points and seeds (several), or a removed run (none).
    /// An entry of another run is never overwritten: then nothing moves, and
    /// validation reports the entry whose run is gone.
    pub fn rename_run(&mut self, old: &str, new: &[&str]) {
        if new.iter().any(|n| *n != old && self.runs.contains_key(*n)) {
            return;
        }
        if let Some(entry) = self.runs.remove(old) {
            for name in new {
                self.runs.insert(name.to_string(), entry.clone());
            }
        }
    }

    /// The reference as it applies to the run named `run` (`None` when not named).
    pub fn for_run(&self, run: &str) -> Option<RunReference> {
        let entry = self.runs.get(run)?;
        Some(RunReference {
            source: self.source.clone(),
            follows: self.follows.clone(),
            metric: entry.metric.unwrap_or(self.metric),
            rule: entry.rule.unwrap_or(self.rule),
            tolerance: entry.tolerance.unwrap_or(self.tolerance),
            published: entry.published.clone(),
            note: entry.note.clone(),
        })
    }

    /// A table with only `reference` for the run named `run` (what a run record's
    /// `config.toml` keeps).
    pub fn only(reference: &RunReference, run: &str) -> Self {
        let entry = PublishedRun {
            published: reference.published.clone(),
            metric: None,
            rule: None,
            tolerance: None,
            note: reference.note.clone(),
        };
        Self {
            source: reference.source.clone(),
            follows: reference.follows.clone(),
            metric: reference.metric,
            rule: reference.rule,
            tolerance: reference.tolerance,
            runs: BTreeMap::from([(run.to_string(), entry)]),
        }
    }
}

/// The reference of one run, resolved from the table and the run's entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReference {
    /// The paper and its figure or table.
    pub source: String,
    /// The configuration followed.
    pub follows: String,
    /// Which value is compared.
    pub metric: ReferenceMetric,
    /// When ours counts as the published figure.
    pub rule: Rule,
    /// The slack the rule allows.
    pub tolerance: f64,
    /// The figure.
    pub published: Published,
    /// Where the figure is read from.
    pub note: String,
}

impl RunReference {
    /// The published figure as a number: levels from the task's `chance` accuracy and
    /// the Markov task's closed-form losses (`None` where the task has no such level).
    pub fn value(&self, chance: f64, baselines: Option<&InContextBaselines>) -> Option<f64> {
        match &self.published {
            Published::Value(v) => Some(*v),
            Published::Level(level) => match level.as_str() {
                "chance" => Some(chance),
                "uniform" => baselines.map(|b| b.uniform),
                "unigram" => baselines.map(|b| b.unigram),
                "bigram" => baselines.map(|b| b.bigram),
                _ => None,
            },
        }
    }

    /// The figure as a label: `0.99`, or `bigram (0.512)`.
    pub fn label(&self, chance: f64, baselines: Option<&InContextBaselines>) -> String {
        match (&self.published, self.value(chance, baselines)) {
            (Published::Value(v), _) => format!("{v}"),
            (Published::Level(l), Some(v)) => format!("{l} ({v:.3})"),
            (Published::Level(l), None) => l.clone(),
        }
    }

    /// Compares a run with final held-out `accuracy` and `loss`; `unfinished` names
    /// how a run that did not finish ended (`stopped`), which makes it not comparable.
    pub fn compare(
        &self,
        unfinished: Option<&str>,
        accuracy: Option<f64>,
        loss: Option<f64>,
        chance: f64,
        baselines: Option<&InContextBaselines>,
    ) -> ReferenceCheck {
        let published = self.value(chance, baselines);
        let label = self.label(chance, baselines);
        let ours = match self.metric {
            ReferenceMetric::Accuracy => accuracy,
            ReferenceMetric::Loss => loss,
        };
        let (verdict, reason) = match (published, ours) {
            _ if unfinished.is_some() => (
                Verdict::NotComparable,
                unfinished.map(|ended| format!("the run ended {ended}")),
            ),
            (None, _) => (
                Verdict::NotComparable,
                Some(format!("the task defines no {label} level")),
            ),
            (_, None) => (
                Verdict::NotComparable,
                Some(format!(
                    "the run measured no held-out {}",
                    self.metric.name()
                )),
            ),
            (Some(p), Some(o)) if self.rule.holds(o, p, self.tolerance) => {
                (Verdict::Reproduced, None)
            }
            (Some(_), Some(_)) => (Verdict::NotReproduced, None),
        };
        ReferenceCheck {
            source: self.source.clone(),
            metric: self.metric,
            published,
            published_label: label.clone(),
            rule: self.rule.describe(&label, self.tolerance),
            ours,
            verdict,
            reason,
        }
    }
}

/// A run's result beside the published figure (in `summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceCheck {
    /// The paper and its figure or table.
    pub source: String,
    /// Which value is compared.
    pub metric: ReferenceMetric,
    /// The published figure as a number, where it resolves to one.
    pub published: Option<f64>,
    /// The published figure as written (a level with its value).
    pub published_label: String,
    /// The rule in words.
    pub rule: String,
    /// Our final held-out value.
    pub ours: Option<f64>,
    /// Reproduced or not, or not comparable.
    pub verdict: Verdict,
    /// Why not comparable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Ours meets the rule.
    Reproduced,
    /// Ours does not.
    NotReproduced,
    /// No comparison: the run did not finish, or no figure resolves.
    NotComparable,
}

impl Verdict {
    /// In words, as `attnlab run` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::NotComparable => "not comparable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Reference {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn rules_compare_with_their_tolerance() {
        assert!(Rule::AtLeast.holds(0.95, 0.99, 0.05));
        assert!(!Rule::AtLeast.holds(0.93, 0.99, 0.05));
        assert!(Rule::AtMost.holds(0.55, 0.5, 0.05));
        assert!(!Rule::AtMost.holds(0.6, 0.5, 0.05));
        assert!(Rule::Within.holds(0.48, 0.5, 0.05));
        assert!(!Rule::Within.holds(0.4, 0.5, 0.05));
    }

    #[test]
    fn a_run_is_compared_with_its_figure_or_level() {
        let r = table(
            "source = \"paper\"\ntolerance = 0.05\n[runs.dense]\npublished = 0.99\n[runs.one]\npublished = \"chance\"\nrule = \"within\"\n[runs.markov]\npublished = \"bigram\"\nmetric = \"loss\"\nrule = \"at_most\"\n",
        );
        assert!(r.check(&["dense", "one", "markov"]).is_empty());
        let dense = r.for_run("dense").expect("named");
        let check = dense.compare(None, Some(0.97), Some(0.1), 0.1, None);
        assert_eq!(check.verdict, Verdict::Reproduced);
        let check = dense.compare(None, Some(0.5), Some(0.1), 0.1, None);
        assert_eq!(check.verdict, Verdict::NotReproduced);
        let check = dense.compare(Some("stopped"), Some(0.99), Some(0.1), 0.1, None);
        assert_eq!(check.verdict, Verdict::NotComparable);
        let one = r.for_run("one").expect("named");
        let check = one.compare(None, Some(0.12), None, 0.1, None);
        assert_eq!(
            (check.verdict, check.published),
            (Verdict::Reproduced, Some(0.1))
        );
        let markov = r.for_run("markov").expect("named");
        let check = markov.compare(None, Some(0.6), Some(0.5), 0.5, None);
        assert_eq!(
            check.verdict,
            Verdict::NotComparable,
            "no baselines: no level"
        );
        let levels = InContextBaselines {
            uniform: 0.69,
            unigram: 0.6,
            bigram: 0.48,
        };
        let check = markov.compare(None, Some(0.6), Some(0.5), 0.5, Some(&levels));
        assert_eq!(check.verdict, Verdict::Reproduced);
        assert_eq!(check.published_label, "bigram (0.480)");
        assert!(r.for_run("other").is_none());
    }

    #[test]
    fn a_figure_follows_its_run_renamed_expanded_or_removed() {
        let mut r =
            table("source = \"p\"\n[runs.dense]\npublished = 0.9\n[runs.local]\npublished = 0.5\n");
        r.rename_run("dense", &["full"]);
        assert_eq!(
            r.for_run("full").map(|f| f.published),
            Some(Published::Value(0.9))
        );
        r.rename_run("full", &["local"]);
        assert!(
            r.for_run("full").is_some(),
            "another run's figure is never overwritten"
        );
        r.rename_run("full", &["full seed=1", "full seed=2"]);
        assert!(r.for_run("full seed=1").is_some() && r.for_run("full seed=2").is_some());
        r.rename_run("local", &[]);
        assert!(r.for_run("local").is_none());
        assert!(r.check(&["full seed=1", "full seed=2"]).is_empty());
    }

    #[test]
    fn bad_tables_name_the_field() {
        let r = table("source = \"p\"\n[runs.ghost]\npublished = \"bigramm\"\n");
        let errors = r.check(&["dense"]);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["reference.runs.ghost", "reference.runs.ghost.published"]
        );
        let r = table("source = \"p\"\n[runs.dense]\npublished = \"bigram\"\n");
        let errors = r.check(&["dense"]);
        assert!(errors[0].message.contains("level of loss"), "{errors:?}");
    }
}
