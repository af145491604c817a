//! The main area's tabs (egui_tiles): each pane draws through its own `*_ui`
//! function with the state it needs.

use egui::Ui;

use super::commands::UiCommand;
use super::pane::Pane;
use super::panes::attention::{Overlays, attention_ui};
use super::panes::compare::compare_ui;
use super::panes::cost::cost_ui;
use super::panes::curves::{CurveOptions, curves_ui};
use super::panes::distance::distance_ui;
use super::panes::heads::heads_ui;
use super::panes::interventions::interventions_ui;
use super::panes::length::length_ui;
use super::panes::preview::{experiment_preview_ui, mask_preview_ui};
use super::panes::sweep::sweep_ui;
use super::state::PersistedState;
use super::view_model::editor::Target;
use super::view_model::interventions::Wake;
use super::view_model::run_list::RunViews;
use super::view_model::run_views::RunView;
use super::workbench::App;
use crate::trainer::RunId;

/// Draws the tabs of the main area.
pub fn tiles_ui(ui: &mut Ui, app: &mut App) {
    app.central_rect = Some(ui.max_rect());
    let mut tree = std::mem::replace(
        &mut app.tree,
        egui_tiles::Tree::empty(egui::Id::unique("attnlab-tiles-placeholder")),
    );
    tree.ui(&mut Panes { app }, ui);
    app.tree = tree;
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
        egui::Frame::new()
            .inner_margin(8.0)
            .show(ui, |ui| pane_ui(ui, app, *pane));
        egui_tiles::UiResponse::None
    }

    fn simplification_options(&self) -> egui_tiles::SimplificationOptions {
        egui_tiles::SimplificationOptions {
            all_panes_must_have_tabs: true,
            ..Default::default()
        }
    }
}

/// The run the Attention, Heads and Interventions panes show: the selected one, else
/// the newest.
pub(super) fn shown_run(runs: &RunViews, selected: Option<RunId>) -> Option<&RunView> {
    selected
        .and_then(|id| runs.get(id))
        .or_else(|| runs.views.last())
}

/// Draws one pane (also off screen, for a figure).
pub(super) fn pane_ui(ui: &mut Ui, app: &mut App, pane: Pane) {
    let curves = CurveOptions {
        smoothing: app.state.smoothing,
        log_scale: app.state.log_scale,
        group_seeds: app.state.group_seeds,
    };
    let mut overlays = Overlays {
        mask: app.state.show_mask,
        dependencies: app.state.show_dependencies,
    };
    let mut fork_asked = false;
    match pane {
        Pane::Curves => {
            curve_options_ui(ui, &mut app.state);
            curves_ui(ui, &indexed(&app.runs), curves, "main");
        }
        Pane::Attention => fork_asked = attention_pane_ui(ui, app, &mut overlays),
        Pane::Compare => compare_ui(
            ui,
            &mut app.textures,
            &mut app.compare,
            &indexed(&app.runs),
            curves,
            overlays,
        ),
        Pane::Sweep => {
            let views: Vec<&RunView> = app.runs.views.iter().collect();
            sweep_ui(ui, &mut app.sweep, &views);
        }
        Pane::Heads => heads_pane_ui(ui, app),
        Pane::Distance => distance_ui(ui, &mut app.distance, &indexed(&app.runs)),
        Pane::Length => length_pane_ui(ui, app),
        Pane::Interventions => interventions_pane_ui(ui, app),
        Pane::Devices => super::panes::devices::devices_ui(ui, app),
        Pane::Cost => cost_pane_ui(ui, app),
        Pane::Preview => preview_pane_ui(ui, app),
    }
    app.state.show_mask = overlays.mask;
    app.state.show_dependencies = overlays.dependencies;
    if fork_asked {
        app.run_command(UiCommand::Fork);
    }
}

/// Every run with its colour index (its place in the list).
fn indexed(runs: &RunViews) -> Vec<(usize, &RunView)> {
    runs.views.iter().enumerate().collect()
}

