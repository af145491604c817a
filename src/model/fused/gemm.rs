//! The register-blocked micro-kernel that every product of an attention tile runs,
//! [`gemm_bcast`]: blocks of [`MR`] rows by one or two vectors of [`LANES`] columns,
//! their accumulators held in registers across the whole depth, one operand broadcast.
//!
//! Its inner loop loads without bounds checks. What keeps it in bounds: the extents
//! are whole blocks by type ([`RowBlocks`], [`ColVecs`]: a row count that is not a
//! multiple of [`MR`] cannot be passed), and [`gemm_bcast`] checks every operand
//! against them once per call, in release builds too.

use super::simd::fmadd;

/// Columns per micro-kernel accumulator (one AVX-512 register, two AVX2 ones).
pub(super) const LANES: usize = 16;
/// Rows per micro-kernel.
pub(super) const MR: usize = 4;

/// A row count rounded up to whole blocks of [`MR`] rows: a multiple of `MR` by
/// construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RowBlocks(usize);

impl RowBlocks {
    /// The fewest blocks that hold `rows` rows.
    #[inline(always)]
    pub(super) const fn covering(rows: usize) -> Self {
        Self(rows.div_ceil(MR))
    }

    /// Exactly `rows` rows (checked: at compile time where it makes a constant).
    pub(super) const fn exactly(rows: usize) -> Self {
        assert!(rows.is_multiple_of(MR), "not whole blocks of MR rows");
        Self(rows / MR)
    }

    /// The rows of these blocks (a multiple of [`MR`]).
    #[inline(always)]
    pub(super) fn rows(self) -> usize {
        self.0 * MR
    }
}

/// A column count rounded up to whole vectors of [`LANES`] columns: a multiple of
/// `LANES` by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ColVecs(usize);

impl ColVecs {
    /// The fewest vectors that hold `cols` columns.
    #[inline(always)]
    pub(super) const fn covering(cols: usize) -> Self {
        Self(cols.div_ceil(LANES))
    }

    /// Exactly `cols` columns (checked: at compile time where it makes a constant).
    pub(super) const fn exactly(cols: usize) -> Self {
        assert!(
            cols.is_multiple_of(LANES),
            "not whole vectors of LANES columns"
        );
        Self(cols / LANES)
    }

    /// The columns of these vectors (a multiple of [`LANES`]).
    #[inline(always)]
    pub(super) fn cols(self) -> usize {
        self.0 * LANES
    }
}

/// One past the furthest element, `(rows - 1) * row_stride + (cols - 1) * col_stride`,
/// that a strided access of `rows` by `cols` (both at least 1) reaches; `None` where
/// that overflows.
#[inline(always)]
fn reach(rows: usize, row_stride: usize, cols: usize, col_stride: usize) -> Option<usize> {
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

/// `C[r][c] += sum_k A(r, k) * B[k][c]` (or `=` with `SET`: `C` is not read) for
/// `r < m`, `c < cols`, `k < depth`, where
/// `A(r, k) = a[r * sar + k * sak]` (broadcast, so any strides: transposes are free),
/// `B` and `C` row-major with leading dimensions `ldb` and `ldc`.
///
/// With `wide` (AVX-512's 32 vector registers; only where `FMA`) the bulk runs in
/// blocks of 4 rows by 32 columns: 8 independent accumulators hide the FMA latency.
/// Otherwise (16 registers) blocks are 4 rows by 16 columns (8 accumulators of two
/// AVX2 registers each).
///
/// # Panics
/// When an operand is too short for the extents (a bug in the caller).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn gemm_bcast<const FMA: bool, const SET: bool>(
    wide: bool,
    m: RowBlocks,
    depth: usize,
    cols: ColVecs,
    a: &[f32],
    (sar, sak): (usize, usize),
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let (m, cols) = (m.rows(), cols.cols());
    if m == 0 || cols == 0 {
        return;
    }
    if depth == 0 {
        if SET {
            for r in 0..m {
                c[r * ldc..r * ldc + cols].fill(0.0);
            }
        }
        return;
    }
    // Once per call, in release builds too: the block loads below are unchecked.
    assert!(
        reach(m, sar, depth, sak).is_some_and(|end| end <= a.len()),
        "gemm: A ({} elements) does not hold {m} rows by {depth} at strides ({sar}, {sak})",
        a.len()
    );
    assert!(
        reach(depth, ldb, cols, 1).is_some_and(|end| end <= b.len()),
        "gemm: B ({} elements) does not hold {depth} rows of {cols} at stride {ldb}",
        b.len()
    );
    assert!(
        reach(m, ldc, cols, 1).is_some_and(|end| end <= c.len()),
        "gemm: C ({} elements) does not hold {m} rows of {cols} at stride {ldc}",
        c.len()
    );
    let g = Gemm {
        m,
        depth,
        cols,
        a,
        sar,
        sak,
        b,
        ldb,
        ldc,
    };
    if FMA && wide {
        let c32 = cols - cols % (2 * LANES);
        for r0 in (0..m).step_by(MR) {
            for c0 in (0..c32).step_by(2 * LANES) {
                // SAFETY: `m` is whole blocks of MR rows (`RowBlocks`), so r0 + MR <= m;
                // c0 + 2 LANES <= c32 <= cols.
                unsafe { g.block::<MR, 2, FMA, SET>(r0, c0, c) };
            }
        }
        for r0 in (0..m).step_by(MR) {
            for c0 in (c32..cols).step_by(LANES) {
                // SAFETY: r0 + MR <= m as above; `cols` and `c32` are whole vectors of
                // LANES columns (`ColVecs`), so c0 + LANES <= cols.
                unsafe { g.block::<MR, 1, FMA, SET>(r0, c0, c) };
            }
        }
    } else {
        for r0 in (0..m).step_by(MR) {
            for c0 in (0..cols).step_by(LANES) {
                // SAFETY: `m` is whole blocks of MR rows and `cols` whole vectors of
                // LANES columns, so r0 + MR <= m and c0 + LANES <= cols.
                unsafe { g.block::<MR, 1, FMA, SET>(r0, c0, c) };
            }
        }
    }
}

