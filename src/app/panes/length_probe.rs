//! The Length pane's "Probe at a longer length": pick a run with a record and a saved
//! model, choose a length (one it was evaluated at, or any), press Probe, and the
//! probe example generated at that length runs through the last checkpoint on a
//! helper thread (`view_model::length_probe`). Then every layer's and head's
//! attention is drawn (the training length marked on each map) with each head's
//! statistics beside the same head at the training length, so it shows what a head
//! does beyond the lengths it saw.

use std::path::Path;

use egui::{Color32, RichText, Stroke, Ui};

use super::heads::head_table_ui;
use crate::app::heatmap::{
    TextureCache, attention_image, attention_legend_ui, cell_marks, cell_positions, map_ui,
};
use crate::app::view_model::intervention_jobs::Wake;
use crate::app::view_model::length_probe::{LengthProbeView, ProbedLength};
use crate::app::view_model::lengths::{default_probe_length, max_probe_length, probe_lengths};
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::ERROR_COLOR;
use crate::attention::Stat;
use crate::config::ModelKind;
use crate::trainer::RunId;

/// The section over `runs`; the probe starts from `selected` when it has a record.
pub fn length_probe_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    view: &mut LengthProbeView,
    runs: &[(usize, &RunView)],
    selected: Option<RunId>,
    wake: &Wake,
) {
    view.poll();
    ui.label(RichText::new("Probe at a longer length").strong());
    let candidates: Vec<&RunView> = runs
        .iter()
        .map(|(_, r)| *r)
        .filter(|r| r.record_dir.is_some() && r.settings.model.kind == ModelKind::Transformer)
        .collect();
    let pick = |id: Option<RunId>| id.and_then(|id| candidates.iter().find(|r| r.id == id));
    let Some(run) = pick(view.run)
        .or_else(|| pick(selected))
        .or(candidates.last())
        .copied()
    else {
        ui.label("Needs a transformer run with a record folder and a saved model (train.checkpoint_every): open a past run, or train one.");
        return;
    };
    let Some(record) = run.record_dir.clone() else {
        return;
    };
    // The length chosen for this run (one chosen for another run does not carry over).
    let mut seq_len = view
        .seq_len
        .filter(|(id, _)| *id == run.id)
        .map_or_else(|| default_probe_length(run), |(_, n)| n);
    let beyond_positions = run
        .settings
        .positions_end()
        .is_some_and(|end| seq_len > end);
    let probe = ui
        .horizontal_wrapped(|ui| {
            probe_choice_ui(ui, view, &candidates, run, &mut seq_len);
            let probe = Probe {
                run,
                record: &record,
                seq_len,
                beyond_positions,
            };
            probe_button_ui(ui, view, &probe, wake);
            probe
        })
        .inner;
    probe_outcome_ui(ui, cache, view, &probe);
}

/// The probe chosen this frame: the run, its record folder, the length, and whether
/// that length lies beyond the positions the model has.
struct Probe<'a> {
    run: &'a RunView,
    record: &'a Path,
    seq_len: usize,
    beyond_positions: bool,
}

/// The run and length pickers (a length evaluated at, or any up to the longest a
/// probe may read back); a choice is kept in `view`.
fn probe_choice_ui(
    ui: &mut Ui,
    view: &mut LengthProbeView,
    candidates: &[&RunView],
    run: &RunView,
    seq_len: &mut usize,
) {
    let trained = run.settings.task.seq_len;
    let longest = max_probe_length(run);
    let before = *seq_len;
    let l = ui.label("run");
    let mut chosen = run.id;
    egui::ComboBox::from_id_salt("length-probe-run")
        .selected_text(run.label())
        .show_ui(ui, |ui| {
            for r in candidates {
                ui.selectable_value(&mut chosen, r.id, r.label());
            }
        })
        .response
        .labelled_by(l.id);
    if chosen != run.id {
        view.run = Some(chosen);
        view.seq_len = None;
    }
    let l = ui.label("probe length");
    egui::ComboBox::from_id_salt("length-probe-length")
        .selected_text(seq_len.to_string())
        .show_ui(ui, |ui| {
            for n in probe_lengths(run).into_iter().filter(|&n| n <= longest) {
                let text = if n == trained {
                    format!("{n} (trained)")
                } else {
                    n.to_string()
                };
                ui.selectable_value(seq_len, n, text);
            }
        })
        .response
        .labelled_by(l.id);
    ui.add(egui::DragValue::new(seq_len).range(1..=longest))
        .on_hover_text(format!(
            "Any length up to {longest}: the probe example is generated at it (every head's full attention is read back: longer would need more than 1 GiB)"
        ));
    if *seq_len != before && chosen == run.id {
        view.seq_len = Some((run.id, *seq_len));
    }
}

