//! Attention patterns: which keys each query may see.
//!
//! A pattern is pure data ([`AttentionPattern`]); it yields a boolean [`Mask`] for a
//! sequence length, and how attention is *computed* for it lives elsewhere (the
//! masked-dense reference in `model`). Keeping the definition apart from the
//! computation lets an efficient kernel be checked against the plain mask.
//!
//! One file per pattern family: `local` (local, dilated), `sparse_transformer`
//! (strided, fixed), `blockwise` (block, BigBird), `longformer`, and `custom` (a
//! mask written as an expression over `q`, `k` and `n`, parsed by `expr_parser` into
//! `expr`'s tree, which is evaluated only when a mask is built). Beside them, what
//! attention does rather than may do: `stats` (a head's mean distance, entropy,
//! dependency, previous-token, induction and global scores, mask usage) and
//! `rollout` (the learned receptive field through the layers), next to `reach` (the
//! structural one).

mod blockwise;
mod custom;
mod expr;
mod expr_parser;
mod layout;
mod local;
mod longformer;
mod mask;
mod pattern;
mod reach;
mod rollout;
mod sparse_transformer;
mod stats;

pub use blockwise::BigBirdLayout;
pub use custom::{DEFAULT_MASK, MaskFault};
pub use expr::{DivisionByZero, Expr, ExprError};
pub use layout::{
    BlockComponent, PAD, SharedComponent, SparseLayout, sparse_pays_off, trained_pairs,
};
pub use mask::Mask;
pub use pattern::{AttentionPattern, MAX_PARAM, PATTERN_KINDS, PatternError};
pub use reach::{Reach, compose};
pub use rollout::{mean_over_heads, rollout, rollout_row};
pub use stats::{HeadStats, Stat, StatsContext, head_stats, jumps, spearman};
