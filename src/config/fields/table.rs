//! The entries of the field registry, one per field of [`Settings`], in file order.

use super::{Access, Field};
use crate::config::{LrSchedule, ModelKind, PositionScheme, Settings};

fn always(_: &Settings) -> bool {
    true
}

fn transformer(s: &Settings) -> bool {
    s.model.kind == ModelKind::Transformer
}

/// `Access::Int` for a `usize` or `u64` field of a section.
macro_rules! int {
    ($section:ident . $field:ident, $min:expr, $max:expr) => {
        Access::Int {
            get: |s| s.$section.$field as u64,
            set: |s, v| s.$section.$field = v as _,
            min: $min,
            max: $max,
        }
    };
}

/// `Access::Float` for an `f64` field of a section.
macro_rules! float {
    ($section:ident . $field:ident, $min:expr, open_min = $open:expr, $max:expr) => {
        Access::Float {
            get: |s| s.$section.$field,
            set: |s, v| s.$section.$field = v,
            min: $min,
            open_min: $open,
            max: $max,
        }
    };
}

/// What most fields share; each entry says only where it differs.
const BASE: Field = Field {
    path: "",
    label: "",
    help: "",
    unit: "",
    access: Access::Structured,
    bounds_why: "",
    sweep: true,
    fork: false,
    applies: always,
};

/// Largest model dimension accepted (keeps a typo from allocating gigabytes).
pub const MAX_WIDTH: u64 = 4096;
/// Largest step count or interval (a typo guard, ~3 years at 1 step/s).
const MAX_STEPS: u64 = 100_000_000;

mod task;
pub use task::*;

/// `model.kind`
pub static MODEL_KIND: Field = Field {
    path: "model.kind",
    label: "model kind",
    help: "A pre-LN transformer encoder, or a stacked LSTM (the recurrent baseline)",
    access: Access::Choice {
        names: || vec!["transformer", "lstm"],
        get: |s| match s.model.kind {
            ModelKind::Transformer => "transformer",
            ModelKind::Lstm => "lstm",
        },
        set: |s, name| match name {
            "transformer" => s.model.kind = ModelKind::Transformer,
            "lstm" => s.model.kind = ModelKind::Lstm,
            _ => {}
        },
    },
    ..BASE
};

/// `model.layers`
pub static LAYERS: Field = Field {
    path: "model.layers",
    label: "layers",
    help: "Transformer blocks or LSTM layers",
    access: int!(model.layers, 1, 48),
    ..BASE
};

/// `model.heads`
pub static HEADS: Field = Field {
    path: "model.heads",
    label: "heads",
    help: "Attention heads per layer; must divide d_model",
    access: int!(model.heads, 1, MAX_WIDTH),
    applies: transformer,
    ..BASE
};

/// `model.d_model`
pub static D_MODEL: Field = Field {
    path: "model.d_model",
    label: "d_model",
    help: "Width of the residual stream (the LSTM's hidden size)",
    access: int!(model.d_model, 1, MAX_WIDTH),
    bounds_why: "keeps a typo from allocating gigabytes",
    ..BASE
};

/// `model.d_ff`
pub static D_FF: Field = Field {
    path: "model.d_ff",
    label: "d_ff",
    help: "Width of the feed-forward block (0: attention-only blocks, with no feed-forward block and no norm before it)",
    access: int!(model.d_ff, 0, 4 * MAX_WIDTH),
    bounds_why: "0 means attention-only blocks; the upper bound keeps a typo from allocating gigabytes",
    applies: transformer,
    ..BASE
};

/// `model.positions`
pub static POSITIONS: Field = Field {
    path: "model.positions",
    label: "positions",
    help: "How the transformer encodes positions: learned embeddings (one per position up to seq_len), sinusoidal (fixed, added), rope (q and k rotated per head, so scores depend on the offset only), alibi (each head's scores minus a fixed slope times the distance, Press et al.'s slopes) or none; only learned has no positions beyond seq_len",
    access: Access::Choice {
        names: || PositionScheme::ALL.iter().map(|k| k.name()).collect(),
        get: |s| s.model.positions.name(),
        set: |s, name| {
            if let Some(k) = PositionScheme::ALL.into_iter().find(|k| k.name() == name) {
                s.model.positions = k;
            }
        },
    },
    applies: transformer,
    ..BASE
};

