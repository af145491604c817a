//! "Fork from here" (the Attention pane's button, Runs > Fork from here...): the shown
//! run's record at the Attention scrubber's step, a dialog saying what the child takes
//! from the editor (`view_model::fork`, drawn by `fork_modal`), then the child's
//! record made off the UI thread (`view_model::fork_jobs`) and trained through the
//! path the Resume button takes (`past_runs`), into the window's records folder.

use std::path::PathBuf;

use super::panes::attention::AttentionViewState;
use super::tiles::shown_run;
use super::view_model::fork::{ForkProposal, editor_settings};
use super::view_model::fork_jobs::{ForkAnswer, ForkDialog};
use super::view_model::run_views::RunView;
use super::workbench::App;

impl App {
    /// The shown run's record and the Attention scrubber's step, or why the run cannot
    /// be forked.
    pub fn fork_target(&self) -> Result<(PathBuf, usize), String> {
        let run = shown_run(&self.runs, self.selected)
            .ok_or("no run is shown: train one or open a past run")?;
        let dir = run
            .record_dir
            .clone()
            .ok_or("this run has no record to fork from")?;
        if !run.status.is_terminal() {
            return Err(
                "wait for the run to end (or stop it): its weights are still being written".into(),
            );
        }
        Ok((dir, scrubber_step(run, &self.attention)))
    }

    /// Opens the fork dialog for the shown run at the scrubber's step (what the
    /// Attention pane's button and the Runs menu call); a notice says why not.
    pub fn ask_fork(&mut self) {
        match self.fork_target() {
            Ok((dir, wanted)) => {
                let ctx = self.ctx.clone();
                if let Err(e) = self.fork.open(dir, wanted, move || ctx.request_repaint()) {
                    self.notify_error(format!("Cannot fork: {e}"));
                }
            }
            Err(why) => self.notify_error(format!("Cannot fork: {why}.")),
        }
    }

    /// Puts the Attention scrubber on the shown run's last snapshot at or before
    /// `step` (what dragging the slider does).
    pub fn scrub_to_step(&mut self, step: usize) {
        if let Some(i) = shown_run(&self.runs, self.selected).and_then(|r| r.snapshot_at(step)) {
            self.attention.snapshot = Some(i);
        }
    }

    /// Whether the fork dialog is open (also while it reads the parent's record).
    pub fn is_fork_dialog_open(&self) -> bool {
        self.fork.dialog.is_some()
    }

    /// Fork: the dialog closes and the child's record is made on a helper thread; it
    /// then trains, or a notice says why not.
    pub(super) fn confirm_fork(&mut self) {
        let Some(ForkDialog::Ready(proposal)) = self.fork.dialog.take() else {
            return;
        };
        let Some((plan, step)) = proposal.ready() else {
            self.fork.dialog = Some(ForkDialog::Ready(proposal));
            return;
        };
        let ctx = self.ctx.clone();
        let root = self.state.runs_root.clone();
        let record = proposal.source.record.clone();
        match self.fork.fork(&proposal.source, step, plan, root, move || {
            ctx.request_repaint()
        }) {
            Ok(()) => self.notify(format!("Forking {record} at step {step}...")),
            Err(e) => self.notify_error(format!("Cannot fork {record}: {e}")),
        }
    }

    /// Cancel (or Esc): closes the dialog; nothing is written.
    pub(super) fn cancel_fork(&mut self) {
        self.fork.dialog = None;
    }

    /// Applies what the fork's helper threads did: the dialog's proposal once the
    /// parent is read, and a child made starts training as a resumed run.
    pub(super) fn apply_forks(&mut self) {
        for answer in self.fork.poll() {
            match answer {
                ForkAnswer::Read {
                    dir,
                    wanted,
                    source,
                } => {
                    // An answer for a dialog cancelled (or opened again) meanwhile.
                    let waiting = matches!(
                        &self.fork.dialog,
                        Some(ForkDialog::Reading { dir: d, wanted: w }) if *d == dir && *w == wanted
                    );
                    if !waiting {
                        continue;
                    }
                    match source {
                        Ok(source) => {
                            let (settings, from) = editor_settings(&self.editor, &source.name);
                            let proposal = ForkProposal::new(*source, wanted, &settings, from);
                            self.fork.dialog = Some(ForkDialog::Ready(Box::new(proposal)));
                        }
                        Err(e) => {
                            self.fork.dialog = None;
                            self.notify_error(format!("Cannot fork {}: {e}", dir.display()));
                        }
                    }
                }
                ForkAnswer::Forked {
                    parent,
                    step,
                    child,
                } => match child {
                    Ok(child) => {
                        self.notify(format!(
                            "Forked {parent} at step {step} into {}",
                            child.display()
                        ));
                        self.refresh_records();
                        self.resume_record(&child);
                    }
                    Err(e) => {
                        self.notify_error(format!("Cannot fork {parent} at step {step}: {e}"));
                    }
                },
            }
        }
    }
}

/// The Attention scrubber's step on `run` (the Attention, Heads and Interventions
/// panes'): its snapshot's step, or the last step trained where it has none.
fn scrubber_step(run: &RunView, state: &AttentionViewState) -> usize {
    match run.snapshots.len() {
        0 => run.steps_done(),
        n => run.snapshots[state.snapshot.unwrap_or(n - 1).min(n - 1)].step,
    }
}
