//! One set of settings checked ([`check_settings`]): each field against its own
//! bounds, then the rules between fields (the task's, the backend's, the model's
//! shape and attention, the seeds), then the evaluation lengths.

use super::eval_lengths;
use crate::config::{
    ConfigError, MAX_KEPT_CHECKPOINTS, ModelConfig, ModelKind, PositionScheme, Settings,
    TrainConfig, fields,
};

/// Every problem in one set of settings, fields relative to the file's top level:
/// each field against its own bounds (the registry, [`crate::config::fields`]), then
/// the rules between fields.
pub fn check_settings(s: &Settings) -> Vec<ConfigError> {
    let mut errors: Vec<ConfigError> = fields::FIELDS
        .iter()
        .filter(|f| (f.applies)(s))
        .filter_map(|f| f.check(s).map(|message| ConfigError::new(f.path, message)))
        .collect();
    let task_bounds_ok = !errors.iter().any(|e| e.field.starts_with("task."));
    if task_bounds_ok && let Err(e) = s.task.check() {
        bad(
            &mut errors,
            &format!("task.{}", e.field),
            &e.value,
            &e.reason,
        );
    }
    if let Err(why) = s.train.backend.check() {
        bad(
            &mut errors,
            fields::BACKEND.path,
            &s.train.backend.label(),
            &why.to_string(),
        );
    }
    check_next_token_causal(s, &mut errors);
    let m = &s.model;
    if m.kind == ModelKind::Transformer {
        if let Err(why) = m.ablated() {
            errors.push(ConfigError::new(fields::ABLATED_HEADS.path, why));
        }
        check_head_width(m, &mut errors);
        check_attention(m, s.task.seq_len, &mut errors);
        check_mixers(m, s.task.seq_len, &mut errors);
    }
    check_seeds(&s.train, &mut errors);
    check_kept(s, &mut errors);
    let others_valid = errors.is_empty();
    errors.extend(eval_lengths::check(s, others_valid));
    errors
}

/// A transformer on a next-token task must be causal: otherwise a position sees the
/// token it predicts.
fn check_next_token_causal(s: &Settings, errors: &mut Vec<ConfigError>) {
    let m = &s.model;
    if let (ModelKind::Transformer, Some(unit), false) =
        (m.kind, s.task.kind.next_token_unit(), m.causal)
    {
        bad(
            errors,
            fields::CAUSAL.path,
            &m.causal,
            &format!(
                "the {} task predicts the next {unit}, which a position must not see: set model.causal = true",
                s.task.kind.name()
            ),
        );
    }
}

/// A transformer's heads split `d_model` evenly, and rope needs an even head width.
fn check_head_width(m: &ModelConfig, errors: &mut Vec<ConfigError>) {
    if m.heads > 0 && m.d_model > 0 && !m.d_model.is_multiple_of(m.heads) {
        let divisors: Vec<String> = (1..=m.d_model.min(64))
            .filter(|h| m.d_model.is_multiple_of(*h))
            .map(|h| h.to_string())
            .collect();
        bad(
            errors,
            fields::HEADS.path,
            &m.heads,
            &format!(
                "must divide model.d_model = {} (e.g. {})",
                m.d_model,
                divisors.join(", ")
            ),
        );
    }
    if m.positions == PositionScheme::Rope
        && m.heads > 0
        && m.d_model.is_multiple_of(m.heads)
        && !(m.d_model / m.heads).is_multiple_of(2)
    {
        bad(
            errors,
            fields::POSITIONS.path,
            &"\"rope\"",
            &format!(
                "needs an even head width (d_model / heads = {}): rope turns pairs of a head's dimensions",
                m.d_model / m.heads
            ),
        );
    }
}

