//! RoPE on the packed q|k|v projection as one fused CPU operation with its own
//! backward, where burn composes two slices, a negation, a concatenation and two
//! products (and their backward) on q and k, after tables computed on the host at
//! every call.
//!
//! The layout is [`crate::model::positions::rope_qkv`]'s: `[batch, n, 3 d_model]`, q
//! then k then v, each `heads` heads of `head_dim` contiguous columns; in a head, pair
//! `i` is dimension `i` with `i + head_dim / 2` (GPT-NeoX's "rotate half") and turns
//! by `position * base^(-2i / head_dim)`. The forward turns q and k and copies v, in
//! the composed path's arithmetic (same `f64` tables, same `f32` products and sums),
//! so both give the same values; the backward turns q's and k's gradients back (angle
//! `-θ`) and passes v's through. Rows are split over rayon's threads; the tables are
//! computed once per `(n, head_dim, base)` and kept.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex, PoisonError};

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops},
};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::uninit::written;
use super::{Op, applies, f32_data, flex_from, slice};

/// Values per parallel work item (whole rows).
const GRAIN: usize = 1 << 14;

/// Tables kept at once: one per training length and evaluation length in use, for
/// two runs side by side (each table is `n x head_dim` floats: 2 MB at 8192 x 64).
const CACHED: usize = 2 * (crate::config::MAX_EVAL_LENGTHS + 1);

/// RoPE on packed q|k|v.
#[backend_extension(Flex, Autodiff)]
pub trait FusedRope: Backend {
    /// `qkv` `[batch, n, 3 * heads * head_dim]` with q and k turned by their
    /// positions and v copied.
    fn fused_rope(qkv: FloatTensor<Self>, heads: usize, base: f64) -> FloatTensor<Self>;
    /// The gradient of `qkv` from the output's gradient `grad` (same shape): q's and
    /// k's turned back, v's copied.
    fn fused_rope_backward(grad: FloatTensor<Self>, heads: usize, base: f64) -> FloatTensor<Self>;
}

/// Whether `width` columns split into q|k|v of `heads` heads of even, non-zero width.
fn splits(width: usize, heads: usize) -> bool {
    let d_model = width / 3;
    heads > 0
        && d_model > 0
        && width.is_multiple_of(3)
        && d_model.is_multiple_of(heads)
        && (d_model / heads).is_multiple_of(2)
}

/// `qkv` `[batch, n, 3 d_model]` with q and k turned by RoPE (`base`), fused on the CPU
/// backend; `None` where the fused operation does not apply (another device, fused
/// attention off, `qkv` not q|k|v of `heads` heads of even width), for the caller to
/// compose it.
pub fn fused_rope_qkv(qkv: &Tensor<3>, heads: usize, base: f64) -> Option<Tensor<3>> {
    if !splits(qkv.dims()[2], heads) || !applies(Op::Attention, qkv) {
        return None;
    }
    Some(Tensor::from_dispatch(<Dispatch as FusedRope>::fused_rope(
        qkv.clone().into_dispatch(),
        heads,
        base,
    )))
}

/// RoPE's angle of pair `i` (of `head_dim / 2`) at position `pos`:
/// `pos * base^(-2i / head_dim)`, in `f64` (the fused op's tables and the composed
/// path's use this one expression, so both give the same values).
pub fn rope_angle(pos: usize, i: usize, head_dim: usize, base: f64) -> f64 {
    pos as f64 * base.powf(-2.0 * i as f64 / head_dim as f64)
}

