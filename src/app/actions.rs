//! What the user can do, as methods the menus, shortcuts, buttons and tests all call:
//! open, save, start, stop, drain the trainer's events, reopen past runs.

use std::path::{Path, PathBuf};

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
use crate::records::{slug, write_atomically};
use crate::trainer::{Command, StartRun};

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
            UiCommand::Fork => self.ask_fork(),
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
    /// call). A file that does not parse leaves the current experiment untouched. A
    /// text file outside the experiment's folder opens refused in the editor, with a
    /// checkbox to allow it.
    pub fn open_path(&mut self, path: &Path) {
        match read_experiment(path) {
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
        // Validated again now (memory free, files present), its text files relative
        // to its folder and confined to it but for those the user allowed.
        self.editor.validate();
        if !self.editor.is_valid() {
            self.notify_error("Fix the marked fields first: the experiment is not valid.");
            return false;
        }
        let plans = self.editor.plans().to_vec();
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
        // What the user allowed this session stays allowed.
        let allowed = self.editor.allowed_files().to_vec();
        self.editor = Editor::in_folder_allowing(experiment, folder, allowed);
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

/// Reads an experiment file for the editor. Its text files are not confined here but
/// in the editor ([`Editor::validate`], against this file's folder), where the user
/// can allow one with a checkbox: a file refused at open would leave nothing to tick.
/// So every path is allowed here (the file system's root); nothing reads the text
/// files before the editor has confined them.
fn read_experiment(path: &Path) -> Result<Experiment, crate::config::ConfigErrors> {
    let root: Vec<PathBuf> = std::path::absolute(path)
        .ok()
        .and_then(|p| p.ancestors().last().map(Path::to_path_buf))
        .into_iter()
        .collect();
    Experiment::load_allowing(path, &root)
}
