//! The panels around the main area: the editor side panel (Run/Stop and the
//! experiment editor), the runs panel at the bottom and the status line.

use egui::{RichText, Ui};

use super::commands::UiCommand;
use super::frame_stats::Redraw;
use super::panes::config_panel::editor_ui;
use super::panes::runs_panel::{records_ui, runs_ui};
use super::widgets::ERROR_COLOR;
use super::workbench::App;

/// Run and Stop, the file's name and state, and the editor.
pub fn side_ui(ui: &mut Ui, app: &mut App) {
    let ctx = ui.ctx().clone();
    ui.horizontal(|ui| {
        let valid = app.editor.is_valid();
        let run = ui
            .add_enabled(
                valid,
                egui::Button::new(RichText::new("Run").strong()).min_size(egui::vec2(70.0, 26.0)),
            )
            .on_hover_text(UiCommand::RunAll.tooltip(&ctx))
            .on_disabled_hover_text("Fix the marked fields first");
        if run.clicked() {
            app.run_command(UiCommand::RunAll);
        }
        if ui
            .add_enabled(app.runs.any_active(), egui::Button::new("Stop"))
            .on_hover_text(UiCommand::StopAll.tooltip(&ctx))
            .clicked()
        {
            app.run_command(UiCommand::StopAll);
        }
        if !valid {
            ui.label(RichText::new("invalid").color(ERROR_COLOR));
        }
    });
    let file = app
        .state
        .experiment_path
        .as_ref()
        .map_or("not saved yet".to_string(), |p| p.display().to_string());
    let dirty = if app.state.dirty {
        " (unsaved changes)"
    } else {
        ""
    };
    ui.label(RichText::new(format!("{file}{dirty}")).small());
    if let Some(text) = estimated_time(app) {
        ui.label(RichText::new(text).small())
            .on_hover_text("From the floating-point work of each run and the speed the last finished run reached on this machine");
    }
    let e = &app.editor.experiment;
    let seeds = e.base.train.seeds.len().max(1);
    if !e.sweep.is_empty() || seeds > 1 {
        let axes: Vec<String> = e
            .sweep
            .axes
            .iter()
            .map(|a| format!("{} x {}", a.field, a.values.len()))
            .collect();
        ui.label(
            RichText::new(format!(
                "{} run(s) x {} sweep point(s){} x {seeds} seed(s) = {} runs to train",
                e.runs.len(),
                e.sweep.len(),
                if axes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", axes.join(", "))
                },
                e.runs.len() * e.sweep.len() * seeds
            ))
            .small(),
        );
    }
    ui.separator();
    egui::ScrollArea::vertical()
        .id_salt("editor")
        .show(ui, |ui| {
            if editor_ui(ui, &mut app.editor) {
                app.state.dirty = true;
            }
        });
}

/// "~12 min to train at the speed of the last run", from the work of every run to
/// train and the FLOP rate the last finished live run reached.
fn estimated_time(app: &App) -> Option<String> {
    let last = app.runs.views.iter().rev().find(|v| {
        v.status == crate::records::RunStatus::Finished
            && matches!(v.source, super::view_model::run_views::Source::Live)
    })?;
    let rate = last.step_flops * last.steps_per_sec()?;
    if rate <= 0.0 {
        return None;
    }
    let work = app.editor.work_flops();
    if work <= 0.0 {
        return None;
    }
    let workers = app.trainer.as_ref().map_or(1, |t| t.workers()) as f64;
    Some(format!(
        "~{} to train at the speed of the last run",
        super::widgets::duration_text(work / rate / workers)
    ))
}

/// Live runs and the records folder.
pub fn bottom_ui(ui: &mut Ui, app: &mut App) {
    let mut actions = Vec::new();
    egui::ScrollArea::vertical()
        .id_salt("runs-panel")
        .max_height(220.0)
        .show(ui, |ui| {
            runs_ui(ui, &app.runs.views, app.selected, &mut actions);
            ui.separator();
            let open: Vec<bool> = app
                .records
                .iter()
                // A record still loading counts as open: "Open N" offers the next ones.
                .map(|r| app.runs.has_record(&r.dir) || app.background.is_opening(&r.dir))
                .collect();
            records_ui(ui, &app.state.runs_root, &app.records, &open, &mut actions);
        });
    for action in actions {
        app.apply_runs_action(action);
    }
}

/// Commands the trainer has not taken for a while (see `view_model::outbox`), the
/// last notice (dismissable), or shortcut hints; frame time on the right.
pub fn status_ui(ui: &mut Ui, app: &mut App) {
    ui.horizontal(|ui| {
        let waiting = app.outbox.notice(std::time::Instant::now());
        let waiting_shown = waiting.is_some();
        if let Some(waiting) = waiting {
            let color = ui.visuals().warn_fg_color;
            ui.label(RichText::new(waiting).color(color)).on_hover_text(
                "The trainer takes commands between steps; they are sent as soon as it \
                 does. The window keeps working meanwhile.",
            );
        }
        if let Some(notice) = &app.notice {
            let text = RichText::new(&notice.text);
            ui.label(if notice.error {
                text.color(ERROR_COLOR)
            } else {
                text
            });
            if ui.small_button("x").on_hover_text("Dismiss").clicked() {
                app.notice = None;
            }
        } else if app.dialogs.is_open() {
            ui.label("A file dialog is open...");
        } else if !waiting_shown {
            ui.label(RichText::new(UiCommand::hints(ui.ctx())).small());
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if app.redraw == Redraw::Software && app.runs.any_active() {
                ui.label(RichText::new("redrawn once a second while training").small())
                    .on_hover_text(
                        "The window is drawn in software (no GPU adapter), on the cores \
                         that train; redrawing less often leaves them to training. \
                         Moving the mouse redraws at once.",
                    );
            }
            if let Some((median, p95)) = app.frame_stats.percentiles_ms() {
                ui.label(RichText::new(format!("frame {median:.1} ms (p95 {p95:.1})")).small())
                    .on_hover_text(
                        "CPU time per frame over the last frames (median, 95th percentile)",
                    );
            }
        });
    });
}
