//! The Length pane: held-out accuracy (or loss) against the evaluation length, on a
//! log2 axis, one line per run or per replicate group (the mean, with a min-max band
//! and the fraction of seeds that solved the task), each training length marked, a
//! table of the same numbers (copyable as CSV), and below it the probe's attention
//! at a chosen longer length (`length_probe`). What `train.eval_lengths` measures:
//! does what a model learned at one length still work at 2x or 8x?

use egui::{RichText, Ui};
use egui_plot::{
    Corner, GridInput, GridMark, HLine, HoverPosition, Legend, Line, LineStyle, Plot, PlotPoints,
    PlotUi, Points, Polygon, VLine,
};

use super::curve_lines::hover_point;
use super::length_probe::length_probe_ui;
use crate::app::heatmap::TextureCache;
use crate::app::view_model::intervention_jobs::Wake;
use crate::app::view_model::length_probe::LengthProbeView;
use crate::app::view_model::lengths::{
    LengthSeries, SeriesPoint, all_lengths, length_series, lengths_csv, training_lengths,
};
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::{run_color, value_cell};
use crate::trainer::RunId;

/// The pane's choices and its probe (not persisted).
#[derive(Default)]
pub struct LengthViewState {
    /// Loss instead of accuracy on the y axis.
    pub loss: bool,
    /// "Probe at length": its choices, results and helper thread.
    pub probe: LengthProbeView,
}

/// What the pane says when no run was evaluated at another length.
const EMPTY: &str = "No run has been evaluated at another length yet. Set train.eval_lengths in the experiment's [train] section (for example eval_lengths = [128, 256, 512]): each evaluation then also scores held-out examples generated at those lengths, and this chart shows accuracy against length. A model with learned positions (model.positions = \"learned\", the default) has none beyond its training length and is refused there: choose \"sinusoidal\", \"rope\", \"alibi\" or \"none\".";

/// The whole pane over `runs` (with their colour index); `selected` is the run the
/// probe starts from; `group_seeds` is shared with the Curves pane.
pub fn length_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    state: &mut LengthViewState,
    runs: &[(usize, &RunView)],
    selected: Option<RunId>,
    group_seeds: &mut bool,
    wake: &Wake,
) {
    egui::ScrollArea::vertical()
        .id_salt("length-pane")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let series = length_series(runs, *group_seeds);
            if series.is_empty() {
                ui.label(EMPTY);
            } else {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut state.loss, false, "accuracy");
                    ui.selectable_value(&mut state.loss, true, "loss");
                    ui.checkbox(group_seeds, "group seeds").on_hover_text(
                        "Seed replicates as one line: their mean, with a band from the lowest to the highest, and how many solved the task (accuracy at least train.solved_at)",
                    );
                    if ui
                        .button("Copy table")
                        .on_hover_text("The table below as CSV (series,trained_at,seq_len,step,accuracy,accuracy_min,accuracy_max,loss,runs,solved)")
                        .clicked()
                    {
                        ui.ctx().copy_text(lengths_csv(&series));
                    }
                });
                chart_ui(ui, &series, state.loss);
                ui.label(
                    RichText::new("Each point: the latest evaluation at that length. Dashed grey verticals: the training lengths. Bands: lowest to highest over seeds.")
                        .small()
                        .weak(),
                );
                table_ui(ui, &series, state.loss);
            }
            ui.separator();
            length_probe_ui(ui, cache, &mut state.probe, runs, selected, wake);
        });
}

/// `log2(n)`: where a length lies on the x axis.
fn x_of(seq_len: usize) -> f64 {
    (seq_len.max(1) as f64).log2()
}

/// Grid lines at the powers of two in view (at most 40 of them).
fn powers_of_two(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let (lo, hi) = (lo.floor().max(0.0) as i64, hi.ceil().min(40.0) as i64);
    (lo..=hi)
        .map(|k| GridMark {
            value: k as f64,
            step_size: 1.0,
        })
        .collect()
}

/// The value a point shows, and its band.
fn value_of(p: &SeriesPoint, loss: bool) -> (f64, f64, f64) {
    let s = if loss { p.loss } else { p.accuracy };
    (s.mean, s.min, s.max)
}

/// The hover text of one point.
fn point_text(s: &LengthSeries, p: &SeriesPoint, loss: bool) -> String {
    let (mean, lo, hi) = value_of(p, loss);
    let what = if loss { "loss" } else { "accuracy" };
    let mut text = format!(
        "{}\nlength {} (trained at {})\n{what} {mean:.4}",
        s.label, p.seq_len, s.trained_at
    );
    if p.runs > 1 {
        text.push_str(&format!(
            " (mean of {}, {lo:.4}..{hi:.4})\n{}: {:.0}% of the seeds",
            p.runs,
            p.solved_text(),
            100.0 * p.solved_fraction()
        ));
    }
    text.push_str(&format!("\nlatest evaluation: step {}", p.step));
    text
}

