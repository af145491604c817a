//! What a run will need before it starts: an estimate of its peak memory, checked
//! against what the process can get (the `limits` module), so a run that cannot fit
//! is refused with the field to change instead of taking the process (and every
//! other run) down.
//!
//! The estimate counts f32 tensors alive at the peak of a training step: parameters,
//! their gradients and Adam's two moments (4 x params); per layer the activations
//! autodiff keeps (about `(6 d_model + 2 d_ff)` per token, `4 d_model` in an
//! attention-only block, and `2 d_model` more per dropout: its mask and output); per
//! layer the attention tensors as the layer's kernel computes them (about 4 per
//! computed (query, key) pair per head: scores, their masked and exponentiated copies,
//! the weights); the logits with their softmax and gradient; each sparse layer's
//! boolean mask; the probe's snapshot (every layer's and head's full `n x n` weights,
//! computed with the reference); the held-out set and a fixed training set
//! (`train.examples`); and evaluation at `train.eval_lengths`: the held-out set and
//! masks kept at each length, and what a forward pass at the longest needs beyond a
//! training step (no gradients, `train.batch` sequences, between steps, so only its
//! excess over the step's own activations, attention and logits counts; dense
//! attention at 4x the length is 16x the scores). Calibrated on W1 (docs/performance.md, "Reference workloads") against the
//! counting allocator's peaks; `tests/budget.rs` checks it stays within 0.6x-1.6x
//! of measured.

use std::num::Saturating;

use super::fields::{self, Field};
use super::{BackendChoice, BackendSetting, MAX_EVAL_LENGTHS, ModelKind, Settings};
use crate::attention::{AttentionPattern, trained_pairs};

/// Bytes of an `f32`, as a saturating count.
const F32: S = Saturating(4);

/// A byte or element count that saturates instead of wrapping: settings read from a
/// file or a record may be unchecked, and an estimate that overflowed would wrap to a
/// small number and let an impossible run through (`eval_batches = 2^54`).
type S = Saturating<u64>;

/// `x` as a saturating count.
fn sat(x: usize) -> S {
    Saturating(x as u64)
}

/// The sum of `parts`, saturating.
fn sum(parts: impl IntoIterator<Item = S>) -> S {
    parts.into_iter().fold(Saturating(0), |a, b| a + b)
}

/// A run's estimated peak memory, in bytes, by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Parameters, gradients and Adam state.
    pub parameters: u64,
    /// Activations kept for the backward pass (attention excluded).
    pub activations: u64,
    /// Attention scores and weights, as the layers' kernels compute them.
    pub attention: u64,
    /// Logits, their softmax and gradient.
    pub logits: u64,
    /// The probe's attention snapshot (full `n x n` per layer and head) and masks.
    pub snapshot: u64,
    /// The held-out set, generated once (tokens and targets as i64).
    pub eval_data: u64,
    /// The fixed training set of `train.examples` (tokens and targets as i64, answer
    /// distances as u32); 0 when every step draws fresh examples.
    pub train_data: u64,
    /// Evaluation at `train.eval_lengths`: the held-out sets and masks kept at each
    /// length, plus what the forward pass at the hungriest needs beyond a training
    /// step's activations, attention and logits (0 without such lengths).
    pub eval_lengths: u64,
}

