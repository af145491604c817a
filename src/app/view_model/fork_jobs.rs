//! The fork dialog's state and its work off the UI thread ("attnlab-fork" threads):
//! reading the parent's record (the plan that resumes it, its saved steps) for the
//! dialog, and making the child's record (`records::fork_record` copies the parent's
//! curves, snapshots and weights up to the step). One answer per request, polled
//! every frame; a slow disk never freezes the window.

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::fork::{ForkProposal, ForkSource};
use crate::config::RunPlan;
use crate::inspect::checkpoint_steps;
use crate::records::{RunRecord, fork_record, read_checkpoint};

/// What the fork dialog shows.
#[derive(Debug)]
pub enum ForkDialog {
    /// The parent's record is being read.
    Reading {
        /// The parent's record folder.
        dir: PathBuf,
        /// The scrubber's step.
        wanted: usize,
    },
    /// The fork on offer (or why it cannot be made).
    Ready(Box<ForkProposal>),
}

/// What a helper thread did.
pub enum ForkAnswer {
    /// The parent's record, read for the dialog, or why it cannot be.
    Read {
        /// The parent's record folder.
        dir: PathBuf,
        /// The scrubber's step the dialog was opened at.
        wanted: usize,
        /// What was read.
        source: Result<Box<ForkSource>, String>,
    },
    /// The child's record, made (train it by resuming it), or why not.
    Forked {
        /// The parent's record id.
        parent: String,
        /// The fork's step.
        step: usize,
        /// The child's record folder, or the problem.
        child: Result<PathBuf, String>,
    },
}

/// The fork dialog, and the helper threads working for it.
pub struct ForkView {
    /// The dialog, while open.
    pub dialog: Option<ForkDialog>,
    tx: Sender<ForkAnswer>,
    rx: Receiver<ForkAnswer>,
    in_flight: usize,
}

impl Default for ForkView {
    fn default() -> Self {
        // Each helper sends one answer and the frame drains them all.
        let (tx, rx) = bounded(16);
        Self {
            dialog: None,
            tx,
            rx,
            in_flight: 0,
        }
    }
}

impl ForkView {
    /// Whether a helper thread is reading or forking.
    pub fn is_busy(&self) -> bool {
        self.in_flight > 0
    }

    /// Opens the dialog for the record in `dir` at the scrubber's step `wanted`,
    /// reading the record on a helper thread; the error when none can start.
    pub fn open(
        &mut self,
        dir: PathBuf,
        wanted: usize,
        wake: impl Fn() + Send + 'static,
    ) -> Result<(), String> {
        self.dialog = Some(ForkDialog::Reading {
            dir: dir.clone(),
            wanted,
        });
        let tx = self.tx.clone();
        let spawned = self.spawn(wake, move || {
            let source = read_source(&dir).map(Box::new);
            // Ignored: if the window is gone nobody waits for the record.
            let _ = tx.send(ForkAnswer::Read {
                dir,
                wanted,
                source,
            });
        });
        if spawned.is_err() {
            self.dialog = None;
        }
        spawned
    }

    /// Makes the child of `source` at `step` with `plan` under `root`, on a helper
    /// thread; the error when none can start.
    pub fn fork(
        &mut self,
        source: &ForkSource,
        step: usize,
        plan: RunPlan,
        root: PathBuf,
        wake: impl Fn() + Send + 'static,
    ) -> Result<(), String> {
        let (tx, parent, dir) = (self.tx.clone(), source.record.clone(), source.dir.clone());
        self.spawn(wake, move || {
            let child = fork_record(&dir, step, &root, &plan).map_err(|e| e.to_string());
            // Ignored: if the window is gone nobody waits for the child.
            let _ = tx.send(ForkAnswer::Forked {
                parent,
                step,
                child,
            });
        })
    }

    /// Everything the helper threads answered since the last call.
    pub fn poll(&mut self) -> Vec<ForkAnswer> {
        let answers: Vec<ForkAnswer> = self.rx.try_iter().collect();
        self.in_flight = self.in_flight.saturating_sub(answers.len());
        answers
    }

    fn spawn(
        &mut self,
        wake: impl Fn() + Send + 'static,
        work: impl FnOnce() + Send + 'static,
    ) -> Result<(), String> {
        std::thread::Builder::new()
            .name("attnlab-fork".into())
            .spawn(move || {
                work();
                wake();
            })
            .map_err(|e| format!("cannot start a helper thread: {e}"))?;
        self.in_flight += 1;
        Ok(())
    }
}

/// The parent's record as the dialog needs it: its plan, saved steps and latest
/// checkpoint.
pub fn read_source(dir: &Path) -> Result<ForkSource, String> {
    let record = RunRecord::open(dir).map_err(|e| e.to_string())?;
    let plan = record.resume_plan().map_err(|e| e.to_string())?;
    let saved = checkpoint_steps(dir).map_err(|e| e.problem.to_string())?;
    let latest = read_checkpoint(dir)
        .map_err(|e| e.to_string())?
        .map(|c| c.step);
    Ok(ForkSource {
        dir: dir.to_path_buf(),
        record: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name: record.summary.name.clone(),
        plan,
        saved,
        latest,
    })
}
