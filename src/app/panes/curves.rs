//! The Curves pane: loss and accuracy of every run, train (raw and smoothed) and
//! eval, a colour per run, optional log-scale loss, seed groups as mean and band, a
//! forked run's fork step as a thin dashed line, held-out scores at each of
//! `train.eval_lengths` as dotted lines in the run's colour (legend `@256`) (Compare draws the same plots for
//! the runs it compares). The lines themselves are drawn by `curve_lines`.

use egui::Ui;
use egui_plot::{AxisHints, GridMark, HLine, HoverPosition, Legend, LineStyle, Plot, PlotUi};

use super::curve_lines::{
    Axis, Metric, fork_lines_ui, fork_marks, hover_point, run_lines_ui, seed_groups_ui,
};
use crate::app::commands::UiCommand;
use crate::app::view_model::curves::{LevelLine, level_lines};
use crate::app::view_model::run_views::RunView;

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
    let axis = Axis::of(metric, options.log_scale);
    let plot = curve_plot(ui, runs, metric, axis, link, id);
    let forks = fork_marks(runs);
    // Published figures and the task's levels, labelled in the legend.
    let levels: Vec<_> = level_lines(runs.iter().map(|(_, r)| *r))
        .into_iter()
        .filter(|l| l.on_loss == (metric == Metric::Loss))
        .collect();
    let shown = plot.show(ui, |plot_ui| {
        levels_ui(plot_ui, &levels, axis.log);
        fork_lines_ui(plot_ui, &forks);
        if options.group_seeds {
            seed_groups_ui(plot_ui, runs, axis);
        }
        run_lines_ui(plot_ui, runs, options.smoothing, options.group_seeds, axis);
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

/// The plot of one metric, its axes sized and labelled, linked along x with the
/// other plots of `link`, with a hover label that names the line styles.
fn curve_plot<'a>(
    ui: &Ui,
    runs: &[(usize, &RunView)],
    metric: Metric,
    axis: Axis,
    link: egui::Id,
    id: &str,
) -> Plot<'a> {
    let Axis { title, log, .. } = axis;
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
            let (name, p) = hover_point(hover);
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
    plot
}

/// Draws `levels` as labelled horizontal lines (published figures dashed in amber,
/// computed levels dotted in grey); `log`: the y axis is log10.
pub(super) fn levels_ui(plot_ui: &mut PlotUi<'_>, levels: &[LevelLine], log: bool) {
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
