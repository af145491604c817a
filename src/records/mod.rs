//! Run records on disk: one folder per run, written while it trains and read back
//! to view and compare runs without retraining. The serialised types (summary,
//! metrics, snapshots) are the record format, so they live here; the trainer fills
//! them in.
//!
//! ```text
//! <root>/<record-id>/config.toml     the run alone, as an experiment file (re-runnable)
//!                    metrics.csv     step,split,loss,accuracy,elapsed_secs (split: train | eval)
//!                    summary.json    RunSummary: status, final metrics, backend, kernels, message
//!                    attention.bin   snapshots of the probe's attention (see `snapshots`)
//!                    checkpoint/     model and optimiser state + state.json (see `checkpoint`)
//!                      kept/000400.bpk  with train.keep_checkpoints: the model at each
//!                                    kept checkpoint step (see `checkpoint`)
//!                    allowance.json  the text file this machine allowed the run to read, signed (see `allowance`)
//!                    writer.lock     locked by the process writing the record; its pid (see `lock`)
//! ```
//!
//! A resume checks before it touches ([`check_resume`]): the run by name, the
//! checkpoint, the settings it was trained with; only then is the record locked and
//! rewritten.

mod allowance;
mod checkpoint;
mod distance;
mod files;
mod fork;
pub mod lengths;
mod lock;
mod record;
mod resume;
mod snapshots;
mod summary;

pub use allowance::{ALLOWANCE_FILE, config_home, verified_allowance, write_allowance};
pub use checkpoint::{
    CheckpointState, KeptCheckpoint, MAX_KEPT_ENTRIES, ModelAtError, checkpoint_dir,
    commit_checkpoint, keep_checkpoint_model, kept_checkpoints, kept_dir, model_at,
    read_checkpoint,
};
pub use distance::{DistanceAccuracy, DistanceCount};
pub use files::{RecordError, disk_available, write_atomically};
pub use fork::{ForkError, fork_record};
pub use lengths::LengthScores;
pub use lock::{LOCK_FILE, RecordLock};
pub use record::{
    MAX_SNAPSHOT_BYTES, MetricRow, RecordWriter, RunRecord, list_records, slug, write_summary_in,
};
pub use resume::{ResumeError, SettingChange, check_resume, settings_fingerprint};
pub use snapshots::{
    AttentionSnapshot, HeaderError, MAX_SNAPSHOT_SIDE, Probe, SnapshotHeader, read_snapshots,
    read_snapshots_bounded,
};
pub use summary::{
    BackendInfo, ForkOrigin, LayerKernelInfo, LengthFigure, Metrics, RunStatus, RunSummary, mean_sd,
};

/// Default folder for run records, relative to the working directory (the convention
/// TensorBoard and PyTorch users know).
pub const DEFAULT_ROOT: &str = "runs";
