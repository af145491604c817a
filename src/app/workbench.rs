//! The workbench's state: everything the window owns, built once per launch. The
//! frame order lives in `frame.rs`, what the user can do in `actions.rs`, the
//! drawing in `panes/` (one file per pane or panel).

use std::collections::VecDeque;
use std::path::PathBuf;

use super::background::Background;
use super::examples::DEFAULT;
use super::files::Dialogs;
use super::frame_stats::{FrameStats, Redraw};
use super::heatmap::TextureCache;
use super::pane::Pane;
use super::panes::attention::AttentionViewState;
use super::panes::compare::CompareState;
use super::panes::distance::DistanceViewState;
use super::panes::heads::HeadsViewState;
use super::panes::length::LengthViewState;
use super::panes::preview::PreviewCache;
use super::panes::sweep::SweepViewState;
use super::server_probes::ServerProbes;
use super::state::PersistedState;
use super::view_model::cost::CostView;
use super::view_model::editor::Editor;
use super::view_model::fork_jobs::ForkView;
use super::view_model::interventions::InterventionsView;
use super::view_model::outbox::Outbox;
use super::view_model::run_list::RunViews;
use crate::attention::AttentionPattern;
use crate::bench::CostLayer;
use crate::config::{Experiment, ModelKind};
use crate::records::RunRecord;
use crate::trainer::{RunId, StartRun, Trainer};

/// Something that would discard unsaved edits, waiting for the user's yes.
pub(super) enum Pending {
    /// Replace the experiment being edited.
    Load {
        experiment: Box<Experiment>,
        path: Option<PathBuf>,
    },
}

/// A message in the status line.
pub(super) struct Notice {
    pub(super) text: String,
    pub(super) error: bool,
}

/// The workbench.
pub struct App {
    pub(super) state: PersistedState,
    pub(super) editor: Editor,
    pub(super) runs: RunViews,
    pub(super) trainer: Option<Trainer>,
    /// Runs waiting for room in the trainer's command channel (fed every frame).
    pub(super) to_start: VecDeque<StartRun>,
    /// Commands the trainer's command channel has not taken yet (sent again every
    /// frame, before queued runs).
    pub(super) outbox: Outbox,
    pub(super) tree: egui_tiles::Tree<Pane>,
    pub(super) textures: TextureCache,
    pub(super) preview: PreviewCache,
    pub(super) cost: CostView,
    pub(super) attention: AttentionViewState,
    pub(super) compare: CompareState,
    pub(super) sweep: SweepViewState,
    pub(super) heads: HeadsViewState,
    pub(super) distance: DistanceViewState,
    /// The Length pane's choices and its probe at a longer length.
    pub(super) length: LengthViewState,
    /// The Interventions pane's choices, cached results and measurements.
    pub(super) interventions: InterventionsView,
    /// The fork dialog and its helper threads.
    pub(super) fork: ForkView,
    pub(super) devices: ServerProbes,
    /// The Devices pane's "add a server" field.
    pub(super) servers_input: String,
    pub(super) selected: Option<RunId>,
    pub(super) records: Vec<RunRecord>,
    /// Reads past runs off the UI thread.
    pub(super) background: Background,
    pub(super) dialogs: Dialogs,
    pub(super) notice: Option<Notice>,
    /// The last file that failed to load, with its errors (shown until dismissed).
    pub(super) load_error: Option<String>,
    pub(super) pending: Option<Pending>,
    pub(super) path_input: String,
    pub(super) title: String,
    pub(super) ctx: egui::Context,
    pub(super) frame_stats: FrameStats,
    /// How often the window redraws while training (slower on a software renderer).
    pub(super) redraw: Redraw,
    /// Where the tabs were drawn last frame (what "Save pane as PNG" saves).
    pub(super) central_rect: Option<egui::Rect>,
    /// A pane to save as PNG once this frame is drawn.
    pub(super) pending_figure: Option<PendingFigure>,
}

/// "Save pane as PNG", asked for and not yet drawn.
pub struct PendingFigure {
    pub pane: Pane,
    /// Where the pane is on screen, in points (its size is the figure's size).
    pub rect: egui::Rect,
    pub path: std::path::PathBuf,
}

