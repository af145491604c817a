//! What a Curves plot draws besides its levels: each run's train and eval lines
//! (`run_lines_ui`), seed groups as mean and band (`seed_groups_ui`), the held-out
//! scores at other lengths (`length_lines_ui`) and the fork lines (`fork_lines_ui`),
//! on the plot's [`Axis`].

use egui_plot::{
    HoverPosition, Line, LineStyle, MarkerShape, PlotPoint, PlotPoints, PlotUi, Points, Polygon,
    VLine,
};

use crate::app::view_model::curves::{group_band, smooth};
use crate::app::view_model::fork::fork_text;
use crate::app::view_model::lengths::length_curves;
use crate::app::view_model::run_list::group_members;
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::run_color;
use crate::records::Metrics;

/// Too many points slow the plot down; keep at most this many per raw line.
const MAX_RAW_POINTS: usize = 4000;

/// Which metric a plot shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Metric {
    Loss,
    Accuracy,
}

/// How one plot reads its metric: the title, the value of a record, and whether the
/// axis is log10.
#[derive(Clone, Copy)]
pub(super) struct Axis {
    pub(super) title: &'static str,
    value: fn(&Metrics) -> f64,
    pub(super) log: bool,
}

impl Axis {
    pub(super) fn of(metric: Metric, log_scale: bool) -> Self {
        let (title, value): (&'static str, fn(&Metrics) -> f64) = match metric {
            Metric::Loss => ("loss", |m| m.loss),
            Metric::Accuracy => ("accuracy", |m| m.accuracy),
        };
        Axis {
            title,
            value,
            log: metric == Metric::Loss && log_scale,
        }
    }

    /// `v` as plotted: its log10 on a log axis.
    fn scale(self, v: f64) -> f64 {
        if self.log { v.max(1e-8).log10() } else { v }
    }

    /// `metrics` as plot points, at most [`MAX_RAW_POINTS`] of them.
    fn points(self, metrics: &[Metrics]) -> Vec<[f64; 2]> {
        let stride = metrics.len().div_ceil(MAX_RAW_POINTS).max(1);
        metrics
            .iter()
            .step_by(stride)
            .map(|m| [m.step as f64, self.scale((self.value)(m))])
            .collect()
    }
}

/// A forked run's fork: its step, its words and its run's colour.
/// The plot name under the pointer (empty away from any point) and where it is: what
/// every curve chart's hover text starts from.
pub(super) fn hover_point<'a>(hover: &HoverPosition<'a>) -> (&'a str, PlotPoint) {
    match hover {
        HoverPosition::NearDataPoint {
            plot_name,
            position,
            ..
        } => (*plot_name, *position),
        HoverPosition::Elsewhere { position } => ("", *position),
    }
}

pub(super) type ForkMark = (f64, String, egui::Color32);

/// Each forked run's fork step, with its words and colour.
pub(super) fn fork_marks(runs: &[(usize, &RunView)]) -> Vec<ForkMark> {
    runs.iter()
        .filter_map(|&(color_index, run)| {
            let origin = run.forked_from.as_ref()?;
            Some((
                origin.step as f64,
                fork_text(origin),
                run_color(color_index),
            ))
        })
        .collect()
}

/// Draws each fork as a thin dashed vertical line in its run's colour.
pub(super) fn fork_lines_ui(plot_ui: &mut PlotUi<'_>, forks: &[ForkMark]) {
    for (i, (step, _, color)) in forks.iter().enumerate() {
        // Nameless: no legend entry of its own, and never hovered as data.
        plot_ui.vline(
            VLine::new("", *step)
                .id(("fork", i))
                .color(color.gamma_multiply(0.7))
                .width(1.0)
                .style(LineStyle::dashed_loose())
                .allow_hover(false),
        );
    }
}

/// Draws each seed group of two or more runs once: the mean of its eval and train
/// curves with a min-max band under the eval mean, and its mean at each other
/// evaluation length.
pub(super) fn seed_groups_ui(plot_ui: &mut PlotUi<'_>, runs: &[(usize, &RunView)], axis: Axis) {
    let mut shown: Vec<&str> = Vec::new();
    for &(color_index, run) in runs {
        if shown.contains(&run.group.as_str()) {
            continue;
        }
        shown.push(&run.group);
        let members = group_members(runs, &run.group);
        if members.len() < 2 {
            continue;
        }
        let color = run_color(color_index);
        let name = format!("{} ({} seeds)", run.group, members.len());
        group_curves_ui(plot_ui, &members, &name, color, axis);
        length_lines_ui(plot_ui, color, &group_length_means(&members, axis));
    }
}