/// `model.rope_base`
pub static ROPE_BASE: Field = Field {
    path: "model.rope_base",
    label: "rope_base",
    help: "RoPE: the base of the rotation frequencies (pair i of a head turns by position / base^(2i / head_dim))",
    access: float!(model.rope_base, 1.0, open_min = true, 1e12),
    bounds_why: "a base of 1 or less would turn every pair at the same or a growing rate",
    applies: |s| {
        s.model.kind == ModelKind::Transformer && s.model.positions == PositionScheme::Rope
    },
    ..BASE
};

/// `model.dropout`
pub static DROPOUT: Field = Field {
    path: "model.dropout",
    label: "dropout",
    help: "Dropout probability on the embeddings and on each block's attention and feed-forward outputs, in training steps only (evaluation, probes and snapshots never drop); the masks follow the seed and the step, so a resumed run drops as it would have",
    access: float!(model.dropout, 0.0, open_min = false, 0.9),
    bounds_why: "a probability; above 0.9 almost nothing reaches the next layer",
    fork: true,
    applies: transformer,
    ..BASE
};

/// `model.causal`
pub static CAUSAL: Field = Field {
    path: "model.causal",
    label: "causal",
    help: "A query sees only keys at or before it (required by the next-token tasks, text and markov)",
    access: Access::Bool {
        get: |s| s.model.causal,
        set: |s, v| s.model.causal = v,
    },
    applies: transformer,
    ..BASE
};

/// `model.attention`
pub static ATTENTION: Field = Field {
    path: "model.attention",
    label: "attention",
    help: "The attention pattern of every layer (see Attention patterns)",
    access: Access::Structured,
    applies: transformer,
    // The weights do not depend on it: a resumed or forked run may change it.
    fork: true,
    ..BASE
};

/// `model.layer_attention`
pub static LAYER_ATTENTION: Field = Field {
    path: "model.layer_attention",
    label: "a pattern per layer",
    help: "One pattern per layer, first layer first; overrides attention unless empty",
    access: Access::Structured,
    applies: transformer,
    // The weights do not depend on it: a resumed or forked run may change it.
    fork: true,
    ..BASE
};

/// `model.mixer`
pub static MIXER: Field = Field {
    path: "model.mixer",
    label: "token mixer",
    help: "What mixes tokens in every layer: attention (softmax under the pattern), linear (linear attention, elu+1), based (Taylor linear attention + a sliding window), conv (a gated long convolution) or ssm (a selective state space, Mamba's form); see Token mixers",
    access: Access::Structured,
    applies: transformer,
    ..BASE
};

/// `model.layer_mixers`
pub static LAYER_MIXERS: Field = Field {
    path: "model.layer_mixers",
    label: "a mixer per layer",
    help: "One token mixer per layer, first layer first (hybrids); overrides mixer unless empty",
    access: Access::Structured,
    applies: transformer,
    ..BASE
};

/// `model.ablated_heads`
pub static ABLATED_HEADS: Field = Field {
    path: "model.ablated_heads",
    label: "heads ablated for good",
    help: "Heads whose output is zero in training and evaluation, e.g. [\"1.2\"] (layer.head from 1.1); a fork may prune the heads ablation shows unneeded",
    access: Access::Structured,
    applies: transformer,
    // The weights keep their shapes: a resumed or forked run may change it.
    fork: true,
    ..BASE
};

/// `train.steps`
pub static STEPS: Field = Field {
    path: "train.steps",
    label: "steps",
    help: "Optimiser steps",
    unit: "steps",
    access: int!(train.steps, 1, MAX_STEPS),
    fork: true,
    ..BASE
};

/// `train.batch`
pub static BATCH: Field = Field {
    path: "train.batch",
    label: "batch",
    help: "Sequences per step",
    unit: "sequences",
    access: int!(train.batch, 1, 4096),
    fork: true,
    ..BASE
};

