//! Evaluation at other lengths: `train.eval_lengths` checked, and a plan moved to
//! another `task.seq_len` ([`RunPlan::at_length`]), which the trainer's evaluations at
//! other lengths, `attnlab eval --seq-len` and the window's Length pane all use.
//!
//! A length is allowed where the run itself would be valid at it (the task and every
//! layer's pattern checked again at that length: recall's distance must still fit,
//! a window or block must still make sense), except that learned positions have none
//! past `task.seq_len`: a longer length is refused naming `model.positions`, never
//! clamped or wrapped.

use crate::config::fields;
use crate::config::{
    ConfigError, ConfigErrors, MAX_EVAL_LENGTHS, PositionScheme, RunPlan, Settings, check_settings,
};

impl RunPlan {
    /// This plan at sequence length `n`, for evaluating the weights trained at
    /// `task.seq_len`: the task generated at that length (recall and induction keep
    /// their distance, MQAR its pairs, spread over the longer sequence), the patterns
    /// planned for it, every rule checked again, and no `train.eval_lengths` of its own.
    /// A transformer with learned positions has none past its own length: refused
    /// with an error on `model.positions`, never clamped or wrapped.
    pub fn at_length(&self, n: usize) -> Result<RunPlan, ConfigErrors> {
        if let Some(why) = beyond_learned(&self.settings, n) {
            return Err(ConfigError::new(fields::POSITIONS.path, why).into());
        }
        let needed = crate::config::evaluation_estimate(&self.settings, n);
        if let Some(available) = crate::config::available_memory().filter(|&a| needed > a) {
            return Err(ConfigError::new(
                fields::SEQ_LEN.path,
                format!(
                    "evaluating at {n} needs about {} of memory, more than the {} available",
                    crate::config::human_bytes(needed),
                    crate::config::human_bytes(available)
                ),
            )
            .into());
        }
        self.revise_within(
            |s| {
                s.task.seq_len = n;
                s.train.eval_lengths.clear();
            },
            None,
        )
    }
}

/// Why a model with settings `s` has no positions for length `n`: learned positions
/// exist only up to `task.seq_len`. `None` for every other scheme, for the LSTM and
/// for lengths up to the trained one.
fn beyond_learned(s: &Settings, n: usize) -> Option<String> {
    s.positions_end().is_some_and(|end| n > end).then(|| {
        let others: Vec<String> = PositionScheme::ALL
            .iter()
            .filter(|p| !p.is_learned())
            .map(|p| format!("\"{}\"", p.name()))
            .collect();
        let others = match others.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => others.join(""),
        };
        format!(
            "the model learned positions (model.positions = \"learned\") for task.seq_len = {} only and has none for positions beyond, so it cannot be evaluated at {n} (never clamped or wrapped); set model.positions to {} to evaluate beyond it",
            s.task.seq_len,
            others
        )
    })
}