impl MemoryEstimate {
    /// The total.
    /// The total (saturating: an estimate too large to count is `u64::MAX`, which no
    /// machine has).
    pub fn total(&self) -> u64 {
        [
            self.parameters,
            self.activations,
            self.attention,
            self.logits,
            self.snapshot,
            self.eval_data,
            self.train_data,
            self.eval_lengths,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }
}

/// Trainable parameters of the model `s` describes.
pub fn parameter_count(s: &Settings) -> u64 {
    let (v, n) = (sat(s.task.vocab), sat(s.task.seq_len));
    let m = &s.model;
    let (d, f, l) = (sat(m.d_model), sat(m.d_ff), sat(m.layers));
    let k = |x: u64| Saturating(x);
    let count = match m.kind {
        ModelKind::Transformer => {
            // The attention's norm, qkv and output projection; then, unless d_ff is 0
            // (attention-only), the feed-forward block's norm and two linears.
            let attention = k(2) * d + (k(3) * d * d + k(3) * d) + (d * d + d);
            let feed_forward = if m.d_ff == 0 {
                k(0)
            } else {
                k(2) * d + (d * f + f) + (f * d + d)
            };
            let block = attention + feed_forward;
            v * d + n * d + l * block + k(2) * d + (d * v + v)
        }
        // Per LSTM layer: 4 gates, each an input and a hidden projection with biases.
        ModelKind::Lstm => v * d + l * k(4) * (k(2) * d * d + k(2) * d) + (d * v + v),
    };
    count.0
}

/// The estimated peak memory of training `s`.
pub fn estimate(s: &Settings) -> MemoryEstimate {
    let (b, n, v) = (sat(s.train.batch), sat(s.task.seq_len), sat(s.task.vocab));
    let m = &s.model;
    let (d, f, l, h) = (
        sat(m.d_model),
        sat(m.d_ff),
        sat(m.layers),
        sat(m.heads.max(1)),
    );
    let k = |x: u64| Saturating(x);
    let tokens = b * n;
    let parameters = k(4) * k(parameter_count(s)) * F32;
    let logits = k(3) * tokens * v * F32;
    let (activations, attention, snapshot) = match m.kind {
        ModelKind::Transformer => {
            let per_block = if m.d_ff == 0 {
                k(4) * d
            } else {
                k(6) * d + k(2) * f
            };
            // Each dropout keeps its mask and its output: one after the embeddings
            // and one per residual branch (attention, feed-forward).
            let branches = k(if m.d_ff == 0 { 1 } else { 2 });
            let dropout = if m.dropout > 0.0 {
                (branches * l + k(1)) * k(2) * d
            } else {
                k(0)
            };
            let activations = (l * per_block + dropout) * tokens * F32;
            let patterns = m.layer_patterns();
            let seed = s.train.seed;
            // On the CPU backend every layer trains with the fused tile kernel, which
            // keeps no n x n tensor (its output, log-sum-exp and per-thread scratch
            // grow like n); elsewhere burn's composed ops keep ~4 per computed pair.
            let fused = s.train.backend == BackendSetting::Local(BackendChoice::Cpu);
            let mixers = m.layer_mixers();
            let attention = sum(patterns.iter().enumerate().map(|(i, p)| {
                if let Some(bytes) = mixers
                    .get(i)
                    .and_then(|mx| mixer_bytes(mx, fused, [b, n, d, h]))
                {
                    return bytes;
                }
                if fused {
                    return (k(2) * d + k(2) * h) * tokens * F32;
                }
                let pairs = trained_pairs(p, s.task.seq_len, seed.wrapping_add(i as u64));
                k(4) * b * h * sat(pairs) * F32
            }));
            let masks = sat(patterns.len()) * n * n;
            // The probe's mixing matrices: per head for attention, linear attention
            // and Based; per channel (d of them, before they are averaged into
            // heads) for the convolution and the SSM, whose matrix is built state by
            // state beside its running-sum gaps.
            let per_layer = |mx: &super::Mixer| match mx {
                super::Mixer::Conv { .. } => k(3) * d,
                super::Mixer::Ssm { .. } => k(5) * d,
                _ => k(3) * h,
            };
            let snapshot = sum(mixers.iter().map(per_layer)) * n * n * F32 + masks;
            (activations, attention, snapshot)
        }
        ModelKind::Lstm => (k(12) * l * tokens * d * F32, k(0), k(0)),
    };
    let eval_data = sat(s.train.eval_batches) * tokens * k(16);
    let train_data = sat(s.train.examples) * n * k(20);
    MemoryEstimate {
        parameters: parameters.0,
        activations: activations.0,
        attention: attention.0,
        logits: logits.0,
        snapshot: snapshot.0,
        eval_data: eval_data.0,
        train_data: train_data.0,
        eval_lengths: eval_lengths_bytes(s, activations + attention + logits).0,
    }
}

/// What a layer whose token mixer is not attention keeps for its backward pass
/// (`None` for attention). With the fused CPU ops (`fused`): linear attention its
/// featurised q and k, Based its Taylor features (1 + f + f^2 per head and token) and
/// the window kernel's rows, the convolution and the SSM their inputs, all linear in
/// n. Composed (wgpu, remote): linear attention and Based their `n x n` matrices per
/// head, the convolution its Toeplitz matrices per channel, the SSM each step's
/// decay, input and state per channel and state.
fn mixer_bytes(mixer: &super::Mixer, fused: bool, [b, n, d, h]: [S; 4]) -> Option<S> {
    let k = |x: u64| Saturating(x);
    let tokens = b * n;
    Some(match (mixer, fused) {
        (super::Mixer::Attention, _) => return None,
        (super::Mixer::Linear, true) => k(8) * tokens * d * F32,
        (super::Mixer::Linear, false) => k(4) * b * h * n * n * F32,
        (super::Mixer::Based { feature_dim, .. }, true) => {
            let f = sat(*feature_dim);
            k(2) * tokens * h * (k(1) + f + f * f) * F32 + k(8) * tokens * d * F32
        }
        (super::Mixer::Based { .. }, false) => k(8) * b * h * n * n * F32,
        (super::Mixer::Conv { .. }, true) => k(8) * tokens * d * F32,
        (super::Mixer::Conv { .. }, false) => k(3) * d * n * n * F32 + k(4) * tokens * d * F32,
        (super::Mixer::Ssm { state }, true) => {
            k(8) * tokens * d * F32 + k(4) * tokens * sat(*state) * F32
        }
        (super::Mixer::Ssm { state }, false) => k(6) * tokens * d * sat(*state) * F32,
    })
}

/// Floats of state a model of `s` carries per sequence at inference, at its training
/// length, summed over layers: attention's KV cache, a recurrent mixer's state
/// ([`super::Mixer::state_floats`]); the LSTM's hidden and cell state.
pub fn state_floats(s: &Settings) -> u64 {
    let m = &s.model;
    match m.kind {
        ModelKind::Lstm => 2 * m.d_model as u64 * m.layers as u64,
        ModelKind::Transformer => m
            .layer_mixers()
            .iter()
            .zip(m.layer_patterns())
            .map(|(mixer, pattern)| {
                // A causal local window needs only its last keys cached.
                let cached = match pattern {
                    AttentionPattern::Local { window } if m.causal => window + 1,
                    _ => s.task.seq_len,
                };
                mixer.state_floats(cached.min(s.task.seq_len), m.d_model, m.heads)
            })
            .sum(),
    }
}

/// How many checkpoints' models `s` keeps (`train.keep_checkpoints`): its count, or
/// for `"all"` every checkpoint (one each `train.checkpoint_every` steps and the
/// last), whichever is fewer.
pub fn kept_checkpoints(s: &Settings) -> u64 {
    let t = &s.train;
    let checkpoints = match t.checkpoint_every {
        0 => 1,
        every => (t.steps / every) as u64 + 1,
    };
    t.keep_checkpoints
        .limit()
        .map_or(checkpoints, |n| checkpoints.min(n as u64))
}

/// The disk a run of `s` writes for its checkpoints: the latest (model and
/// optimiser state, about 3 x 4 bytes per parameter) and each kept model (4 bytes
/// per parameter), with 64 KiB of each file's names and framing.
pub fn checkpoint_disk_bytes(s: &Settings) -> u64 {
    let model = Saturating(parameter_count(s)) * F32 + Saturating(1 << 16);
    let latest = Saturating(3) * model;
    (latest + Saturating(kept_checkpoints(s)) * model).0
}

/// The estimated peak memory of evaluating `s`'s model at sequence length `n` a batch
/// at a time (`attnlab eval --seq-len`, the Length probe): its parameters, one batch
/// and every layer's mask at `n`, and the forward pass there.
pub fn evaluation_estimate(s: &Settings, n: usize) -> u64 {
    let mut at = s.clone();
    at.train.eval_lengths = vec![n];
    at.train.eval_batches = 1;
    let parameters = Saturating(parameter_count(s)) * F32;
    (parameters + eval_lengths_bytes(&at, Saturating(0))).0
}

/// Evaluation at each of `train.eval_lengths`: its held-out set (tokens and targets
/// as i64) and every layer's mask, kept for the run; and the forward pass at the
/// length that needs most (no autodiff: the residual stream, one block's
/// intermediates and one layer's attention alive at a time, then the logits and
/// their softmax), counted beyond `step` (the training step's transient bytes it
/// runs after).
fn eval_lengths_bytes(s: &Settings, step: S) -> S {
    let (b, v) = (sat(s.train.batch), sat(s.task.vocab));
    let m = &s.model;
    let (d, f, h) = (sat(m.d_model), sat(m.d_ff), sat(m.heads.max(1)));
    let k = |x: u64| Saturating(x);
    let fused = s.train.backend == BackendSetting::Local(BackendChoice::Cpu);
    let patterns = match m.kind {
        ModelKind::Transformer => m.layer_patterns(),
        ModelKind::Lstm => Vec::new(),
    };
    let (mut kept, mut peak) = (k(0), k(0));
    // Settings read from a record or a file may be unchecked: lengths validation
    // would refuse are left out, so none makes the estimate allocate.
    let (min, max) = fields::SEQ_LEN.usize_range();
    let lengths = s
        .train
        .eval_lengths
        .iter()
        .filter(|n| (min..=max).contains(*n));
    for &len in lengths.take(MAX_EVAL_LENGTHS) {
        let n = sat(len);
        let tokens = b * n;
        kept += sat(s.train.eval_batches) * tokens * k(16) + sat(patterns.len()) * n * n;
        let forward = match m.kind {
            ModelKind::Transformer => {
                let attention = patterns
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        if fused {
                            return (k(2) * d + k(2) * h) * tokens * F32;
                        }
                        let seed = s.train.seed.wrapping_add(i as u64);
                        k(3) * b * h * sat(trained_pairs(p, len, seed)) * F32
                    })
                    .max()
                    .unwrap_or(k(0));
                (k(4) * d + f) * tokens * F32 + attention
            }
            ModelKind::Lstm => k(8) * d * tokens * F32,
        };
        peak = peak.max(forward + k(2) * tokens * v * F32);
    }
    kept + (peak - step)
}