/// The Probe button (disabled while probing or beyond the model's positions), and
/// while probing a spinner, what it does and Cancel.
fn probe_button_ui(ui: &mut Ui, view: &mut LengthProbeView, probe: &Probe<'_>, wake: &Wake) {
    let Probe {
        run,
        record,
        seq_len,
        beyond_positions,
    } = *probe;
    let running = view.progress().map(|(n, what)| (n, what.to_string()));
    if ui
        .add_enabled(
            running.is_none() && !beyond_positions,
            egui::Button::new("Probe"),
        )
        .on_hover_text(format!(
            "Run the last saved model of {} on the probe example at length {seq_len} (on a helper thread)",
            run.label()
        ))
        .on_disabled_hover_text(if beyond_positions {
            "This model has no positions at this length"
        } else {
            "Probing: wait, or cancel it"
        })
        .clicked()
    {
        view.start(record, &run.settings, seq_len, wake);
    }
    if let Some((n, what)) = running {
        ui.spinner();
        ui.label(format!("length {n}: {what}"));
        if ui.button("Cancel").clicked() {
            view.cancel();
        }
    }
}

/// What became of the probe: why it is refused, its error, its result, or that it
/// has not run yet.
fn probe_outcome_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    view: &mut LengthProbeView,
    probe: &Probe<'_>,
) {
    let Probe {
        run,
        record,
        seq_len,
        beyond_positions,
    } = *probe;
    let trained = run.settings.task.seq_len;
    if beyond_positions {
        ui.label(
            RichText::new(format!(
                "This model learned its positions (model.positions = \"learned\") for {trained} only: beyond that it is refused."
            ))
            .small()
            .weak(),
        );
    }
    if let Some(e) = view.error(record, seq_len) {
        ui.label(RichText::new(e).color(ERROR_COLOR));
    }
    match view.result(record, seq_len) {
        Some(probed) => probed_ui(ui, cache, &mut view.sort, run, &probed),
        None if !beyond_positions
            && view.progress().is_none()
            && view.error(record, seq_len).is_none() =>
        {
            ui.label(format!(
                "Not probed at {seq_len} yet (trained at {trained}): press Probe."
            ));
        }
        None => {}
    }
}

/// The grid of maps and the head table (sorted by `sort`) of one probe.
fn probed_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    sort: &mut Option<Stat>,
    run: &RunView,
    probed: &ProbedLength,
) {
    ui.label(RichText::new(probed.caption()).strong());
    attention_legend_ui(ui);
    ui.label(
        RichText::new(
            "Red marks: where each answer must be read from. White lines: the training length (queries below and keys right of them lie beyond the positions the model saw).",
        )
        .small()
        .weak(),
    );
    let snap = &probed.snapshot;
    let marks = cell_marks(&probed.probe.dependencies, snap.seq_len, snap.n);
    let side = ((ui.available_width() - 70.0) / snap.heads.max(1) as f32 - 8.0).clamp(48.0, 240.0);
    egui::ScrollArea::horizontal()
        .id_salt("length-probe-grid")
        .show(ui, |ui| {
            egui::Grid::new("length-probe-grid")
                .spacing([6.0, 6.0])
                .show(ui, |ui| {
                    ui.label(RichText::new("rows: query, columns: key").small().weak());
                    for h in 0..snap.heads {
                        ui.label(format!("head {}", h + 1));
                    }
                    ui.end_row();
                    for layer in 0..snap.layers {
                        ui.label(format!("layer {}", layer + 1));
                        for head in 0..snap.heads {
                            probed_map_ui(ui, cache, probed, [layer, head], side, &marks);
                        }
                        ui.end_row();
                    }
                });
        });
    ui.add_space(6.0);
    probed_heads_ui(ui, sort, run, probed);
}