/// A transformer's token mixers: as many as layers when given per layer, each
/// mixer's parameters within bounds at length `n`.
fn check_mixers(m: &ModelConfig, n: usize, errors: &mut Vec<ConfigError>) {
    let mut check = |path: String, mixer: &crate::config::Mixer| {
        if let Err((param, why)) = mixer.check(n) {
            errors.push(ConfigError::new(
                format!("{path}.{param}"),
                format!("is not allowed for {}: {why}", mixer.name()),
            ));
        }
    };
    if m.layer_mixers.is_empty() {
        check(fields::MIXER.path.to_string(), &m.mixer);
        return;
    }
    for (l, mixer) in m.layer_mixers.iter().enumerate() {
        check(format!("{}[{l}]", fields::LAYER_MIXERS.path), mixer);
    }
    if m.layer_mixers.len() != m.layers {
        errors.push(ConfigError::new(
            fields::LAYER_MIXERS.path,
            format!(
                "has {} mixers but model.layers = {}: give one mixer per layer",
                m.layer_mixers.len(),
                m.layers
            ),
        ));
    }
}

/// A transformer's attention at length `n`: its one pattern or, when it gives one
/// per layer, as many patterns as layers, each pattern checked for that length and
/// the model's causality.
fn check_attention(m: &ModelConfig, n: usize, errors: &mut Vec<ConfigError>) {
    if m.layer_attention.is_empty() {
        if let Err(e) = m.attention.check_for(n, m.causal) {
            errors.push(ConfigError::new(
                format!("{}.{}", fields::ATTENTION.path, e.param),
                format!(
                    "{} is not allowed for {}: {}",
                    e.value,
                    m.attention.kind(),
                    e.reason
                ),
            ));
        }
    } else {
        let per_layer = &m.layer_attention;
        if per_layer.len() != m.layers {
            errors.push(ConfigError::new(
                fields::LAYER_ATTENTION.path,
                format!(
                    "has {} patterns but model.layers = {}: give one pattern per layer",
                    per_layer.len(),
                    m.layers
                ),
            ));
        }
        for (l, p) in per_layer.iter().enumerate() {
            if let Err(e) = p.check_for(n, m.causal) {
                errors.push(ConfigError::new(
                    format!("{}[{l}].{}", fields::LAYER_ATTENTION.path, e.param),
                    format!("{} is not allowed for {}: {}", e.value, p.kind(), e.reason),
                ));
            }
        }
    }
}

/// Kept checkpoints: at most [`MAX_KEPT_CHECKPOINTS`] models (the most a record's
/// `kept/` folder is read with, so more would make the record unforkable).
fn check_kept(s: &Settings, errors: &mut Vec<ConfigError>) {
    let kept = crate::config::kept_checkpoints(s);
    if kept > MAX_KEPT_CHECKPOINTS as u64 {
        errors.push(ConfigError::new(
            fields::KEEP_CHECKPOINTS.path,
            format!(
                "\"{}\" keeps {kept} checkpoints' models with train.steps = {} and train.checkpoint_every = {}: at most {MAX_KEPT_CHECKPOINTS}",
                s.train.keep_checkpoints, s.train.steps, s.train.checkpoint_every
            ),
        ));
    }
}

/// The seed replicates: every seed writable as a TOML integer, none listed twice.
fn check_seeds(t: &TrainConfig, errors: &mut Vec<ConfigError>) {
    if t.seeds.iter().any(|&s| s > i64::MAX as u64) {
        errors.push(ConfigError::new(
            fields::SEEDS.path,
            format!(
                "every seed must be at most {} (TOML integers are signed 64-bit)",
                i64::MAX
            ),
        ));
    }
    if (1..t.seeds.len()).any(|i| t.seeds[..i].contains(&t.seeds[i])) {
        errors.push(ConfigError::new(
            fields::SEEDS.path,
            "lists a seed twice: replicates need different seeds",
        ));
    }
}

/// Adds the refusal of `value` at `field`, saying `why`.
fn bad(errors: &mut Vec<ConfigError>, field: &str, value: &dyn std::fmt::Display, why: &str) {
    errors.push(ConfigError::new(
        field,
        format!("{value} is not allowed: {why}"),
    ));
}
