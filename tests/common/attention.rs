//! Attention patterns for the tests: custom masks, the hidden pairs as the reference
//! attention takes them, and proptest strategies over the built-in patterns.

use attnlab::attention::{AttentionPattern, Mask};
use burn::tensor::{Bool, Device, Tensor, TensorData};
use proptest::prelude::*;

/// A custom pattern: the mask written as an expression over `q`, `k` and `n`.
pub fn custom(mask: &str) -> AttentionPattern {
    AttentionPattern::Custom { mask: mask.into() }
}

/// The pairs `mask` hides, as the `[1, 1, n, n]` tensor masked attention takes.
pub fn hidden(mask: &Mask, device: &Device) -> Tensor<4, Bool> {
    let n = mask.n();
    let hidden: Vec<bool> = mask.as_slice().iter().map(|v| !v).collect();
    Tensor::from_data(TensorData::new(hidden, [1, 1, n, n]), device)
}

/// Every built-in pattern with any parameters, valid or not (zero windows, blocks
/// that divide nothing): what a file may hold.
pub fn any_pattern() -> impl Strategy<Value = AttentionPattern> {
    prop_oneof![
        Just(AttentionPattern::Dense),
        (0usize..100).prop_map(|window| AttentionPattern::Local { window }),
        (0usize..10, 0usize..5)
            .prop_map(|(window, dilation)| AttentionPattern::Dilated { window, dilation }),
        (0usize..64).prop_map(|stride| AttentionPattern::Strided { stride }),
        (0usize..64, 0usize..9)
            .prop_map(|(block, summary)| AttentionPattern::Fixed { block, summary }),
        (0usize..64).prop_map(|size| AttentionPattern::Block { size }),
        (0usize..64, 0usize..8)
            .prop_map(|(window, global)| AttentionPattern::Longformer { window, global }),
        (1usize..64, 0usize..6, 0usize..4, 0usize..4).prop_map(
            |(block, window_blocks, global_blocks, random_blocks)| {
                AttentionPattern::BigBird {
                    block,
                    window_blocks,
                    global_blocks,
                    random_blocks,
                }
            }
        ),
    ]
}

/// The (exclusive) upper bounds of what [`valid_pattern`] draws.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Local windows: 1..local.
    pub local: usize,
    /// Strides: 2..stride.
    pub stride: usize,
    /// Longformer windows: 1..longformer (global tokens 0..6).
    pub longformer: usize,
    /// Whether the patterns on whole blocks (block, fixed, BigBird) are drawn too:
    /// their block must divide the length.
    pub on_blocks: bool,
}

/// Valid built-in patterns within `bounds`: dense, local, dilated, strided and
/// Longformer, then, `on_blocks`, block, fixed and BigBird.
pub fn valid_pattern(bounds: Bounds) -> BoxedStrategy<AttentionPattern> {
    let dense = Just(AttentionPattern::Dense);
    let local = (1usize..bounds.local).prop_map(|window| AttentionPattern::Local { window });
    let dilated = (1usize..5, 1usize..4)
        .prop_map(|(window, dilation)| AttentionPattern::Dilated { window, dilation });
    let strided = (2usize..bounds.stride).prop_map(|stride| AttentionPattern::Strided { stride });
    let longformer = (1usize..bounds.longformer, 0usize..6)
        .prop_map(|(window, global)| AttentionPattern::Longformer { window, global });
    if !bounds.on_blocks {
        return prop_oneof![dense, local, dilated, strided, longformer].boxed();
    }
    prop_oneof![
        dense,
        local,
        dilated,
        strided,
        longformer,
        (2usize..20).prop_map(|size| AttentionPattern::Block { size }),
        (2usize..20, 1usize..4).prop_map(|(block, summary)| AttentionPattern::Fixed {
            block,
            summary: summary.min(block)
        }),
        (2usize..12, 0usize..2, 0usize..2, 0usize..3).prop_map(|(block, w, g, r)| {
            AttentionPattern::BigBird {
                block,
                window_blocks: 1 + 2 * w,
                global_blocks: g,
                random_blocks: r,
            }
        }),
    ]
    .boxed()
}