/// One head's map of the probe, `side` points wide with the answers' `marks`, the
/// training length drawn as white lines; hovering tells the cell's positions and
/// weight.
fn probed_map_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    probed: &ProbedLength,
    [layer, head]: [usize; 2],
    side: f32,
    marks: &[(usize, usize)],
) {
    let snap = &probed.snapshot;
    let n = snap.n;
    let map = snap.map(layer, head);
    if map.len() != n * n || n == 0 {
        ui.label("-");
        return;
    }
    // Where the training length falls on a map, as a fraction of its side.
    let edge = (probed.trained_at as f32 / snap.seq_len.max(1) as f32).min(1.0);
    let key = format!(
        "length-probe/{}/{}/{}/{layer}/{head}",
        probed.record.display(),
        probed.seq_len,
        probed.step
    );
    let texture = cache.get(ui, &key, || attention_image(map, n));
    let shown = map_ui(ui, &texture, None, n, side, marks);
    let rect = shown.response.rect;
    if edge < 1.0 {
        let stroke = Stroke::new(1.0, Color32::from_white_alpha(170));
        let x = rect.min.x + rect.width() * edge;
        let y = rect.min.y + rect.height() * edge;
        let painter = ui.painter_at(rect);
        painter.vline(x, rect.y_range(), stroke);
        painter.hline(rect.x_range(), y, stroke);
    }
    if let Some((q, k)) = shown.hovered {
        let (q0, q1) = cell_positions(q, snap.seq_len, n);
        let (k0, k1) = cell_positions(k, snap.seq_len, n);
        let cells = if q0 == q1 && k0 == k1 {
            format!("query {q0} -> key {k0}")
        } else {
            format!("queries {q0}..={q1} -> keys {k0}..={k1} (mean)")
        };
        shown.response.on_hover_text(format!(
            "layer {} head {}\n{cells}\nweight {:.4}",
            layer + 1,
            head + 1,
            map[q * n + k]
        ));
    }
}

/// Every head's statistics on the probe (sorted by `sort`), each hovering the same
/// head's at the training length where `run` has them.
fn probed_heads_ui(ui: &mut Ui, sort: &mut Option<Stat>, run: &RunView, probed: &ProbedLength) {
    let at_training = run
        .head_stats
        .last()
        .filter(|(_, s)| s.len() == probed.stats.len());
    ui.label(
        RichText::new(match at_training {
            Some((step, _)) => format!(
                "Every head on the probe at {}: hover a cell for the same head at {} (the snapshot of step {step})",
                probed.seq_len, probed.trained_at
            ),
            None => format!("Every head on the probe at {}", probed.seq_len),
        })
        .strong(),
    );
    let defined: Vec<Stat> = Stat::ALL
        .into_iter()
        .filter(|s| probed.stats.iter().any(|h| s.of(h).is_some()))
        .collect();
    let trained_at = probed.trained_at;
    let before = |i: usize, stat: Stat, v: f64| {
        let before = at_training?.1.get(i).and_then(|t| stat.of(t))?;
        Some(format!(
            "{}: {v:.3} here, {before:.3} at the training length {trained_at}",
            stat.name()
        ))
    };
    head_table_ui(
        ui,
        "length-probe-table",
        sort,
        &defined,
        &probed.stats,
        probed.snapshot.heads.max(1),
        Some(&before),
    );
}
