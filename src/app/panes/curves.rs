//! The Curves pane: loss and accuracy of every run, train (raw and smoothed) and
//! eval, a colour per run, optional log-scale loss, seed groups as mean and band, a
//! forked run's fork step as a thin dashed line, held-out scores at each of
//! `train.eval_lengths` as dotted lines in the run's colour (legend `@256`) (Compare draws the same plots for
//! the runs it compares).

use egui::Ui;
use egui_plot::{
    AxisHints, GridMark, HLine, HoverPosition, Legend, Line, LineStyle, MarkerShape, Plot,
    PlotPoints, Points, Polygon, VLine,
};

use crate::app::commands::UiCommand;
use crate::app::view_model::curves::{LevelLine, group_band, level_lines, smooth};
use crate::app::view_model::fork::fork_text;
use crate::app::view_model::lengths::length_curves;
use crate::app::view_model::run_list::group_members;
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::run_color;
use crate::records::Metrics;

/// Display options for the curves (persisted).
#[derive(Clone, Copy, Debug)]
pub struct CurveOptions {
    /// Exponential smoothing of training curves, 0 (raw) ..< 1.
    pub smoothing: f32,
    /// Log10 loss axis.
    pub log_scale: bool,
    /// Seed replicates as one curve: mean with a min-max band.
    pub group_seeds: bool,
}

/// Too many points slow the plot down; keep at most this many per raw line.
const MAX_RAW_POINTS: usize = 4000;

fn points(metrics: &[Metrics], value: impl Fn(&Metrics) -> f64, log: bool) -> Vec<[f64; 2]> {
    let stride = metrics.len().div_ceil(MAX_RAW_POINTS).max(1);
    metrics
        .iter()
        .step_by(stride)
        .map(|m| {
            let v = value(m);
            [m.step as f64, if log { v.max(1e-8).log10() } else { v }]
        })
        .collect()
}

/// Which metric a plot shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    Loss,
    Accuracy,
}

/// The two plots side by side for `runs` (each with its colour index).
pub fn curves_ui(ui: &mut Ui, runs: &[(usize, &RunView)], options: CurveOptions, id: &str) {
    if runs
        .iter()
        .all(|(_, r)| r.train.is_empty() && r.eval.is_empty())
    {
        ui.label(format!(
            "No metrics yet: press Run ({}) or open a past run.",
            UiCommand::RunAll
                .shortcut_text(ui.ctx())
                .unwrap_or_default()
        ));
        return;
    }
    let link = egui::Id::unique(("curves-link", id));
    ui.columns(2, |cols| {
        plot_ui(&mut cols[0], runs, options, Metric::Loss, link, id);
        plot_ui(&mut cols[1], runs, options, Metric::Accuracy, link, id);
    });
}

/// The room the axes need, measured from the widest tick label the formatters can
/// write (`0.00`, `1e-4`, `10000`) plus the axis title. egui_plot otherwise sizes an
/// axis from the labels of the frame before, so after the range changes (a run that
/// goes on to 2000 steps, a loss falling below 0.01) the last frame drawn can cut
/// tick labels or put the title over them.
fn axis_room(ui: &Ui, log: bool) -> (f32, f32) {
    let font = egui::TextStyle::Body.resolve(ui.style());
    let color = ui.visuals().text_color();
    let size = |text: &str| {
        ui.painter()
            .layout_no_wrap(text.to_string(), font.clone(), color)
            .size()
    };
    // The title's line and egui_plot's gap of a quarter line below or beside it.
    let title = size("step").y * 1.25;
    let widest = if log { "00.00" } else { "0.000" };
    let x_room = size("10000").y + title;
    let y_room = size(widest).x + title;
    (x_room, y_room)
}