/// A `Wake` that asks `ctx` for a repaint.
fn repaint_wake(ctx: &egui::Context) -> Wake {
    let ctx = ctx.clone();
    std::sync::Arc::new(move || ctx.request_repaint())
}

/// The Curves pane's options: smoothing, log-scale loss, seed groups.
fn curve_options_ui(ui: &mut Ui, state: &mut PersistedState) {
    ui.horizontal(|ui| {
        let l = ui.label("smoothing");
        ui.add(egui::Slider::new(&mut state.smoothing, 0.0..=0.99))
            .labelled_by(l.id);
        ui.checkbox(&mut state.log_scale, "log-scale loss");
        ui.checkbox(&mut state.group_seeds, "group seeds")
            .on_hover_text("Seed replicates as one curve: their mean, with a band from the lowest to the highest");
    });
}

/// The Attention pane for the shown run; whether it asked to fork.
fn attention_pane_ui(ui: &mut Ui, app: &mut App, overlays: &mut Overlays) -> bool {
    match shown_run(&app.runs, app.selected) {
        Some(run) => {
            let fork = app.fork_target().map(|_| ());
            attention_ui(
                ui,
                &mut app.textures,
                &mut app.attention,
                run,
                overlays,
                fork,
            )
        }
        None => {
            ui.label(format!(
                "No run yet: press Run ({}), or open a past run below.",
                UiCommand::RunAll
                    .shortcut_text(ui.ctx())
                    .unwrap_or_default()
            ));
            false
        }
    }
}

/// The Heads pane for the shown run.
fn heads_pane_ui(ui: &mut Ui, app: &mut App) {
    match shown_run(&app.runs, app.selected) {
        Some(run) => heads_ui(
            ui,
            &mut app.textures,
            &mut app.heads,
            &mut app.attention,
            run,
        ),
        None => {
            ui.label("No run yet: select a run below (or train one) to see its heads.");
        }
    }
}

/// The Length pane over every run.
fn length_pane_ui(ui: &mut Ui, app: &mut App) {
    let wake = repaint_wake(&app.ctx);
    length_ui(
        ui,
        &mut app.textures,
        &mut app.length,
        &indexed(&app.runs),
        app.selected,
        &mut app.state.group_seeds,
        &wake,
    );
}

/// The Interventions pane for the shown run.
fn interventions_pane_ui(ui: &mut Ui, app: &mut App) {
    match shown_run(&app.runs, app.selected) {
        Some(run) => {
            let wake = repaint_wake(&app.ctx);
            interventions_ui(
                ui,
                &mut app.textures,
                &mut app.interventions,
                &mut app.heads.stat,
                &app.attention,
                run,
                &wake,
            );
        }
        None => {
            ui.label("No run yet: select a run below (or train one) to test its heads.");
        }
    }
}

/// The Cost pane over the experiment's patterns.
fn cost_pane_ui(ui: &mut Ui, app: &mut App) {
    let patterns = app.experiment_patterns();
    let ctx = app.ctx.clone();
    let busy = app.runs.any_active();
    cost_ui(ui, &mut app.cost, &patterns, busy, move || {
        ctx.request_repaint()
    });
}

/// The Mask preview of the run being edited, or of every run from the base.
fn preview_pane_ui(ui: &mut Ui, app: &mut App) {
    match app.editor.target {
        Target::Run(i) => match (
            app.editor.experiment.runs.get(i),
            app.editor.run_settings(i),
        ) {
            (Some(run), Some(settings)) => {
                let (name, settings) = (run.name.clone(), settings.clone());
                super::panes::preview::mask_legend_ui(ui);
                mask_preview_ui(ui, &mut app.preview, &name, &settings, 320.0);
            }
            _ => {
                ui.label("This run's settings do not resolve: fix the marked fields.");
            }
        },
        Target::Base => {
            let runs = app.editor.resolved_runs();
            experiment_preview_ui(ui, &mut app.preview, &runs);
        }
    }
}
