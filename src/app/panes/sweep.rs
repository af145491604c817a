//! The Sweep pane: final held-out accuracy (or loss) over two chosen axes of the
//! experiment's grid (`run` and each `[sweep]` field), the mean over seeds and the
//! other axes in each cell with how many runs solved the task, or the best over a third
//! axis with the value that won (`view_model::sweep_best`); copyable as CSV. Below it,
//! accuracy against cost with the Pareto front (`view_model::sweep` computes both).

use egui::{ComboBox, RichText, Sense, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::app::view_model::run_views::RunView;
use crate::app::view_model::sweep::{
    BestOf, CostAxis, SweepMetric, SweepTable, axes, pareto, sweep_table, table_csv,
};
use crate::app::view_model::sweep_best::best_over;
use crate::app::widgets::{run_color, value_cell};

/// The pane's choices.
#[derive(Clone, Debug, Default)]
pub struct SweepViewState {
    /// The axis across (a coordinate name).
    pub x: Option<String>,
    /// The axis down.
    pub y: Option<String>,
    /// The axis each cell shows the best over (e.g. the best learning rate per
    /// model), or `None` for the mean over every other axis.
    pub over: Option<String>,
    /// The metric shown.
    pub metric: SweepMetric,
    /// The Pareto chart's cost.
    pub cost_axis: CostAxis,
}

/// The pane.
pub fn sweep_ui(ui: &mut Ui, state: &mut SweepViewState, runs: &[&RunView]) {
    let axes = axes(runs);
    if axes.is_empty() {
        ui.label("No runs of this session yet: press Run. Runs of a [sweep] (and train.seeds) are tabulated here.");
        return;
    }
    let (x, y, over) = chosen_axes(state, &axes);
    let table = match &over {
        Some(a) => best_over(runs, &x, &y, a, state.metric),
        None => sweep_table(runs, &x, &y, state.metric),
    };
    ui.horizontal(|ui| {
        axis_pickers_ui(ui, state, &axes, [&x, &y], over.as_deref());
        metric_picker_ui(ui, &mut state.metric);
        if ui
            .button("Copy as CSV")
            .on_hover_text("The table as y,x,mean,runs,solved (and the winning value with \"best over\"), to paste into a spreadsheet")
            .clicked()
        {
            ui.ctx().copy_text(table_csv(&table, &x, &y));
        }
    });
    ui.label(
        RichText::new(match &over {
            None => "Each cell: the mean over seeds (and any other axes) of finished runs; (solved/runs) counts runs whose final accuracy reached train.solved_at.".to_string(),
            Some(a) => format!("Each cell: the best over {a} of the mean over seeds (and any other axes) of finished runs, with the {a} that won; (solved/runs) counts that value's runs whose final accuracy reached train.solved_at. Hover a cell for every value's mean."),
        })
        .small(),
    );
    pareto_ui(ui, &mut state.cost_axis, runs);
    // The published figure of each row's run, where rows are runs with a reference
    // comparing the metric shown.
    let published: Vec<Option<String>> = table
        .ys
        .iter()
        .map(|yv| published_cell(runs, &y, yv, state.metric))
        .collect();
    egui::ScrollArea::both().show(ui, |ui| {
        sweep_grid_ui(
            ui,
            &table,
            [&x, &y],
            over.as_deref(),
            state.metric,
            &published,
        );
    });
}

/// The axes across, down and (if any) best over: the state's where they are among
/// `axes` (and "best over" is neither of the others), else the second axis across and
/// the first down.
fn chosen_axes(state: &SweepViewState, axes: &[String]) -> (String, String, Option<String>) {
    let x = state
        .x
        .clone()
        .filter(|a| axes.contains(a))
        .unwrap_or_else(|| axes.get(1).unwrap_or(&axes[0]).clone());
    let y = state
        .y
        .clone()
        .filter(|a| axes.contains(a))
        .unwrap_or_else(|| axes[0].clone());
    let over = state
        .over
        .clone()
        .filter(|a| axes.contains(a) && *a != x && *a != y);
    (x, y, over)
}

/// The "across", "down" and "best over" pickers, showing `[x, y]` and `over`.
fn axis_pickers_ui(
    ui: &mut Ui,
    state: &mut SweepViewState,
    axes: &[String],
    [x, y]: [&str; 2],
    over: Option<&str>,
) {
    let pick = |ui: &mut Ui, label: &str, current: &str, target: &mut Option<String>| {
        ComboBox::from_label(label)
            .selected_text(current)
            .show_ui(ui, |ui| {
                for a in axes {
                    if ui.selectable_label(a == current, a).clicked() {
                        *target = Some(a.clone());
                    }
                }
            });
    };
    pick(ui, "across", x, &mut state.x);
    pick(ui, "down", y, &mut state.y);
    ComboBox::from_label("best over")
        .selected_text(over.unwrap_or("none"))
        .show_ui(ui, |ui| {
            if ui.selectable_label(over.is_none(), "none").clicked() {
                state.over = None;
            }
            for a in axes.iter().filter(|a| **a != x && **a != y) {
                if ui.selectable_label(over == Some(a.as_str()), a).clicked() {
                    state.over = Some(a.clone());
                }
            }
        })
        .response
        .on_hover_text("Each cell shows the best, over this axis's values, of the mean over seeds and the other axes (highest accuracy, lowest loss), and the value that won: the best learning rate per model, as papers report it");
}

/// The metric picker: final accuracy or final loss.
fn metric_picker_ui(ui: &mut Ui, metric: &mut SweepMetric) {
    ComboBox::from_label("metric")
        .selected_text(match metric {
            SweepMetric::Accuracy => "final accuracy",
            SweepMetric::Loss => "final loss",
        })
        .show_ui(ui, |ui| {
            ui.selectable_value(metric, SweepMetric::Accuracy, "final accuracy");
            ui.selectable_value(metric, SweepMetric::Loss, "final loss");
        });
}

/// The table: `y \ x` heading, a row per value down and a cell per value across,
/// coloured by `metric` (loss relative to the table's largest), and each row's
/// `published` figure where any row has one.
fn sweep_grid_ui(
    ui: &mut Ui,
    table: &SweepTable,
    [x, y]: [&str; 2],
    over: Option<&str>,
    metric: SweepMetric,
    published: &[Option<String>],
) {
    let max = table
        .cells
        .iter()
        .flatten()
        .flatten()
        .map(|c| c.mean)
        .fold(f64::NEG_INFINITY, f64::max);
    let any_published = published.iter().any(Option::is_some);
    egui::Grid::new("sweep-grid")
        .spacing([4.0, 4.0])
        .show(ui, |ui| {
            ui.label(RichText::new(format!("{y} \\ {x}")).strong());
            for xv in &table.xs {
                ui.label(RichText::new(xv).strong());
            }
            if any_published {
                ui.label(RichText::new("published").strong().color(PUBLISHED));
            }
            ui.end_row();
            for (yi, yv) in table.ys.iter().enumerate() {
                ui.label(RichText::new(yv).strong());
                for (xi, cell) in table.cells[yi].iter().enumerate() {
                    match cell {
                        Some(c) => {
                            let t = match metric {
                                SweepMetric::Accuracy => c.mean,
                                SweepMetric::Loss => 1.0 - c.mean / max.max(1e-12),
                            };
                            let text = format!("{:.3} ({}/{})", c.mean, c.solved, c.runs);
                            match (over, table.best_at(yi, xi)) {
                                (Some(a), Some(best)) => {
                                    best_cell_ui(ui, (yi, xi), t, text, a, best)
                                }
                                _ => value_cell(ui, t, text, 6.0),
                            }
                        }
                        None => {
                            ui.label("-");
                        }
                    }
                }
                if any_published {
                    ui.label(
                        RichText::new(published[yi].as_deref().unwrap_or("-")).color(PUBLISHED),
                    );
                }
                ui.end_row();
            }
        });
}

/// The colour of published figures (as Curves draws their lines).
const PUBLISHED: egui::Color32 = egui::Color32::from_rgb(230, 170, 40);

/// The published figure for the row `value` of axis `axis`, when rows are runs
/// (`axis == "run"`) and that run's `[reference]` entry compares `metric`.
fn published_cell(
    runs: &[&RunView],
    axis: &str,
    value: &str,
    metric: SweepMetric,
) -> Option<String> {
    if axis != "run" {
        return None;
    }
    runs.iter().find_map(|r| {
        let reference = r.reference.as_ref()?;
        let same_metric = matches!(
            (reference.metric, metric),
            (
                crate::config::ReferenceMetric::Accuracy,
                SweepMetric::Accuracy
            ) | (crate::config::ReferenceMetric::Loss, SweepMetric::Loss)
        );
        let in_row = r.coordinates.iter().any(|(k, v)| k == "run" && v == value);
        (same_metric && in_row).then(|| {
            let chance = r.settings.task.chance_accuracy();
            let label = reference.label(chance, r.baselines.as_ref());
            let verdict = r
                .summary
                .as_ref()
                .and_then(|s| s.reference.as_ref())
                .map_or(String::new(), |c| format!(": {}", c.verdict.name()));
            format!("{label}{verdict}")
        })
    })
}

/// A cell of bests: the winning mean with the value of `axis` that won small under
/// it; hovering lists every value's mean.
fn best_cell_ui(ui: &mut Ui, at: (usize, usize), t: f64, text: String, axis: &str, best: &BestOf) {
    let short = axis.rsplit('.').next().unwrap_or(axis);
    let hover = best
        .candidates
        .iter()
        .map(|(v, c)| {
            let mark = if *v == best.value { "  (best)" } else { "" };
            format!(
                "{axis} = {v}: {:.4} ({}/{}){mark}",
                c.mean, c.solved, c.runs
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let rect = ui
        .vertical(|ui| {
            value_cell(ui, t, text, 6.0);
            ui.label(RichText::new(format!("{short}={}", best.value)).small());
        })
        .response
        .rect;
    // Sensed after the labels so that it is on top of them (hover only: text stays
    // selectable).
    ui.interact(rect, ui.scope_id().with(("sweep-best", at)), Sense::hover())
        .on_hover_text(hover);
}

/// Accuracy against time per step, one point per group, the Pareto front joined.
fn pareto_ui(ui: &mut Ui, axis: &mut CostAxis, runs: &[&RunView]) {
    if pareto(runs, *axis).len() < 2 {
        return;
    }
    ui.collapsing("Accuracy against cost (Pareto front)", |ui| {
        ui.horizontal(|ui| {
            ui.selectable_value(axis, CostAxis::Time, "time per step (measured)");
            ui.selectable_value(axis, CostAxis::Memory, "peak memory")
                .on_hover_text("Each run's training step measured alone (parameters, Adam's moments, activations and gradients); the estimate where a run has no measurement");
            ui.selectable_value(axis, CostAxis::State, "state size")
                .on_hover_text("The floats a model carries per sequence at inference: attention's KV cache (grows with the length), a linear-attention, Based or SSM layer's fixed state, a convolution's input history (Based's Figure 1: recall against state size)");
        });
        let axis = *axis;
        let points = pareto(runs, axis);
        let all_measured = points.iter().all(|(p, _)| p.memory_measured);
        let mut front: Vec<[f64; 2]> = points
            .iter()
            .filter(|(_, on)| *on)
            .map(|(p, _)| [p.cost(axis), p.accuracy])
            .collect();
        front.sort_by(|a, b| a[0].total_cmp(&b[0]));
        Plot::new("pareto")
            .height(260.0)
            .legend(Legend::default())
            .x_axis_label(match axis {
                CostAxis::Time => "ms per training step (mean over seeds)",
                CostAxis::Memory if all_measured => "measured peak memory per run (MiB)",
                CostAxis::Memory => "peak memory per run (MiB; estimated where not measured)",
                CostAxis::State => "state carried per sequence at inference (floats)",
            })
            .y_axis_label("final accuracy")
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |plot_ui| {
                plot_ui.line(Line::new("Pareto front", PlotPoints::from(front)).width(1.5));
                for (i, (p, on)) in points.iter().enumerate() {
                    plot_ui.points(
                        Points::new(&p.group, vec![[p.cost(axis), p.accuracy]])
                            .radius(if *on { 5.0 } else { 3.5 })
                            .color(run_color(i)),
                    );
                }
            });
    });
}
