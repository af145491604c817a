//! The binary's global allocator: mimalloc, counting the bytes live now and the peak
//! since the last reset, so one process can measure the peak memory of each
//! configuration it runs (the GUI's cost view does) and of each run's training step
//! (the trainer does, with [`measure_alone`]). Where it is not installed (tests) the
//! counters stay at zero.
//!
//! Why mimalloc: a training step allocates and frees the same large activation
//! buffers every step, on the trainer thread and rayon's workers. glibc's malloc
//! hands such buffers back to the kernel and faults them in again (~10% of a W1 step
//! in page faults), and on threads other than the main one it did so even when told
//! not to (a 10-15% slower step on the trainer thread than on the main thread).
//! mimalloc recycles them on every thread.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// mimalloc, counting.
pub struct CountingAlloc;

fn grew(size: usize) {
    let now = CURRENT.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to mimalloc; only counters are added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Starts a new measurement: the peak becomes the bytes live now, which are returned.
pub fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most bytes live at once since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Whether the counting allocator is installed (anything was counted).
pub fn is_counting() -> bool {
    CURRENT.load(Ordering::Relaxed) > 0
}

/// Sections that allocate while a measurement is taken: [`measure_alone`] holds it
/// exclusively, [`shared`] sections (every other training step) share it.
static GATE: RwLock<()> = RwLock::new(());

/// Runs `work` while no other [`shared`] or measured section runs, and returns its
/// value with the most bytes it had live at once beyond those live when it began
/// (`None` where the counting allocator is not installed). With several runs training
/// in one process, this is how one run's step is measured on its own.
pub fn measure_alone<T>(work: impl FnOnce() -> T) -> (T, Option<usize>) {
    // A panic inside a section poisons nothing worth keeping: the lock guards no data.
    let _alone = GATE.write().unwrap_or_else(|e| e.into_inner());
    let before = reset_peak();
    let value = work();
    let peak = peak_bytes().saturating_sub(before);
    (value, is_counting().then_some(peak))
}

/// Runs `work` alongside other shared sections, never during a measurement.
pub fn shared<T>(work: impl FnOnce() -> T) -> T {
    let _shared = GATE.read().unwrap_or_else(|e| e.into_inner());
    work()
}

/// Tells mimalloc never to hand freed pages back to the kernel (its `purge_delay`
/// option at -1). A training step frees and reallocates the same large buffers every
/// step; with the default 10 ms delay mimalloc returned them and the kernel zeroed
/// fresh pages again, about a quarter of a W1 step at n = 256 here (docs/performance.md, "Fused
/// kernels"). Called once at the start of `main`.
pub fn keep_freed_pages() {
    /// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is allowed at any time; it only changes when freed
    // memory is returned to the OS.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}
