//! The eframe `App`: owns the state, drains trainer events each frame within a time
//! budget, handles shortcuts, files and dialogs, and lays out the panels.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Key, KeyboardShortcut, Modifiers, RichText, Ui};
use serde::{Deserialize, Serialize};

use super::attention_view::{AttentionViewState, Overlays, attention_ui};
use super::compare::{CompareState, compare_ui};
use super::config_panel::{Editor, editor_ui};
use super::cost_view::{CostView, cost_ui};
use super::examples::{DEFAULT, EXAMPLES};
use super::files::{Dialogs, FileChoice, FileRequest};
use super::heatmap::TextureCache;
use super::loss_plot::{CurveOptions, curves_ui};
use super::mask_preview::{PreviewCache, experiment_preview_ui, mask_preview_ui};
use super::runs::{RunView, Runs};
use super::runs_panel::{RunsAction, records_ui, runs_ui};
use super::state::PersistedState;
use super::widgets::ERROR_COLOR;
use crate::config::Experiment;
use crate::runs::{RunRecord, list_records};
use crate::trainer::{Command, RunId, StartRun, Trainer};

/// Longest time spent applying trainer events in one frame; the rest wait for the next.
const EVENT_BUDGET: Duration = Duration::from_millis(8);

/// Frames kept for the frame-time statistics.
const FRAME_HISTORY: usize = 600;
/// The longest a trainer event waits for the window to redraw.
const TRAINER_REPAINT: Duration = Duration::from_millis(150);

const RUN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);
const SAVE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::S);
const SAVE_AS: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), Key::S);
const OPEN: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
const STOP: KeyboardShortcut = KeyboardShortcut::new(Modifiers::NONE, Key::Escape);

/// The tabs of the main area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pane {
    /// Loss and accuracy curves.
    Curves,
    /// Layers x heads heatmaps of the selected run.
    Attention,
    /// Runs side by side.
    Compare,
    /// The pattern's masks and receptive field.
    Preview,
    /// Time and memory per step against sequence length.
    Cost,
}

impl Pane {
    fn title(self) -> &'static str {
        match self {
            Pane::Curves => "Curves",
            Pane::Attention => "Attention",
            Pane::Compare => "Compare",
            Pane::Preview => "Mask preview",
            Pane::Cost => "Cost",
        }
    }
}

/// Something that would discard unsaved edits, waiting for the user's yes.
enum Pending {
    Load {
        experiment: Box<Experiment>,
        path: Option<PathBuf>,
    },
}

/// A message in the status line.
struct Notice {
    text: String,
    error: bool,
}

/// The workbench.
pub struct App {
    state: PersistedState,
    editor: Editor,
    runs: Runs,
    trainer: Option<Trainer>,
    tree: egui_tiles::Tree<Pane>,
    textures: TextureCache,
    preview: PreviewCache,
    cost: CostView,
    attention: AttentionViewState,
    compare: CompareState,
    selected: Option<RunId>,
    records: Vec<RunRecord>,
    dialogs: Dialogs,
    notice: Option<Notice>,
    /// The last file that failed to load, with its errors (shown until dismissed).
    load_error: Option<String>,
    pending: Option<Pending>,
    path_input: String,
    title: String,
    ctx: egui::Context,
    frame_secs: std::collections::VecDeque<f32>,
    /// Frames drawn since launch, and when it launched (W4: frames per second).
    frames: (u64, Instant),
}

