//! The Distance pane: accuracy against how far back the answer lies, with each run's
//! structural reach drawn as a marker. Within runs: held-out accuracy at the latest
//! evaluation, bucketed by each answer's dependency distance (MQAR, selective copy:
//! the distance varies inside an example), at the training length or at one of
//! `train.eval_lengths`. Across runs: final accuracy against
//! `task.distance` for runs that differ in it (a distance sweep). A local run shows its
//! cliff at its reach; dense attention does not.

use std::collections::BTreeMap;

use egui::{RichText, Ui};
use egui_plot::{Corner, Legend, Line, LineStyle, Plot, PlotPoints, Points, VLine};

/// Room below accuracy 0 for the legend.
const LEGEND_ROOM: f64 = -0.45;

use crate::app::view_model::lengths::{distance_lengths, latest_by_distance};
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::run_color;

/// What the pane shows (not persisted).
#[derive(Clone, Copy, Debug, Default)]
pub struct DistanceViewState {
    /// Distances per bucket within runs; 0 chooses from the sequence length.
    pub bucket: usize,
    /// The evaluation length shown within runs; `None`: each run's training length.
    pub length: Option<usize>,
}

/// Whether `run` has accuracy at more than one distance at `length`.
fn spread_at(run: &RunView, length: Option<usize>) -> bool {
    latest_by_distance(run, length).is_some_and(|d| d.counts.len() > 1)
}

/// The pane over the runs (with their colour index).
pub fn distance_ui(ui: &mut Ui, state: &mut DistanceViewState, runs: &[(usize, &RunView)]) {
    // The lengths some run has a distance spread at (beyond each run's own).
    let lengths: Vec<usize> = distance_lengths(runs.iter().map(|(_, r)| *r))
        .into_iter()
        .filter(|&n| runs.iter().any(|(_, r)| spread_at(r, Some(n))))
        .collect();
    if state.length.is_some_and(|n| !lengths.contains(&n)) {
        state.length = None;
    }
    let within: Vec<(usize, &RunView)> = runs
        .iter()
        .copied()
        .filter(|(_, r)| spread_at(r, state.length))
        .collect();
    let across = across_runs(runs);
    if within.is_empty() && across.is_empty() && lengths.is_empty() {
        ui.label(
            "Nothing to show yet. Within a run: train a task whose answers lie at different distances (mqar, selective_copy) until its first evaluation. Across runs: runs that differ in task.distance (a distance sweep), finished.",
        );
        return;
    }
    egui::ScrollArea::vertical().show(ui, |ui| {
        if !within.is_empty() || !lengths.is_empty() {
            within_ui(ui, state, &within, &lengths);
        }
        if !across.is_empty() {
            ui.separator();
            across_ui(ui, &across);
        }
    });
}

/// Within runs: accuracy by the distance of each answer's source, bucketed, at the
/// training length or a chosen evaluation length, each run's reach marked.
fn within_ui(
    ui: &mut Ui,
    state: &mut DistanceViewState,
    runs: &[(usize, &RunView)],
    lengths: &[usize],
) {
    let longest = state.length.unwrap_or_else(|| {
        runs.iter()
            .map(|(_, r)| r.settings.task.seq_len)
            .max()
            .unwrap_or(1)
    });
    let auto = (longest / 16).max(1);
    ui.horizontal(|ui| {
        ui.label(RichText::new("Within runs: held-out accuracy by the distance of each answer's source (latest evaluation)").strong());
        bucket_ui(ui, state, longest, auto);
        if !lengths.is_empty() {
            length_choice_ui(ui, &mut state.length, lengths);
        }
    });
    let bucket = if state.bucket == 0 {
        auto
    } else {
        state.bucket
    };
    Plot::new("distance-within")
        .height(300.0)
        // The legend sits below zero, where no accuracy goes, so it hides no point.
        .legend(Legend::default().position(Corner::RightBottom))
        .include_y(LEGEND_ROOM)
        .x_axis_label("distance: query position - source position")
        .y_axis_label("held-out accuracy")
        .include_y(0.0)
        .include_y(1.0)
        .include_x(0.0)
        .allow_scroll(false)
        .show(ui, |plot| {
            for &(i, run) in runs {
                distance_line(plot, i, run, state.length, bucket);
            }
            if let Some((_, run)) = runs.first() {
                chance_line(plot, run);
            }
            published_ui(plot, runs.iter().map(|(_, r)| *r));
        });
    ui.label(
        RichText::new("Dashed verticals: each run's structural reach (the largest distance its stack of masks links everywhere); grey: chance accuracy.")
            .small()
            .weak(),
    );
}

/// Distances per point (0 in `state`: `auto`, from the `longest` length).
fn bucket_ui(ui: &mut Ui, state: &mut DistanceViewState, longest: usize, auto: usize) {
    let l = ui.label("bucket");
    let mut bucket = if state.bucket == 0 {
        auto
    } else {
        state.bucket
    };
    if ui
        .add(egui::DragValue::new(&mut bucket).range(1..=longest.max(1)))
        .labelled_by(l.id)
        .on_hover_text("Distances per point (each point named by its largest distance)")
        .changed()
    {
        state.bucket = bucket;
    }
}

