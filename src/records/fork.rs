//! Forking a run (`attnlab run --fork RUN_DIR --at STEP`): a new record that starts
//! from its parent's weights at a checkpoint step and goes on with settings that may
//! change mid-run. The child's record holds its parent's curves, distances (at every length) and
//! snapshots up to that step, and a checkpoint made of the parent's model at that step
//! (with the parent's optimiser state when the step is the parent's latest checkpoint;
//! an earlier kept model starts a fresh optimiser). The child then trains as a resumed
//! run would, so a fork at the latest step with nothing changed continues exactly as
//! `run --resume` of the parent.
//!
//! The parent is only read (bounded, links refused); every file of the child is
//! created new in the child's own folder.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::checkpoint::{
    CheckpointState, checkpoint_dir, commit_checkpoint, model_at, read_checkpoint,
};
use super::files::{RecordError, create_new, io_at, open_regular, rows_through};
use super::record::{MAX_SNAPSHOT_BYTES, RecordWriter, RunRecord};
use super::summary::{ForkOrigin, RunStatus, RunSummary};
use crate::config::RunPlan;

/// Why a fork could not be made (nothing is left behind but, at worst, a child
/// folder that lists as stopped at the fork step).
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The parent cannot be read, or the child cannot be written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The parent has no weights at that step.
    #[error(transparent)]
    NoModel(#[from] super::checkpoint::ModelAtError),
    /// The child's settings could not be written.
    #[error("cannot write the child's config.toml: {0}")]
    Config(String),
    /// A weights file of the parent is larger than a model of its settings can be
    /// (a sparse or swapped file): it is not copied.
    #[error(
        "{}: {bytes} bytes, more than the {limit} a model of this run's settings can take; refused, nothing copied",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        bytes: u64,
        /// The most such a file can be.
        limit: u64,
    },
    /// The child would not fit on the disk.
    #[error(
        "the child needs about {needed} of disk and {} has {available} free; nothing copied",
        root.display()
    )]
    NoSpace {
        /// Where the child goes.
        root: PathBuf,
        /// What it needs, in words.
        needed: String,
        /// What is free, in words.
        available: String,
    },
}

/// Makes the child record of `parent` at `step` under `root`, for `plan` (the
/// parent's run with the changes asked for). Returns the child's folder, whose
/// checkpoint is at `step`: train it by resuming it.
pub fn fork_record(
    parent: &Path,
    step: usize,
    root: &Path,
    plan: &RunPlan,
) -> Result<PathBuf, ForkError> {
    let record = RunRecord::open(parent)?;
    let latest = read_checkpoint(parent)?;
    let model = model_at(parent, step)?;
    let same = latest.as_ref().filter(|l| l.step == step);
    check_room(parent, root, &model, same, plan)?;
    let mut summary = child_summary(&record, parent, step, plan);
    let child = create_child(root, plan, &mut summary)?;
    copy_history(parent, &child, step)?;
    let (model_name, optimizer) = copy_weights(parent, &child, &model, step, same)?;
    let state = CheckpointState {
        step,
        busy_secs: busy_secs_at(&record, same, step),
        model: model_name,
        optimizer,
        settings: super::settings_fingerprint(plan.settings()).ok(),
    };
    commit_checkpoint(&child, &state)?;
    Ok(child)
}

/// Refuses a fork before anything is written when a weights file to copy is larger
/// than a model of `plan`'s settings can be (the model: 4 bytes per parameter; the
/// optimiser state: 3 times that; each with 16 MiB of framing), or when what it
/// copies (those files and the parent's history, at most) exceeds the disk space
/// free under `root`.
fn check_room(
    parent: &Path,
    root: &Path,
    model: &Path,
    same: Option<&CheckpointState>,
    plan: &RunPlan,
) -> Result<(), ForkError> {
    let weights = crate::config::parameter_count(plan.settings()).saturating_mul(4);
    let size = |path: &Path| fs::symlink_metadata(path).map_or(0, |m| m.len());
    let mut files = vec![(model.to_path_buf(), weights)];
    if let Some(l) = same {
        files.push((
            checkpoint_dir(parent).join(&l.optimizer),
            weights.saturating_mul(3),
        ));
    }
    let mut needed = 0u64;
    for (path, expected) in files {
        let (bytes, limit) = (size(&path), expected.saturating_add(16 << 20));
        if bytes > limit {
            return Err(ForkError::TooLarge { path, bytes, limit });
        }
        needed = needed.saturating_add(bytes);
    }
    for file in ["metrics.csv", super::distance::FILE, super::lengths::FILE] {
        needed = needed.saturating_add(size(&parent.join(file)));
    }
    let snapshots = size(&parent.join("attention.bin")).min(MAX_SNAPSHOT_BYTES);
    needed = needed.saturating_add(snapshots);
    match super::disk_available(root) {
        Some(available) if needed > available => Err(ForkError::NoSpace {
            root: root.to_path_buf(),
            needed: crate::config::human_bytes(needed),
            available: crate::config::human_bytes(available),
        }),
        _ => Ok(()),
    }
}

