//! Compare runs side by side: the same layer and head at the same step (one slider
//! drives all), their curves overlaid, and a table of only what differs.

use std::collections::{BTreeMap, BTreeSet};

use egui::{DragValue, RichText, Slider, Ui};
use toml::Value;

use super::attention_view::{AttentionCell, Overlays};
use super::difference_view::{DiffMode, difference_ui};
use super::heatmap::TextureCache;
use super::loss_plot::{CurveOptions, curves_ui};
use super::run_views::{RunView, group_members};
use super::widgets::{duration_text, run_color};
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

/// Settings flattened to `section.field = value`, for the differences table.
pub fn flatten(settings: &Settings) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(Value::Table(sections)) = Value::try_from(settings) {
        for (section, fields) in sections {
            if let Value::Table(fields) = fields {
                for (k, v) in fields {
                    out.insert(format!("{section}.{k}"), v.to_string());
                }
            }
        }
    }
    out
}

/// The fields whose value is not the same in every run, with each run's value.
pub fn differing_fields(settings: &[&Settings]) -> Vec<(String, Vec<String>)> {
    let flat: Vec<_> = settings.iter().map(|s| flatten(s)).collect();
    let keys: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let values: Vec<String> = flat
                .iter()
                .map(|f| f.get(k).cloned().unwrap_or_else(|| "-".into()))
                .collect();
            (values.iter().any(|v| *v != values[0])).then(|| (k.clone(), values))
        })
        .collect()
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
    ui.horizontal_wrapped(|ui| {
        ui.label("Compare:");
        for &(_, run) in runs {
            let mut on = state.selected.is_empty() || state.selected.contains(&run.id);
            if ui.checkbox(&mut on, &run.name).changed() {
                if state.selected.is_empty() {
                    state.selected = runs.iter().map(|(_, r)| r.id).collect();
                }
                if on {
                    state.selected.insert(run.id);
                } else {
                    state.selected.remove(&run.id);
                }
            }
        }
    });
    let chosen: Vec<(usize, &RunView)> = runs
        .iter()
        .filter(|(_, r)| state.selected.is_empty() || state.selected.contains(&r.id))
        .copied()
        .collect();
    if chosen.is_empty() {
        ui.label("Tick at least one run.");
        return;
    }

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
    let step = state.step.unwrap_or(max_step);

    super::heatmap::attention_legend_ui(ui);
    let side = ((ui.available_width() - 16.0) / chosen.len() as f32 - 12.0).clamp(96.0, 300.0);
    egui::ScrollArea::horizontal()
        .id_salt("compare-maps")
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                for &(color, run) in &chosen {
                    ui.vertical(|ui| {
                        ui.set_width(side);
                        ui.label(RichText::new(&run.name).strong().color(run_color(color)));
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
                            Some(snapshot)
                                if state.layer < snapshot.layers && state.head < snapshot.heads =>
                            {
                                ui.label(
                                    RichText::new(format!("snapshot at step {}", snapshot.step))
                                        .small(),
                                );
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
                        ui.label(RichText::new(&run.name).strong().color(run_color(color)));
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
                    if runs
                        .iter()
                        .any(|(_, r)| r.settings.task.kind == crate::tasks::TaskKind::Text)
                    {
                        row(ui, "bits/char", &|r| {
                            r.summary
                                .as_ref()
                                .and_then(|s| s.final_loss)
                                .or_else(|| r.eval.last().map(|m| m.loss))
                                .filter(|_| r.settings.task.kind == crate::tasks::TaskKind::Text)
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

/// `0.998 ± 0.002 (3 seeds, 3 solved)` for the group of `run` among `runs`; empty for
/// a run without replicates.
fn group_text(runs: &[(usize, &RunView)], run: &RunView) -> String {
    let members = group_members(runs, &run.group);
    if members.len() < 2 {
        return String::new();
    }
    let accuracies: Vec<f64> = members.iter().filter_map(|r| r.final_accuracy()).collect();
    let solved = members
        .iter()
        .filter(|r| {
            r.final_accuracy()
                .is_some_and(|a| a >= r.settings.train.solved_at)
        })
        .count();
    match crate::records::mean_sd(&accuracies) {
        Some((mean, sd)) => format!(
            "{mean:.3} ± {sd:.3} ({} seeds, {solved} solved)",
            members.len()
        ),
        None => format!("{} seeds", members.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AttentionPattern;

    #[test]
    fn only_differing_fields_are_listed() {
        let a = Settings::default();
        let mut b = a.clone();
        b.model.attention = AttentionPattern::Local { window: 8 };
        b.train.seed = 2;
        let diffs = differing_fields(&[&a, &b]);
        let keys: Vec<&str> = diffs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["model.attention", "train.seed"]);
        assert_eq!(diffs[1].1, ["1", "2"]);
        assert!(differing_fields(&[&a, &a]).is_empty());
    }
}
