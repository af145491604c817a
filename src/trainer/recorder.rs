//! The run record as a training run writes it: claimed before the run starts (or, to
//! resume, checked and locked, then reopened once its checkpoint has loaded: a resume
//! that cannot go on leaves the record as it was), written after steps, evaluations
//! and snapshots, checkpointed (each checkpoint's model also kept in
//! `checkpoint/kept/` as `train.keep_checkpoints` says), and finished with the
//! summary. A write that fails ends recording and, at the session's next check, the
//! run: a run that cannot be recorded stops with the error rather than train on
//! unrecorded.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;

use super::protocol::StartRun;
use crate::config::{ConfigError, KeepCheckpoints};
use crate::model::SequenceModel;
use crate::records::{
    AttentionSnapshot, CheckpointState, RecordError, RecordLock, RecordWriter, ResumeError,
    RunSummary, SnapshotHeader, check_resume, checkpoint_dir, commit_checkpoint,
    keep_checkpoint_model, settings_fingerprint,
};

/// Why the run record could not be claimed, written or finished.
#[derive(Debug, thiserror::Error)]
pub(super) enum RecorderError {
    /// The record cannot be resumed with the run's plan (another run, no checkpoint,
    /// changed settings, another writer), or cannot be reopened.
    #[error("cannot resume {}: {source}", dir.display())]
    Resume {
        /// The record's folder.
        dir: PathBuf,
        /// Why.
        source: ResumeError,
    },
    /// The run's configuration cannot be written out as TOML.
    #[error("cannot write the run's config.toml: {0}")]
    Config(#[source] ConfigError),
    /// No record folder can be created under the records root.
    #[error("cannot create the run record under {}: {source}", root.display())]
    Create {
        /// The records root.
        root: PathBuf,
        /// Why.
        source: RecordError,
    },
    /// The checkpoints the run would write do not fit on the disk.
    #[error(
        "train.keep_checkpoints: the run's checkpoints need about {needed} of disk ({kept} kept models and the latest checkpoint), and {} has {available} free; keep fewer (train.keep_checkpoints = N) or free space",
        root.display()
    )]
    Disk {
        /// The records root.
        root: PathBuf,
        /// Kept models.
        kept: u64,
        /// What they need, in words.
        needed: String,
        /// What is free, in words.
        available: String,
    },
    /// A metric, snapshot or summary could not be written.
    #[error("the run record could not be written: {0}")]
    Write(#[source] RecordError),
    /// A checkpoint could not be saved.
    #[error("the checkpoint at step {step} could not be saved: {source}")]
    Checkpoint {
        /// The step it is of.
        step: usize,
        /// Why.
        source: CheckpointError,
    },
    /// The final summary could not be written.
    #[error("could not finish the run record: {0}")]
    Finish(#[source] RecordError),
}

/// Why a checkpoint could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub(super) enum CheckpointError {
    /// The checkpoint folder cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The model's parameters cannot be written.
    #[error("cannot save the model to {}: {source}", path.display())]
    SaveModel {
        /// The file.
        path: PathBuf,
        /// Why.
        source: burn::store::RecordError,
    },
    /// The optimiser's state cannot be written.
    #[error("cannot save the optimiser to {}: {source}", path.display())]
    SaveOptimizer {
        /// The file.
        path: PathBuf,
        /// Why.
        source: burn::store::RecordError,
    },
    /// `state.json` cannot be committed.
    #[error(transparent)]
    Commit(RecordError),
    /// The checkpoint is saved but its model cannot be kept (`train.keep_checkpoints`).
    #[error("cannot keep its model in checkpoint/kept: {0}")]
    Keep(RecordError),
    /// The checkpoint's model does not load into this run's model.
    #[error("cannot load the checkpoint's model from {}: {source}", path.display())]
    LoadModel {
        /// The file.
        path: PathBuf,
        /// Why.
        source: burn::store::RecordError,
    },
    /// The checkpoint's optimiser state does not load.
    #[error("cannot load the checkpoint's optimiser from {}: {source}", path.display())]
    LoadOptimizer {
        /// The file.
        path: PathBuf,
        /// Why.
        source: burn::store::RecordError,
    },
}

/// The checkpoint a resumed run continues from.
#[derive(Clone, Debug)]
pub(super) struct Resume {
    /// What `state.json` names.
    pub(super) state: CheckpointState,
    /// The record's checkpoint folder, where the files it names are.
    pub(super) folder: PathBuf,
}

