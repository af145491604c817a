//! Linear layers on raw `f32` slices, through the `gemm` crate that burn's `flex`
//! matmul also calls, without the passes around it that a training step does not
//! need: burn-flex zero-fills every matmul output and then copies it into a buffer of
//! its own alignment (`FlexTensor::empty`), and adds the bias and sums the bias's
//! gradient on one thread. Here the output is written once: the bias rows first and
//! the product accumulated onto them (forward), or the product alone into
//! uninitialised memory (backward); transposed operands are read by stride.
//!
//! Layouts: `x` `[rows, d_in]`, `w` `[d_in, d_out]` (burn's `Linear` layout, `y = x w
//! + b`), `b` and `db` `[d_out]`, all row-major.
//!
//! [`forward`] and [`backward`] check every length in release builds too (products
//! that overflow included) before the product, which reads and writes by raw pointer.

use std::mem::MaybeUninit;

use super::uninit::written;

use rayon::prelude::*;

/// Products smaller than this (multiply-adds) run on one thread, as in burn-flex.
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// Rows per parallel work item when writing or summing rows.
const ROWS_PER_ITEM: usize = 256;

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// A row-major matrix operand: its data and (row, column) strides.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Operand<'a> {
    fn rows(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            rs: width,
            cs: 1,
        }
    }

    /// The transpose of a row-major `[_, width]` matrix.
    fn transposed(data: &'a [f32], width: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: width,
        }
    }

    /// Whether element `(m - 1, k - 1)` lies inside the data (and its index does not
    /// overflow).
    fn covers(self, m: usize, k: usize) -> bool {
        m == 0
            || k == 0
            || (m - 1)
                .checked_mul(self.rs)
                .and_then(|r| r.checked_add((k - 1).checked_mul(self.cs)?))
                .is_some_and(|last| last < self.data.len())
    }
}

/// Where a [`product`] goes: over uninitialised memory, or added to what is there.
enum Dst<'a> {
    /// `dst = lhs . rhs`: every element written, none read.
    Overwrite(&'a mut [MaybeUninit<f32>]),
    /// `dst += lhs . rhs`.
    Accumulate(&'a mut [f32]),
}

/// `dst (=|+=) lhs (m x k) . rhs (k x n)`, `dst` row-major `[m, n]`, `m * n` long.
///
/// # Panics
/// When `dst` is not `m * n` long or an operand does not hold its `m x k` or `k x n`.
fn product(dst: Dst, (m, n, k): (usize, usize, usize), lhs: Operand, rhs: Operand) {
    let len = match &dst {
        Dst::Overwrite(d) => d.len(),
        Dst::Accumulate(d) => d.len(),
    };
    assert_eq!(
        Some(len),
        m.checked_mul(n),
        "linear: the output's length is not {m} x {n}"
    );
    assert!(
        lhs.covers(m, k) && rhs.covers(k, n),
        "linear: an operand does not hold its {m} x {k} or {k} x {n}"
    );
    if m == 0 || n == 0 {
        return;
    }
    let (ptr, accumulate) = match dst {
        // An empty sum: zeros, or nothing to add.
        Dst::Overwrite(d) if k == 0 => {
            d.fill(MaybeUninit::new(0.0));
            return;
        }
        Dst::Accumulate(_) if k == 0 => return,
        Dst::Overwrite(d) => (d.as_mut_ptr().cast::<f32>(), false),
        Dst::Accumulate(d) => (d.as_mut_ptr(), true),
    };
    let stride = |s: usize| s as isize;
    // SAFETY: `ptr` holds m x n elements (asserted) at strides (n, 1), borrowed mutably
    // for this call; `covers` checked that every element the strides reach in `lhs`
    // and `rhs` is in bounds. gemm reads `dst` only when `read_dst`, which is
    // `Dst::Accumulate`'s initialised `&mut [f32]`, and writes every element.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            ptr,
            1,
            stride(n),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.cs),
            stride(lhs.rs),
            rhs.data.as_ptr(),
            stride(rhs.cs),
            stride(rhs.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(m, n, k),
        );
    }
}

/// Checks `x` `[rows, d_in]` and `w` `[d_in, d_out]`; `rows`.
///
/// # Panics
/// When `d_in` is 0, `x` is not whole rows of `d_in` or `w` is not `d_in x d_out`.
fn rows_of(x: &[f32], w: &[f32], d_in: usize, d_out: usize) -> usize {
    assert!(
        d_in > 0 && x.len().is_multiple_of(d_in),
        "linear: x's {} elements are not rows of d_in = {d_in}",
        x.len()
    );
    assert_eq!(
        Some(w.len()),
        d_in.checked_mul(d_out),
        "linear: w's length is not d_in x d_out = {d_in} x {d_out}"
    );
    x.len() / d_in
}