/// RoPE's cosines and sines for positions `0..n`, `[n, head_dim / 2]` each.
#[derive(Debug)]
struct Tables {
    n: usize,
    head_dim: usize,
    base: u64,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Tables {
    /// Pair `i` at position `p` turns by `p * base^(-2i / head_dim)`, computed in `f64`
    /// by [`rope_angle`], as [`crate::model::positions::rope_tables`] does.
    fn new(n: usize, head_dim: usize, base: f64) -> Self {
        let half = head_dim / 2;
        let (mut cos, mut sin) = (Vec::with_capacity(n * half), Vec::with_capacity(n * half));
        for pos in 0..n {
            for i in 0..half {
                let angle = rope_angle(pos, i, head_dim, base);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Self {
            n,
            head_dim,
            base: base.to_bits(),
            cos,
            sin,
        }
    }
}

/// The tables for `(n, head_dim, base)`, computed on first use and kept (the
/// [`CACHED`] used last).
fn tables(n: usize, head_dim: usize, base: f64) -> Arc<Tables> {
    static CACHE: Mutex<Vec<Arc<Tables>>> = Mutex::new(Vec::new());
    // A panic elsewhere while the lock was held leaves whole entries only.
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let key = (n, head_dim, base.to_bits());
    if let Some(at) = cache.iter().position(|t| (t.n, t.head_dim, t.base) == key) {
        // Last used goes last, so the training length's tables stay while
        // evaluations at other lengths come and go.
        let found = cache.remove(at);
        cache.push(found.clone());
        return found;
    }
    let made = Arc::new(Tables::new(n, head_dim, base));
    if cache.len() >= CACHED {
        cache.remove(0);
    }
    cache.push(made.clone());
    made
}

/// One head's `x` turned into `y` by the angles whose cosines and sines are `cos`
/// and `sin` (`BACK`: by their negatives). Writes every `y` when `x` and `y` have
/// twice the length of `cos` and `sin`.
#[inline(always)]
fn turn_head<const BACK: bool>(x: &[f32], y: &mut [MaybeUninit<f32>], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    let (x1, x2) = x.split_at(half);
    let (y1, y2) = y.split_at_mut(half);
    for ((((y1, y2), (&a, &b)), &c), &s) in y1
        .iter_mut()
        .zip(y2.iter_mut())
        .zip(x1.iter().zip(x2))
        .zip(cos)
        .zip(sin)
    {
        let s = if BACK { -s } else { s };
        // The composed path's `x * cos + cat(-x2, x1) * sin`, term by term.
        y1.write(a * c - b * s);
        y2.write(b * c + a * s);
    }
}

/// `x`, whole `[n, 3 d_model]` sequences of q|k|v rows, with each q and k head turned
/// by its row's position (`BACK`: turned back) and v copied.
///
/// # Panics
/// When `x` is not whole sequences, the head width is odd or zero, or the tables are
/// not for `n` positions of this head width.
fn turn<const BACK: bool>(x: &[f32], n: usize, heads: usize, tables: &Tables) -> Vec<f32> {
    let head_dim = tables.head_dim;
    let half = head_dim / 2;
    let d_model = heads
        .checked_mul(head_dim)
        .filter(|d| d.checked_mul(3).is_some());
    let Some(d_model) = d_model.filter(|_| head_dim > 0 && head_dim.is_multiple_of(2)) else {
        panic!("fused rope: {heads} heads of width {head_dim} do not turn in pairs");
    };
    let width = 3 * d_model;
    assert!(
        tables.n == n && tables.cos.len() == n * half && tables.sin.len() == n * half,
        "fused rope: the tables are not for {n} positions of {half} pairs"
    );
    assert!(
        n.checked_mul(width)
            .is_some_and(|seq| seq > 0 && x.len().is_multiple_of(seq)),
        "fused rope: {} values are not whole sequences of {n} rows of {width}",
        x.len()
    );
    let per = (GRAIN / width).max(1);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(per * width)
            .zip(x.par_chunks(per * width))
            .enumerate()
            .for_each(|(item, (y, x))| {
                for (r, (y, x)) in y.chunks_mut(width).zip(x.chunks(width)).enumerate() {
                    let pos = (item * per + r) % n;
                    let cos = &tables.cos[pos * half..(pos + 1) * half];
                    let sin = &tables.sin[pos * half..(pos + 1) * half];
                    let (y_qk, y_v) = y.split_at_mut(2 * d_model);
                    let (x_qk, x_v) = x.split_at(2 * d_model);
                    for (y, x) in y_qk.chunks_mut(head_dim).zip(x_qk.chunks(head_dim)) {
                        turn_head::<BACK>(x, y, cos, sin);
                    }
                    for (y, &x) in y_v.iter_mut().zip(x_v) {
                        y.write(x);
                    }
                }
            })
    };
    // SAFETY: `y` and `x` have the same length, a multiple of `width` (asserted), so
    // their chunks pair up with equal lengths made of whole rows of `width`. In each
    // row the q|k part is `2 heads` heads of `head_dim` (even), each written in full
    // by `turn_head` (its `cos` and `sin` are `half` long: asserted table lengths), and
    // the v part is copied in full: every element is written.
    unsafe { written(x.len(), fill) }
}

/// `(n, heads)` of a packed q|k|v tensor `[batch, n, 3 d_model]`, and its head width.
///
/// # Panics
/// When the tensor is not 3-D or its columns do not split into q|k|v of `heads`
/// heads of even width.
fn rope_dims(what: &str, qkv: &FlexTensor, heads: usize) -> (usize, usize) {
    let shape = qkv.shape();
    let &[_, n, width] = shape.as_slice() else {
        panic!("{what}: qkv is [batch, n, 3 d_model], got {shape:?}");
    };
    assert!(
        splits(width, heads),
        "{what}: {width} columns do not split into q|k|v of {heads} heads of even width"
    );
    (n, width / 3 / heads)
}

/// The fused operation's forward (`BACK = false`) or backward on `Flex`.
fn turn_flex<const BACK: bool>(x: FlexTensor, heads: usize, base: f64) -> FlexTensor {
    let (n, head_dim) = rope_dims("fused rope", &x, heads);
    let shape = x.shape();
    if shape.num_elements() == 0 {
        return flex_from(Vec::new(), shape);
    }
    let x = f32_data(x);
    let tables = tables(n, head_dim, base);
    flex_from(turn::<BACK>(slice(&x), n, heads, &tables), shape)
}

impl FusedRope for Flex {
    fn fused_rope(qkv: FlexTensor, heads: usize, base: f64) -> FlexTensor {
        turn_flex::<false>(qkv, heads, base)
    }

    fn fused_rope_backward(grad: FlexTensor, heads: usize, base: f64) -> FlexTensor {
        turn_flex::<true>(grad, heads, base)
    }
}

impl<B: FusedRope, C: CheckpointStrategy> FusedRope for Autodiff<B, C> {
    fn fused_rope(qkv: FloatTensor<Self>, heads: usize, base: f64) -> FloatTensor<Self> {
        /// The backward needs no tensor: the rotation is linear.
        #[derive(Debug)]
        struct RopeBackward {
            heads: usize,
            base: f64,
        }

        impl<B: FusedRope> Backward<B, 1> for RopeBackward {
            type State = ();

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    let dqkv = B::fused_rope_backward(grad, self.heads, self.base);
                    grads.register::<B>(node.id, dqkv);
                }
            }
        }

        let prep = RopeBackward { heads, base }
            .prepare::<C>([qkv.node()])
            .compute_bound();
        prep.stateless(B::fused_rope(qkv.into_primitive(), heads, base))
    }