impl Resume {
    /// Loads the checkpoint's parameters into `model` and its state into `optim`.
    pub(super) fn restore<M: SequenceModel>(
        &self,
        model: M,
        optim: ModuleOptimizer,
    ) -> Result<(M, ModuleOptimizer), CheckpointError> {
        let path = self.folder.join(&self.state.model);
        let model = model
            .try_load_file(&path)
            .map_err(|source| CheckpointError::LoadModel { path, source })?;
        if self.state.optimizer.is_empty() {
            // A fork from a kept model: a fresh optimiser.
            return Ok((model, optim));
        }
        let path = self.folder.join(&self.state.optimizer);
        let optim = optim
            .load(&path)
            .map_err(|source| CheckpointError::LoadOptimizer { path, source })?;
        Ok((model, optim))
    }
}

/// The run record, if any (a run without a records root records nothing).
pub(super) struct Recorder {
    writer: Option<RecordWriter>,
    /// The snapshot file's header (the first snapshot's shape and the probe).
    header: Option<SnapshotHeader>,
    /// The write error not yet reported.
    error: Option<RecorderError>,
    /// The checkpoint a resumed run continues from, until the session takes it.
    resume: Option<Resume>,
    /// The resumed record, checked and locked, until [`Self::reopen`] writes to it.
    pending: Option<RecordLock>,
    /// The run's settings as its checkpoints store them (`None`: not storable, then
    /// a resume compares with `config.toml`).
    settings: Option<String>,
    /// Which checkpoints' models to keep besides the latest checkpoint.
    keep: KeepCheckpoints,
}

impl Recorder {
    /// Claims the record's folder, or checks and locks the one `run` resumes without
    /// writing to it ([`Self::reopen`] does, once the checkpoint has loaded); `Err`
    /// says why no record can be written.
    pub(super) fn create(run: &StartRun, summary: &mut RunSummary) -> Result<Self, RecorderError> {
        let mut recorder = Self {
            writer: None,
            header: None,
            error: None,
            resume: None,
            pending: None,
            settings: settings_fingerprint(run.plan.settings()).ok(),
            keep: run.plan.settings().train.keep_checkpoints,
        };
        if let Some(dir) = &run.resume {
            let resume_error = |source: ResumeError| RecorderError::Resume {
                dir: dir.clone(),
                source,
            };
            let check = || check_resume(dir, &run.plan, &run.resume_changes).map_err(resume_error);
            check()?;
            // A forked record stays forked across resumes.
            summary.forked_from = crate::records::RunRecord::open(dir)
                .ok()
                .and_then(|r| r.summary.forked_from);
            let mut lock = RecordLock::acquire(dir).map_err(|e| resume_error(e.into()))?;
            // Again under the lock: a writer that just let go may have moved the
            // checkpoint on.
            let state = check()?;
            lock.claim().map_err(|e| resume_error(e.into()))?;
            recorder.pending = Some(lock);
            recorder.resume = Some(Resume {
                state,
                folder: checkpoint_dir(dir),
            });
            return Ok(recorder);
        }
        if let Some(root) = &run.record_root {
            check_disk(root, run.plan.settings())?;
            let config = run.plan.config_toml().map_err(RecorderError::Config)?;
            let writer = RecordWriter::create(
                root,
                run.plan.experiment(),
                run.plan.name(),
                &config,
                summary,
            )
            .map_err(|source| RecorderError::Create {
                root: root.clone(),
                source,
            })?;
            // The plan's text file was confined when it was loaded: this machine
            // allows the record to read it again (eval, resume, the window).
            crate::records::write_allowance(writer.dir(), run.plan.settings()).map_err(
                |source| RecorderError::Create {
                    root: root.clone(),
                    source,
                },
            )?;
            recorder.writer = Some(writer);
        }
        Ok(recorder)
    }

    /// Reopens the resumed record at its checkpoint's `step`, now that the checkpoint
    /// has loaded: the first write to it (a fresh run's record is written from
    /// [`Self::create`] on).
    pub(super) fn reopen(
        &mut self,
        step: usize,
        summary: &mut RunSummary,
    ) -> Result<(), RecorderError> {
        let Some(lock) = self.pending.take() else {
            return Ok(());
        };
        let dir = lock.dir().to_path_buf();
        let writer =
            RecordWriter::reopen(lock, step, summary).map_err(|e| RecorderError::Resume {
                dir,
                source: e.into(),
            })?;
        self.writer = Some(writer);
        Ok(())
    }

