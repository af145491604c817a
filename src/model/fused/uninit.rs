//! Output buffers that are written once, never zero-filled first, and allocated
//! fallibly: a buffer the process cannot get panics with a message naming what to
//! lower (the trainer turns that into a `failed` run) instead of aborting the process
//! with every other run in it.

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
    let mut v = with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the capacity is at least `len`, and `fill` initialised all `len`
    // elements (the caller's promise).
    unsafe { v.set_len(len) };
    v
}

/// An empty `Vec` with room for `len` elements.
///
/// # Panics
/// When the allocation fails (the process's memory or address-space limit): with a
/// message saying how much was asked and which settings make it smaller.
pub(super) fn with_capacity<T>(len: usize) -> Vec<T> {
    let mut v = Vec::new();
    if let Err(e) = v.try_reserve_exact(len) {
        let mib = (len as f64) * std::mem::size_of::<T>() as f64 / f64::from(1u32 << 20);
        panic!(
            "cannot allocate {mib:.0} MiB for a training step's activations ({e}); \
             lower train.batch, task.seq_len or model.d_model"
        );
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_buffer_too_large_panics_with_what_to_lower_instead_of_aborting() {
        let caught = std::panic::catch_unwind(|| super::with_capacity::<f32>(1usize << 58));
        let panic = caught.expect_err("no machine has 2^60 bytes to give");
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("lower train.batch"), "{text}");
        assert!(super::with_capacity::<f32>(16).capacity() >= 16);
    }
}
