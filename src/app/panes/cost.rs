//! The Cost pane: what each of the experiment's patterns costs as sequences grow.
//! One attention layer (W2's shape) per pattern and length, measured on a background
//! thread (`view_model::cost`), next to the pairs each pattern attends, on log-log
//! axes, and a table with each pattern's speed-up over dense.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use egui::{ProgressBar, RichText, Ui};
use egui_plot::{GridMark, Legend, Line, Plot, Points};

use crate::app::view_model::cost::{COST_LENGTHS, CostView};
use crate::app::widgets::{ERROR_COLOR, run_color};
use crate::bench::CostLayer;

/// The view for the experiment's distinct patterns (dense always included).
pub fn cost_ui(
    ui: &mut Ui,
    view: &mut CostView,
    patterns: &[CostLayer],
    busy_training: bool,
    wake: impl Fn() + Send + 'static,
) {
    ui.label(
        "One attention or token-mixer layer (d_model 128, 4 heads, batch 4), forward + backward, on the CPU backend: \
         block-sparse patterns compute only the pairs they attend, so their cost grows like n * w while dense grows like n^2; \
         linear attention and the SSM grow like n, the gated convolution (a direct sum over its full-length filter) like n^2.",
    );
    cost_controls_ui(ui, view, patterns, busy_training, wake);
    if view.is_running() {
        let (done, total, current) = view.progress();
        let fraction = done as f32 / total.max(1) as f32;
        ui.add(ProgressBar::new(fraction).text(format!("{done}/{total}: {current}")));
    }
    if let Some(e) = view.error() {
        ui.label(RichText::new(e).color(ERROR_COLOR));
    }
    let labels: Vec<String> = patterns.iter().map(CostLayer::label).collect();
    if labels.iter().all(|l| view.points(l).is_empty()) {
        ui.label("Nothing measured yet for these patterns: press Measure.");
        return;
    }
    ui.columns(3, |cols| {
        for (col, (title, value)) in cols.iter_mut().zip([
            ("ms per step", 0usize),
            ("peak memory (MiB)", 1),
            ("attended pairs per head", 2),
        ]) {
            col.label(RichText::new(title).strong());
            cost_plot_ui(col, view, &labels, value);
        }
    });
    cost_table_ui(ui, view, &labels);
}

/// Measure (not while training or measuring: they share the CPU), the longest
/// length to measure, and Clear cache.
fn cost_controls_ui(
    ui: &mut Ui,
    view: &mut CostView,
    patterns: &[CostLayer],
    busy_training: bool,
    wake: impl Fn() + Send + 'static,
) {
    ui.horizontal(|ui| {
        let can = !view.is_running() && !busy_training;
        if ui
            .add_enabled(can, egui::Button::new("Measure"))
            .on_hover_text(
                "Time each pattern at n = 256 ... the longest length (cached per machine)",
            )
            .on_disabled_hover_text(
                "Wait for training (or the current sweep) to finish: they share the CPU",
            )
            .clicked()
        {
            view.start(patterns, wake);
        }
        let l = ui.label("up to n =");
        egui::ComboBox::from_id_salt("cost-max")
            .selected_text(view.max_len.to_string())
            .show_ui(ui, |ui| {
                for n in COST_LENGTHS {
                    ui.selectable_value(&mut view.max_len, n, n.to_string());
                }
            })
            .response
            .labelled_by(l.id);
        if ui
            .add_enabled(!view.is_running(), egui::Button::new("Clear cache"))
            .clicked()
        {
            view.clear();
        }
    });
}

/// A tick label of a log10 axis: the power of ten at whole powers, else nothing.
fn log_axis(mark: GridMark, _: &RangeInclusive<f64>) -> String {
    let v = 10f64.powf(mark.value);
    if (mark.value - mark.value.round()).abs() > 1e-6 {
        String::new()
    } else if v >= 1000.0 {
        format!("{:.0e}", v)
    } else {
        format!("{v}")
    }
}

/// A tick label of the log2 length axis: the length.
fn n_axis(mark: GridMark, _: &RangeInclusive<f64>) -> String {
    format!("{:.0}", 2f64.powf(mark.value))
}

/// One log-log plot against the length: `value` 0 is ms per step, 1 peak memory,
/// 2 attended pairs per head; a line per pattern of `labels`.
fn cost_plot_ui(ui: &mut Ui, view: &CostView, labels: &[String], value: usize) {
    Plot::new(("cost", value))
        .legend(Legend::default().position(egui_plot::Corner::LeftTop))
        .x_axis_label("n (log2)")
        .x_axis_formatter(n_axis)
        .y_axis_formatter(log_axis)
        .height(300.0)
        .allow_scroll(false)
        .label_formatter(move |hover| {
            let p = match hover {
                egui_plot::HoverPosition::NearDataPoint { position, .. } => *position,
                egui_plot::HoverPosition::Elsewhere { position } => *position,
            };
            Some(format!("n = {:.0}\n{:.3}", 2f64.powf(p.x), 10f64.powf(p.y)))
        })
        .show(ui, |plot| {
            for (i, label) in labels.iter().enumerate() {
                let pts: Vec<[f64; 2]> = view
                    .points(label)
                    .iter()
                    .filter_map(|p| {
                        let y = match value {
                            0 => Some(p.step_ms),
                            1 => p.peak_mb,
                            _ => Some(p.attended_pairs as f64),
                        }?;
                        (y > 0.0).then(|| [(p.seq as f64).log2(), y.log10()])
                    })
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                plot.line(
                    Line::new(label.as_str(), pts.clone())
                        .color(run_color(i))
                        .width(2.0),
                );
                plot.points(
                    Points::new(label.as_str(), pts)
                        .color(run_color(i))
                        .radius(3.0),
                );
            }
        });
}

fn cost_table_ui(ui: &mut Ui, view: &CostView, labels: &[String]) {
    let dense: BTreeMap<usize, f64> = view
        .points("dense")
        .iter()
        .map(|p| (p.seq, p.step_ms))
        .collect();
    egui::Grid::new("cost-table")
        .striped(true)
        .spacing([14.0, 3.0])
        .show(ui, |ui| {
            ui.label(RichText::new("pattern").strong());
            for n in COST_LENGTHS {
                ui.label(RichText::new(format!("n = {n}")).strong());
            }
            ui.end_row();
            for label in labels {
                ui.label(label);
                let points = view.points(label);
                for n in COST_LENGTHS {
                    match points.iter().find(|p| p.seq == n) {
                        Some(p) => {
                            let speedup = dense
                                .get(&n)
                                .filter(|_| label != "dense")
                                .map_or(String::new(), |d| format!(" ({:.1}x)", d / p.step_ms));
                            let mem = p.peak_mb.map_or(String::new(), |m| format!(", {m:.0} MiB"));
                            ui.label(format!("{:.1} ms{speedup}{mem}", p.step_ms));
                        }
                        None => {
                            ui.label("-");
                        }
                    }
                }
                ui.end_row();
            }
        });
}
