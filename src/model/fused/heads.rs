//! The attention kernel's output buffers, which its (batch, head) tasks fill in
//! parallel, each writing its own head's columns in place: no zero-filling first, no
//! per-head copy and transpose pass after.
//!
//! The disjoint writes are carried by a type: a [`HeadOut`] owns one head's elements,
//! only [`HeadWriter::heads`] makes them (one per head, never copied), and
//! [`HeadOut::store`] writes all of that head's elements or none. The writer counts
//! the heads stored, and [`HeadWriter::finish`] hands the buffer out only when every
//! head was, so a kernel bug panics rather than returning unwritten memory.
//!
//! [`Dims`], the shapes of one call, lives here: the buffers' layout is made of them.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::gemm::LANES;

/// Shapes of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Batch.
    pub batch: usize,
    /// Sequence length.
    pub n: usize,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Dims {
    /// `heads * head_dim`.
    pub(super) fn d_model(self) -> usize {
        self.heads * self.head_dim
    }

    /// `batch * n * parts * d_model`: the elements of `[batch, n, parts * d_model]`.
    ///
    /// # Panics
    /// When that overflows `usize`.
    pub(super) fn elements(self, parts: usize) -> usize {
        let elements = [self.n, parts, self.heads, self.head_dim]
            .into_iter()
            .try_fold(self.batch, usize::checked_mul);
        let Some(elements) = elements else {
            panic!("fused attention: {self:?} with {parts} parts overflows usize");
        };
        elements
    }

    /// Checks what the kernels assume of the shapes themselves.
    ///
    /// # Panics
    /// When there is no head or a head has no columns.
    pub(super) fn check(self) {
        assert!(
            self.heads > 0 && self.head_dim > 0,
            "fused attention: {self:?} has no head columns"
        );
    }
}

/// A buffer `[batch, n, parts, heads, head_dim]` (`parts` = 1 for the output
/// `[batch, n, d_model]`, 3 for the gradient of the packed q|k|v), written head by
/// head through [`HeadOut`]s. It starts uninitialised.
pub(super) struct HeadWriter {
    buf: Vec<f32>,
    dims: Dims,
    parts: usize,
    /// `batch * n * parts * d_model`, the buffer's capacity at least.
    len: usize,
    /// Heads stored since the last [`HeadWriter::heads`].
    stored: AtomicUsize,
}

/// The start of a [`HeadWriter`]'s buffer, shared by its heads' tasks.
#[derive(Clone, Copy)]
struct Base(*mut MaybeUninit<f32>);

// SAFETY: `Base` is only read by `HeadOut::store`, and the `HeadOut`s of one buffer
// write disjoint elements (see `HeadOut`), so tasks on other threads may hold it.
unsafe impl Send for Base {}
// SAFETY: as above.
unsafe impl Sync for Base {}

impl HeadWriter {
    /// An unwritten buffer for `parts` blocks of `d_model` columns per row.
    ///
    /// # Panics
    /// When its length overflows `usize`, or the memory cannot be had
    /// ([`super::uninit::with_capacity`]).
    pub(super) fn new(dims: Dims, parts: usize) -> Self {
        let len = dims.elements(parts);
        Self {
            buf: super::uninit::with_capacity(len),
            dims,
            parts,
            len,
            stored: AtomicUsize::new(0),
        }
    }

    /// One [`HeadOut`] per (batch, head), in the order `b * heads + h`, to fill in
    /// parallel. Starts the count of stored heads afresh.
    pub(super) fn heads(&mut self) -> impl IndexedParallelIterator<Item = HeadOut<'_>> {
        *self.stored.get_mut() = 0;
        let base = Base(self.buf.spare_capacity_mut().as_mut_ptr());
        let (dims, parts) = (self.dims, self.parts);
        let stored = &self.stored;
        (0..dims.batch * dims.heads)
            .into_par_iter()
            .map(move |bh| HeadOut {
                base,
                dims,
                parts,
                b: bh / dims.heads,
                h: bh % dims.heads,
                stored,
                _buf: PhantomData,
            })
    }

    /// The buffer, every element written.
    ///
    /// # Panics
    /// When a head of the last [`HeadWriter::heads`] was not stored (a kernel bug).
    pub(super) fn finish(mut self) -> Vec<f32> {
        let heads = self.dims.batch * self.dims.heads;
        let stored = *self.stored.get_mut();
        assert_eq!(
            stored, heads,
            "fused attention: {stored} of {heads} heads were written"
        );
        // SAFETY: the count started at 0 with the last `heads()`, whose `HeadOut`s (one
        // per (b, h), each stored at most once as `store` consumes it) count only
        // after writing every element they own; all `heads` were, and their elements
        // tile the `len` elements (see `HeadOut::store`), within the capacity.
        unsafe { self.buf.set_len(self.len) };
        self.buf
    }
}