    /// The record's folder, while it is being written.
    pub(super) fn dir(&self) -> Option<PathBuf> {
        self.writer.as_ref().map(|w| w.dir().to_path_buf())
    }

    /// The checkpoint a resumed run continues from (`None` for a fresh run, and after
    /// the first call).
    pub(super) fn take_resume(&mut self) -> Option<Resume> {
        self.resume.take()
    }

    /// Writes with `f`; a failure ends recording and is kept for [`Self::take_error`].
    pub(super) fn write(&mut self, f: impl FnOnce(&mut RecordWriter) -> Result<(), RecordError>) {
        if let Some(writer) = &mut self.writer
            && let Err(e) = f(writer)
        {
            self.writer = None;
            self.error = Some(RecorderError::Write(e));
        }
    }

    /// Writes an attention snapshot; the first one's shape, from `header`, heads the
    /// snapshot file.
    pub(super) fn snapshot(
        &mut self,
        header: impl FnOnce() -> SnapshotHeader,
        snapshot: &AttentionSnapshot,
    ) {
        let header = self.header.get_or_insert_with(header).clone();
        self.write(|w| w.snapshot(&header, snapshot));
    }

    /// Saves the model and optimiser state as the record's checkpoint of `step`, and
    /// keeps its model in `checkpoint/kept/` when `train.keep_checkpoints` says to.
    pub(super) fn checkpoint<M: SequenceModel>(
        &mut self,
        model: &M,
        optim: &ModuleOptimizer,
        step: usize,
        busy_secs: f64,
    ) {
        let Some(dir) = self.dir() else {
            return;
        };
        let state = CheckpointState {
            step,
            busy_secs,
            model: format!("model-{step}.bpk"),
            optimizer: format!("optimizer-{step}.bpk"),
            settings: self.settings.clone(),
        };
        if let Err(source) = save_checkpoint(&dir, model, optim, &state, self.keep) {
            self.writer = None;
            self.error = Some(RecorderError::Checkpoint { step, source });
        }
    }

    /// The write error since the last call, if any.
    pub(super) fn take_error(&mut self) -> Option<RecorderError> {
        self.error.take()
    }

    /// Writes the final summary; `Err` with a write error not yet reported, if any.
    pub(super) fn finish(&mut self, summary: &RunSummary) -> Result<(), RecorderError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        match self.writer.take() {
            Some(writer) => writer.finish(summary).map_err(RecorderError::Finish),
            None => Ok(()),
        }
    }
}

/// Writes the files `state` names into the checkpoint folder of the record in `dir`,
/// commits `state`, then keeps the model as `keep` says (after the commit: a model is
/// kept only of a checkpoint a resume could continue from).
fn save_checkpoint<M: SequenceModel>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &CheckpointState,
    keep: KeepCheckpoints,
) -> Result<(), CheckpointError> {
    let folder = checkpoint_dir(dir);
    std::fs::create_dir_all(&folder).map_err(|source| CheckpointError::Folder {
        path: folder.clone(),
        source,
    })?;
    let path = folder.join(&state.model);
    model
        .clone()
        .save_file(&path)
        .map_err(|source| CheckpointError::SaveModel { path, source })?;
    let path = folder.join(&state.optimizer);
    optim
        .save(&path)
        .map_err(|source| CheckpointError::SaveOptimizer { path, source })?;
    commit_checkpoint(dir, state).map_err(CheckpointError::Commit)?;
    keep_checkpoint_model(dir, state, keep).map_err(CheckpointError::Keep)
}

/// Refuses a run whose checkpoints (the latest and every kept model) would not fit
/// in the disk space free under `root`, before anything is written.
fn check_disk(
    root: &std::path::Path,
    settings: &crate::config::Settings,
) -> Result<(), RecorderError> {
    let needed = crate::config::checkpoint_disk_bytes(settings);
    match crate::records::disk_available(root) {
        Some(available) if needed > available => Err(RecorderError::Disk {
            root: root.to_path_buf(),
            kept: crate::config::kept_checkpoints(settings),
            needed: crate::config::human_bytes(needed),
            available: crate::config::human_bytes(available),
        }),
        _ => Ok(()),
    }
}
