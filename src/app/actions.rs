//! What the user can do, as methods the menus, shortcuts, buttons and tests all call:
//! open, save, start, stop, drain the trainer's events, reopen past runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::commands::UiCommand;
use super::examples::SHIPPED;
use super::files::{FileChoice, FileRequest};
use super::pane::Pane;
use super::panes::attention::AttentionViewState;
use super::panes::runs_panel::RunsAction;
use super::view_model::editor::Editor;
use super::view_model::run_views::RunView;
use super::workbench::{App, Pending};
use crate::config::Experiment;
use crate::records::{RunStatus, slug, write_atomically};
use crate::trainer::{
    Command, Event, Placement, STOPPED_BEFORE_START, StartRun, Trainer, TryStartError,
};

impl App {
    /// Carries out a command from a menu, a shortcut or a button.
    pub fn run_command(&mut self, command: UiCommand) {
        match command {
            UiCommand::Open => self.ask(FileRequest::Open),
            UiCommand::Save => self.save(),
            UiCommand::SaveAs => self.save_as(),
            UiCommand::Quit => self.ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            UiCommand::Export => self.ask(FileRequest::ExportFolder),
            UiCommand::SavePanePng => self.save_pane_png(),
            UiCommand::RunAll => {
                self.start_runs();
            }
            UiCommand::StopAll => {
                if self.pending.is_none() {
                    self.stop_all();
                }
            }
            UiCommand::Pause => self.send(Command::Pause),
            UiCommand::Continue => self.send(Command::Continue),
            UiCommand::RecordsFolder => self.ask(FileRequest::RunsFolder),
            UiCommand::ClearFinished => self.clear_finished(),
            UiCommand::Show(pane) => self.show_pane(pane),
        }
    }

    /// The folder run records go to.
    pub fn set_runs_root(&mut self, root: PathBuf) {
        self.state.runs_root = root;
        self.refresh_records();
    }

    /// Opens an experiment file (what the Open dialog, a dropped file and the tests
    /// call). A file that does not parse leaves the current experiment untouched.
    pub fn open_path(&mut self, path: &Path) {
        match Experiment::load(path) {
            Ok(experiment) => {
                self.load_error = None;
                self.state.last_dir = path.parent().map(Path::to_path_buf);
                // A bundle (an exported experiment with its records beside it): list
                // its records, to open and scrub without retraining.
                if let Some(records) = path.parent().map(|p| p.join("records"))
                    && path.file_name().is_some_and(|n| n == "experiment.toml")
                    && records.is_dir()
                {
                    self.set_runs_root(records);
                }
                self.request_load(experiment, Some(path.to_path_buf()));
            }
            Err(e) => {
                self.load_error = Some(format!("Could not open {}:\n{e}", path.display()));
            }
        }
    }

    /// Opens a shipped example.
    pub fn open_example(&mut self, file: &str) {
        if let Some(example) = SHIPPED.iter().find(|e| e.file == file) {
            match Experiment::from_toml(example.text) {
                Ok(experiment) => self.request_load(experiment, None),
                Err(e) => self.load_error = Some(format!("{file}: {e}")),
            }
        }
    }

    /// Writes the experiment to `path` (Save As, and Save once a path is known).
    pub fn save_to(&mut self, path: &Path) -> bool {
        let text = match self.editor.experiment.to_toml() {
            Ok(text) => text,
            Err(e) => {
                self.notify_error(format!(
                    "Could not save {}: the experiment {e}",
                    path.display()
                ));
                return false;
            }
        };
        match write_atomically(path, text.as_bytes()) {
            Ok(()) => {
                self.state.experiment_path = Some(path.to_path_buf());
                self.state.last_dir = path.parent().map(Path::to_path_buf);
                self.state.dirty = false;
                self.notify(format!("Saved {}", path.display()));
                true
            }
            Err(e) => {
                self.notify_error(format!("Could not save {}: {e}", path.display()));
                false
            }
        }
    }

    /// Save: to the known path, else Save As.
    pub fn save(&mut self) {
        match self.state.experiment_path.clone() {
            Some(path) => {
                self.save_to(&path);
            }
            None => self.save_as(),
        }
    }