/// `y = x w + b` (`[rows, d_out]`).
///
/// # Panics
/// When `d_in` is 0, `x` is not whole rows of `d_in`, `w` is not `d_in x d_out` or `b`
/// not `d_out` long.
pub fn forward(x: &[f32], w: &[f32], b: &[f32], d_in: usize, d_out: usize) -> Vec<f32> {
    let rows = rows_of(x, w, d_in, d_out);
    assert_eq!(b.len(), d_out, "linear: b's length is not d_out = {d_out}");
    let Some(len) = rows.checked_mul(d_out) else {
        panic!("linear: {rows} x {d_out} outputs overflow usize");
    };
    let bias_rows = |y: &mut [MaybeUninit<f32>]| {
        if d_out == 0 {
            return;
        }
        y.par_chunks_mut(ROWS_PER_ITEM * d_out).for_each(|part| {
            for row in part.chunks_exact_mut(d_out) {
                for (o, &bias) in row.iter_mut().zip(b) {
                    *o = MaybeUninit::new(bias);
                }
            }
        });
    };
    // SAFETY: `y` is whole rows of `d_out` (or empty when `d_out` is 0), so every part
    // is whole rows, and each row is `b`, `d_out` long (asserted): every element.
    let mut y = unsafe { written(len, bias_rows) };
    product(
        Dst::Accumulate(&mut y),
        (rows, d_out, d_in),
        Operand::rows(x, d_in),
        Operand::rows(w, d_out),
    );
    y
}

/// The gradients of `x`, `w` and `b` from the output's gradient `g` (`[rows, d_out]`).
///
/// # Panics
/// When `d_in` is 0, `x` is not whole rows of `d_in`, `w` is not `d_in x d_out` or `g`
/// not `rows x d_out`.
pub fn backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    d_in: usize,
    d_out: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = rows_of(x, w, d_in, d_out);
    assert_eq!(
        Some(g.len()),
        rows.checked_mul(d_out),
        "linear backward: g's length is not rows x d_out = {rows} x {d_out}"
    );
    // dx = g w^T
    let dx_of = |dx: &mut [MaybeUninit<f32>]| {
        product(
            Dst::Overwrite(dx),
            (rows, d_in, d_out),
            Operand::rows(g, d_out),
            Operand::transposed(w, d_out),
        )
    };
    // SAFETY: `product` writes all of an `Overwrite` destination (it panics instead
    // when the destination is not m x n = rows x d_in, which `x.len()` is).
    let dx = unsafe { written(x.len(), dx_of) };
    // dw = x^T g (the sum over rows is the product's depth)
    let dw_of = |dw: &mut [MaybeUninit<f32>]| {
        product(
            Dst::Overwrite(dw),
            (d_in, d_out, rows),
            Operand::transposed(x, d_in),
            Operand::rows(g, d_out),
        )
    };
    // SAFETY: as above; d_in x d_out is `w.len()`.
    let dw = unsafe { written(w.len(), dw_of) };
    (dx, dw, column_sums(g, d_out))
}

/// The sum of each column of a row-major `[_, width]` matrix, in parallel over row
/// blocks.
fn column_sums(g: &[f32], width: usize) -> Vec<f32> {
    if width == 0 {
        return Vec::new();
    }
    let add = |mut a: Vec<f32>, b: Vec<f32>| {
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
        a
    };
    g.par_chunks(ROWS_PER_ITEM * width)
        .map(|part| {
            let mut sums = vec![0.0f32; width];
            for row in part.chunks_exact(width) {
                for (s, &v) in sums.iter_mut().zip(row) {
                    *s += v;
                }
            }
            sums
        })
        .reduce(|| vec![0.0f32; width], add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], rows: usize, d_in: usize, d_out: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * d_out];
        for r in 0..rows {
            for o in 0..d_out {
                y[r * d_out + o] = (0..d_in).map(|i| x[r * d_in + i] * w[i * d_out + o]).sum();
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn forward_and_backward_match_the_naive_products() {
        // Shapes on both sides of the parallel threshold, and degenerate ones.
        for &(rows, d_in, d_out) in &[(3, 5, 7), (0, 4, 3), (6, 1, 1), (700, 200, 300), (5, 3, 0)] {
            let (x, w, b) = (
                values(rows * d_in, 1),
                values(d_in * d_out, 2),
                values(d_out, 3),
            );
            let y = forward(&x, &w, &b, d_in, d_out);
            let mut want = naive(&x, &w, rows, d_in, d_out);
            for (i, v) in want.iter_mut().enumerate() {
                *v += b[i % d_out];
            }
            let close = |a: &[f32], b: &[f32]| {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(p, q)| (p - q).abs() <= 1e-3 * (1.0 + q.abs()))
            };
            assert!(close(&y, &want), "forward {rows}x{d_in}x{d_out}");
            let g = values(rows * d_out, 4);
            let (dx, dw, db) = backward(&x, &w, &g, d_in, d_out);
            // dx = g w^T, dw = x^T g, db = sum of g's rows.
            let wt: Vec<f32> = (0..d_out * d_in)
                .map(|i| w[(i % d_in) * d_out + i / d_in])
                .collect();
            assert!(close(&dx, &naive(&g, &wt, rows, d_out, d_in)), "dx");
            let xt: Vec<f32> = (0..d_in * rows)
                .map(|i| x[(i % rows) * d_in + i / rows])
                .collect();
            assert!(close(&dw, &naive(&xt, &g, d_in, rows, d_out)), "dw");
            let want_db: Vec<f32> = (0..d_out)
                .map(|o| (0..rows).map(|r| g[r * d_out + o]).sum())
                .collect();
            assert!(close(&db, &want_db), "db");
        }
    }
}
