//! The Sweep pane: final held-out accuracy (or loss) over two chosen axes of the
//! experiment's grid (`run` and each `[sweep]` field), the mean over seeds and the
//! other axes in each cell with how many runs solved the task; copyable as CSV. Below
//! it, accuracy against cost with the Pareto front (`view_model::sweep` computes both).

use egui::{ComboBox, RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::app::view_model::run_views::RunView;
use crate::app::view_model::sweep::{CostAxis, SweepMetric, axes, pareto, sweep_table, table_csv};
use crate::app::widgets::{run_color, value_cell};

/// The pane's choices.
#[derive(Clone, Debug, Default)]
pub struct SweepViewState {
    /// The axis across (a coordinate name).
    pub x: Option<String>,
    /// The axis down.
    pub y: Option<String>,
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
    let table = sweep_table(runs, &x, &y, state.metric);
    ui.horizontal(|ui| {
        let pick = |ui: &mut Ui, label: &str, current: &str, target: &mut Option<String>| {
            ComboBox::from_label(label)
                .selected_text(current)
                .show_ui(ui, |ui| {
                    for a in &axes {
                        if ui.selectable_label(a == current, a).clicked() {
                            *target = Some(a.clone());
                        }
                    }
                });
        };
        pick(ui, "across", &x, &mut state.x);
        pick(ui, "down", &y, &mut state.y);
        ComboBox::from_label("metric")
            .selected_text(match state.metric {
                SweepMetric::Accuracy => "final accuracy",
                SweepMetric::Loss => "final loss",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut state.metric, SweepMetric::Accuracy, "final accuracy");
                ui.selectable_value(&mut state.metric, SweepMetric::Loss, "final loss");
            });
        if ui
            .button("Copy as CSV")
            .on_hover_text("The table as y,x,mean,runs,solved, to paste into a spreadsheet")
            .clicked()
        {
            ui.ctx().copy_text(table_csv(&table, &x, &y));
        }
    });
    ui.label(
        RichText::new("Each cell: the mean over seeds (and any other axes) of finished runs; (solved/runs) counts runs whose final accuracy reached train.solved_at.")
            .small(),
    );
    pareto_ui(ui, &mut state.cost_axis, runs);
    let max = table
        .cells
        .iter()
        .flatten()
        .flatten()
        .map(|c| c.mean)
        .fold(f64::NEG_INFINITY, f64::max);
    egui::ScrollArea::both().show(ui, |ui| {
        egui::Grid::new("sweep-grid")
            .spacing([4.0, 4.0])
            .show(ui, |ui| {
                ui.label(RichText::new(format!("{y} \\ {x}")).strong());
                for xv in &table.xs {
                    ui.label(RichText::new(xv).strong());
                }
                ui.end_row();
                for (yi, yv) in table.ys.iter().enumerate() {
                    ui.label(RichText::new(yv).strong());
                    for cell in &table.cells[yi] {
                        match cell {
                            Some(c) => {
                                let t = match state.metric {
                                    SweepMetric::Accuracy => c.mean,
                                    SweepMetric::Loss => 1.0 - c.mean / max.max(1e-12),
                                };
                                value_cell(
                                    ui,
                                    t,
                                    format!("{:.3} ({}/{})", c.mean, c.solved, c.runs),
                                    6.0,
                                );
                            }
                            None => {
                                ui.label("-");
                            }
                        }
                    }
                    ui.end_row();
                }
            });
    });
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
