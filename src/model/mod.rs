//! The burn models: a pre-LN transformer whose layers each use one attention pattern,
//! and an LSTM baseline.
//!
//! Both map tokens `[batch, seq]` to logits `[batch, seq, vocab]`. Training
//! computes sparse patterns block-sparsely ([`SparseAttention`]: only the blocks the
//! pattern's layout turns on); masked dense attention ([`masked_attention`]) is the
//! reference, used for dense layers and for the probe's attention weights. The pattern
//! itself comes from [`crate::attention`].

mod attention;
mod loss;
mod lstm;
mod sparse;
mod transformer;

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor};

pub use attention::{LayerMasks, attention_output, masked_attention};
pub use loss::masked_cross_entropy;
pub use lstm::LstmNet;
pub use sparse::SparseAttention;
pub use transformer::Transformer;

use crate::config::RunPlan;

/// What the trainer needs of a model.
pub trait SequenceModel: Module + Sized {
    /// Logits for every position.
    ///
    /// # Shapes
    /// `tokens`: `[batch, seq]` → `[batch, seq, vocab]`.
    fn forward(&self, tokens: Tensor<2, Int>, masks: &LayerMasks) -> Tensor<3>;

    /// Logits and, per layer, the attention weights `[batch, heads, seq, seq]`
    /// (empty for models without attention).
    fn forward_with_attention(
        &self,
        tokens: Tensor<2, Int>,
        masks: &LayerMasks,
    ) -> (Tensor<3>, Vec<Tensor<4>>);
}

/// Builds how each layer of a run attends, on `device`: the masked reference (`true`
/// where attention is *hidden*, `None` for a layer that sees everything) and, when
/// `sparse`, the block-sparse computation of every pattern that has one.
pub fn layer_masks(plan: &RunPlan, device: &Device) -> LayerMasks {
    layer_masks_with(plan, device, true)
}

/// Whether gathering blocks pays off: only when it skips at least half of the `n^2`
/// pairs. Otherwise (short sequences, wide windows) masked dense attention is as fast
/// or faster (measured on W2: local w=64 at n = 256 computes 75% of the pairs and is
/// 6% slower block-sparse than masked dense; at n = 512, 38% and 1.6x faster).
pub fn sparse_pays_off(computed_pairs: usize, n: usize) -> bool {
    computed_pairs * 2 <= n * n
}

/// [`layer_masks`] with the block-sparse computation on or off (on, it is used only
/// where it [pays off](sparse_pays_off)).
pub fn layer_masks_with(plan: &RunPlan, device: &Device, sparse: bool) -> LayerMasks {
    let n = plan.settings.task.seq_len;
    let seed = plan.settings.train.seed;
    let mut out = LayerMasks::default();
    for (l, (pattern, mask)) in plan
        .layer_patterns()
        .iter()
        .zip(plan.layer_masks())
        .enumerate()
    {
        if mask.attended_pairs() == n * n {
            out.masks.push(None);
            out.sparse.push(None);
            continue;
        }
        let blocked: Vec<bool> = mask.as_slice().iter().map(|v| !v).collect();
        let data = burn::tensor::TensorData::new(blocked, [1, 1, n, n]);
        out.masks
            .push(Some(Tensor::<4, Bool>::from_data(data, device)));
        out.sparse.push(if sparse {
            SparseAttention::new(pattern, &mask, seed.wrapping_add(l as u64), device)
                .filter(|s| sparse_pays_off(s.computed_pairs(), n))
        } else {
            None
        });
    }
    out
}