/// `train.lr`
pub static LR: Field = Field {
    path: "train.lr",
    label: "lr",
    help: "Adam's learning rate (e.g. 1e-3); with warmup and schedule, the peak rate",
    access: float!(train.lr, 0.0, open_min = true, 10.0),
    fork: true,
    ..BASE
};

/// `train.weight_decay`
pub static WEIGHT_DECAY: Field = Field {
    path: "train.weight_decay",
    label: "weight_decay",
    help: "Decoupled weight decay: AdamW when above 0 (each step multiplies every parameter by 1 - lr x weight_decay, lr that step's rate), plain Adam at 0",
    access: float!(train.weight_decay, 0.0, open_min = false, 1.0),
    bounds_why: "each step shrinks weights by lr x weight_decay",
    fork: true,
    ..BASE
};

/// `train.warmup`
pub static WARMUP: Field = Field {
    path: "train.warmup",
    label: "warmup",
    help: "Steps of linear warm-up: step s of the first warmup steps trains at lr x s / warmup (step 1 at lr / warmup), then the schedule takes over (0: none)",
    unit: "steps",
    access: int!(train.warmup, 0, MAX_STEPS),
    fork: true,
    ..BASE
};

/// `train.schedule`
pub static SCHEDULE: Field = Field {
    path: "train.schedule",
    label: "schedule",
    help: "The learning rate after the warm-up: constant, or a cosine or linear decay from lr to 0 at the last step (train.steps; a run extended with --steps stretches what is left of the decay)",
    access: Access::Choice {
        names: || LrSchedule::ALL.iter().map(|k| k.name()).collect(),
        get: |s| s.train.schedule.name(),
        set: |s, name| {
            if let Some(k) = LrSchedule::ALL.into_iter().find(|k| k.name() == name) {
                s.train.schedule = k;
            }
        },
    },
    fork: true,
    ..BASE
};

/// `train.grad_clip`
pub static GRAD_CLIP: Field = Field {
    path: "train.grad_clip",
    label: "grad_clip",
    help: "Clip the global gradient norm (all parameters together, as PyTorch's clip_grad_norm_): gradients whose norm is above this are scaled down to it (0: no clipping)",
    access: float!(train.grad_clip, 0.0, open_min = false, 1e6),
    bounds_why: "a norm; 0 turns clipping off",
    fork: true,
    ..BASE
};

/// `train.examples`
pub static EXAMPLES: Field = Field {
    path: "train.examples",
    label: "examples",
    help: "Train on a fixed set of this many examples, drawn once from the seed and reshuffled every epoch (batches taken in order); 0: fresh examples every step. Evaluation always uses fresh held-out examples",
    unit: "examples",
    access: int!(train.examples, 0, 10_000_000),
    bounds_why: "the set is kept in memory, about 20 bytes per token",
    ..BASE
};

/// `train.seed`
pub static SEED: Field = Field {
    path: "train.seed",
    label: "seed",
    help: "Seeds parameters, data and BigBird's random blocks",
    access: int!(train.seed, 0, i64::MAX as u64),
    bounds_why: "TOML integers are signed 64-bit",
    ..BASE
};

/// `train.seeds`
pub static SEEDS: Field = Field {
    path: "train.seeds",
    label: "seeds",
    help: "Train each run once per seed, replicates grouped in the results (empty: seed)",
    access: Access::Structured,
    sweep: false,
    ..BASE
};

/// `train.solved_at`
pub static SOLVED_AT: Field = Field {
    path: "train.solved_at",
    label: "solved_at",
    help: "The held-out accuracy at which a run counts as having solved its task",
    access: float!(train.solved_at, 0.0, open_min = false, 1.0),
    bounds_why: "an accuracy",
    fork: true,
    ..BASE
};

/// `train.eval_every`
pub static EVAL_EVERY: Field = Field {
    path: "train.eval_every",
    label: "eval_every",
    help: "Evaluate on fresh held-out batches every this many steps (0: only at the end)",
    unit: "steps",
    access: int!(train.eval_every, 0, MAX_STEPS),
    fork: true,
    ..BASE
};

