//! Output buffers that are written once, never zero-filled first.

use std::mem::MaybeUninit;

/// A `Vec` of `len` elements, every one written by `fill` before it is returned.
///
/// If `fill` panics, the panic goes on and the buffer is freed unread.
///
/// # Safety
/// `fill` must write every one of the `len` elements of the slice it is given (each
/// caller says why it does, next to the call). An element left unwritten would be
/// returned as uninitialised memory.
pub(super) unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the capacity is at least `len`, and `fill` initialised all `len`
    // elements (the caller's promise).
    unsafe { v.set_len(len) };
    v
}