/// The problems of `train.eval_lengths` in `s`: more than [`MAX_EVAL_LENGTHS`], a
/// length twice, `task.seq_len` itself (always evaluated), a length outside
/// `task.seq_len`'s bounds, learned positions beyond their length; and, when
/// `others_valid` (the rest of `s` passed), every rule checked again at each length,
/// each problem named with the length. Errors are on `train.eval_lengths`.
pub(super) fn check(s: &Settings, others_valid: bool) -> Vec<ConfigError> {
    let lengths = &s.train.eval_lengths;
    let field = fields::EVAL_LENGTHS.path;
    let mut errors = Vec::new();
    if lengths.len() > MAX_EVAL_LENGTHS {
        errors.push(ConfigError::new(
            field,
            format!(
                "lists {} lengths: at most {MAX_EVAL_LENGTHS} (each evaluation scores every one)",
                lengths.len()
            ),
        ));
        // Each length is a whole validation: a long list is refused before any.
        return errors;
    }
    let (min, max) = fields::SEQ_LEN.usize_range();
    for (i, &n) in lengths.iter().enumerate() {
        let why = match lengths[..i].iter().filter(|&&m| m == n).count() {
            0 => None,
            1 => Some(format!("lists {n} twice: give each length once")),
            _ => continue, // said once already
        };
        let why = if let Some(why) = why {
            why
        } else if n == s.task.seq_len {
            format!(
                "{n} is task.seq_len, which every evaluation scores already: list only other lengths"
            )
        } else if !(min..=max).contains(&n) {
            format!(
                "{n} is not allowed: each length must be between {min} and {max}, as task.seq_len"
            )
        } else if let Some(why) = beyond_learned(s, n) {
            format!("{n} is not allowed: {why}")
        } else if others_valid {
            let mut at = s.clone();
            at.task.seq_len = n;
            at.train.eval_lengths.clear();
            for e in check_settings(&at) {
                errors.push(ConfigError::new(
                    field,
                    format!(
                        "{n} is not allowed: at that length {}: {}",
                        e.field, e.message
                    ),
                ));
            }
            continue;
        } else {
            continue;
        };
        errors.push(ConfigError::new(field, why));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::AttentionPattern;
    use crate::config::ModelKind;

    fn settings(lengths: &[usize]) -> Settings {
        let mut s = Settings::default();
        s.task.seq_len = 64;
        s.task.distance = 8;
        s.model.positions = PositionScheme::Rope;
        s.train.eval_lengths = lengths.to_vec();
        s
    }

    fn messages(s: &Settings) -> Vec<String> {
        check_settings(s)
            .into_iter()
            .filter(|e| e.field == fields::EVAL_LENGTHS.path)
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn lengths_the_run_allows_pass() {
        assert!(check_settings(&settings(&[16, 128, 512])).is_empty());
        let mut lstm = settings(&[4096]);
        lstm.model.kind = ModelKind::Lstm;
        assert!(check_settings(&lstm).is_empty());
    }

    #[test]
    fn impossible_lengths_are_refused_naming_the_length() {
        // Recall at distance 8 needs more than 8 tokens.
        let m = messages(&settings(&[8]));
        assert!(
            m.len() == 1 && m[0].starts_with("8 is not allowed") && m[0].contains("task.distance"),
            "{m:?}"
        );
        let m = messages(&settings(&[64, 128, 128, 9000]));
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].contains("task.seq_len"), "{m:?}");
        assert!(m[1].contains("twice"), "{m:?}");
        assert!(m[2].contains("9000") && m[2].contains("8192"), "{m:?}");
        let m = messages(&settings(&[3, 4, 5, 6, 7, 9, 10, 11, 12]));
        assert!(m.iter().any(|m| m.contains("at most 8")), "{m:?}");
        // A huge list (a hostile file) is refused whole, not length by length.
        let huge: Vec<usize> = (2..200_000).collect();
        let m = messages(&settings(&huge));
        assert_eq!(m.len(), 1, "{}", m.len());
        assert!(m[0].contains("199998 lengths"), "{m:?}");
        // Blocks that no longer divide the length.
        let mut s = settings(&[40, 128]);
        s.model.attention = AttentionPattern::Block { size: 16 };
        let errors = check_settings(&s);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, fields::EVAL_LENGTHS.path);
        assert!(
            errors[0].message.starts_with("40 is not allowed")
                && errors[0].message.contains("model.attention.size"),
            "{errors:?}"
        );
    }

    #[test]
    fn learned_positions_are_refused_beyond_their_length() {
        let mut s = settings(&[32, 128]);
        s.model.positions = PositionScheme::Learned;
        let m = messages(&s);
        assert_eq!(m.len(), 1, "shorter is fine: {m:?}");
        assert!(
            m[0].starts_with("128 ") && m[0].contains("model.positions"),
            "{m:?}"
        );
    }

    #[test]
    fn a_plan_at_another_length_keeps_its_settings_but_the_length() {
        let plan = crate::config::Experiment::single("x", settings(&[128]))
            .plan_within(None)
            .expect("valid");
        let at = plan[0].at_length(256).expect("rope goes anywhere");
        assert_eq!(at.settings().task.seq_len, 256);
        assert!(at.settings().train.eval_lengths.is_empty());
        assert_eq!(at.settings().model, plan[0].settings().model);
        let learned = plan[0]
            .revise(|s| {
                s.model.positions = PositionScheme::Learned;
                s.train.eval_lengths.clear();
            })
            .expect("valid");
        let e = learned.at_length(128).expect_err("no positions beyond 64");
        assert_eq!(e.0[0].field, "model.positions");
        assert!(learned.at_length(32).is_ok());
    }
}