/// The child's summary: `plan`'s run stopped at `step`, on the parent's backend and
/// adapter, saying which record (`parent`'s folder name) it was forked from.
fn child_summary(record: &RunRecord, parent: &Path, step: usize, plan: &RunPlan) -> RunSummary {
    let parent_id = parent
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut summary = RunSummary::unstarted(
        plan.experiment(),
        plan.name(),
        plan.settings().train.steps,
        RunStatus::Stopped,
    );
    summary.steps = step;
    summary.backend = record.summary.backend.clone();
    summary.adapter = record.summary.adapter.clone();
    summary.message = Some(format!("forked from {parent_id} at step {step}"));
    summary.forked_from = Some(ForkOrigin {
        record: parent_id,
        step,
    });
    summary
}

/// Creates the child's folder under `root`: its config.toml (`plan` alone) and
/// `summary`, which lists it as stopped. Returns the folder.
fn create_child(
    root: &Path,
    plan: &RunPlan,
    summary: &mut RunSummary,
) -> Result<PathBuf, ForkError> {
    let config = plan
        .config_toml()
        .map_err(|e| ForkError::Config(e.to_string()))?;
    let writer = RecordWriter::create(root, plan.experiment(), plan.name(), &config, summary)?;
    let child = writer.dir().to_path_buf();
    // The parent's file was allowed (its loader checked): so is the child's.
    super::write_allowance(&child, plan.settings())?;
    // The writer's summary says running; the child is stopped at the fork step until
    // it resumes.
    summary.pid = None;
    writer.finish(summary)?;
    Ok(child)
}

/// The parent's history up to `step` copied into the child: its metrics, the
/// distances and lengths files where it has them, and its attention snapshots.
fn copy_history(parent: &Path, child: &Path, step: usize) -> Result<(), RecordError> {
    rows_through(
        &parent.join("metrics.csv"),
        &child.join("metrics.csv"),
        step,
    )?;
    for file in [super::distance::FILE, super::lengths::FILE] {
        let rows = parent.join(file);
        if fs::symlink_metadata(&rows).is_ok() {
            rows_through(&rows, &child.join(file), step)?;
        }
    }
    let snapshots = parent.join("attention.bin");
    if fs::symlink_metadata(&snapshots).is_ok() {
        let len = super::snapshots::length_up_to(&snapshots, step).map_err(io_at(&snapshots))?;
        copy_prefix(
            &snapshots,
            &child.join("attention.bin"),
            len,
            MAX_SNAPSHOT_BYTES,
        )?;
    }
    Ok(())
}

/// The weights of the child's checkpoint, in a new checkpoint folder: the parent's
/// `model` at `step` and, when `same` (the parent's latest checkpoint) is at that
/// step, its optimiser state. Returns the file names of the model and the optimiser
/// state (empty when there is none: the child starts a fresh optimiser).
fn copy_weights(
    parent: &Path,
    child: &Path,
    model: &Path,
    step: usize,
    same: Option<&CheckpointState>,
) -> Result<(String, String), RecordError> {
    let folder = checkpoint_dir(child);
    fs::create_dir(&folder).map_err(io_at(&folder))?;
    let ext = model
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bpk".into());
    let model_name = format!("model-{step}.{ext}");
    copy_prefix(model, &folder.join(&model_name), u64::MAX, u64::MAX)?;
    let optimizer = match same {
        Some(l) => {
            copy_prefix(
                &checkpoint_dir(parent).join(&l.optimizer),
                &folder.join(&l.optimizer),
                u64::MAX,
                u64::MAX,
            )?;
            l.optimizer.clone()
        }
        None => String::new(),
    };
    Ok((model_name, optimizer))
}

/// Seconds of training the child starts its clock at: those of `same` (the parent's
/// latest checkpoint, at `step`), else the largest elapsed time in the parent's
/// metrics up to `step` (0 without any).
fn busy_secs_at(record: &RunRecord, same: Option<&CheckpointState>, step: usize) -> f64 {
    match same {
        Some(l) => l.busy_secs,
        None => record
            .metrics()
            .ok()
            .and_then(|rows| {
                rows.iter()
                    .filter(|r| r.metrics.step <= step)
                    .map(|r| r.metrics.elapsed_secs)
                    .reduce(f64::max)
            })
            .unwrap_or(0.0),
    }
}

/// Copies the first `len` bytes of `from` (a regular file of at most `max` bytes)
/// into a new file `to`.
fn copy_prefix(from: &Path, to: &Path, len: u64, max: u64) -> Result<(), RecordError> {
    let (file, _) = open_regular(from, max)?;
    let mut out = create_new(to)?;
    io::copy(&mut file.take(len), &mut out).map_err(io_at(to))?;
    out.flush().map_err(io_at(to))?;
    out.sync_all().map_err(io_at(to))
}