    /// Save As: the native dialog.
    pub fn save_as(&mut self) {
        let name = format!("{}.toml", slug(&self.editor.experiment.name));
        self.ask(FileRequest::SaveAs(name));
    }

    /// Trains every run of the experiment. Does nothing when invalid.
    pub fn start_runs(&mut self) -> bool {
        let plans = match self.editor.experiment.plan() {
            Ok(plans) => plans,
            Err(_) => {
                self.notify_error("Fix the marked fields first: the experiment is not valid.");
                return false;
            }
        };
        if !self.ensure_trainer() {
            return false;
        }
        let root = self.state.runs_root.clone();
        let mut first = None;
        for plan in plans {
            let id = self.runs.next_id();
            self.runs.push(RunView::live(id, &plan));
            first.get_or_insert(id);
            self.to_start
                .push_back(StartRun::new(id, plan, Some(root.clone())));
        }
        self.feed_trainer();
        self.selected = first.or(self.selected);
        self.attention = AttentionViewState::default();
        self.show_pane(Pane::Curves);
        true
    }

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
            // The pool (its size, or its servers) changed while idle: start a new one.
            self.trainer = None;
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

    /// Hands queued runs to the trainer as its command channel has room; never
    /// blocks the window (called every frame).
    pub(super) fn feed_trainer(&mut self) {
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

    fn send(&mut self, command: Command) {
        if let Some(t) = &self.trainer
            && t.send(command).is_err()
        {
            self.notify_error("The trainer thread has stopped; restart attnlab.");
        }
    }

    fn clear_finished(&mut self) {
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

    /// What the runs panel asked for.
    pub(super) fn apply_runs_action(&mut self, action: RunsAction) {
        match action {
            RunsAction::Select(id) => {
                self.selected = Some(id);
                self.attention = AttentionViewState::default();
                self.show_pane(Pane::Attention);
            }
            RunsAction::Stop(id) => self.stop_run(id),
            RunsAction::OpenRecord(dir) => self.open_record(&dir),
            RunsAction::Resume(dir) => self.resume_record(&dir),
            RunsAction::Refresh => self.refresh_records(),
            RunsAction::ChooseFolder => self.ask(FileRequest::RunsFolder),
            RunsAction::ClearFinished => self.clear_finished(),
        }
    }

    /// Lists the records folder again (on a helper thread).
    pub(super) fn refresh_records(&mut self) {
        let ctx = self.ctx.clone();
        self.background
            .list(self.state.runs_root.clone(), move || ctx.request_repaint());
    }

    fn request_load(&mut self, experiment: Experiment, path: Option<PathBuf>) {
        if self.state.dirty {
            self.pending = Some(Pending::Load {
                experiment: Box::new(experiment),
                path,
            });
        } else {
            self.load(experiment, path);
        }
    }

    /// Replaces the experiment being edited (after the user agreed, if it had edits).
    pub(super) fn load(&mut self, experiment: Experiment, path: Option<PathBuf>) {
        let folder = path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        self.editor = Editor::in_folder(experiment, folder);
        self.state.experiment_path = path;
        self.state.dirty = false;
        self.load_error = None;
        self.show_pane(Pane::Preview);
    }

    pub(super) fn ask(&mut self, request: FileRequest) {
        let ctx = self.ctx.clone();
        let dir = self.state.last_dir.clone();
        self.dialogs
            .request(request, dir, move || ctx.request_repaint());
    }

    pub(super) fn on_choice(&mut self, choice: FileChoice) {
        let Some(path) = choice.path else {
            self.notify(
                "No file chosen. If no dialog appeared, type a path under File > Open path \
                 (the native dialog needs xdg-desktop-portal or zenity).",
            );
            return;
        };
        match choice.request {
            FileRequest::Open => self.open_path(&path),
            FileRequest::SaveAs(_) => {
                let path = if path.extension().is_none() {
                    path.with_extension("toml")
                } else {
                    path
                };
                self.save_to(&path);
            }
            FileRequest::RunsFolder => self.set_runs_root(path),
            FileRequest::ExportFolder => self.export_to(&path),
        }
    }
}

/// The summary of a run the window stopped before handing it to the trainer.
fn stopped_before_start(run: &StartRun) -> crate::records::RunSummary {
    run.ended_unstarted(RunStatus::Stopped, STOPPED_BEFORE_START.to_string())
}
