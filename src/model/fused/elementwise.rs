//! Fused element-wise kernels on raw `f32` slices: GELU and LayerNorm, forward and
//! backward, and softmax cross-entropy with an ignore mask, each one parallel,
//! vectorised pass where burn composes several single-threaded ops.
//!
//! Outputs are written once into uninitialised memory ([`written`]); every entry
//! checks its lengths first, in release builds too, so a mismatched call panics with
//! a message naming what mismatched and never returns an unwritten element.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::simd::{self, dispatch, erf, exp_neg, fmadd, variants};
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
    let variant = simd::current();
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(GRAIN)
            .zip(x.par_chunks(GRAIN))
            .for_each(|(y, x)| dispatch!(variant; gelu_chunk, gelu_avx512, gelu_avx2, (x, y)))
    };
    // SAFETY: `y` and `x` have the same length, so their chunks pair up one to one
    // with equal lengths, and `gelu_chunk` writes one `y` per `x`: every element.
    unsafe { written(x.len(), fill) }
}

/// The gradient of `x` from the output's gradient `g`.
///
/// # Panics
/// When `x` and `g` differ in length.
pub fn gelu_backward(x: &[f32], g: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.len(),
        "gelu backward: x and its gradient differ in length"
    );
    let variant = simd::current();
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        dx.par_chunks_mut(GRAIN)
            .zip(x.par_chunks(GRAIN).zip(g.par_chunks(GRAIN)))
            .for_each(|(dx, (x, g))| {
                dispatch!(variant; gelu_backward_chunk, gelu_backward_avx512,
                    gelu_backward_avx2, (x, g, dx))
            })
    };
    // SAFETY: `dx`, `x` and `g` have the same length (asserted), so their chunks pair
    // up with equal lengths, and `gelu_backward_chunk` writes one `dx` per `x`.
    unsafe { written(x.len(), fill) }
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

/// Checks a row-wise kernel's `x` against its parameter of width `d`; its rows.
///
/// # Panics
/// When `d` is 0 or `x` is not whole rows of `d`.
fn rows_of(what: &str, x: &[f32], d: usize) -> usize {
    assert!(d > 0, "{what}: gamma is empty");
    assert!(
        x.len().is_multiple_of(d),
        "{what}: x's {} elements are not rows of gamma's {d}",
        x.len()
    );
    x.len() / d
}

/// LayerNorm over the last dimension (`gamma.len()`): `y` and per row `(mean, rstd)`.
///
/// # Panics
/// When `gamma` is empty, `beta`'s length differs from `gamma`'s, or `x` is not whole
/// rows of `gamma.len()`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let rows = rows_of("layer norm", x, d);
    assert_eq!(beta.len(), d, "layer norm: beta and gamma differ in length");
    let per = rows_per_item(d);
    let variant = simd::current();
    let mut y = Vec::new();
    let fill_stats = |stats: &mut [MaybeUninit<f32>]| {
        let fill_y = |y: &mut [MaybeUninit<f32>]| {
            y.par_chunks_mut(per * d)
                .zip(stats.par_chunks_mut(per * 2))
                .zip(x.par_chunks(per * d))
                .for_each(|((y, st), x)| {
                    dispatch!(variant; layer_norm_rows, layer_norm_avx512, layer_norm_avx2,
                        (x, gamma, beta, eps, y, st))
                })
        };
        // SAFETY: `x` and `y` are `rows` rows of `d` and `stats` `rows` rows of 2, so
        // chunks of `per` rows of each pair up one to one (the last one shorter in all
        // three alike), and `layer_norm_rows` writes every element of each `y` row
        // (`gamma` and `beta` are `d` long, asserted).
        y = unsafe { written(x.len(), fill_y) };
    };
    // SAFETY: as above, `layer_norm_rows` writes both statistics of every row.
    let stats = unsafe { written(rows * 2, fill_stats) };
    (y, stats)
}

/// LayerNorm's backward: `dx`, `dgamma`, `dbeta` from the forward's row statistics.
///
/// # Panics
/// When `gamma` is empty, `x` is not whole rows of `gamma.len()`, `g`'s length differs
/// from `x`'s or `stats` is not two per row.
pub fn layer_norm_backward(
    x: &[f32],
    gamma: &[f32],
    stats: &[f32],
    g: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let what = "layer norm backward";
    let rows = rows_of(what, x, d);
    assert_eq!(
        g.len(),
        x.len(),
        "{what}: x and its gradient differ in length"
    );
    assert_eq!(
        stats.len(),
        rows * 2,
        "{what}: the statistics are not (mean, rstd) per row of x"
    );
    let per = rows_per_item(d);
    let variant = simd::current();
    let mut partials: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        partials = dx
            .par_chunks_mut(per * d)
            .zip(x.par_chunks(per * d).zip(g.par_chunks(per * d)))
            .zip(stats.par_chunks(per * 2))
            .map(|((dx, (x, g)), st)| {
                let (mut dgamma, mut dbeta) = (vec![0.0; d], vec![0.0; d]);
                dispatch!(variant; layer_norm_backward_rows, layer_norm_backward_avx512,
                    layer_norm_backward_avx2, (x, gamma, st, g, dx, &mut dgamma, &mut dbeta));
                (dgamma, dbeta)
            })
            .collect();
    };
    // SAFETY: `dx`, `x` and `g` are `rows` rows of `d` and `stats` `rows` rows of 2
    // (asserted), so chunks of `per` rows of each pair up one to one, and
    // `layer_norm_backward_rows` writes every element of each `dx` row (`gamma` is
    // `d` long).
    let dx = unsafe { written(x.len(), fill) };
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

