//! Masked dense attention: the reference computation every pattern can use.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor};

use super::SparseAttention;

/// How each layer attends, built once per run (see [`super::layer_masks`]).
#[derive(Clone, Debug, Default)]
pub struct LayerMasks {
    /// Per layer, the hidden (query, key) pairs `[1, 1, seq, seq]` (`true` = hidden),
    /// or `None` for dense layers: the reference computation, used for the attention
    /// weights of snapshots.
    pub masks: Vec<Option<Tensor<4, Bool>>>,
    /// Per layer, the block-sparse computation used for training and evaluation, or
    /// `None` where the reference is used (dense layers, or sparse computation off).
    pub sparse: Vec<Option<SparseAttention>>,
}

impl LayerMasks {
    /// The mask of layer `l` (`None` beyond the last layer too).
    pub fn layer(&self, l: usize) -> Option<&Tensor<4, Bool>> {
        self.masks.get(l).and_then(Option::as_ref)
    }

    /// The sparse computation of layer `l`, if it has one.
    pub fn sparse(&self, l: usize) -> Option<&SparseAttention> {
        self.sparse.get(l).and_then(Option::as_ref)
    }

    /// Attention output of layer `l`: block-sparse where available, else the masked
    /// reference.
    ///
    /// # Shapes
    /// `q`, `k`, `v`: `[batch, heads, seq, head_dim]` → same.
    pub fn attend(&self, l: usize, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        match self.sparse(l) {
            Some(sparse) => sparse.forward(q, k, v),
            None => masked_attention(q, k, v, self.layer(l)).0,
        }
    }
}

/// Scaled dot-product attention with a blocking mask.
///
/// Returns the output and the attention weights. Hidden pairs get `-inf` before the
/// softmax, so their weight is exactly zero; every pattern lets a query see itself,
/// so no row is empty.
///
/// # Shapes
/// `q`: `[batch, heads, rows, head_dim]`, `k`, `v`: `[batch, heads, seq, head_dim]`;
/// `blocked`: `[1, 1, rows, seq]`. Output `[batch, heads, rows, head_dim]`, weights
/// `[batch, heads, rows, seq]` (`rows` is `seq` except for the global rows of a
/// sparse layout).
pub fn masked_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    blocked: Option<&Tensor<4, Bool>>,
) -> (Tensor<4>, Tensor<4>) {
    let [_, _, _, head_dim] = q.dims();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    let dims = scores.dims();
    let scores = match blocked {
        Some(mask) => scores.mask_fill(mask.clone().expand(dims), f32::NEG_INFINITY),
        None => scores,
    };
    let weights = softmax(scores, 3);
    (weights.clone().matmul(v), weights)
}
