//! Fused element-wise kernels on raw `f32` slices: GELU and LayerNorm, forward and
//! backward, and softmax cross-entropy with an ignore mask, each one parallel,
//! vectorised pass where burn composes several single-threaded ops.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{dispatch, erf, exp_neg, fmadd, variants};
use super::uninit::written;

/// Elements per parallel work item of the element-wise kernels.
const GRAIN: usize = 1 << 14;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2 pi)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn gelu_chunk<const FMA: bool>(x: &[f32], y: &mut [MaybeUninit<f32>]) {
    for (y, &x) in y.iter_mut().zip(x) {
        y.write(0.5 * x * (1.0 + erf::<FMA>(x * FRAC_1_SQRT_2)));
    }
}

#[inline(always)]
fn gelu_backward_chunk<const FMA: bool>(x: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>]) {
    for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + erf::<FMA>(x * FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * exp_neg::<FMA>(-0.5 * x * x);
        dx.write(g * fmadd::<FMA>(x, pdf, cdf));
    }
}

variants!(gelu_chunk, gelu_avx512, gelu_avx2, (x: &[f32], y: &mut [MaybeUninit<f32>]));
variants!(gelu_backward_chunk, gelu_backward_avx512, gelu_backward_avx2,
    (x: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>]));

/// `gelu(x) = x * Phi(x)` (the erf form), element-wise.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    written(x.len(), |y| {
        y.par_chunks_mut(GRAIN)
            .zip(x.par_chunks(GRAIN))
            .for_each(|(y, x)| dispatch!(gelu_chunk, gelu_avx512, gelu_avx2, (x, y)))
    })
}

/// The gradient of `x` from the output's gradient `g`.
pub fn gelu_backward(x: &[f32], g: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.len());
    written(x.len(), |dx| {
        dx.par_chunks_mut(GRAIN)
            .zip(x.par_chunks(GRAIN).zip(g.par_chunks(GRAIN)))
            .for_each(|(dx, (x, g))| {
                dispatch!(
                    gelu_backward_chunk,
                    gelu_backward_avx512,
                    gelu_backward_avx2,
                    (x, g, dx)
                )
            })
    })
}

/// Rows per parallel work item of the row-wise kernels.
fn rows_per_item(width: usize) -> usize {
    (GRAIN / width.max(1)).max(1)
}

#[inline(always)]
fn layer_norm_rows<const FMA: bool>(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [MaybeUninit<f32>],
    stats: &mut [MaybeUninit<f32>],
) {
    let d = gamma.len();
    for ((x, y), st) in x.chunks(d).zip(y.chunks_mut(d)).zip(stats.chunks_mut(2)) {
        let mean = x.iter().sum::<f32>() / d as f32;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for (((y, &x), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
            y.write(fmadd::<FMA>((x - mean) * rstd, g, b));
        }
        st[0].write(mean);
        st[1].write(rstd);
    }
}

#[inline(always)]
fn layer_norm_backward_rows<const FMA: bool>(
    x: &[f32],
    gamma: &[f32],
    stats: &[f32],
    g: &[f32],
    dx: &mut [MaybeUninit<f32>],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let d = gamma.len();
    let inv_d = 1.0 / d as f32;
    for (((x, g), dx), st) in x
        .chunks(d)
        .zip(g.chunks(d))
        .zip(dx.chunks_mut(d))
        .zip(stats.chunks(2))
    {
        let (mean, rstd) = (st[0], st[1]);
        let (mut sum_dxhat, mut sum_dxhat_xhat) = (0.0f32, 0.0f32);
        for (((&x, &g), &gm), (dg, db)) in x
            .iter()
            .zip(g)
            .zip(gamma)
            .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
        {
            let xhat = (x - mean) * rstd;
            let dxhat = g * gm;
            sum_dxhat += dxhat;
            sum_dxhat_xhat = fmadd::<FMA>(dxhat, xhat, sum_dxhat_xhat);
            *dg = fmadd::<FMA>(g, xhat, *dg);
            *db += g;
        }
        let (a, b) = (sum_dxhat * inv_d, sum_dxhat_xhat * inv_d);
        for (((dx, &x), &g), &gm) in dx.iter_mut().zip(x).zip(g).zip(gamma) {
            let xhat = (x - mean) * rstd;
            dx.write(rstd * (g * gm - a - xhat * b));
        }
    }
}

variants!(layer_norm_rows, layer_norm_avx512, layer_norm_avx2,
    (x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [MaybeUninit<f32>], stats: &mut [MaybeUninit<f32>]));
variants!(layer_norm_backward_rows, layer_norm_backward_avx512, layer_norm_backward_avx2,
    (x: &[f32], gamma: &[f32], stats: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>], dgamma: &mut [f32], dbeta: &mut [f32]));