/// Each series' label and its points' hover texts ([`point_text`]) by x.
type HoverTexts = Vec<(String, Vec<(f64, String)>)>;

/// The hover texts of every point of `series`, moved into the chart's formatter.
fn hover_texts(series: &[LengthSeries], loss: bool) -> HoverTexts {
    series
        .iter()
        .map(|s| {
            let texts = s
                .points
                .iter()
                .map(|p| (x_of(p.seq_len), point_text(s, p, loss)))
                .collect();
            (s.label.clone(), texts)
        })
        .collect()
}

/// What the chart says under the pointer: the hovered series' point nearest in x,
/// else the length and value there.
fn hover_text(hovers: &HoverTexts, hover: &HoverPosition<'_>) -> String {
    let (name, p) = hover_point(hover);
    let near = hovers.iter().find(|(n, _)| n == name).and_then(|(_, t)| {
        t.iter()
            .min_by(|a, b| (a.0 - p.x).abs().total_cmp(&(b.0 - p.x).abs()))
    });
    match near {
        Some((_, text)) => text.clone(),
        None => format!("length {:.0}\n{:.4}", 2f64.powf(p.x), p.y),
    }
}

/// Accuracy (or loss) against length on a log2 axis: a line per series, the
/// training lengths and chance marked.
fn chart_ui(ui: &mut Ui, series: &[LengthSeries], loss: bool) {
    let lengths = all_lengths(series);
    let (lo, hi) = match (lengths.first(), lengths.last()) {
        (Some(&a), Some(&b)) => (x_of(a), x_of(b)),
        _ => (0.0, 1.0),
    };
    let hovers = hover_texts(series, loss);
    let mut plot = Plot::new(("length-chart", loss))
        .height(320.0)
        .legend(Legend::default().position(Corner::RightBottom))
        .x_axis_label("evaluation length (log2 axis)")
        .y_axis_label(if loss {
            "held-out loss"
        } else {
            "held-out accuracy"
        })
        .x_grid_spacer(powers_of_two)
        .x_axis_formatter(|mark: GridMark, _| format!("{:.0}", 2f64.powf(mark.value)))
        .include_x(lo - 0.3)
        .include_x(hi + 0.3)
        .include_y(0.0)
        .allow_scroll(false)
        .label_formatter(move |hover: &HoverPosition<'_>| Some(hover_text(&hovers, hover)));
    if !loss {
        plot = plot.include_y(1.0);
    }
    plot.show(ui, |plot| {
        training_marks(plot, series);
        if !loss {
            chance_lines(plot, series);
        }
        for s in series {
            series_line(plot, s, loss);
        }
    });
}

/// A dashed grey vertical at each training length.
fn training_marks(plot: &mut PlotUi<'_>, series: &[LengthSeries]) {
    for t in training_lengths(series) {
        plot.vline(
            VLine::new(format!("trained at {t}"), x_of(t))
                .color(egui::Color32::from_gray(150))
                .width(1.5)
                .style(LineStyle::dashed_dense()),
        );
    }
}

/// One line per task's chance (runs of different tasks have their own).
fn chance_lines(plot: &mut PlotUi<'_>, series: &[LengthSeries]) {
    let mut chances: Vec<f64> = series.iter().map(|s| s.chance).collect();
    chances.sort_by(f64::total_cmp);
    chances.dedup();
    for &chance in &chances {
        let name = if chances.len() > 1 {
            format!("chance {chance:.3}")
        } else {
            "chance".to_string()
        };
        plot.hline(HLine::new(name, chance).color(egui::Color32::from_gray(110)));
    }
}

/// One series: its min-max band over seeds (when it has several), line and points.
fn series_line(plot: &mut PlotUi<'_>, s: &LengthSeries, loss: bool) {
    let color = run_color(s.color);
    if s.seeds > 1 {
        // One quad per interval: a plot polygon is filled as convex.
        for pair in s.points.windows(2) {
            let (a, b) = (value_of(&pair[0], loss), value_of(&pair[1], loss));
            let (xa, xb) = (x_of(pair[0].seq_len), x_of(pair[1].seq_len));
            let quad = vec![[xa, a.2], [xb, b.2], [xb, b.1], [xa, a.1]];
            plot.polygon(
                Polygon::new(&s.label, PlotPoints::from(quad))
                    .fill_color(color.gamma_multiply(0.2))
                    .stroke(egui::Stroke::new(0.0, color)),
            );
        }
    }
    let points: Vec<[f64; 2]> = s
        .points
        .iter()
        .map(|p| [x_of(p.seq_len), value_of(p, loss).0])
        .collect();
    plot.line(
        Line::new(&s.label, PlotPoints::from(points.clone()))
            .color(color)
            .width(2.0),
    );
    plot.points(Points::new(&s.label, points).color(color).radius(3.5));
}

/// The chart's numbers: a row per line, a column per length.
fn table_ui(ui: &mut Ui, series: &[LengthSeries], loss: bool) {
    let lengths = all_lengths(series);
    let top = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.loss.mean))
        .fold(1e-12, f64::max);
    egui::ScrollArea::horizontal()
        .id_salt("length-table")
        .show(ui, |ui| {
            egui::Grid::new("length-table-grid")
                .striped(true)
                .spacing([8.0, 3.0])
                .show(ui, |ui| {
                    ui.label(RichText::new("run").strong());
                    ui.label(RichText::new("trained at").strong());
                    for n in &lengths {
                        ui.label(RichText::new(n.to_string()).strong());
                    }
                    ui.end_row();
                    for s in series {
                        ui.label(RichText::new(&s.label).color(run_color(s.color)));
                        ui.label(s.trained_at.to_string());
                        for n in &lengths {
                            let Some(p) = s.points.iter().find(|p| p.seq_len == *n) else {
                                if s.learned_positions && *n > s.trained_at {
                                    ui.label("refused").on_hover_text(format!(
                                        "model.positions = \"learned\": no positions past {}, so no evaluation there (never clamped or wrapped)",
                                        s.trained_at
                                    ));
                                } else {
                                    ui.label("-");
                                }
                                continue;
                            };
                            let (mean, _, _) = value_of(p, loss);
                            let t = if loss { 1.0 - mean / top } else { mean };
                            let text = if p.runs > 1 {
                                format!("{mean:.3} ({}/{})", p.solved, p.runs)
                            } else {
                                format!("{mean:.3}")
                            };
                            let cell = ui.scope(|ui| value_cell(ui, t, text, 2.0)).response;
                            cell.on_hover_text(point_text(s, p, loss));
                        }
                        ui.end_row();
                    }
                });
        });
    if series.iter().any(|s| s.seeds > 1) {
        ui.label(
            RichText::new(
                "(solved/runs): seeds whose accuracy at that length reached train.solved_at.",
            )
            .small()
            .weak(),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    use super::*;
    use crate::records::{DistanceAccuracy, LengthScores, Metrics};

    /// A run trained at 64 with accuracy 1 there and `at128` at length 128.
    fn run(id: RunId, name: &str, at128: f64) -> RunView {
        let mut view = crate::app::view_model::run_views::test_run(id, name);
        let m = |accuracy: f64| Metrics {
            step: 10,
            loss: 1.0 - accuracy,
            accuracy,
            elapsed_secs: 0.0,
        };
        view.eval = vec![m(1.0)];
        if at128 >= 0.0 {
            view.lengths = vec![LengthScores {
                seq_len: 128,
                metrics: m(at128),
                by_distance: DistanceAccuracy::default(),
            }];
        }
        view
    }

    fn harness<'a>(runs: &'a [RunView], state: &'a mut LengthViewState) -> Harness<'a> {
        let mut cache = TextureCache::default();
        let mut group = true;
        let wake: Wake = Arc::new(|| {});
        Harness::builder()
            .with_size(egui::vec2(1200.0, 1400.0))
            .build_ui(move |ui| {
                let indexed: Vec<(usize, &RunView)> = runs.iter().enumerate().collect();
                length_ui(ui, &mut cache, state, &indexed, None, &mut group, &wake);
            })
    }

    #[test]
    fn seeds_show_their_mean_and_how_many_solved() {
        let runs = [run(1, "dense seed=1", 0.95), run(2, "dense seed=2", 0.85)];
        let mut state = LengthViewState::default();
        let mut h = harness(&runs, &mut state);
        h.run_steps(3);
        h.get_by_label("0.900 (1/2)");
        h.get_by_label("1.000 (2/2)");
        h.get_by_label("Copy table");
        // Neither run has a record folder: nothing to probe, and it says why.
        h.get_by_label_contains("Needs a transformer run with a record folder");
    }

    #[test]
    fn without_other_lengths_the_pane_names_the_setting() {
        let runs = [run(1, "dense", -1.0)];
        let mut state = LengthViewState::default();
        let mut h = harness(&runs, &mut state);
        h.run_steps(3);
        h.get_by_label_contains("Set train.eval_lengths");
        assert!(h.query_by_label("Copy table").is_none());
    }
}