/// Head `h` of batch `b` in a [`HeadWriter`]'s buffer: columns
/// `h * head_dim..(h + 1) * head_dim` of every part of the `n` rows of batch `b`.
/// Only [`HeadWriter::heads`] makes one, once per (b, h), and it is neither `Clone`
/// nor `Copy`: no two tasks ever write the same element.
pub(super) struct HeadOut<'a> {
    base: Base,
    dims: Dims,
    parts: usize,
    b: usize,
    h: usize,
    stored: &'a AtomicUsize,
    /// Borrows the buffer (mutably, through the writer) while it lives.
    _buf: PhantomData<&'a mut [MaybeUninit<f32>]>,
}

impl HeadOut<'_> {
    /// The shapes of the buffer.
    #[inline(always)]
    pub(super) fn dims(&self) -> Dims {
        self.dims
    }

    /// Its batch.
    #[inline(always)]
    pub(super) fn batch(&self) -> usize {
        self.b
    }

    /// Its head.
    #[inline(always)]
    pub(super) fn head(&self) -> usize {
        self.h
    }

    /// Writes every element of this head: row `q < n`, part `p < parts` is
    /// `src * scale` for `(src, scale) = rows(q, p)`; then counts the head stored.
    ///
    /// # Panics
    /// When a `src` is not `head_dim` long.
    #[inline(always)]
    pub(super) fn store<'s>(self, mut rows: impl FnMut(usize, usize) -> (&'s [f32], f32)) {
        let (n, hd, dm) = (self.dims.n, self.dims.head_dim, self.dims.d_model());
        for q in 0..n {
            for p in 0..self.parts {
                let (src, scale) = rows(q, p);
                assert_eq!(src.len(), hd, "a head's row is head_dim long");
                let start = ((self.b * n + q) * self.parts + p) * dm + self.h * hd;
                // SAFETY: b < batch, q < n, p < parts and h < heads (`heads()` made this
                // head), so start + hd <= batch * n * parts * d_model = the writer's
                // `len` (no overflow: `Dims::elements` checked it), within its capacity.
                // Elements (b, q, p, h, ..) belong to head (b, h) alone, and this
                // `HeadOut` is its only one, consumed here.
                let dst = unsafe { std::slice::from_raw_parts_mut(self.base.0.add(start), hd) };
                store_scaled(dst, src, scale);
            }
        }
        self.stored.fetch_add(1, Ordering::Relaxed);
    }
}

/// `dst = src * s` into uninitialised memory, every element of `dst` written, in
/// whole vectors (a head row of 32 is two; a plain loop would leave it to the scalar
/// remainder of a 64-wide vectorised body).
#[inline(always)]
fn store_scaled(dst: &mut [MaybeUninit<f32>], src: &[f32], s: f32) {
    assert_eq!(dst.len(), src.len(), "store_scaled: lengths differ");
    let mut d = dst.chunks_exact_mut(LANES);
    let mut x = src.chunks_exact(LANES);
    for (d, x) in (&mut d).zip(&mut x) {
        for (d, &x) in d.iter_mut().zip(x) {
            d.write(x * s);
        }
    }
    for (d, &x) in d.into_remainder().iter_mut().zip(x.remainder()) {
        d.write(x * s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: Dims = Dims {
        batch: 2,
        n: 3,
        heads: 2,
        head_dim: 5,
    };

    /// A value that says where it belongs: batch, row, part, head, column.
    fn code(b: usize, q: usize, p: usize, h: usize, c: usize) -> f32 {
        (b * 10_000 + q * 1000 + p * 100 + h * 10 + c) as f32
    }

    #[test]
    fn the_heads_fill_the_buffer_in_its_layout() {
        let (parts, hd) = (3, DIMS.head_dim);
        let mut writer = HeadWriter::new(DIMS, parts);
        writer.heads().for_each(|o| {
            let (b, h) = (o.batch(), o.head());
            let src: Vec<f32> = (0..DIMS.n * parts * hd)
                .map(|i| code(b, i / (parts * hd), i / hd % parts, h, i % hd))
                .collect();
            let src = &src[..];
            o.store(move |q, p| (&src[(q * parts + p) * hd..][..hd], 2.0));
        });
        let buf = writer.finish();
        assert_eq!(buf.len(), DIMS.elements(parts));
        for (i, &v) in buf.iter().enumerate() {
            let (c, h) = (i % hd, i / hd % DIMS.heads);
            let row = i / DIMS.d_model();
            let (p, q, b) = (row % parts, row / parts % DIMS.n, row / parts / DIMS.n);
            assert_eq!(v, 2.0 * code(b, q, p, h, c), "element {i}");
        }
    }

    #[test]
    #[should_panic(expected = "3 of 4 heads were written")]
    fn a_head_left_unwritten_panics_instead_of_returning_holes() {
        const ZEROS: [f32; 5] = [0.0; 5];
        let mut writer = HeadWriter::new(DIMS, 1);
        writer
            .heads()
            .filter(|o| o.batch() + o.head() > 0)
            .for_each(|o| o.store(|_, _| (&ZEROS[..], 1.0)));
        let _ = writer.finish();
    }
}