/// LayerNorm over the last dimension (`gamma.len()`): `y` and per row `(mean, rstd)`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    assert!(d > 0 && x.len().is_multiple_of(d) && beta.len() == d);
    let rows = x.len() / d;
    let per = rows_per_item(d);
    let mut y = Vec::new();
    let stats = written(rows * 2, |stats| {
        y = written(x.len(), |y| {
            y.par_chunks_mut(per * d)
                .zip(stats.par_chunks_mut(per * 2))
                .zip(x.par_chunks(per * d))
                .for_each(|((y, st), x)| {
                    dispatch!(
                        layer_norm_rows,
                        layer_norm_avx512,
                        layer_norm_avx2,
                        (x, gamma, beta, eps, y, st)
                    )
                })
        })
    });
    (y, stats)
}

/// LayerNorm's backward: `dx`, `dgamma`, `dbeta` from the forward's row statistics.
pub fn layer_norm_backward(
    x: &[f32],
    gamma: &[f32],
    stats: &[f32],
    g: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    assert!(d > 0 && x.len() == g.len() && stats.len() * d == x.len() * 2);
    let per = rows_per_item(d);
    let mut partials: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    let dx = written(x.len(), |dx| {
        partials = dx
            .par_chunks_mut(per * d)
            .zip(x.par_chunks(per * d).zip(g.par_chunks(per * d)))
            .zip(stats.par_chunks(per * 2))
            .map(|((dx, (x, g)), st)| {
                let (mut dgamma, mut dbeta) = (vec![0.0; d], vec![0.0; d]);
                dispatch!(
                    layer_norm_backward_rows,
                    layer_norm_backward_avx512,
                    layer_norm_backward_avx2,
                    (x, gamma, st, g, dx, &mut dgamma, &mut dbeta)
                );
                (dgamma, dbeta)
            })
            .collect();
    });
    let (mut dgamma, mut dbeta) = (vec![0.0; d], vec![0.0; d]);
    for (pg, pb) in partials {
        for (a, b) in dgamma.iter_mut().zip(pg) {
            *a += b;
        }
        for (a, b) in dbeta.iter_mut().zip(pb) {
            *a += b;
        }
    }
    (dx, dgamma, dbeta)
}

/// Mean softmax cross-entropy over rows whose target is not negative (ignored rows
/// have a negative target): the loss, and per row the log-sum-exp.
pub fn cross_entropy(logits: &[f32], targets: &[i64]) -> (f32, Vec<f32>) {
    let rows = targets.len();
    assert!(rows > 0 && logits.len().is_multiple_of(rows));
    let vocab = logits.len() / rows;
    let mut lse = vec![0.0f32; rows];
    let total: f64 = lse
        .par_iter_mut()
        .zip(logits.par_chunks(vocab))
        .zip(targets.par_iter())
        .map(|((lse, row), &t)| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let s: f32 = row.iter().map(|&x| (x - m).exp()).sum();
            *lse = m + s.ln();
            if t >= 0 {
                f64::from(*lse - row[t as usize])
            } else {
                0.0
            }
        })
        .sum();
    let count = targets.iter().filter(|&&t| t >= 0).count().max(1);
    ((total / count as f64) as f32, lse)
}

/// The gradient of the logits: `(softmax - onehot) * scale` on kept rows, 0 on ignored
/// ones (`scale` = the loss's gradient over the kept-row count).
pub fn cross_entropy_backward(logits: &[f32], targets: &[i64], lse: &[f32], grad: f32) -> Vec<f32> {
    let rows = targets.len();
    let vocab = logits.len() / rows.max(1);
    let count = targets.iter().filter(|&&t| t >= 0).count().max(1);
    let scale = grad / count as f32;
    written(logits.len(), |out| {
        out.par_chunks_mut(vocab)
            .zip(logits.par_chunks(vocab))
            .zip(targets.par_iter().zip(lse.par_iter()))
            .for_each(|((o, row), (&t, &l))| {
                if t < 0 {
                    o.fill(MaybeUninit::new(0.0));
                    return;
                }
                for (o, &x) in o.iter_mut().zip(row) {
                    o.write((x - l).exp() * scale);
                }
                // SAFETY: just written (the row has `vocab > t` elements).
                unsafe { *o[t as usize].assume_init_mut() -= scale };
            })
    })
}