/// The operands of one [`gemm_bcast`] call, checked by it against `m`, `depth` and
/// `cols`.
struct Gemm<'a> {
    m: usize,
    depth: usize,
    cols: usize,
    a: &'a [f32],
    sar: usize,
    sak: usize,
    b: &'a [f32],
    ldb: usize,
    ldc: usize,
}

impl Gemm<'_> {
    /// One block of `R` rows from `r0` by `V` vectors of columns from `c0`, its
    /// accumulators held in registers across the whole depth.
    ///
    /// # Safety
    /// The block lies inside the checked extents: `r0 + R <= m` and
    /// `c0 + V * LANES <= cols`.
    #[inline(always)]
    unsafe fn block<const R: usize, const V: usize, const FMA: bool, const SET: bool>(
        &self,
        r0: usize,
        c0: usize,
        c: &mut [f32],
    ) {
        debug_assert!(r0 + R <= self.m && c0 + V * LANES <= self.cols);
        let ldc = self.ldc;
        let mut acc = [[[0.0f32; LANES]; V]; R];
        if !SET {
            for (i, row) in acc.iter_mut().enumerate() {
                for (v, vec) in row.iter_mut().enumerate() {
                    vec.copy_from_slice(&c[(r0 + i) * ldc + c0 + v * LANES..][..LANES]);
                }
            }
        }
        let (a, b) = (self.a.as_ptr(), self.b.as_ptr());
        for k in 0..self.depth {
            // SAFETY: k < depth and c0 + v * LANES + LANES <= cols (the caller's
            // promise), and `gemm_bcast` checked (depth - 1) * ldb + cols <= b.len().
            let bv: [[f32; LANES]; V] = std::array::from_fn(|v| unsafe {
                *b.add(k * self.ldb + c0 + v * LANES).cast::<[f32; LANES]>()
            });
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: r0 + i < m (the caller's promise) and k < depth, and
                // `gemm_bcast` checked (m - 1) * sar + (depth - 1) * sak < a.len().
                let av = unsafe { *a.add((r0 + i) * self.sar + k * self.sak) };
                for (vec, bl) in row.iter_mut().zip(&bv) {
                    for (x, &y) in vec.iter_mut().zip(bl.iter()) {
                        *x = fmadd::<FMA>(av, y, *x);
                    }
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, vec) in row.iter().enumerate() {
                c[(r0 + i) * ldc + c0 + v * LANES..][..LANES].copy_from_slice(vec);
            }
        }
    }
}