impl App {
    /// The app as eframe creates it, with the state of the last launch.
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        let state: PersistedState = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        Self::with_state(cc.egui_ctx.clone(), state)
    }

    /// The app with a given persisted state (tests start from `Default`).
    pub fn with_state(ctx: egui::Context, mut state: PersistedState) -> Self {
        let mut notice = None;
        let experiment = match Experiment::from_toml(&state.experiment_toml) {
            Ok(e) => e,
            Err(e) => {
                notice = Some(Notice {
                    text: format!(
                        "The experiment of the last session could not be read ({e}); opened the default example."
                    ),
                    error: true,
                });
                state.experiment_toml = DEFAULT.text.to_string();
                state.experiment_path = None;
                state.dirty = false;
                Experiment::from_toml(DEFAULT.text)
                    .unwrap_or_else(|_| Experiment::single("experiment", Default::default()))
            }
        };
        let mut tree = egui_tiles::Tree::new_tabs(
            egui::Id::unique("attnlab-tiles"),
            vec![
                Pane::Curves,
                Pane::Attention,
                Pane::Compare,
                Pane::Preview,
                Pane::Cost,
            ],
        );
        tree.make_active(|_, tile| matches!(tile, egui_tiles::Tile::Pane(Pane::Preview)));
        let records = list_records(&state.runs_root);
        let cost = CostView::new(state.cost_cache.clone(), state.cost_max_len);
        Self {
            editor: Editor::new(experiment),
            state,
            runs: Runs::default(),
            trainer: None,
            tree,
            textures: TextureCache::default(),
            preview: PreviewCache::default(),
            cost,
            attention: AttentionViewState::default(),
            compare: CompareState::default(),
            selected: None,
            records,
            dialogs: Dialogs::default(),
            notice,
            load_error: None,
            pending: None,
            path_input: String::new(),
            title: String::new(),
            ctx,
            frame_secs: std::collections::VecDeque::with_capacity(FRAME_HISTORY),
            frames: (0, Instant::now()),
        }
    }

    // ----- what tests and the menus call --------------------------------------------

    /// The experiment being edited.
    pub fn experiment(&self) -> &Experiment {
        &self.editor.experiment
    }

    /// The editor (validation state, target).
    pub fn editor(&self) -> &Editor {
        &self.editor
    }

    /// Every run the window knows.
    pub fn runs(&self) -> &Runs {
        &self.runs
    }

    /// The persisted state as it would be saved now.
    pub fn persisted(&self) -> PersistedState {
        let mut state = self.state.clone();
        state.experiment_toml = self.editor.experiment.to_toml();
        state.cost_max_len = self.cost.max_len;
        state
    }

    /// Whether there are unsaved edits.
    pub fn is_dirty(&self) -> bool {
        self.state.dirty
    }

    /// The error of the last file that failed to open, if shown.
    pub fn load_error(&self) -> Option<&str> {
        self.load_error.as_deref()
    }

    /// Attention and mask textures alive (they are built once per snapshot, not per frame).
    pub fn texture_count(&self) -> usize {
        self.textures.count()
    }

    /// Every distinct attention pattern of the experiment, dense first.
    pub fn experiment_patterns(&self) -> Vec<crate::attention::AttentionPattern> {
        let mut patterns = vec![crate::attention::AttentionPattern::Dense];
        for run in &self.editor.experiment.runs {
            if run.settings.model.kind != crate::config::ModelKind::Transformer {
                continue;
            }
            for p in run.settings.model.layer_patterns() {
                if !patterns.contains(&p) {
                    patterns.push(p);
                }
            }
        }
        patterns
    }

    /// Whether the cost view is measuring.
    pub fn cost_running(&self) -> bool {
        self.cost.is_running()
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
                self.request_load(experiment, Some(path.to_path_buf()));
            }
            Err(e) => {
                self.load_error = Some(format!("Could not open {}:\n{e}", path.display()));
            }
        }
    }

    /// Opens a shipped example.
    pub fn open_example(&mut self, file: &str) {
        if let Some(example) = EXAMPLES.iter().find(|e| e.file == file) {
            match Experiment::from_toml(example.text) {
                Ok(experiment) => self.request_load(experiment, None),
                Err(e) => self.load_error = Some(format!("{file}: {e}")),
            }
        }
    }

    /// Writes the experiment to `path` (Save As, and Save once a path is known).
    pub fn save_to(&mut self, path: &Path) -> bool {
        let text = self.editor.experiment.to_toml();
        let tmp = path.with_extension("toml.tmp");
        let result = std::fs::write(&tmp, &text).and_then(|()| std::fs::rename(&tmp, path));
        match result {
            Ok(()) => {
                self.state.experiment_path = Some(path.to_path_buf());
                self.state.last_dir = path.parent().map(Path::to_path_buf);
                self.state.dirty = false;
                self.notice = Some(Notice {
                    text: format!("Saved {}", path.display()),
                    error: false,
                });
                true
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                self.notice = Some(Notice {
                    text: format!("Could not save {}: {e}", path.display()),
                    error: true,
                });
                false
            }
        }
    }

    /// Save (Ctrl+S): to the known path, else Save As.
    pub fn save(&mut self) {
        match self.state.experiment_path.clone() {
            Some(path) => {
                self.save_to(&path);
            }
            None => self.save_as(),
        }
    }

    /// Save As (Ctrl+Shift+S): the native dialog.
    pub fn save_as(&mut self) {
        let name = format!("{}.toml", crate::runs::slug(&self.editor.experiment.name));
        self.ask(FileRequest::SaveAs(name));
    }

    /// Trains every run of the experiment (Ctrl+Enter). Does nothing when invalid.
    pub fn start_runs(&mut self) -> bool {
        let plans = match self.editor.experiment.plan() {
            Ok(plans) => plans,
            Err(_) => {
                self.notice = Some(Notice {
                    text: "Fix the marked fields first: the experiment is not valid.".into(),
                    error: true,
                });
                return false;
            }
        };
        if self.trainer.is_none() {
            let ctx = self.ctx.clone();
            // Trainer events arrive every step; redrawing at most every
            // TRAINER_REPAINT is live enough for curves and keeps the window's own
            // CPU time (software rendering included) away from training.
            match Trainer::spawn(Box::new(move || ctx.request_repaint_after(TRAINER_REPAINT))) {
                Ok(t) => self.trainer = Some(t),
                Err(e) => {
                    self.notice = Some(Notice {
                        text: format!("Cannot start the trainer thread: {e}"),
                        error: true,
                    });
                    return false;
                }
            }
        }
        let Some(trainer) = &self.trainer else {
            return false;
        };
        let root = self.state.runs_root.clone();
        let mut first = None;
        for plan in plans {
            let id = self.runs.next_id();
            self.runs.push(RunView::live(id, &plan));
            first.get_or_insert(id);
            if trainer
                .start(StartRun::new(id, plan, Some(root.clone())))
                .is_err()
            {
                self.notice = Some(Notice {
                    text: "The trainer thread has stopped; restart attnlab.".into(),
                    error: true,
                });
                return false;
            }
        }
        self.selected = first.or(self.selected);
        self.attention = AttentionViewState::default();
        self.tree
            .make_active(|_, tile| matches!(tile, egui_tiles::Tile::Pane(Pane::Curves)));
        true
    }

    /// Stops every queued and running run (Esc).
    pub fn stop_all(&mut self) {
        if let Some(t) = &self.trainer
            && self.runs.any_active()
        {
            let _ = t.send(Command::StopAll);
        }
    }

    /// Opens a past run from its record folder.
    pub fn open_record(&mut self, dir: &Path) {
        if self.runs.has_record(dir) {
            return;
        }
        let loaded = RunRecord::open(dir).and_then(|record| {
            let id = self.runs.next_id();
            RunView::from_record(id, &record)
        });
        match loaded {
            Ok(view) => {
                self.selected = Some(view.id);
                self.runs.push(view);
            }
            Err(e) => {
                self.notice = Some(Notice {
                    text: format!("Could not open the run record {}: {e}", dir.display()),
                    error: true,
                });
            }
        }
    }

    /// Applies trainer events for at most `budget`; returns how many were applied.
    pub fn drain_events(&mut self, budget: Duration) -> usize {
        let Some(trainer) = &self.trainer else {
            return 0;
        };
        let deadline = Instant::now() + budget;
        let mut applied = 0;
        let mut finished = false;
        while let Ok(event) = trainer.events().try_recv() {
            finished |= matches!(event, crate::trainer::Event::Finished { .. });
            self.runs.apply(event);
            applied += 1;
            if Instant::now() >= deadline {
                self.ctx.request_repaint();
                break;
            }
        }
        if finished {
            self.refresh_records();
        }
        applied
    }

    fn refresh_records(&mut self) {
        self.records = list_records(&self.state.runs_root);
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

    fn load(&mut self, experiment: Experiment, path: Option<PathBuf>) {
        self.editor = Editor::new(experiment);
        self.state.experiment_path = path;
        self.state.dirty = false;
        self.load_error = None;
        self.tree
            .make_active(|_, tile| matches!(tile, egui_tiles::Tile::Pane(Pane::Preview)));
    }

    fn ask(&mut self, request: FileRequest) {
        let ctx = self.ctx.clone();
        let dir = self.state.last_dir.clone();
        self.dialogs
            .request(request, dir, move || ctx.request_repaint());
    }

    fn on_choice(&mut self, choice: FileChoice) {
        let Some(path) = choice.path else {
            self.notice = Some(Notice {
                text: "No file chosen. If no dialog appeared, type a path under File > Open path (the native dialog needs xdg-desktop-portal or zenity).".into(),
                error: false,
            });
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
        }
    }

    // ----- the frame ------------------------------------------------------------------

    fn shortcuts(&mut self, ui: &mut Ui) {
        let (run, save_as, save, open, stop) = ui.input_mut(|i| {
            (
                i.consume_shortcut(&RUN),
                i.consume_shortcut(&SAVE_AS),
                i.consume_shortcut(&SAVE),
                i.consume_shortcut(&OPEN),
                i.consume_shortcut(&STOP),
            )
        });
        if run {
            self.start_runs();
        }
        if save_as {
            self.save_as();
        } else if save {
            self.save();
        }
        if open {
            self.ask(FileRequest::Open);
        }
        if stop && self.pending.is_none() {
            self.stop_all();
        }
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(path) = dropped
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "toml"))
        {
            self.open_path(&path);
        }
    }

    fn menu_ui(&mut self, ui: &mut Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open... (Ctrl+O)").clicked() {
                    self.ask(FileRequest::Open);
                    ui.close();
                }
                if ui.button("Save (Ctrl+S)").clicked() {
                    self.save();
                    ui.close();
                }
                if ui.button("Save as... (Ctrl+Shift+S)").clicked() {
                    self.save_as();
                    ui.close();
                }
                ui.separator();
                ui.label("Open or save a path:");
                ui.add(
                    egui::TextEdit::singleline(&mut self.path_input)
                        .hint_text("path/to/experiment.toml"),
                );
                ui.horizontal(|ui| {
                    let path = PathBuf::from(self.path_input.trim());
                    let has_path = !self.path_input.trim().is_empty();
                    if ui
                        .add_enabled(has_path, egui::Button::new("Open path"))
                        .clicked()
                    {
                        self.open_path(&path);
                        ui.close();
                    }
                    if ui
                        .add_enabled(has_path, egui::Button::new("Save to path"))
                        .clicked()
                    {
                        self.save_to(&path);
                        ui.close();
                    }
                });
                ui.separator();
                if ui.button("Quit").clicked() {
                    ui.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("Examples", |ui| {
                for example in EXAMPLES {
                    if ui.button(example.file).clicked() {
                        self.open_example(example.file);
                        ui.close();
                    }
                }
            });
            ui.menu_button("Runs", |ui| {
                if ui.button("Run all (Ctrl+Enter)").clicked() {
                    self.start_runs();
                    ui.close();
                }
                if ui.button("Stop all (Esc)").clicked() {
                    self.stop_all();
                    ui.close();
                }
                if ui.button("Pause").clicked() {
                    if let Some(t) = &self.trainer {
                        let _ = t.send(Command::Pause);
                    }
                    ui.close();
                }
                if ui.button("Resume").clicked() {
                    if let Some(t) = &self.trainer {
                        let _ = t.send(Command::Resume);
                    }
                    ui.close();
                }
                if ui.button("Records folder...").clicked() {
                    self.ask(FileRequest::RunsFolder);
                    ui.close();
                }
            });
            ui.menu_button("View", |ui| {
                for pane in [
                    Pane::Curves,
                    Pane::Attention,
                    Pane::Compare,
                    Pane::Preview,
                    Pane::Cost,
                ] {
                    if ui.button(pane.title()).clicked() {
                        self.tree.make_active(
                            |_, tile| matches!(tile, egui_tiles::Tile::Pane(p) if *p == pane),
                        );
                        ui.close();
                    }
                }
            });
        });
    }

    fn side_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            let valid = self.editor.is_valid();
            let run = ui
                .add_enabled(
                    valid,
                    egui::Button::new(RichText::new("Run").strong())
                        .min_size(egui::vec2(70.0, 26.0)),
                )
                .on_hover_text("Train every run of the experiment (Ctrl+Enter)")
                .on_disabled_hover_text("Fix the marked fields first");
            if run.clicked() {
                self.start_runs();
            }
            if ui
                .add_enabled(self.runs.any_active(), egui::Button::new("Stop"))
                .on_hover_text("Stop all runs (Esc)")
                .clicked()
            {
                self.stop_all();
            }
            if !valid {
                ui.label(RichText::new("invalid").color(ERROR_COLOR));
            }
        });
        let file = self
            .state
            .experiment_path
            .as_ref()
            .map_or("not saved yet".to_string(), |p| p.display().to_string());
        ui.label(
            RichText::new(format!(
                "{file}{}",
                if self.state.dirty {
                    " (unsaved changes)"
                } else {
                    ""
                }
            ))
            .small(),
        );
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("editor")
            .show(ui, |ui| {
                if editor_ui(ui, &mut self.editor) {
                    self.state.dirty = true;
                }
            });
    }

    fn bottom_ui(&mut self, ui: &mut Ui) {
        let mut actions = Vec::new();
        egui::ScrollArea::vertical()
            .id_salt("runs-panel")
            .max_height(220.0)
            .show(ui, |ui| {
                runs_ui(ui, &self.runs.views, self.selected, &mut actions);
                ui.separator();
                let open: Vec<bool> = self
                    .records
                    .iter()
                    .map(|r| self.runs.has_record(&r.dir))
                    .collect();
                records_ui(
                    ui,
                    &self.state.runs_root,
                    &self.records,
                    &open,
                    &mut actions,
                );
            });
        for action in actions {
            match action {
                RunsAction::Select(id) => {
                    self.selected = Some(id);
                    self.attention = AttentionViewState::default();
                    self.tree.make_active(|_, tile| {
                        matches!(tile, egui_tiles::Tile::Pane(Pane::Attention))
                    });
                }
                RunsAction::Stop(id) => {
                    if let Some(t) = &self.trainer {
                        let _ = t.send(Command::Stop(id));
                    }
                }
                RunsAction::OpenRecord(dir) => self.open_record(&dir),
                RunsAction::Refresh => self.refresh_records(),
                RunsAction::ChooseFolder => self.ask(FileRequest::RunsFolder),
                RunsAction::ClearFinished => {
                    self.runs.clear_finished();
                    if self.selected.is_some_and(|id| self.runs.get(id).is_none()) {
                        self.selected = None;
                    }
                }
            }
        }
    }

    fn status_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            if let Some(notice) = &self.notice {
                let text = RichText::new(&notice.text);
                ui.label(if notice.error { text.color(ERROR_COLOR) } else { text });
                if ui.small_button("x").on_hover_text("Dismiss").clicked() {
                    self.notice = None;
                }
            } else if self.dialogs.is_open() {
                ui.label("A file dialog is open...");
            } else {
                ui.label(RichText::new("Ctrl+Enter run · Esc stop · Ctrl+S save · Ctrl+O open · drop a .toml to open").small());
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if let Some((median, p95)) = self.frame_ms() {
                    ui.label(RichText::new(format!("frame {median:.1} ms (p95 {p95:.1})")).small())
                        .on_hover_text("CPU time per frame over the last frames (median, 95th percentile)");
                }
            });
        });
    }

    /// Median and 95th percentile of the recent frames' CPU time, in milliseconds.
    fn frame_ms(&self) -> Option<(f32, f32)> {
        if self.frame_secs.is_empty() {
            return None;
        }
        let mut sorted: Vec<f32> = self.frame_secs.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        let at = |q: f32| sorted[((sorted.len() - 1) as f32 * q).round() as usize] * 1000.0;
        Some((at(0.5), at(0.95)))
    }

    fn modals_ui(&mut self, ui: &mut Ui) {
        if let Some(error) = self.load_error.clone() {
            let modal = egui::Modal::new(egui::Id::unique("load-error")).show(ui.ctx(), |ui| {
                ui.set_max_width(560.0);
                ui.heading("This file could not be opened");
                ui.label(RichText::new(&error).color(ERROR_COLOR).monospace());
                ui.label("The experiment you were editing is unchanged.");
                ui.button("OK").clicked()
            });
            if modal.inner || modal.should_close() {
                self.load_error = None;
            }
        }
        if self.pending.is_some() {
            let modal = egui::Modal::new(egui::Id::unique("discard")).show(ui.ctx(), |ui| {
                ui.heading("Discard unsaved changes?");
                ui.label("The experiment has edits that are not saved to a file.");
                ui.horizontal(|ui| {
                    if ui.button("Discard changes").clicked() {
                        return Some(true);
                    }
                    if ui.button("Cancel").clicked() {
                        return Some(false);
                    }
                    None
                })
                .inner
            });
            let decision = modal.inner.or(modal.should_close().then_some(false));
            match decision {
                Some(true) => {
                    if let Some(Pending::Load { experiment, path }) = self.pending.take() {
                        self.load(*experiment, path);
                    }
                }
                Some(false) => self.pending = None,
                None => {}
            }
        }
    }

    fn update_title(&mut self, ui: &Ui) {
        let title = format!(
            "attnlab - {}{}",
            self.editor.experiment.name,
            if self.state.dirty { " *" } else { "" }
        );
        if title != self.title {
            ui.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}

/// Lends the tiles what their panes draw.
struct Panes<'a> {
    app: &'a mut App,
}