/// Floating-point operations of one training step of `s` (forward, backward and
/// update: about 6 per parameter per token, plus the attention products as the
/// layers' kernels compute them, 3 x 4 per pair and head dimension).
pub fn step_flops(s: &Settings) -> f64 {
    let tokens = (s.train.batch * s.task.seq_len) as f64;
    let dense = 6.0 * parameter_count(s) as f64 * tokens;
    let attention = match s.model.kind {
        ModelKind::Lstm => 0.0,
        ModelKind::Transformer => {
            let head_dim = (s.model.d_model / s.model.heads.max(1)) as f64;
            s.model
                .layer_patterns()
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let pairs =
                        trained_pairs(p, s.task.seq_len, s.train.seed.wrapping_add(i as u64));
                    12.0 * s.train.batch as f64 * s.model.heads as f64 * pairs as f64 * head_dim
                })
                .sum()
        }
    };
    dense + attention
}

/// Bytes as `1.5 GB` / `340 MB` / `12 KB`.
pub fn human_bytes(bytes: u64) -> String {
    let gb = bytes as f64 / 1e9;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else if bytes >= 1_000_000 {
        format!("{:.0} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.0} KB", bytes as f64 / 1e3)
    }
}

/// Why `s` will not fit in `available` bytes, naming the field to change; `None`
/// when it fits.
pub fn over_budget(s: &Settings, available: u64) -> Option<(&'static str, String)> {
    let e = estimate(s);
    if e.total() <= available {
        return None;
    }
    let parts = [
        (
            "the parameters and Adam state",
            e.parameters,
            &fields::D_MODEL,
        ),
        ("activations", e.activations, &fields::BATCH),
        ("attention", e.attention, &fields::SEQ_LEN),
        ("the output logits", e.logits, &fields::VOCAB),
        (
            "the attention snapshot of the probe",
            e.snapshot,
            &fields::SEQ_LEN,
        ),
        ("the held-out set", e.eval_data, &fields::EVAL_BATCHES),
        ("the fixed training set", e.train_data, &fields::EXAMPLES),
        (
            "evaluation at train.eval_lengths",
            e.eval_lengths,
            &fields::EVAL_LENGTHS,
        ),
    ];
    let (what, bytes, field) = parts
        .iter()
        .copied()
        .max_by_key(|p| p.1)
        .unwrap_or(parts[0]);
    // The fields that shrink the largest part, named by the registry's paths.
    let lower = |of: &[&Field]| {
        let paths: Vec<&str> = of.iter().map(|f| f.path).collect();
        match paths.split_last() {
            Some((last, [])) => format!("lower {last}"),
            Some((last, rest)) => format!("lower {} or {last}", rest.join(", ")),
            None => String::new(),
        }
    };
    let is = |f: &Field| field.path == f.path;
    let advice = if is(&fields::SEQ_LEN) {
        format!(
            "{}, or use a sparse pattern (its cost grows with n * w, not n^2)",
            lower(&[&fields::SEQ_LEN, &fields::BATCH])
        )
    } else if is(&fields::BATCH) {
        lower(&[&fields::BATCH, &fields::SEQ_LEN, &fields::D_FF])
    } else if is(&fields::VOCAB) {
        lower(&[&fields::VOCAB, &fields::BATCH])
    } else if is(&fields::EVAL_BATCHES) {
        lower(&[&fields::EVAL_BATCHES])
    } else if is(&fields::EVAL_LENGTHS) {
        let longest = s.train.eval_lengths.iter().max().copied().unwrap_or(0);
        format!(
            "lower or drop the longest of {} (now {longest}), or use a sparse pattern (its cost grows with n * w, not n^2)",
            fields::EVAL_LENGTHS.path
        )
    } else if is(&fields::EXAMPLES) {
        lower(&[&fields::EXAMPLES, &fields::SEQ_LEN])
    } else {
        lower(&[&fields::D_MODEL, &fields::D_FF, &fields::VOCAB])
    };
    let field = field.path;
    Some((
        field,
        format!(
            "this run needs ~{} ({what}: ~{}); this process can get {}: {advice}",
            human_bytes(e.total()),
            human_bytes(bytes),
            human_bytes(available)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_at_long_sequences_is_refused_and_names_seq_len() {
        let mut s = Settings::default();
        s.task.seq_len = 8192;
        s.task.distance = 100;
        s.train.batch = 64;
        let (field, message) = over_budget(&s, 23 << 30).expect("does not fit");
        assert_eq!(field, "task.seq_len");
        assert!(
            message.contains("needs ~") && message.contains("sparse"),
            "{message}"
        );
        assert!(over_budget(&Settings::default(), 23 << 30).is_none());
    }

    #[test]
    fn step_work_grows_with_the_pairs_attention_computes() {
        let mut dense = Settings::default();
        dense.task.seq_len = 2048;
        let mut local = dense.clone();
        local.model.attention = crate::attention::AttentionPattern::Local { window: 16 };
        let (d, l) = (step_flops(&dense), step_flops(&local));
        assert!(d > 3.0 * l, "dense {d:e} vs local {l:e}");
        let mut half = dense.clone();
        half.train.batch /= 2;
        assert!(
            (step_flops(&half) * 2.0 - d).abs() / d < 1e-9,
            "linear in the batch"
        );
    }

    #[test]
    fn a_fixed_training_set_is_counted_and_named() {
        let mut s = Settings::default();
        assert_eq!(estimate(&s).train_data, 0, "fresh data keeps no set");
        s.train.examples = 10_000_000;
        s.task.seq_len = 1024;
        s.task.distance = 100;
        assert_eq!(estimate(&s).train_data, 10_000_000 * 1024 * 20);
        let (field, message) = over_budget(&s, 23 << 30).expect("does not fit");
        assert_eq!(field, "train.examples");
        assert!(message.contains("lower train.examples"), "{message}");
    }

    #[test]
    fn attention_only_blocks_count_no_feed_forward_parameters() {
        let mut s = Settings::default();
        let full = parameter_count(&s);
        s.model.d_ff = 0;
        let (d, f, l) = (64, 256, 2);
        assert_eq!(full - parameter_count(&s), l * (2 * d + 2 * d * f + f + d));
        assert!(estimate(&s).activations < estimate(&Settings::default()).activations);
    }

    #[test]
    fn evaluation_lengths_are_counted_and_a_long_dense_one_is_named() {
        let mut s = Settings::default();
        s.task.seq_len = 512;
        s.task.distance = 8;
        s.model.positions = crate::config::PositionScheme::Rope;
        assert_eq!(estimate(&s).eval_lengths, 0, "no lengths, nothing more");
        let budget = 8 << 30;
        assert!(over_budget(&s, budget).is_none());
        // Dense at 8x the length: 64x the training step's scores.
        s.train.eval_lengths = vec![4096];
        let dense = estimate(&s);
        assert!(
            dense.eval_lengths > 16 * dense.attention,
            "{} vs the step's {}",
            dense.eval_lengths,
            dense.attention
        );
        let (field, message) = over_budget(&s, budget).expect("does not fit");
        assert_eq!(field, "train.eval_lengths");
        assert!(
            message.contains("longest of train.eval_lengths (now 4096)"),
            "{message}"
        );
        // A shorter length costs no more than the step it follows, but its set.
        s.train.eval_lengths = vec![128];
        let short = estimate(&s).eval_lengths;
        assert_eq!(short, 4 * 32 * 128 * 16 + 2 * 128 * 128);
        // A local window at the same long length fits.
        s.train.eval_lengths = vec![4096];
        s.model.attention = crate::attention::AttentionPattern::Local { window: 16 };
        assert!(over_budget(&s, budget).is_none());
    }

    #[test]
    fn a_sparse_pattern_needs_far_less_at_long_sequences() {
        let mut dense = Settings::default();
        dense.task.seq_len = 4096;
        let mut local = dense.clone();
        local.model.attention = crate::attention::AttentionPattern::Local { window: 32 };
        assert!(estimate(&local).attention * 20 < estimate(&dense).attention);
    }

    /// A channel-wise mixer's probe matrices are per channel before they are averaged
    /// into heads: its snapshot term is d / heads times attention's (3 or 5 matrices
    /// per channel against 3 per head).
    #[test]
    fn a_per_channel_mixer_s_snapshot_counts_every_channel() {
        let mut s = Settings::default();
        let attention = estimate(&s).snapshot;
        s.model.mixer = crate::config::Mixer::Ssm { state: 16 };
        let ssm = estimate(&s).snapshot;
        let (d, h) = (s.model.d_model as u64, s.model.heads as u64);
        let n = s.task.seq_len as u64;
        let masks = s.model.layers as u64 * n * n;
        assert_eq!((ssm - masks) * 3 * h, (attention - masks) * 5 * d);
    }
}
