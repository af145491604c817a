//! Attention patterns: which keys each query may see.
//!
//! A pattern is pure data ([`AttentionPattern`]); it yields a boolean [`Mask`] for a
//! sequence length, and how attention is *computed* for it lives elsewhere (the
//! masked-dense reference in `model`). Keeping the definition apart from the
//! computation lets an efficient kernel be checked against the plain mask.
//!
//! One file per pattern family: `local` (local, dilated), `sparse_transformer`
//! (strided, fixed), `blockwise` (block, BigBird), `longformer`.

mod blockwise;
mod layout;
mod local;
mod longformer;
mod mask;
mod pattern;
mod reach;
mod sparse_transformer;

pub use blockwise::BigBirdLayout;
pub use layout::{
    BlockComponent, PAD, SharedComponent, SparseLayout, sparse_pays_off, trained_pairs,
};
pub use mask::Mask;
pub use pattern::{AttentionPattern, MAX_PARAM, PATTERN_KINDS, PatternError};
pub use reach::{Reach, compose};
