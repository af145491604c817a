//! The Compare pane: runs side by side, the same layer and head at the same step (one
//! slider drives all), the difference of two maps (`difference`), their curves
//! overlaid, and a table of only what differs.

use std::collections::BTreeSet;

use egui::{DragValue, RichText, Slider, Ui};

use super::attention::{AttentionCell, Overlays};
use super::curves::{CurveOptions, curves_ui};
use super::difference::{DiffMode, difference_ui};
use crate::app::heatmap::TextureCache;
use crate::app::view_model::compare::{differing_fields, group_text};
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::{duration_text, run_color};
use crate::config::Settings;
use crate::trainer::RunId;

/// What the compare view shows.
#[derive(Clone, Debug, Default)]
pub struct CompareState {
    /// The runs compared; empty compares every run.
    pub selected: BTreeSet<RunId>,
    /// The step every map is shown at (the last snapshot at or before it).
    pub step: Option<usize>,
    /// Layer shown.
    pub layer: usize,
    /// Head shown.
    pub head: usize,
    /// The difference map drawn under the maps.
    pub difference: DiffMode,
    /// The other step of a difference over steps.
    pub other_step: usize,
}

/// The compare view over every known run (`(colour index, run)`).
pub fn compare_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    state: &mut CompareState,
    runs: &[(usize, &RunView)],
    curves: CurveOptions,
    overlays: Overlays,
) {
    if runs.is_empty() {
        ui.label("Nothing to compare yet: run an experiment or open past runs.");
        return;
    }
    run_picker_ui(ui, &mut state.selected, runs);
    let chosen: Vec<(usize, &RunView)> = runs
        .iter()
        .filter(|(_, r)| state.selected.is_empty() || state.selected.contains(&r.id))
        .copied()
        .collect();
    if chosen.is_empty() {
        ui.label("Tick at least one run.");
        return;
    }
    let step = position_ui(ui, state, &chosen);

    crate::app::heatmap::attention_legend_ui(ui);
    let side = ((ui.available_width() - 16.0) / chosen.len() as f32 - 12.0).clamp(96.0, 300.0);
    egui::ScrollArea::horizontal()
        .id_salt("compare-maps")
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                for &(color, run) in &chosen {
                    ui.vertical(|ui| {
                        ui.set_width(side);
                        run_column_ui(ui, cache, state, (color, run), step, side, overlays);
                    });
                }
            });
        });

    let views: Vec<&RunView> = chosen.iter().map(|(_, r)| *r).collect();
    difference_ui(
        ui,
        cache,
        &mut state.difference,
        &mut state.other_step,
        &views,
        step,
        state.layer,
        state.head,
    );
    ui.separator();
    differences_ui(ui, &chosen);
    ui.separator();
    curves_ui(ui, &chosen, curves, "compare");
}

/// A checkbox per run; ticking one out of "every run" (an empty `selected`) keeps the
/// others.
fn run_picker_ui(ui: &mut Ui, selected: &mut BTreeSet<RunId>, runs: &[(usize, &RunView)]) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Compare:");
        for &(_, run) in runs {
            let mut on = selected.is_empty() || selected.contains(&run.id);
            if ui.checkbox(&mut on, run.label().into_owned()).changed() {
                if selected.is_empty() {
                    *selected = runs.iter().map(|(_, r)| r.id).collect();
                }
                if on {
                    selected.insert(run.id);
                } else {
                    selected.remove(&run.id);
                }
            }
        }
    });
}

/// The latest step, most layers and most heads over the `chosen` runs' snapshots.
fn snapshot_bounds(chosen: &[(usize, &RunView)]) -> (usize, usize, usize) {
    let max_step = chosen
        .iter()
        .filter_map(|(_, r)| r.snapshots.last().map(|s| s.step))
        .max()
        .unwrap_or(0);
    let max_layers = chosen
        .iter()
        .filter_map(|(_, r)| r.snapshots.first().map(|s| s.layers))
        .max()
        .unwrap_or(1);
    let max_heads = chosen
        .iter()
        .filter_map(|(_, r)| r.snapshots.first().map(|s| s.heads))
        .max()
        .unwrap_or(1);
    (max_step, max_layers, max_heads)
}

/// The step slider (with "latest") and the layer and head every map shows; the step
/// the maps are drawn at.
fn position_ui(ui: &mut Ui, state: &mut CompareState, chosen: &[(usize, &RunView)]) -> usize {
    let (max_step, max_layers, max_heads) = snapshot_bounds(chosen);
    ui.horizontal(|ui| {
        let mut step = state.step.unwrap_or(max_step).min(max_step);
        let l = ui.label("step");
        if ui
            .add(Slider::new(&mut step, 0..=max_step.max(1)))
            .labelled_by(l.id)
            .changed()
        {
            state.step = Some(step);
        }
        if ui.button("latest").clicked() {
            state.step = None;
        }
        let mut layer = state.layer + 1;
        let l = ui.label("layer");
        ui.add(DragValue::new(&mut layer).range(1..=max_layers))
            .labelled_by(l.id);
        state.layer = layer.saturating_sub(1);
        let mut head = state.head + 1;
        let l = ui.label("head");
        ui.add(DragValue::new(&mut head).range(1..=max_heads))
            .labelled_by(l.id);
        state.head = head.saturating_sub(1);
    });
    state.step.unwrap_or(max_step)
}

