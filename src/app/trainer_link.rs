//! The window's side of the trainer: starting it, handing it runs and commands
//! without ever blocking (a full channel keeps them waiting in order), stopping runs,
//! and applying the events it sends, a bounded time per frame.

use std::time::{Duration, Instant};

use super::workbench::App;
use crate::records::RunStatus;
use crate::trainer::{
    Command, Event, Placement, STOPPED_BEFORE_START, StartRun, Trainer, TryStartError,
};

/// How soon commands that did not fit in the trainer's channel are tried again.
const OUTBOX_RETRY: Duration = Duration::from_millis(100);

impl App {
    /// Starts the trainer thread if it is not running; false (with a notice) if it
    /// cannot be started.
    pub(super) fn ensure_trainer(&mut self) -> bool {
        let jobs = match self.state.parallel_runs {
            0 => None,
            n => Some(n),
        };
        let placement = Placement::choose(self.active_servers(), jobs, self.editor.plans());
        if let Some(t) = &self.trainer {
            let same = match &placement {
                Placement::Local { workers } => t.servers().is_empty() && t.workers() == *workers,
                Placement::Servers(servers) => t.servers() == servers.as_slice(),
            };
            if same || self.runs.any_active() {
                return true;
            }
            // The pool (its size, or its servers) changed while idle: start a new one
            // (what still waits for the old one is moot).
            self.trainer = None;
            self.outbox.clear();
        }
        let ctx = self.ctx.clone();
        // Trainer events arrive every step; redrawing at most every `redraw` is live
        // enough for curves and keeps the window's own CPU time away from training.
        let redraw = self.redraw.while_training();
        let wake: Box<dyn Fn() + Send + Sync> = Box::new(move || ctx.request_repaint_after(redraw));
        let spawned = Trainer::spawn(placement, wake);
        match spawned {
            Ok(t) => {
                self.trainer = Some(t);
                true
            }
            Err(e) => {
                self.notify_error(format!("Cannot start the trainer thread: {e}"));
                false
            }
        }
    }

    /// Hands waiting commands, then queued runs, to the trainer as its command
    /// channel has room; never blocks the window (called every frame). A run waits
    /// behind the commands before it (a `StopAll` never stops the runs queued after).
    pub(super) fn feed_trainer(&mut self) {
        if !self.flush_outbox() {
            return;
        }
        let Some(trainer) = &self.trainer else {
            return;
        };
        while let Some(run) = self.to_start.pop_front() {
            match trainer.try_start(run) {
                Ok(()) => {}
                Err(TryStartError::Full(run)) => {
                    self.to_start.push_front(*run);
                    self.ctx.request_repaint_after(self.redraw.while_training());
                    return;
                }
                Err(TryStartError::Gone) => {
                    self.to_start.clear();
                    self.notify_error("The trainer thread has stopped; restart attnlab.");
                    return;
                }
            }
        }
    }

    /// Stops every queued and running run.
    pub fn stop_all(&mut self) {
        for run in std::mem::take(&mut self.to_start) {
            self.runs.apply(Event::Finished {
                id: run.id,
                summary: Box::new(stopped_before_start(&run)),
            });
        }
        if self.runs.any_active() {
            self.send(Command::StopAll);
        }
    }

    /// Stops one run, queued or running.
    pub fn stop_run(&mut self, id: crate::trainer::RunId) {
        if let Some(pos) = self.to_start.iter().position(|r| r.id == id)
            && let Some(run) = self.to_start.remove(pos)
        {
            self.runs.apply(Event::Finished {
                id,
                summary: Box::new(stopped_before_start(&run)),
            });
            return;
        }
        self.send(Command::Stop(id));
    }

    /// Sends `command` without waiting: what the trainer's channel cannot take now
    /// waits in the outbox (behind what already waits) and goes with a later frame.
    pub(super) fn send(&mut self, command: Command) {
        if self.trainer.is_none() {
            return;
        }
        self.outbox.push(command, Instant::now());
        self.flush_outbox();
    }

    /// Sends the waiting commands the trainer's channel has room for; true when none
    /// is left waiting. While some wait, the window redraws to send them again (and
    /// to say they wait, once they have waited a while).
    fn flush_outbox(&mut self) -> bool {
        let Some(trainer) = &self.trainer else {
            self.outbox.clear();
            return true;
        };
        if self
            .outbox
            .flush(|command| trainer.try_send(command))
            .is_err()
        {
            self.to_start.clear();
            self.notify_error("The trainer thread has stopped; restart attnlab.");
            return false;
        }
        if self.outbox.is_empty() {
            return true;
        }
        self.ctx.request_repaint_after(OUTBOX_RETRY);
        false
    }

    pub(super) fn clear_finished(&mut self) {
        self.runs.clear_finished();
        if self.selected.is_some_and(|id| self.runs.get(id).is_none()) {
            self.selected = None;
        }
    }

    /// Applies trainer events for at most `budget`; returns how many were applied.
    pub fn drain_events(&mut self, budget: Duration) -> usize {
        let Some(trainer) = &self.trainer else {
            return 0;
        };
        let deadline = Instant::now() + budget;
        let mut applied = 0;
        let mut records_changed = false;
        let mut warnings = Vec::new();
        while let Ok(event) = trainer.events().try_recv() {
            // A run that ended wrote its record's summary: the records list changes.
            records_changed |= matches!(event, Event::Finished { .. });
            let name = |id| self.runs.get(id).map_or("a run", |v| v.name.as_str());
            // A resumed run's record is running again: the records list says so.
            records_changed |= matches!(
                event,
                Event::Started {
                    resumed_from: Some(_),
                    ..
                }
            );
            match &event {
                Event::Warning { id, message } => {
                    warnings.push(format!("{}: {message}", name(*id)));
                }
                Event::Finished { id, summary }
                    if matches!(summary.status, RunStatus::Failed | RunStatus::Diverged) =>
                {
                    warnings.push(format!(
                        "{} {}: {}",
                        name(*id),
                        summary.status.name(),
                        summary.message.as_deref().unwrap_or("no reason given")
                    ));
                }
                _ => {}
            }
            self.runs.apply(event);
            applied += 1;
            if Instant::now() >= deadline {
                self.ctx.request_repaint();
                break;
            }
        }
        if let Some(last) = warnings.pop() {
            self.notify_error(last);
        }
        if records_changed {
            self.refresh_records();
        }
        applied
    }
}

/// The summary of a run the window stopped before handing it to the trainer.
fn stopped_before_start(run: &StartRun) -> crate::records::RunSummary {
    run.ended_unstarted(RunStatus::Stopped, STOPPED_BEFORE_START.to_string())
}