/// Checks cross-entropy's `logits` against its `targets` (one per row); the vocabulary.
///
/// # Panics
/// When there are no rows, `logits` is not whole rows or has no columns.
fn vocab_of(what: &str, logits: &[f32], targets: &[i64]) -> usize {
    let rows = targets.len();
    assert!(rows > 0, "{what}: no rows");
    assert!(
        logits.len().is_multiple_of(rows) && !logits.is_empty(),
        "{what}: {} logits are not {rows} rows (one per target) of at least one column",
        logits.len()
    );
    logits.len() / rows
}

/// The column of target `t` (checked once per row).
///
/// # Panics
/// When `t` is not below `vocab`.
#[inline(always)]
fn column(what: &str, t: i64, vocab: usize) -> usize {
    let column = t as usize;
    assert!(
        column < vocab,
        "{what}: target {t} is not below the vocabulary of {vocab}"
    );
    column
}

/// Mean softmax cross-entropy over rows whose target is not negative (ignored rows
/// have a negative target): the loss, and per row the log-sum-exp.
///
/// # Panics
/// When `logits` is not `targets.len()` rows of at least one column, or a target is
/// not below the number of columns.
pub fn cross_entropy(logits: &[f32], targets: &[i64]) -> (f32, Vec<f32>) {
    let what = "cross entropy";
    let vocab = vocab_of(what, logits, targets);
    let mut lse = vec![0.0f32; targets.len()];
    let total: f64 = lse
        .par_iter_mut()
        .zip(logits.par_chunks(vocab))
        .zip(targets.par_iter())
        .map(|((lse, row), &t)| {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let s: f32 = row.iter().map(|&x| (x - m).exp()).sum();
            *lse = m + s.ln();
            if t >= 0 {
                f64::from(*lse - row[column(what, t, vocab)])
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
///
/// # Panics
/// When `logits` is not `targets.len()` rows of at least one column, `lse` is not one
/// per row, or a target is not below the number of columns.
pub fn cross_entropy_backward(logits: &[f32], targets: &[i64], lse: &[f32], grad: f32) -> Vec<f32> {
    let what = "cross entropy backward";
    let vocab = vocab_of(what, logits, targets);
    assert_eq!(
        lse.len(),
        targets.len(),
        "{what}: the log-sum-exp is not one per row"
    );
    let count = targets.iter().filter(|&&t| t >= 0).count().max(1);
    let scale = grad / count as f32;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(vocab)
            .zip(logits.par_chunks(vocab))
            .zip(targets.par_iter().zip(lse.par_iter()))
            .for_each(|((o, row), (&t, &l))| {
                if t < 0 {
                    o.fill(MaybeUninit::new(0.0));
                    return;
                }
                let t = column(what, t, vocab);
                for (o, &x) in o.iter_mut().zip(row) {
                    o.write((x - l).exp() * scale);
                }
                // The target's column again, minus the one-hot (as `-=` on the value
                // just written, without reading it back).
                o[t] = MaybeUninit::new((row[t] - l).exp() * scale - scale);
            })
    };
    // SAFETY: `out` and `logits` are `rows` rows of `vocab` and `targets` and `lse` one
    // per row (asserted), so the rows pair up one to one, and each `out` row is
    // written whole: zeros where ignored, else one value per logit.
    unsafe { written(logits.len(), fill) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "the log-sum-exp is not one per row")]
    fn cross_entropy_backward_with_a_short_log_sum_exp_panics() {
        // Three rows, two log-sum-exps: this once returned a third row of
        // uninitialised memory.
        cross_entropy_backward(&[0.0; 6], &[0, 1, 0], &[0.0; 2], 1.0);
    }

    #[test]
    #[should_panic(expected = "7 logits are not 3 rows")]
    fn cross_entropy_backward_with_ragged_logits_panics() {
        cross_entropy_backward(&[0.0; 7], &[0, 1, 0], &[0.0; 3], 1.0);
    }

    #[test]
    #[should_panic(expected = "target 2 is not below the vocabulary of 2")]
    fn a_target_past_the_vocabulary_panics() {
        cross_entropy(&[0.0; 4], &[0, 2]);
    }

    #[test]
    #[should_panic(expected = "x and its gradient differ in length")]
    fn gelu_backward_with_a_short_gradient_panics() {
        gelu_backward(&[0.0; 5], &[0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "beta and gamma differ in length")]
    fn layer_norm_with_a_short_beta_panics() {
        layer_norm(&[0.0; 6], &[1.0; 3], &[0.0; 2], 1e-5);
    }

    #[test]
    #[should_panic(expected = "the statistics are not (mean, rstd) per row")]
    fn layer_norm_backward_with_short_statistics_panics() {
        layer_norm_backward(&[0.0; 6], &[1.0; 3], &[0.0; 2], &[0.0; 6]);
    }
}