fn plot_ui(
    ui: &mut Ui,
    runs: &[(usize, &RunView)],
    options: CurveOptions,
    metric: Metric,
    link: egui::Id,
    id: &str,
) {
    let log = metric == Metric::Loss && options.log_scale;
    let (title, value): (&str, fn(&Metrics) -> f64) = match metric {
        Metric::Loss => ("loss", |m| m.loss),
        Metric::Accuracy => ("accuracy", |m| m.accuracy),
    };
    let (x_room, y_room) = axis_room(ui, log);
    let key = if runs.iter().any(|(_, r)| !r.lengths.is_empty()) {
        "(solid: train, dashed: eval, dotted: eval at another length)"
    } else {
        "(solid: train, dashed: eval)"
    };
    let mut plot = Plot::new((id, title))
        .legend(Legend::default())
        .custom_x_axes(vec![AxisHints::new_x().label("step").min_thickness(x_room)])
        .y_axis_label(if log { "loss (log10)" } else { title })
        .y_axis_min_width(y_room)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .allow_scroll(false)
        .label_formatter(move |hover: &HoverPosition<'_>| {
            let (name, p) = match hover {
                HoverPosition::NearDataPoint {
                    plot_name,
                    position,
                    ..
                } => (*plot_name, *position),
                HoverPosition::Elsewhere { position } => ("", *position),
            };
            let y = if log { 10f64.powf(p.y) } else { p.y };
            Some(format!("{name}\nstep {:.0}\n{title} {y:.4}\n{key}", p.x))
        });
    if log {
        plot = plot.y_axis_formatter(|mark: GridMark, _| {
            let v = 10f64.powf(mark.value);
            if v >= 0.01 {
                format!("{v:.2}")
            } else {
                format!("{v:.0e}")
            }
        });
    } else if metric == Metric::Accuracy {
        plot = plot.include_y(0.0).include_y(1.0);
    }
    // Each forked run's fork step, with its words and colour.
    let forks: Vec<(f64, String, egui::Color32)> = runs
        .iter()
        .filter_map(|&(color_index, run)| {
            let origin = run.forked_from.as_ref()?;
            Some((
                origin.step as f64,
                fork_text(origin),
                run_color(color_index),
            ))
        })
        .collect();
    // Published figures and the task's levels, labelled in the legend.
    let levels: Vec<_> = level_lines(runs.iter().map(|(_, r)| *r))
        .into_iter()
        .filter(|l| l.on_loss == (metric == Metric::Loss))
        .collect();
    let shown = plot.show(ui, |plot_ui| {
        levels_ui(plot_ui, &levels, log);
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
        if options.group_seeds {
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
                let scale = |v: f64| if log { v.max(1e-8).log10() } else { v };
                for (series, width) in [(true, 2.5), (false, 1.0)] {
                    let lists: Vec<&[Metrics]> = members
                        .iter()
                        .map(|r| if series { &r.eval[..] } else { &r.train[..] })
                        .collect();
                    let band = group_band(&lists, value);
                    if band.is_empty() {
                        continue;
                    }
                    if series {
                        // One quad per interval: a plot polygon is filled as convex.
                        for pair in band.windows(2) {
                            let (a, b) = (pair[0], pair[1]);
                            let quad = vec![
                                [a[0], scale(a[3])],
                                [b[0], scale(b[3])],
                                [b[0], scale(b[2])],
                                [a[0], scale(a[2])],
                            ];
                            plot_ui.polygon(
                                Polygon::new(&name, PlotPoints::from(quad))
                                    .fill_color(color.gamma_multiply(0.2))
                                    .stroke(egui::Stroke::new(0.0, color)),
                            );
                        }
                    }
                    let mean: Vec<[f64; 2]> = band.iter().map(|b| [b[0], scale(b[1])]).collect();
                    let line = Line::new(&name, PlotPoints::from(mean))
                        .color(color)
                        .width(width);
                    plot_ui.line(if series {
                        line.style(LineStyle::Dashed { length: 8.0 })
                    } else {
                        line.color(color.gamma_multiply(0.5))
                    });
                }
                // The group's mean at each other evaluation length.
                let curves: Vec<Vec<(usize, Vec<Metrics>)>> =
                    members.iter().map(|r| length_curves(r)).collect();
                let mut lengths: Vec<usize> = curves.iter().flatten().map(|(n, _)| *n).collect();
                lengths.sort_unstable();
                lengths.dedup();
                let means: Vec<(usize, Vec<[f64; 2]>)> = lengths
                    .into_iter()
                    .map(|n| {
                        let lists: Vec<&[Metrics]> = curves
                            .iter()
                            .filter_map(|c| c.iter().find(|(m, _)| *m == n))
                            .map(|(_, m)| &m[..])
                            .collect();
                        let band = group_band(&lists, value);
                        (n, band.iter().map(|b| [b[0], scale(b[1])]).collect())
                    })
                    .collect();
                length_lines_ui(plot_ui, color, &means);
            }
        }
        for &(color_index, run) in runs {
            if options.group_seeds && runs.iter().filter(|(_, r)| r.group == run.group).count() > 1
            {
                continue;
            }
            let color = run_color(color_index);
            let name = run.label();
            let name = name.as_ref();
            let raw = points(&run.train, value, log);
            if options.smoothing > 0.0 && raw.len() > 1 {
                let ys: Vec<f64> = raw.iter().map(|p| p[1]).collect();
                let smoothed: Vec<[f64; 2]> = smooth(&ys, options.smoothing as f64)
                    .into_iter()
                    .zip(&raw)
                    .map(|(y, p)| [p[0], y])
                    .collect();
                // One legend entry per run: every line of a run shares its name.
                plot_ui
                    .line(Line::new(name, PlotPoints::from(raw)).color(color.gamma_multiply(0.25)));
                plot_ui.line(
                    Line::new(name, PlotPoints::from(smoothed))
                        .color(color)
                        .width(1.5),
                );
            } else {
                plot_ui.line(Line::new(name, PlotPoints::from(raw)).color(color));
            }
            let eval = points(&run.eval, value, log);
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
                .map(|(n, m)| (n, points(&m, value, log)))
                .collect();
            length_lines_ui(plot_ui, color, &at_lengths);
        }
    });
    // A fork line under the pointer says whose fork it is.
    if let Some(pointer) = shown.response.hover_pos()
        && let Some((_, text, _)) = forks.iter().find(|(step, _, _)| {
            (shown.transform.position_from_point_x(*step) - pointer.x).abs() <= 4.0
        })
    {
        shown.response.on_hover_text_at_pointer(text);
    }
}

/// Draws a run's (or group's) held-out curve at each other evaluation length,
/// `(seq_len, points)`, as a dotted line in the run's colour with the length's marker. The
/// legend has one entry per length (`@256`), not per run and length: with ten runs
/// at three lengths the plot stays readable, and clicking `@512` hides every run's
/// line at 512.
fn length_lines_ui(
    plot_ui: &mut egui_plot::PlotUi<'_>,
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

/// Draws `levels` as labelled horizontal lines (published figures dashed in amber,
/// computed levels dotted in grey); `log`: the y axis is log10.
pub(super) fn levels_ui(plot_ui: &mut egui_plot::PlotUi<'_>, levels: &[LevelLine], log: bool) {
    for level in levels {
        let y = if log {
            level.value.max(1e-8).log10()
        } else {
            level.value
        };
        let (color, style) = if level.published {
            (
                egui::Color32::from_rgb(230, 170, 40),
                LineStyle::dashed_dense(),
            )
        } else {
            (egui::Color32::GRAY, LineStyle::dotted_dense())
        };
        plot_ui.hline(
            HLine::new(&level.label, y)
                .color(color)
                .width(1.5)
                .style(style),
        );
    }
}
