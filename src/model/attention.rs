//! Masked dense attention: the reference computation every pattern can use.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor};

/// Per layer, the blocked (query, key) pairs `[1, 1, seq, seq]` (`true` = hidden), or
/// `None` for dense layers. Built once per run (see [`super::layer_masks`]).
#[derive(Clone, Debug, Default)]
pub struct LayerMasks {
    /// One entry per layer.
    pub masks: Vec<Option<Tensor<4, Bool>>>,
}

impl LayerMasks {
    /// The mask of layer `l` (`None` beyond the last layer too).
    pub fn layer(&self, l: usize) -> Option<&Tensor<4, Bool>> {
        self.masks.get(l).and_then(Option::as_ref)
    }
}

/// Scaled dot-product attention with a blocking mask.
///
/// Returns the output and the attention weights. Hidden pairs get `-inf` before the
/// softmax, so their weight is exactly zero; every pattern lets a query see itself,
/// so no row is empty.
///
/// # Shapes
/// `q`, `k`, `v`: `[batch, heads, seq, head_dim]`; `blocked`: `[1, 1, seq, seq]`.
/// Output `[batch, heads, seq, head_dim]`, weights `[batch, heads, seq, seq]`.
pub fn masked_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    blocked: Option<&Tensor<4, Bool>>,
) -> (Tensor<4>, Tensor<4>) {
    let [batch, heads, seq, head_dim] = q.dims();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    let scores = match blocked {
        Some(mask) => scores.mask_fill(
            mask.clone().expand([batch, heads, seq, seq]),
            f32::NEG_INFINITY,
        ),
        None => scores,
    };
    let weights = softmax(scores, 3);
    (weights.clone().matmul(v), weights)
}
