//! `attnlab bench`: the reference workloads (docs/performance.md, "Reference workloads"), timed.
//!
//! * W1: a full training step (forward, loss, backward, Adam) of the W1 transformer.
//! * W2: one multi-head attention layer alone, forward + backward.
//! * overhead: W1 through the real trainer thread (metrics, snapshots, channels, run
//!   record) against the bare loop, to show what the instrumentation costs.
//!
//! Each configuration runs in its own child process so its peak memory is its own;
//! results are JSON lines on stdout, progress on stderr.

mod cost;
mod workloads;

pub use crate::memory::{CountingAlloc, is_counting, peak_bytes, reset_peak};

pub use cost::{CostLayer, LayerCost, measure_layer};
pub use workloads::{
    BenchError, BenchResult, Workload, bench_mixer, bench_patterns, default_pattern, peak_rss_mb,
    run_one, w1_plan,
};