impl egui_tiles::Behavior<Pane> for Panes<'_> {
    fn tab_title_for_pane(&mut self, pane: &Pane) -> egui::WidgetText {
        pane.title().into()
    }

    fn pane_ui(
        &mut self,
        ui: &mut Ui,
        _tile: egui_tiles::TileId,
        pane: &mut Pane,
    ) -> egui_tiles::UiResponse {
        let app = &mut *self.app;
        egui::Frame::new().inner_margin(8.0).show(ui, |ui| {
            let curves = CurveOptions {
                smoothing: app.state.smoothing,
                log_scale: app.state.log_scale,
            };
            let mut overlays = Overlays {
                mask: app.state.show_mask,
                dependencies: app.state.show_dependencies,
            };
            let indexed: Vec<(usize, &RunView)> = app.runs.views.iter().enumerate().collect();
            match pane {
                Pane::Curves => {
                    ui.horizontal(|ui| {
                        let l = ui.label("smoothing");
                        ui.add(egui::Slider::new(&mut app.state.smoothing, 0.0..=0.99))
                            .labelled_by(l.id);
                        ui.checkbox(&mut app.state.log_scale, "log-scale loss");
                    });
                    curves_ui(ui, &indexed, curves, "main");
                }
                Pane::Attention => {
                    let run = app
                        .selected
                        .and_then(|id| app.runs.get(id))
                        .or_else(|| app.runs.views.last());
                    match run {
                        Some(run) => attention_ui(
                            ui,
                            &mut app.textures,
                            &mut app.attention,
                            run,
                            &mut overlays,
                        ),
                        None => {
                            ui.label(
                                "No run yet: press Run (Ctrl+Enter), or open a past run below.",
                            );
                        }
                    }
                }
                Pane::Compare => compare_ui(
                    ui,
                    &mut app.textures,
                    &mut app.compare,
                    &indexed,
                    curves,
                    overlays,
                ),
                Pane::Cost => {
                    let patterns = app.experiment_patterns();
                    let ctx = app.ctx.clone();
                    let busy = app.runs.any_active();
                    cost_ui(ui, &mut app.cost, &patterns, busy, move || {
                        ctx.request_repaint()
                    });
                }
                Pane::Preview => match app.editor.target {
                    super::Target::Run(i) if i < app.editor.experiment.runs.len() => {
                        let run = &app.editor.experiment.runs[i];
                        let (name, settings) = (run.name.clone(), run.settings.clone());
                        mask_preview_ui(ui, &mut app.preview, &name, &settings, 320.0);
                    }
                    _ => {
                        let runs: Vec<(String, crate::config::Settings)> = app
                            .editor
                            .experiment
                            .runs
                            .iter()
                            .map(|r| (r.name.clone(), r.settings.clone()))
                            .collect();
                        experiment_preview_ui(ui, &mut app.preview, &runs);
                    }
                },
            }
            app.state.show_mask = overlays.mask;
            app.state.show_dependencies = overlays.dependencies;
        });
        egui_tiles::UiResponse::None
    }

    fn simplification_options(&self) -> egui_tiles::SimplificationOptions {
        egui_tiles::SimplificationOptions {
            all_panes_must_have_tabs: true,
            ..Default::default()
        }
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
        // eframe's CPU time of the previous frame (app + tessellation), for W4.
        if let Some(cpu) = frame.info().cpu_usage {
            if self.frame_secs.len() >= FRAME_HISTORY {
                self.frame_secs.pop_front();
            }
            self.frame_secs.push_back(cpu);
            self.frames.0 += 1;
        }
        self.drain_events(EVENT_BUDGET);
        self.cost.poll();
        if let Some(choice) = self.dialogs.poll() {
            self.on_choice(choice);
        }
        self.shortcuts(ui);
        self.update_title(ui);

        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::bottom("runs")
            .resizable(true)
            .default_size(210.0)
            .min_size(150.0)
            .show(ui, |ui| self.bottom_ui(ui));
        egui::Panel::left("editor")
            .resizable(true)
            .default_size(330.0)
            .show(ui, |ui| self.side_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            let mut tree = std::mem::replace(
                &mut self.tree,
                egui_tiles::Tree::empty(egui::Id::unique("attnlab-tiles-placeholder")),
            );
            tree.ui(&mut Panes { app: self }, ui);
            self.tree = tree;
        });
        self.modals_ui(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.persisted());
    }

    fn on_exit(&mut self) {
        if std::env::var_os("ATTNLAB_FRAME_STATS").is_some()
            && let Some((median, p95)) = self.frame_ms()
        {
            let (frames, since) = self.frames;
            eprintln!(
                "attnlab: frame time over the last {} frames: median {median:.2} ms, p95 {p95:.2} ms; \
                 {frames} frames in {:.0} s",
                self.frame_secs.len(),
                since.elapsed().as_secs_f64()
            );
        }
        self.stop_all();
    }
}
