//! Output buffers that are written once, never zero-filled first.

use std::mem::MaybeUninit;

/// A `Vec` of `len` elements, every one written by `fill` before it is returned.
///
/// `fill` must write all `len` elements (each caller does; the kernels' tests compare
/// every element with burn's composed ops, so a hole would show as garbage).
pub(super) fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised all `len` elements (see above).
    unsafe { v.set_len(len) };
    v
}
