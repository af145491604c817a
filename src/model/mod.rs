//! The burn models: a pre-LN transformer whose layers each use one attention pattern,
//! and an LSTM baseline.
//!
//! Both map tokens `[batch, seq]` to logits `[batch, seq, vocab]`. Attention is
//! computed here as masked dense attention (the reference computation); the pattern
//! itself comes from [`crate::attention`].

mod attention;
mod loss;
mod lstm;
mod transformer;

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor};

pub use attention::{LayerMasks, masked_attention};
pub use loss::masked_cross_entropy;
pub use lstm::LstmNet;
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

/// Builds the boolean masks of a run on `device`: `true` where attention is *blocked*,
/// `None` for a layer that sees everything.
pub fn layer_masks(plan: &RunPlan, device: &Device) -> LayerMasks {
    let n = plan.settings.task.seq_len;
    let masks = plan
        .layer_masks()
        .into_iter()
        .map(|mask| {
            if mask.attended_pairs() == n * n {
                return None;
            }
            let blocked: Vec<bool> = mask.as_slice().iter().map(|v| !v).collect();
            let data = burn::tensor::TensorData::new(blocked, [1, 1, n, n]);
            Some(Tensor::<4, Bool>::from_data(data, device))
        })
        .collect();
    LayerMasks { masks }
}
