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

    /// Whether element `(m - 1, k - 1)` lies inside the data.
    fn covers(self, m: usize, k: usize) -> bool {
        m == 0 || k == 0 || (m - 1) * self.rs + (k - 1) * self.cs < self.data.len()
    }
}

/// `dst = lhs (m x k) . rhs (k x n)`, plus `dst`'s previous contents when `accumulate`;
/// `dst` row-major `[m, n]`, `m * n` long. Without `accumulate`, `dst` may be
/// uninitialised: every element is written.
fn product(
    dst: &mut [MaybeUninit<f32>],
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    lhs: Operand,
    rhs: Operand,
) {
    assert_eq!(dst.len(), m * n, "dst is [m, n]");
    assert!(
        lhs.covers(m, k) && rhs.covers(k, n),
        "operand out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(MaybeUninit::new(0.0));
        }
        return;
    }
    let stride = |s: usize| s as isize;
    // SAFETY: `dst` holds m x n elements at strides (n, 1); `covers` checked that every
    // element the strides reach in `lhs` and `rhs` is in bounds. gemm reads `dst` only
    // when `read_dst` (then it was initialised by the caller) and writes every element.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
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

/// `y = x w + b` (`[rows, d_out]`).
pub fn forward(x: &[f32], w: &[f32], b: &[f32], d_in: usize, d_out: usize) -> Vec<f32> {
    assert!(
        d_in > 0 && x.len().is_multiple_of(d_in),
        "x is [rows, d_in]"
    );
    assert_eq!(w.len(), d_in * d_out, "w is [d_in, d_out]");
    assert_eq!(b.len(), d_out, "b is [d_out]");
    let rows = x.len() / d_in;
    written(rows * d_out, |y| {
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
        product(
            y,
            true,
            (rows, d_out, d_in),
            Operand::rows(x, d_in),
            Operand::rows(w, d_out),
        );
    })
}

/// The gradients of `x`, `w` and `b` from the output's gradient `g` (`[rows, d_out]`).
pub fn backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    d_in: usize,
    d_out: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(
        d_in > 0 && x.len().is_multiple_of(d_in),
        "x is [rows, d_in]"
    );
    let rows = x.len() / d_in;
    assert_eq!(w.len(), d_in * d_out, "w is [d_in, d_out]");
    assert_eq!(g.len(), rows * d_out, "g is [rows, d_out]");
    // dx = g w^T
    let dx = written(rows * d_in, |dx| {
        product(
            dx,
            false,
            (rows, d_in, d_out),
            Operand::rows(g, d_out),
            Operand::transposed(w, d_out),
        )
    });
    // dw = x^T g (the sum over rows is the product's depth)
    let dw = written(d_in * d_out, |dw| {
        product(
            dw,
            false,
            (d_in, d_out, rows),
            Operand::transposed(x, d_in),
            Operand::rows(g, d_out),
        )
    });
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
