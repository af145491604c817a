//! Run records on disk: one folder per run, written while it trains and read back
//! to view and compare runs without retraining.
//!
//! ```text
//! <root>/<run-id>/config.toml     the run alone, as an experiment file (re-runnable)
//!                 metrics.csv     step,split,loss,accuracy,elapsed_secs (split: train | eval)
//!                 summary.json    RunSummary: status, final metrics, backend, message
//!                 attention.bin   snapshots of the probe's attention (see `snapshots`)
//! ```

mod record;
mod snapshots;

pub use record::{MetricRow, RecordError, RecordWriter, RunRecord, list_records, new_run_id, slug};
pub use snapshots::{SnapshotHeader, read_snapshots};

/// Default folder for run records, relative to the working directory (the convention
/// TensorBoard and PyTorch users know).
pub const DEFAULT_ROOT: &str = "runs";