/// A group's eval mean (dashed, over its min-max band) and train mean (faint).
fn group_curves_ui(
    plot_ui: &mut PlotUi<'_>,
    members: &[&RunView],
    name: &str,
    color: egui::Color32,
    axis: Axis,
) {
    for (series, width) in [(true, 2.5), (false, 1.0)] {
        let lists: Vec<&[Metrics]> = members
            .iter()
            .map(|r| if series { &r.eval[..] } else { &r.train[..] })
            .collect();
        let band = group_band(&lists, axis.value);
        if band.is_empty() {
            continue;
        }
        if series {
            // One quad per interval: a plot polygon is filled as convex.
            for pair in band.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let quad = vec![
                    [a[0], axis.scale(a[3])],
                    [b[0], axis.scale(b[3])],
                    [b[0], axis.scale(b[2])],
                    [a[0], axis.scale(a[2])],
                ];
                plot_ui.polygon(
                    Polygon::new(name, PlotPoints::from(quad))
                        .fill_color(color.gamma_multiply(0.2))
                        .stroke(egui::Stroke::new(0.0, color)),
                );
            }
        }
        let mean: Vec<[f64; 2]> = band.iter().map(|b| [b[0], axis.scale(b[1])]).collect();
        let line = Line::new(name, PlotPoints::from(mean))
            .color(color)
            .width(width);
        plot_ui.line(if series {
            line.style(LineStyle::Dashed { length: 8.0 })
        } else {
            line.color(color.gamma_multiply(0.5))
        });
    }
}

/// The group's mean at each other evaluation length, `(seq_len, points)`.
fn group_length_means(members: &[&RunView], axis: Axis) -> Vec<(usize, Vec<[f64; 2]>)> {
    // Looked up by length: linear in the lengths and members, every frame.
    let curves: Vec<std::collections::BTreeMap<usize, Vec<Metrics>>> = members
        .iter()
        .map(|r| length_curves(r).into_iter().collect())
        .collect();
    let lengths: std::collections::BTreeSet<usize> =
        curves.iter().flat_map(|c| c.keys().copied()).collect();
    lengths
        .into_iter()
        .map(|n| {
            let lists: Vec<&[Metrics]> = curves
                .iter()
                .filter_map(|c| c.get(&n))
                .map(|m| &m[..])
                .collect();
            let band = group_band(&lists, axis.value);
            (n, band.iter().map(|b| [b[0], axis.scale(b[1])]).collect())
        })
        .collect()
}

/// Draws each run not drawn as a seed group: train (raw, and smoothed over it),
/// eval dashed with its points, and eval at each other length.
pub(super) fn run_lines_ui(
    plot_ui: &mut PlotUi<'_>,
    runs: &[(usize, &RunView)],
    smoothing: f32,
    group_seeds: bool,
    axis: Axis,
) {
    for &(color_index, run) in runs {
        if group_seeds && runs.iter().filter(|(_, r)| r.group == run.group).count() > 1 {
            continue;
        }
        let color = run_color(color_index);
        let name = run.label();
        let name = name.as_ref();
        let raw = axis.points(&run.train);
        if smoothing > 0.0 && raw.len() > 1 {
            let ys: Vec<f64> = raw.iter().map(|p| p[1]).collect();
            let smoothed: Vec<[f64; 2]> = smooth(&ys, smoothing as f64)
                .into_iter()
                .zip(&raw)
                .map(|(y, p)| [p[0], y])
                .collect();
            // One legend entry per run: every line of a run shares its name.
            plot_ui.line(Line::new(name, PlotPoints::from(raw)).color(color.gamma_multiply(0.25)));
            plot_ui.line(
                Line::new(name, PlotPoints::from(smoothed))
                    .color(color)
                    .width(1.5),
            );
        } else {
            plot_ui.line(Line::new(name, PlotPoints::from(raw)).color(color));
        }
        let eval = axis.points(&run.eval);
        if !eval.is_empty() {
            plot_ui.line(
                Line::new(name, PlotPoints::from(eval.clone()))
                    .color(color)
                    .width(2.0)
                    .style(LineStyle::Dashed { length: 8.0 }),
            );
            plot_ui.points(Points::new(name, eval).color(color).radius(2.5));
        }
        let at_lengths: Vec<(usize, Vec<[f64; 2]>)> = length_curves(run)
            .into_iter()
            .map(|(n, m)| (n, axis.points(&m)))
            .collect();
        length_lines_ui(plot_ui, color, &at_lengths);
    }
}

/// Draws a run's (or group's) held-out curve at each other evaluation length,
/// `(seq_len, points)`, as a dotted line in the run's colour with the length's marker. The
/// legend has one entry per length (`@256`), not per run and length: with ten runs
/// at three lengths the plot stays readable, and clicking `@512` hides every run's
/// line at 512.
pub(super) fn length_lines_ui(
    plot_ui: &mut PlotUi<'_>,
    color: egui::Color32,
    curves: &[(usize, Vec<[f64; 2]>)],
) {
    const SHAPES: [MarkerShape; 5] = [
        MarkerShape::Diamond,
        MarkerShape::Square,
        MarkerShape::Up,
        MarkerShape::Cross,
        MarkerShape::Asterisk,
    ];
    for (seq_len, points) in curves {
        if points.is_empty() {
            continue;
        }
        let name = format!("@{seq_len}");
        plot_ui.line(
            Line::new(&name, PlotPoints::from(points.clone()))
                .color(color.gamma_multiply(0.8))
                .width(1.5)
                .style(LineStyle::Dotted { spacing: 5.0 }),
        );
        plot_ui.points(
            Points::new(&name, points.clone())
                .color(color)
                // By the length itself, so every run's `@256` has the legend's marker.
                .shape(SHAPES[seq_len.max(&1).ilog2() as usize % SHAPES.len()])
                .radius(3.0),
        );
    }
}
