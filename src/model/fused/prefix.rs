//! Causal linear attention as prefix sums, one fused CPU operation with its own
//! backward: per head, `o_t = q_t^T S_t / (q_t . z_t + eps)` with the running sums
//! `S_t = sum_{j<=t} k_j v_j^T` and `z_t = sum_{j<=t} k_j`, on already featurised q
//! and k (elu+1 for linear attention, the Taylor map for Based). O(n f e) per head
//! where the parallel form is O(n^2), and no `n x n` matrix.
//!
//! The backward walks forward once (the gradient of q needs `S_t`, and `o_t` gives the
//! normaliser's gradient) and back once, carrying `sum_{tau>=t} q_tau g_tau^T`, which
//! gives the gradients of k and v. Heads are split over rayon's threads.

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::ops::lift;
use super::{Op, applies, check_shape, f32_data, flex_from, slice};

/// Added to each normaliser, as the composed path does
/// ([`crate::model::mixers`]' `EPS`).
const EPS: f32 = 1e-6;

/// Causal linear attention by prefix sums.
#[backend_extension(Flex, Autodiff)]
pub trait FusedPrefixAttention: Backend {
    /// `o` `[batch, heads, n, e]` from featurised `q`, `k` `[batch, heads, n, f]` and
    /// `v` `[batch, heads, n, e]`.
    fn prefix_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// The gradients of q, k and v from `o`'s gradient `grad`.
    fn prefix_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Causal linear attention of featurised `q`, `k` and values `v`, fused on the CPU
/// backend; `None` elsewhere (the caller composes it).
///
/// # Shapes
/// `q`, `k`: `[batch, heads, n, f]`; `v`: `[batch, heads, n, e]` → `[batch, heads, n, e]`.
pub fn prefix_attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> Option<Tensor<4>> {
    if !applies(Op::Prefix, q) || q.dims().contains(&0) || v.dims().contains(&0) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as FusedPrefixAttention>::prefix_attention(
            q.clone().into_dispatch(),
            k.clone().into_dispatch(),
            v.clone().into_dispatch(),
        ),
    ))
}

/// `(heads in all, n, f, e)`, every input's shape checked.
fn prefix_dims(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor) -> (usize, usize, usize, usize) {
    let shape = q.shape();
    let &[batch, heads, n, f] = shape.as_slice() else {
        panic!("fused prefix attention: q is [batch, heads, n, f], got {shape:?}");
    };
    let v_shape = v.shape();
    let &[_, _, _, e] = v_shape.as_slice() else {
        panic!("fused prefix attention: v is [batch, heads, n, e], got {v_shape:?}");
    };
    check_shape("fused prefix attention", "k", k, &[batch, heads, n, f]);
    check_shape("fused prefix attention", "v", v, &[batch, heads, n, e]);
    (batch * heads, n, f, e)
}

/// One head's forward into `o` (`n x e`); returns each row's normaliser.
fn forward_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (n, f, e): (usize, usize, usize),
    o: &mut [f32],
) -> Vec<f32> {
    let mut s = vec![0f32; f * e];
    let mut z = vec![0f32; f];
    let mut den = Vec::with_capacity(n);
    for t in 0..n {
        let (qt, kt, vt) = (
            &q[t * f..(t + 1) * f],
            &k[t * f..(t + 1) * f],
            &v[t * e..(t + 1) * e],
        );
        for i in 0..f {
            z[i] += kt[i];
            let row = &mut s[i * e..(i + 1) * e];
            for (sv, &vv) in row.iter_mut().zip(vt) {
                *sv += kt[i] * vv;
            }
        }
        let d = qt.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() + EPS;
        let ot = &mut o[t * e..(t + 1) * e];
        ot.fill(0.0);
        for i in 0..f {
            for (ov, &sv) in ot.iter_mut().zip(&s[i * e..(i + 1) * e]) {
                *ov += qt[i] * sv;
            }
        }
        for ov in ot.iter_mut() {
            *ov /= d;
        }
        den.push(d);
    }
    den
}