/// One run's column: its name in its colour, attention kind and accuracy at `step`,
/// and its map of the chosen layer and head at the last snapshot by then.
fn run_column_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    state: &CompareState,
    (color, run): (usize, &RunView),
    step: usize,
    side: f32,
    overlays: Overlays,
) {
    ui.label(RichText::new(run.label()).strong().color(run_color(color)));
    let acc = run.eval.iter().rev().find(|m| m.step <= step);
    ui.label(
        RichText::new(format!(
            "{}  acc {}",
            run.settings.model.attention_label(),
            acc.map_or("-".into(), |m| format!("{:.3}", m.accuracy))
        ))
        .small(),
    );
    match run.snapshot_at(step).map(|i| &run.snapshots[i]) {
        Some(snapshot) if state.layer < snapshot.layers && state.head < snapshot.heads => {
            ui.label(RichText::new(format!("snapshot at step {}", snapshot.step)).small());
            AttentionCell {
                run,
                snapshot,
                layer: state.layer,
                head: state.head,
            }
            .ui(ui, cache, side, overlays);
        }
        Some(_) => {
            ui.label("(no such layer/head)");
        }
        None if run.masks().is_empty() => {
            ui.label("(LSTM: no attention)");
        }
        None => {
            ui.label("(no snapshot yet)");
        }
    }
}

fn differences_ui(ui: &mut Ui, runs: &[(usize, &RunView)]) {
    let settings: Vec<&Settings> = runs.iter().map(|(_, r)| &r.settings).collect();
    let diffs = differing_fields(&settings);
    egui::ScrollArea::horizontal()
        .id_salt("compare-table")
        .show(ui, |ui| {
            egui::Grid::new("compare-grid")
                .striped(true)
                .spacing([16.0, 4.0])
                .show(ui, |ui| {
                    ui.label(RichText::new("").strong());
                    for &(color, run) in runs {
                        ui.label(RichText::new(run.label()).strong().color(run_color(color)));
                    }
                    ui.end_row();
                    if diffs.is_empty() && runs.len() > 1 {
                        ui.label("(same configuration)");
                        ui.end_row();
                    }
                    for (field, values) in &diffs {
                        ui.label(field);
                        for v in values {
                            ui.label(RichText::new(v).monospace());
                        }
                        ui.end_row();
                    }
                    let row = |ui: &mut Ui, name: &str, f: &dyn Fn(&RunView) -> String| {
                        ui.label(RichText::new(name).strong());
                        for (_, run) in runs {
                            ui.label(f(run));
                        }
                        ui.end_row();
                    };
                    row(ui, "status", &|r| r.status.name().to_string());
                    row(ui, "final accuracy", &|r| {
                        r.final_accuracy().map_or("-".into(), |a| format!("{a:.3}"))
                    });
                    row(ui, "steps/s", &|r| {
                        r.steps_per_sec().map_or("-".into(), |s| format!("{s:.2}"))
                    });
                    // The next-token tasks' measure: held-out loss in bits per
                    // character (text) or state (markov).
                    let mut units: Vec<&str> = runs
                        .iter()
                        .filter_map(|(_, r)| r.settings.task.kind.bits_unit())
                        .collect();
                    units.sort_unstable();
                    units.dedup();
                    if !units.is_empty() {
                        row(ui, &units.join(", "), &|r| {
                            r.summary
                                .as_ref()
                                .and_then(|s| s.final_loss)
                                .or_else(|| r.eval.last().map(|m| m.loss))
                                .filter(|_| r.settings.task.kind.bits_unit().is_some())
                                .map_or("-".into(), |l| {
                                    format!("{:.3}", l / std::f64::consts::LN_2)
                                })
                        });
                    }
                    row(ui, "peak memory", &|r| {
                        r.summary
                            .as_ref()
                            .and_then(|s| s.peak_memory_bytes)
                            .map_or("-".into(), |b| {
                                format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
                            })
                    });
                    row(ui, "time", &|r| {
                        r.train
                            .last()
                            .map_or("-".into(), |m| duration_text(m.elapsed_secs))
                    });
                    // Each run's seed group among all the runs shown: mean +- sd of
                    // final accuracy and how many solved.
                    row(ui, "its seeds", &|r| group_text(runs, r));
                });
        });
}