impl App {
    /// The app as eframe creates it, with the state of the last launch.
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        let state: PersistedState = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        let mut app = Self::with_state(cc.egui_ctx.clone(), state);
        app.redraw = Redraw::for_renderer(cc.wgpu_render_state.as_ref());
        app
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
        let mut tree =
            egui_tiles::Tree::new_tabs(egui::Id::unique("attnlab-tiles"), Pane::ALL.to_vec());
        tree.make_active(|_, tile| matches!(tile, egui_tiles::Tile::Pane(Pane::Preview)));
        let cost = CostView::new(state.cost_cache.clone(), state.cost_max_len);
        let mut app = Self {
            // Text files are found (and confined) in the file's folder, as when it
            // was opened.
            editor: Editor::in_folder(
                experiment,
                state
                    .experiment_path
                    .as_deref()
                    .and_then(std::path::Path::parent)
                    .map(std::path::Path::to_path_buf),
            ),
            state,
            runs: RunViews::default(),
            trainer: None,
            to_start: VecDeque::new(),
            outbox: Outbox::default(),
            tree,
            textures: TextureCache::default(),
            preview: PreviewCache::default(),
            cost,
            attention: AttentionViewState::default(),
            compare: CompareState::default(),
            sweep: SweepViewState::default(),
            heads: HeadsViewState::default(),
            distance: DistanceViewState::default(),
            length: LengthViewState::default(),
            interventions: InterventionsView::default(),
            fork: ForkView::default(),
            devices: ServerProbes::default(),
            servers_input: String::new(),
            selected: None,
            records: Vec::new(),
            background: Background::default(),
            dialogs: Dialogs::default(),
            notice,
            load_error: None,
            pending: None,
            path_input: String::new(),
            title: String::new(),
            ctx,
            frame_stats: FrameStats::default(),
            redraw: Redraw::Gpu,
            central_rect: None,
            pending_figure: None,
        };
        app.refresh_records();
        app
    }

    /// The experiment being edited.
    pub fn experiment(&self) -> &Experiment {
        &self.editor.experiment
    }

    /// The editor (validation state, target).
    pub fn editor(&self) -> &Editor {
        &self.editor
    }

    /// Every run the window knows.
    pub fn runs(&self) -> &RunViews {
        &self.runs
    }

    /// The persisted state as it would be saved now.
    pub fn persisted(&self) -> PersistedState {
        let mut state = self.state.clone();
        // An experiment TOML cannot hold (a seed beyond i64::MAX, refused at the
        // field) keeps the last one that could be written.
        if let Ok(text) = self.editor.experiment.to_toml() {
            state.experiment_toml = text;
        }
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

    /// The status line's message, if any, and whether it is an error.
    pub fn notice(&self) -> Option<(&str, bool)> {
        self.notice.as_ref().map(|n| (n.text.as_str(), n.error))
    }

    /// Attention and mask textures alive (they are built once per snapshot, not per frame).
    pub fn texture_count(&self) -> usize {
        self.textures.count()
    }

    /// Every distinct layer the experiment's runs train, for the Cost pane: dense
    /// attention first, then each attention pattern and each other token mixer.
    pub fn experiment_patterns(&self) -> Vec<CostLayer> {
        let mut layers = vec![CostLayer::Attention(AttentionPattern::Dense)];
        for (_, settings) in self.editor.resolved_runs() {
            if settings.model.kind != ModelKind::Transformer {
                continue;
            }
            let m = &settings.model;
            for (mixer, pattern) in m.layer_mixers().into_iter().zip(m.layer_patterns()) {
                let layer = if mixer.is_attention() {
                    CostLayer::Attention(pattern)
                } else {
                    CostLayer::Mixer(mixer)
                };
                if !layers.contains(&layer) {
                    layers.push(layer);
                }
            }
        }
        layers
    }

    /// Whether past runs are being read (the records list, a record opening, a
    /// record forking).
    pub fn is_loading(&self) -> bool {
        self.background.is_busy() || self.fork.is_busy()
    }

    /// Whether the cost view is measuring.
    pub fn cost_running(&self) -> bool {
        self.cost.is_running()
    }

    /// Whether the Interventions pane is measuring (a grid or a head over training).
    pub fn interventions_running(&self) -> bool {
        self.interventions.is_busy()
    }

    /// The Interventions pane's state: its choices and what it measured.
    pub fn interventions(&self) -> &InterventionsView {
        &self.interventions
    }

    /// Shows a message in the status line (replacing the last one).
    pub(super) fn notify(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: false,
        });
    }

    /// Shows an error in the status line (replacing the last message).
    pub(super) fn notify_error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: true,
        });
    }

    /// Brings `pane` to the front.
    pub(super) fn show_pane(&mut self, pane: Pane) {
        self.tree
            .make_active(|_, tile| matches!(tile, egui_tiles::Tile::Pane(p) if *p == pane));
    }
}