/// One head's gradients of q, k (`n x f`) and v (`n x e`).
#[allow(clippy::too_many_arguments)]
fn backward_head(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    go: &[f32],
    (n, f, e): (usize, usize, usize),
    gq: &mut [f32],
    gk: &mut [f32],
    gv: &mut [f32],
) {
    let mut o = vec![0f32; n * e];
    let den = forward_head(q, k, v, (n, f, e), &mut o);
    // g_num_t = go_t / den_t; g_den_t = -(go_t . o_t) / den_t.
    let mut gnum = vec![0f32; n * e];
    let mut gden = vec![0f32; n];
    for t in 0..n {
        let got = &go[t * e..(t + 1) * e];
        gden[t] = -got
            .iter()
            .zip(&o[t * e..(t + 1) * e])
            .map(|(a, b)| a * b)
            .sum::<f32>()
            / den[t];
        for (g, &x) in gnum[t * e..(t + 1) * e].iter_mut().zip(got) {
            *g = x / den[t];
        }
    }
    // Forward: gq_t = S_t g_num_t + z_t g_den_t.
    let (mut s, mut z) = (vec![0f32; f * e], vec![0f32; f]);
    for t in 0..n {
        let (kt, vt) = (&k[t * f..(t + 1) * f], &v[t * e..(t + 1) * e]);
        let gn = &gnum[t * e..(t + 1) * e];
        for i in 0..f {
            z[i] += kt[i];
            let row = &mut s[i * e..(i + 1) * e];
            let mut acc = 0f32;
            for ((sv, &vv), &g) in row.iter_mut().zip(vt).zip(gn) {
                *sv += kt[i] * vv;
                acc += *sv * g;
            }
            gq[t * f + i] = acc + z[i] * gden[t];
        }
    }
    // Back: with G_t = sum_{tau>=t} q_tau g_num_tau^T and H_t = sum_{tau>=t} q_tau
    // g_den_tau, gk_t = G_t v_t + H_t and gv_t = G_t^T k_t.
    let (mut g, mut h) = (vec![0f32; f * e], vec![0f32; f]);
    for t in (0..n).rev() {
        let (qt, kt, vt) = (
            &q[t * f..(t + 1) * f],
            &k[t * f..(t + 1) * f],
            &v[t * e..(t + 1) * e],
        );
        let gn = &gnum[t * e..(t + 1) * e];
        let gvt = &mut gv[t * e..(t + 1) * e];
        gvt.fill(0.0);
        for i in 0..f {
            h[i] += qt[i] * gden[t];
            let row = &mut g[i * e..(i + 1) * e];
            let mut acc = 0f32;
            for (((gr, &x), &vv), gvv) in row.iter_mut().zip(gn).zip(vt).zip(gvt.iter_mut()) {
                *gr += qt[i] * x;
                acc += *gr * vv;
                *gvv += *gr * kt[i];
            }
            gk[t * f + i] = acc + h[i];
        }
    }
}

impl FusedPrefixAttention for Flex {
    fn prefix_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor) -> FlexTensor {
        let shape = v.shape();
        let (heads, n, f, e) = prefix_dims(&q, &k, &v);
        let (q, k, v) = (f32_data(q), f32_data(k), f32_data(v));
        let (qs, ks, vs) = (slice(&q), slice(&k), slice(&v));
        let mut o = vec![0f32; heads * n * e];
        o.par_chunks_mut(n * e).enumerate().for_each(|(i, o)| {
            forward_head(
                &qs[i * n * f..(i + 1) * n * f],
                &ks[i * n * f..(i + 1) * n * f],
                &vs[i * n * e..(i + 1) * n * e],
                (n, f, e),
                o,
            );
        });
        flex_from(o, shape)
    }

    fn prefix_attention_backward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (q_shape, v_shape) = (q.shape(), v.shape());
        let (heads, n, f, e) = prefix_dims(&q, &k, &v);
        check_shape(
            "fused prefix attention backward",
            "grad",
            &grad,
            v_shape.as_slice(),
        );
        let (q, k, v, grad) = (f32_data(q), f32_data(k), f32_data(v), f32_data(grad));
        let (qs, ks, vs, gs) = (slice(&q), slice(&k), slice(&v), slice(&grad));
        let (mut gq, mut gk, mut gv) = (
            vec![0f32; heads * n * f],
            vec![0f32; heads * n * f],
            vec![0f32; heads * n * e],
        );
        gq.par_chunks_mut(n * f)
            .zip(gk.par_chunks_mut(n * f))
            .zip(gv.par_chunks_mut(n * e))
            .enumerate()
            .for_each(|(i, ((gq, gk), gv))| {
                backward_head(
                    &qs[i * n * f..(i + 1) * n * f],
                    &ks[i * n * f..(i + 1) * n * f],
                    &vs[i * n * e..(i + 1) * n * e],
                    &gs[i * n * e..(i + 1) * n * e],
                    (n, f, e),
                    gq,
                    gk,
                    gv,
                );
            });
        (
            flex_from(gq, q_shape.clone()),
            flex_from(gk, q_shape),
            flex_from(gv, v_shape),
        )
    }
}

impl<B: FusedPrefixAttention, C: CheckpointStrategy> FusedPrefixAttention for Autodiff<B, C> {
    fn prefix_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct PrefixBackward;

        impl<B: FusedPrefixAttention> Backward<B, 3> for PrefixBackward {
            type State = [FloatTensor<B>; 3];

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let [q, k, v] = ops.state;
                let (gq, gk, gv) = B::prefix_attention_backward(q, k, v, grad);
                for (node, g) in ops.parents.into_iter().zip([gq, gk, gv]) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match PrefixBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inputs = [q, k, v].map(|t| t.into_primitive());
                let [q1, k1, v1] = inputs.clone();
                let o = B::prefix_attention(q1, k1, v1);
                prep.finish(inputs, o)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::prefix_attention(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
            )),
        }
    }

    fn prefix_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (gq, gk, gv) = B::prefix_attention_backward(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            grad.into_primitive(),
        );
        (lift::<B, C>(gq), lift::<B, C>(gk), lift::<B, C>(gv))
    }
}