/// Which evaluation length: each run's training length (`None`) or one of `lengths`.
fn length_choice_ui(ui: &mut Ui, length: &mut Option<usize>, lengths: &[usize]) {
    let l = ui.label("at length");
    let text = |n: Option<usize>| n.map_or("training".to_string(), |n| n.to_string());
    egui::ComboBox::from_id_salt("distance-length")
        .selected_text(text(*length))
        .show_ui(ui, |ui| {
            ui.selectable_value(length, None, "training")
                .on_hover_text("Each run at its own task.seq_len");
            for &n in lengths {
                ui.selectable_value(length, Some(n), text(Some(n)));
            }
        })
        .response
        .labelled_by(l.id)
        .on_hover_text(
            "Which evaluation's examples: each run's training length, or one of train.eval_lengths",
        );
}

/// `run`'s (colour `i`) latest accuracy by distance at `length`, `bucket` distances
/// per point, and its reach.
fn distance_line(
    plot: &mut egui_plot::PlotUi<'_>,
    i: usize,
    run: &RunView,
    length: Option<usize>,
    bucket: usize,
) {
    let Some(latest) = latest_by_distance(run, length) else {
        return;
    };
    let points: Vec<[f64; 2]> = latest
        .bucketed(bucket)
        .iter()
        .map(|c| [c.distance as f64, c.accuracy()])
        .collect();
    let name = match length {
        Some(n) if n != run.settings.task.seq_len => {
            format!("{} @{n} (step {})", run.name, latest.step)
        }
        _ => format!("{} (step {})", run.name, latest.step),
    };
    plot.line(Line::new(&name, PlotPoints::from(points.clone())).color(run_color(i)));
    plot.points(Points::new(&name, points).color(run_color(i)).radius(2.5));
    reach_marker(plot, i, run);
}

/// One series of the across-runs chart: runs of one pattern at several distances.
struct Series<'a> {
    label: String,
    color: usize,
    /// Distance -> final accuracies (one per seed).
    points: BTreeMap<usize, Vec<f64>>,
    /// A run of the series (for its reach and chance).
    example: &'a RunView,
}

/// Runs grouped by everything but the distance: only when some group has several.
fn across_runs<'a>(runs: &[(usize, &'a RunView)]) -> Vec<Series<'a>> {
    let mut series: Vec<Series<'a>> = Vec::new();
    for &(i, run) in runs {
        let Some(acc) = run.final_accuracy().filter(|_| run.status.is_terminal()) else {
            continue;
        };
        let label = run.settings.model.attention_label();
        let distance = run.settings.task.distance;
        match series.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.entry(distance).or_default().push(acc),
            None => series.push(Series {
                label,
                color: i,
                points: BTreeMap::from([(distance, vec![acc])]),
                example: run,
            }),
        }
    }
    if series.iter().all(|s| s.points.len() < 2) {
        return Vec::new();
    }
    series
}

fn across_ui(ui: &mut Ui, series: &[Series<'_>]) {
    ui.label(
        RichText::new(
            "Across runs: final held-out accuracy against task.distance (mean over seeds)",
        )
        .strong(),
    );
    Plot::new("distance-across")
        .height(300.0)
        .legend(Legend::default().position(Corner::RightBottom))
        .include_y(LEGEND_ROOM)
        .x_axis_label("task.distance")
        .y_axis_label("final accuracy")
        .include_y(0.0)
        .include_y(1.0)
        .include_x(0.0)
        .allow_scroll(false)
        .show(ui, |plot| {
            for s in series {
                let points: Vec<[f64; 2]> = s
                    .points
                    .iter()
                    .map(|(d, accs)| [*d as f64, accs.iter().sum::<f64>() / accs.len() as f64])
                    .collect();
                plot.line(
                    Line::new(&s.label, PlotPoints::from(points.clone())).color(run_color(s.color)),
                );
                plot.points(
                    Points::new(&s.label, points)
                        .color(run_color(s.color))
                        .radius(3.5),
                );
                reach_marker(plot, s.color, s.example);
            }
            if let Some(s) = series.first() {
                chance_line(plot, s.example);
            }
            published_ui(plot, series.iter().map(|s| s.example));
        });
}

fn reach_marker(plot: &mut egui_plot::PlotUi<'_>, color: usize, run: &RunView) {
    if let Some(reach) = run.reach() {
        plot.vline(
            VLine::new(format!("reach {reach}"), reach as f64)
                .color(run_color(color))
                .style(LineStyle::dashed_dense()),
        );
    }
}

fn chance_line(plot: &mut egui_plot::PlotUi<'_>, run: &RunView) {
    plot.hline(
        egui_plot::HLine::new("chance", run.settings.task.chance_accuracy())
            .color(egui::Color32::from_gray(120)),
    );
}

/// The published accuracy of each run's `[reference]` entry, labelled.
fn published_ui<'a>(plot: &mut egui_plot::PlotUi<'_>, runs: impl IntoIterator<Item = &'a RunView>) {
    let levels: Vec<_> = crate::app::view_model::curves::level_lines(runs)
        .into_iter()
        .filter(|l| l.published && !l.on_loss)
        .collect();
    super::curves::levels_ui(plot, &levels, false);
}