    fn fused_rope_backward(grad: FloatTensor<Self>, heads: usize, base: f64) -> FloatTensor<Self> {
        // The gradient itself, not recorded: no second-order gradients.
        let dqkv = B::fused_rope_backward(grad.into_primitive(), heads, base);
        <Self as AutodiffBackend>::from_inner(dqkv)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution};

    use super::*;
    use crate::model::positions::rope_qkv_composed;

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32")
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol + tol * y.abs(),
                "{what}[{i}]: fused {x} vs composed {y}"
            );
        }
    }

    /// The fused operation itself, whatever `ATTNLAB_FUSED` says.
    fn fused(qkv: Tensor<3>, heads: usize, base: f64) -> Tensor<3> {
        Tensor::from_dispatch(<Dispatch as FusedRope>::fused_rope(
            qkv.into_dispatch(),
            heads,
            base,
        ))
    }

    /// `(batch, n, heads, head_dim, base)`: single rows and pairs, positions that
    /// straddle the parallel work items (`GRAIN / width` rows does not divide `n`),
    /// W1's shape, bases small and large.
    const SHAPES: [(usize, usize, usize, usize, f64); 6] = [
        (1, 1, 1, 2, 10_000.0),
        (2, 5, 2, 4, 50.0),
        (3, 7, 3, 6, 1.5),
        (3, 64, 4, 32, 10_000.0),
        (2, 256, 4, 32, 10_000.0),
        (1, 33, 1, 128, 500_000.0),
    ];

    #[test]
    fn fused_rope_equals_the_composed_one_forward_and_backward() {
        let device = Device::flex().autodiff();
        for (seed, (batch, n, heads, head_dim, base)) in SHAPES.into_iter().enumerate() {
            let tag = format!("b={batch} n={n} h={heads} d={head_dim} base={base}");
            let shape = [batch, n, 3 * heads * head_dim];
            device.seed(seed as u64);
            let x0 = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.5), &device);
            let weight = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
                let x = x0.clone().detach().require_grad();
                let y = f(x.clone());
                let grads = (y.clone() * weight.clone()).sum().backward();
                (values(y), values(x.grad(&grads).expect("gradient")))
            };
            let (y1, g1) = run(&|x| fused(x, heads, base));
            let (y2, g2) = run(&|x| rope_qkv_composed(x, heads, base));
            close(&y1, &y2, 1e-6, &format!("{tag} value"));
            close(&g1, &g2, 1e-5, &format!("{tag} gradient"));
            // Untracked (no gradient asked): the same values.
            let y3 = values(fused(x0.clone().detach(), heads, base));
            close(&y3, &y2, 1e-6, &format!("{tag} untracked value"));
        }
    }

    #[test]
    fn fused_rope_equals_the_composed_one_without_autodiff() {
        let device = Device::flex();
        let (batch, n, heads, head_dim, base) = (2, 40, 2, 8, 10_000.0);
        let shape = [batch, n, 3 * heads * head_dim];
        let x = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let a = values(fused(x.clone(), heads, base));
        let b = values(rope_qkv_composed(x, heads, base));
        close(&a, &b, 1e-6, "plain flex");
    }

    #[test]
    fn turning_back_undoes_the_turn() {
        let (n, heads, head_dim) = (9, 2, 6);
        let x: Vec<f32> = (0..2 * n * 3 * heads * head_dim)
            .map(|i| (i as f32 * 0.61).sin())
            .collect();
        let t = tables(n, head_dim, 10.0);
        let there = turn::<false>(&x, n, heads, &t);
        let back = turn::<true>(&there, n, heads, &t);
        close(&back, &x, 1e-5, "round trip");
        // Position 0 is the identity, and v is copied at every position.
        let width = 3 * heads * head_dim;
        close(&there[..width], &x[..width], 0.0, "position 0");
        for row in 0..2 * n {
            let v = row * width + 2 * heads * head_dim..(row + 1) * width;
            close(&there[v.clone()], &x[v], 0.0, "v");
        }
    }

    #[test]
    fn tables_are_kept_per_length_width_and_base_with_the_composed_values() {
        let (n, head_dim, base) = (11, 4, 123.0);
        let a = tables(n, head_dim, base);
        assert!(Arc::ptr_eq(&a, &tables(n, head_dim, base)), "kept");
        assert!(!Arc::ptr_eq(&a, &tables(n, head_dim, 124.0)));
        assert!(!Arc::ptr_eq(&a, &tables(n + 1, head_dim, base)));
        let (cos, sin) = crate::model::positions::rope_tables(n, head_dim, base, &Device::flex());
        let [cos, sin] = [cos, sin].map(|t| t.into_data().try_to_vec::<f32>().expect("f32"));
        let half = head_dim / 2;
        for pos in 0..n {
            for i in 0..half {
                for d in [i, i + half] {
                    assert_eq!(a.cos[pos * half + i], cos[pos * head_dim + d]);
                    assert_eq!(a.sin[pos * half + i], sin[pos * head_dim + d]);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "are not whole sequences of 3 rows")]
    fn a_partial_sequence_panics() {
        let t = tables(3, 2, 10.0);
        turn::<false>(&[0.0; 6 * 3 + 1], 3, 1, &t);
    }

    #[test]
    #[should_panic(expected = "the tables are not for 4 positions")]
    fn tables_for_another_length_panic() {
        let t = tables(3, 2, 10.0);
        turn::<false>(&[0.0; 6 * 4], 4, 1, &t);
    }

    #[test]
    #[should_panic(expected = "do not split into q|k|v of 2 heads of even width")]
    fn an_odd_head_width_panics() {
        let x = Tensor::<3>::zeros([1, 2, 18], &Device::flex());
        fused(x, 2, 10.0);
    }
}
