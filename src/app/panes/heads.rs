//! The Heads pane: what each head does over training. A statistic's curve per head on
//! the loss's step axis, with markers where a head's score jumps (click one to move
//! the attention scrubber there), a table of every head at the scrubber's step
//! (sortable, coloured), and the receptive field of a picked query through the layers.

use egui::{Color32, RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints, PlotUi, Points, VLine};

use super::attention::AttentionViewState;
use super::receptive::receptive_field_ui;
use crate::app::heatmap::TextureCache;
use crate::app::view_model::analysis::FieldCache;
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::{run_color, value_cell};
use crate::attention::{HeadStats, Stat, jumps};

/// What the pane shows (not persisted).
#[derive(Clone, Debug)]
pub struct HeadsViewState {
    /// The statistic plotted.
    pub stat: Stat,
    /// The table's sort column (descending); `None`: layer and head order.
    pub sort: Option<Stat>,
    /// The receptive field last computed.
    pub fields: FieldCache,
}

impl Default for HeadsViewState {
    fn default() -> Self {
        Self {
            stat: Stat::DependencyMass,
            sort: None,
            fields: FieldCache::default(),
        }
    }
}

/// Most jump markers per head.
const JUMPS_PER_HEAD: usize = 2;

/// The whole pane for `run`.
pub fn heads_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    state: &mut HeadsViewState,
    scrubber: &mut AttentionViewState,
    run: &RunView,
) {
    ui.horizontal(|ui| {
        ui.label(RichText::new(&run.name).strong());
        ui.label(run.settings.model.attention_label());
    });
    let Some((_, first)) = run.head_stats.first() else {
        ui.label(if run.masks().is_empty() {
            "This model has no attention heads (LSTM)."
        } else {
            "No attention snapshot yet: head statistics appear with the first one."
        });
        return;
    };
    let heads = run.settings.model.heads.max(1);
    let defined: Vec<Stat> = Stat::ALL
        .into_iter()
        .filter(|s| first.iter().any(|h| s.of(h).is_some()))
        .collect();
    if !defined.contains(&state.stat) {
        state.stat = defined.first().copied().unwrap_or(Stat::MeanDistance);
    }
    ui.horizontal(|ui| {
        ui.label("statistic");
        for stat in &defined {
            ui.selectable_value(&mut state.stat, *stat, stat.name())
                .on_hover_text(stat.help());
        }
    });
    let last = run.snapshots.len().saturating_sub(1);
    let scrub_step = run
        .snapshots
        .get(scrubber.snapshot.unwrap_or(last).min(last))
        .map_or(0, |s| s.step);
    curves_ui(ui, state.stat, scrubber, run, heads, scrub_step);
    ui.separator();
    let at = run
        .head_stats
        .iter()
        .rev()
        .find(|(step, _)| *step <= scrub_step)
        .or(run.head_stats.first());
    if let Some((step, stats)) = at {
        ui.label(
            RichText::new(format!(
                "Every head at step {step} (the attention scrubber's step): click a column to sort"
            ))
            .strong(),
        );
        head_table_ui(
            ui,
            "head-table",
            &mut state.sort,
            &defined,
            stats,
            heads,
            None,
        );
    }
    ui.separator();
    receptive_field_ui(ui, cache, &mut state.fields, scrubber, run);
}

/// One line per head of `stat` over the steps, jump markers, and the scrubber's step.
fn curves_ui(
    ui: &mut Ui,
    stat: Stat,
    scrubber: &mut AttentionViewState,
    run: &RunView,
    heads: usize,
    scrub_step: usize,
) {
    let series = head_series(run, stat);
    let (lo, hi) = series
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let threshold = if stat.is_fraction() {
        0.15
    } else {
        0.25 * (hi - lo).max(1e-9)
    };
    let markers = jump_markers(&series, threshold);
    let mut clicked_at = None;
    let response = Plot::new(("head-stats", run.id))
        .height(240.0)
        .legend(Legend::default())
        .x_axis_label("step")
        .y_axis_label(stat.name())
        .include_y(if stat.is_fraction() { 1.0 } else { hi.max(0.0) })
        .include_y(0.0)
        .allow_scroll(false)
        .show(ui, |plot| {
            head_lines(plot, &series, heads);
            for (i, at) in &markers {
                plot.points(
                    Points::new("jumps", vec![*at])
                        .radius(5.0)
                        .color(run_color(*i))
                        .filled(false),
                );
            }
            plot.vline(VLine::new("scrubber", scrub_step as f64).color(Color32::from_gray(160)));
            clicked_at = clicked_step(plot, &markers);
        });
    response.response.on_hover_text(
        "Circles: where a head's score jumps. Click one (or anywhere) to move the attention scrubber to that step.",
    );
    if let Some(step) = clicked_at {
        scrubber.snapshot = run.snapshot_at(step).or(Some(0));
    }
}