/// `train.eval_batches`
pub static EVAL_BATCHES: Field = Field {
    path: "train.eval_batches",
    label: "eval_batches",
    help: "Batches per evaluation (the held-out set is generated once and kept)",
    unit: "batches",
    access: int!(train.eval_batches, 1, u64::MAX),
    ..BASE
};

/// `train.eval_lengths`
pub static EVAL_LENGTHS: Field = Field {
    path: "train.eval_lengths",
    label: "eval_lengths",
    help: "Other sequence lengths each evaluation also scores, e.g. [128, 256, 512]: held-out examples generated at each (recall keeps its distance, MQAR its pairs), sparse patterns planned for each, curves and distance buckets per length; at most 8, none equal to task.seq_len, each one the task and patterns allow. Learned positions have none beyond task.seq_len: a longer length needs model.positions other than learned",
    unit: "tokens",
    access: Access::Structured,
    bounds_why: "each from 2 to 8192, like task.seq_len; the memory budget covers evaluating at the longest",
    sweep: false,
    // Evaluation only: the weights and the training data do not depend on it.
    fork: true,
    ..BASE
};

/// `train.snapshot_every`
pub static SNAPSHOT_EVERY: Field = Field {
    path: "train.snapshot_every",
    label: "snapshot_every",
    help: "Record the probe example's attention every this many steps (0: only at the end)",
    unit: "steps",
    access: int!(train.snapshot_every, 0, MAX_STEPS),
    fork: true,
    ..BASE
};

/// `train.checkpoint_every`
pub static CHECKPOINT_EVERY: Field = Field {
    path: "train.checkpoint_every",
    label: "checkpoint_every",
    help: "Save the model and optimiser state every this many steps, so an interrupted run can be resumed (0: only when stopped and at the end)",
    unit: "steps",
    access: int!(train.checkpoint_every, 0, MAX_STEPS),
    fork: true,
    ..BASE
};

/// `train.keep_checkpoints`
pub static KEEP_CHECKPOINTS: Field = Field {
    path: "train.keep_checkpoints",
    label: "keep_checkpoints",
    help: "Keep the model weights of earlier checkpoints as checkpoint/kept/<step>.bpk, to look at or fork from a run at those steps: \"all\", or a count N (the latest N, the oldest deleted first); \"latest\" or left out keeps only the latest checkpoint, the one a resume continues from. The optimiser state is kept for the latest checkpoint only",
    access: Access::Structured,
    bounds_why: "a count of at least 1; each kept step costs one model file (about 4 bytes per parameter), and checkpoint_every and steps say how many checkpoints there are",
    sweep: false,
    fork: true,
    ..BASE
};

/// `train.backend`
pub static BACKEND: Field = Field {
    path: "train.backend",
    label: "backend",
    help: "auto, cpu, wgpu, or { remote = \"ws://host:port\" } (a list of addresses: a pool)",
    access: Access::Structured,
    fork: true,
    ..BASE
};

/// Every field, in file order (the editor's and docs/experiments.md's order).
pub static FIELDS: &[&Field] = &[
    &TASK_KIND,
    &SEQ_LEN,
    &VOCAB,
    &DISTANCE,
    &PAIRS,
    &TOKENS,
    &FILE,
    &POWER_A,
    &RANDOM_FILL,
    &VARY_DISTANCE,
    &MODEL_KIND,
    &LAYERS,
    &HEADS,
    &D_MODEL,
    &D_FF,
    &DROPOUT,
    &POSITIONS,
    &ROPE_BASE,
    &CAUSAL,
    &ATTENTION,
    &LAYER_ATTENTION,
    &MIXER,
    &LAYER_MIXERS,
    &ABLATED_HEADS,
    &STEPS,
    &BATCH,
    &LR,
    &WEIGHT_DECAY,
    &WARMUP,
    &SCHEDULE,
    &GRAD_CLIP,
    &EXAMPLES,
    &SEED,
    &SEEDS,
    &SOLVED_AT,
    &EVAL_EVERY,
    &EVAL_BATCHES,
    &EVAL_LENGTHS,
    &SNAPSHOT_EVERY,
    &CHECKPOINT_EVERY,
    &KEEP_CHECKPOINTS,
    &BACKEND,
];
