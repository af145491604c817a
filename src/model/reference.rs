//! Masked dense attention: the reference computation every pattern can use, and
//! the one that also returns the attention weights (for the probe's snapshots). Each
//! has a `_with_bias` form that adds a score bias before the mask (ALiBi's,
//! [`super::Alibi::bias_tensor`]).

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Tensor};

/// The output of [`masked_attention`] without its weights, computed the cheaper way
/// training wants: the scale is applied to `q` (`n x d`, not `n x n`), the row maximum
/// is detached (the result does not depend on it, so no backward pass through `max`),
/// and the normalisation divides the `n x d` output instead of the `n x n` weights:
/// `out = (exp(s - m) @ v) / sum(exp(s - m))`. Equal to the reference within float
/// error, forward and backward (`tests/sparse.rs`); ~25% faster per W1 step here.
///
/// # Shapes
/// As [`masked_attention`]; returns `[batch, heads, rows, head_dim]`.
pub fn attention_output(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    blocked: Option<&Tensor<4, Bool>>,
) -> Tensor<4> {
    attention_output_with_bias(q, k, v, blocked, None)
}

/// [`attention_output`] with `bias` added to the scaled scores before the mask:
/// `softmax(q k^T / sqrt(d) + bias)` over the visible keys.
///
/// # Shapes
/// As [`masked_attention`]; `bias` broadcasts to the scores `[batch, heads, rows,
/// seq]` (ALiBi's is `[1, heads, rows, seq]`).
pub fn attention_output_with_bias(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    blocked: Option<&Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
) -> Tensor<4> {
    let [_, _, _, head_dim] = q.dims();
    let q = q.mul_scalar(1.0 / (head_dim as f64).sqrt());
    let scores = q.matmul(k.swap_dims(2, 3));
    let scores = bias_and_block(scores, blocked, bias);
    let m = scores.clone().max_dim(3).detach();
    let p = (scores - m).exp();
    let l = p.clone().sum_dim(3);
    p.matmul(v) / l
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
    masked_attention_with_bias(q, k, v, blocked, None)
}

/// [`masked_attention`] with `bias` added to the scaled scores before the mask (the
/// weights are `softmax(q k^T / sqrt(d) + bias)` over the visible keys).
///
/// # Shapes
/// As [`masked_attention`]; `bias` broadcasts to the scores `[batch, heads, rows,
/// seq]` (ALiBi's is `[1, heads, rows, seq]`).
pub fn masked_attention_with_bias(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    blocked: Option<&Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
) -> (Tensor<4>, Tensor<4>) {
    let [_, _, _, head_dim] = q.dims();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale);
    let scores = bias_and_block(scores, blocked, bias);
    let weights = softmax(scores, 3);
    (weights.clone().matmul(v), weights)
}

/// `scores` with `bias` added (broadcast) and the `blocked` pairs set to `-inf`.
fn bias_and_block(
    scores: Tensor<4>,
    blocked: Option<&Tensor<4, Bool>>,
    bias: Option<Tensor<4>>,
) -> Tensor<4> {
    let scores = match bias {
        Some(bias) => scores + bias,
        None => scores,
    };
    match blocked {
        Some(mask) => {
            let dims = scores.dims();
            scores.mask_fill(mask.clone().expand(dims), f32::NEG_INFINITY)
        }
        None => scores,
    }
}