/// Each head's (step, value) of `stat` over the run's snapshots, layer-major.
fn head_series(run: &RunView, stat: Stat) -> Vec<Vec<(usize, f64)>> {
    let count = run.head_stats.first().map_or(0, |(_, s)| s.len());
    (0..count)
        .map(|i| {
            run.head_stats
                .iter()
                .filter_map(|(step, s)| s.get(i).and_then(|h| stat.of(h)).map(|v| (*step, v)))
                .collect()
        })
        .collect()
}

/// Where each head's score jumps by at least `threshold` (at most
/// [`JUMPS_PER_HEAD`] per head): the head's index and the point.
fn jump_markers(series: &[Vec<(usize, f64)>], threshold: f64) -> Vec<(usize, [f64; 2])> {
    series
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            jumps(s, threshold, JUMPS_PER_HEAD)
                .into_iter()
                .filter_map(move |(step, _)| {
                    s.iter()
                        .find(|(st, _)| *st == step)
                        .map(|(st, v)| (i, [*st as f64, *v]))
                })
        })
        .collect()
}

/// One line per head (`heads` per layer), named by layer and head.
fn head_lines(plot: &mut PlotUi<'_>, series: &[Vec<(usize, f64)>], heads: usize) {
    for (i, s) in series.iter().enumerate() {
        let points: Vec<[f64; 2]> = s.iter().map(|(st, v)| [*st as f64, *v]).collect();
        let name = format!("L{} H{}", i / heads + 1, i % heads + 1);
        plot.line(
            Line::new(name, PlotPoints::from(points))
                .color(run_color(i))
                .width(1.5),
        );
    }
}

/// The step a click on the chart asks for, if it was clicked: a marker within
/// 10 px wins; else the step under the pointer.
fn clicked_step(plot: &PlotUi<'_>, markers: &[(usize, [f64; 2])]) -> Option<usize> {
    if plot.response().clicked()
        && let Some(pointer) = plot.pointer_coordinate()
    {
        let screen = plot.screen_from_plot(pointer);
        let near = markers
            .iter()
            .map(|(_, at)| (at[0], plot.screen_from_plot((*at).into()).distance(screen)))
            .filter(|(_, d)| *d <= 10.0)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(step, _)| step);
        return Some(near.unwrap_or(pointer.x).max(0.0) as usize);
    }
    None
}

/// Every head's statistics (`stats`, layer-major, `heads` per layer) in the columns
/// `defined`, sortable by any column (`sort`: descending; `None`: layer and head
/// order), cells coloured. `hover` adds a cell's hover text (head index, column).
pub(super) fn head_table_ui(
    ui: &mut Ui,
    id: &str,
    sort: &mut Option<Stat>,
    defined: &[Stat],
    stats: &[HeadStats],
    heads: usize,
    hover: Option<&dyn Fn(usize, Stat, f64) -> Option<String>>,
) {
    let mut order: Vec<usize> = (0..stats.len()).collect();
    if let Some(sort) = *sort {
        order.sort_by(|&a, &b| {
            let v = |i: usize| sort.of(&stats[i]).unwrap_or(f64::NEG_INFINITY);
            v(b).total_cmp(&v(a))
        });
    }
    let column_max: Vec<f64> = defined
        .iter()
        .map(|s| stats.iter().filter_map(|h| s.of(h)).fold(1e-12, f64::max))
        .collect();
    egui::ScrollArea::horizontal().id_salt(id).show(ui, |ui| {
        egui::Grid::new((id, "grid"))
            .striped(true)
            .spacing([10.0, 3.0])
            .show(ui, |ui| {
                if ui.selectable_label(sort.is_none(), "head").clicked() {
                    *sort = None;
                }
                for stat in defined {
                    let sorted = *sort == Some(*stat);
                    let label = if sorted {
                        format!("{} (sorted)", stat.name())
                    } else {
                        stat.name().to_string()
                    };
                    if ui
                        .selectable_label(sorted, label)
                        .on_hover_text(stat.help())
                        .clicked()
                    {
                        *sort = Some(*stat);
                    }
                }
                ui.end_row();
                for &i in order.iter().take(256) {
                    ui.label(format!("L{} H{}", i / heads + 1, i % heads + 1));
                    for (c, stat) in defined.iter().enumerate() {
                        let Some(v) = stat.of(&stats[i]) else {
                            ui.label("-");
                            continue;
                        };
                        let t = if stat.is_fraction() {
                            v
                        } else {
                            v / column_max[c]
                        };
                        let cell = ui
                            .scope(|ui| value_cell(ui, t, format!("{v:.3}"), 2.0))
                            .response;
                        if let Some(text) = hover.and_then(|hover| hover(i, *stat, v)) {
                            cell.on_hover_text(text);
                        }
                    }
                    ui.end_row();
                }
            });
    });
}
