//! The Attention pane: a layers x heads grid of heatmaps for one run, a step slider
//! through every recorded snapshot, the pattern's mask as an overlay and the task's
//! dependencies marked, and "Fork from here" at the slider's step.

use egui::{RichText, Slider, Ui};

use crate::app::commands::UiCommand;
use crate::app::heatmap::{
    MapResponse, TextureCache, attention_image, cell_marks, cell_positions, map_ui,
    mask_overlay_image,
};
use crate::app::view_model::run_views::RunView;
use crate::attention::Mask;
use crate::records::AttentionSnapshot;

/// Which snapshot the view shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttentionViewState {
    /// The snapshot index; `None` follows the newest one.
    pub snapshot: Option<usize>,
    /// The query cell picked by clicking a map (its receptive field is drawn in the
    /// Heads pane).
    pub query: Option<usize>,
}

/// Overlay options (persisted).
#[derive(Clone, Copy, Debug)]
pub struct Overlays {
    /// Shade the pairs the pattern hides.
    pub mask: bool,
    /// Outline the cells where the answer comes from.
    pub dependencies: bool,
}

/// The whole view for `run`; `fork` says whether it can be forked (else why not).
/// Returns whether "Fork from here..." was clicked.
pub fn attention_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    state: &mut AttentionViewState,
    run: &RunView,
    overlays: &mut Overlays,
    fork: Result<(), String>,
) -> bool {
    ui.horizontal(|ui| {
        ui.label(RichText::new(run.label()).strong());
        ui.label(run.settings.model.attention_label());
    });
    if run.snapshots.is_empty() {
        ui.label(if run.masks().is_empty() {
            "This model has no attention (LSTM)."
        } else {
            "No attention snapshot yet: the first arrives when training starts."
        });
        return false;
    }
    let last = run.snapshots.len() - 1;
    let fork_asked = ui
        .horizontal(|ui| controls_ui(ui, state, run, overlays, &fork))
        .inner;
    let index = state.snapshot.unwrap_or(last).min(last);
    let snapshot = &run.snapshots[index];
    if let Some(acc) = run.eval.iter().rev().find(|m| m.step <= snapshot.step) {
        ui.label(
            RichText::new(format!(
                "eval accuracy at step {}: {:.3}. Red marks: where each answer must be read from (outlined, or a tick to its left on small cells).",
                acc.step, acc.accuracy
            ))
            .small(),
        );
    }
    ui.horizontal(|ui| {
        crate::app::heatmap::attention_legend_ui(ui);
        ui.label(
            RichText::new(match state.query {
                Some(q) => format!("· query {q} picked: its receptive field is in the Heads pane"),
                None => "· click a map to pick a query for the receptive field (Heads pane)".into(),
            })
            .small()
            .weak(),
        );
    });
    let side = ((ui.available_width() - 70.0) / snapshot.heads as f32 - 8.0).clamp(48.0, 280.0);
    egui::ScrollArea::both()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            maps_ui(ui, cache, state, run, snapshot, *overlays, side)
        });
    fork_asked
}

/// The row above the maps: follow the latest snapshot or pick one on the slider,
/// the overlays, and "Fork from here..." (disabled with `fork`'s reason). Returns
/// whether Fork was clicked.
fn controls_ui(
    ui: &mut Ui,
    state: &mut AttentionViewState,
    run: &RunView,
    overlays: &mut Overlays,
    fork: &Result<(), String>,
) -> bool {
    let last = run.snapshots.len() - 1;
    let mut follow = state.snapshot.is_none();
    if ui.checkbox(&mut follow, "follow latest").changed() {
        state.snapshot = if follow { None } else { Some(last) };
    }
    let mut index = state.snapshot.unwrap_or(last).min(last);
    let step = run.snapshots[index].step;
    let l = ui.label("snapshot");
    if ui
        .add(Slider::new(&mut index, 0..=last).show_value(false))
        .labelled_by(l.id)
        .changed()
    {
        state.snapshot = Some(index);
    }
    ui.label(format!("step {step} ({} of {})", index + 1, last + 1));
    ui.checkbox(&mut overlays.mask, "show mask");
    ui.checkbox(&mut overlays.dependencies, "mark dependencies");
    let why = fork
        .as_ref()
        .err()
        .map_or(String::new(), |w| format!("Cannot fork: {w}."));
    ui.add_enabled(fork.is_ok(), egui::Button::new(UiCommand::Fork.label()))
        .on_hover_text(UiCommand::Fork.hover_text())
        .on_disabled_hover_text(why)
        .clicked()
}

/// The layers x heads grid of `snapshot`'s maps (`side` wide), headed by head and
/// layer numbers; clicking a map picks its query for the receptive field.
fn maps_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    state: &mut AttentionViewState,
    run: &RunView,
    snapshot: &AttentionSnapshot,
    overlays: Overlays,
    side: f32,
) {
    let heads = snapshot.heads;
    egui::Grid::new(("attention-grid", run.id))
        .spacing([6.0, 6.0])
        .show(ui, |ui| {
            ui.label(RichText::new("rows: query, columns: key").small().weak());
            for h in 0..heads {
                ui.label(format!("head {}", h + 1));
            }
            ui.end_row();
            for layer in 0..snapshot.layers {
                ui.label(format!("layer {}", layer + 1));
                for head in 0..heads {
                    let cell = AttentionCell {
                        run,
                        snapshot,
                        layer,
                        head,
                    };
                    if let Some((q, _)) = cell.ui(ui, cache, side, overlays).clicked {
                        state.query = Some(q);
                    }
                }
                ui.end_row();
            }
        });
}

/// One heatmap of the grid (also used by the compare view).
pub struct AttentionCell<'a> {
    /// The run.
    pub run: &'a RunView,
    /// The snapshot shown.
    pub snapshot: &'a AttentionSnapshot,
    /// Layer index.
    pub layer: usize,
    /// Head index.
    pub head: usize,
}

impl AttentionCell<'_> {
    /// Draws the map with overlays and the hover tooltip.
    pub fn ui(
        &self,
        ui: &mut Ui,
        cache: &mut TextureCache,
        side: f32,
        overlays: Overlays,
    ) -> MapResponse {
        let (run, snap) = (self.run, self.snapshot);
        let n = snap.n;
        let map = snap.map(self.layer, self.head);
        let key = format!("attn/{}/{}/{}/{}", run.id, snap.step, self.layer, self.head);
        let texture = cache.get(ui, &key, || attention_image(map, n));
        let overlay = match run.masks().get(self.layer) {
            Some(mask) if overlays.mask => {
                let key = format!("overlay/{}/{}/{n}", run.id, self.layer);
                Some(cache.get(ui, &key, || mask_overlay_image(&fit_mask(mask, n))))
            }
            _ => None,
        };
        let marks = match (&run.probe, overlays.dependencies) {
            (Some(probe), true) => cell_marks(&probe.dependencies, snap.seq_len, n),
            _ => Vec::new(),
        };
        let shown = map_ui(ui, &texture, overlay.as_ref(), n, side, &marks);
        if let Some((q, k)) = shown.hovered {
            let weight = map[q * n + k];
            let token = |pos: usize| {
                run.probe
                    .as_ref()
                    .and_then(|p| p.tokens.get(pos))
                    .map_or("?".to_string(), |t| run.settings.task.token_label(*t))
            };
            let text = if n == snap.seq_len {
                let dependency = run
                    .probe
                    .as_ref()
                    .and_then(|p| p.dependencies.iter().find(|d| d.0 == q))
                    .map_or(String::new(), |d| {
                        format!("\nanswer of query {q} is at key {}", d.1)
                    });
                format!(
                    "layer {} head {}\nquery {q} (token {}) -> key {k} (token {})\nweight {weight:.4}{dependency}",
                    self.layer + 1,
                    self.head + 1,
                    token(q),
                    token(k)
                )
            } else {
                let (q0, q1) = cell_positions(q, snap.seq_len, n);
                let (k0, k1) = cell_positions(k, snap.seq_len, n);
                format!(
                    "layer {} head {}\nqueries {q0}..={q1} -> keys {k0}..={k1}\nmean weight {weight:.4} (map averaged to {n}x{n})",
                    self.layer + 1,
                    self.head + 1
                )
            };
            let response = shown.response.clone().on_hover_text(text);
            return MapResponse {
                response,
                hovered: shown.hovered,
                clicked: shown.clicked,
            };
        }
        shown
    }
}

/// `mask` at `n x n` cells: a cell is visible when any pair in its tile is.
pub fn fit_mask(mask: &Mask, n: usize) -> Mask {
    let full = mask.n();
    if full == n || n == 0 {
        return mask.clone();
    }
    let tile = |c: usize| (c * full / n)..((c + 1) * full / n).max(c * full / n + 1);
    Mask::from_fn(n, |q, k| tile(q).any(|i| tile(k).any(|j| mask.get(i, j))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::AttentionPattern;

    #[test]
    fn fitted_masks_keep_any_visible_pair() {
        let mask = AttentionPattern::Local { window: 1 }.mask(8, false, 0);
        let small = fit_mask(&mask, 4);
        assert_eq!(small.n(), 4);
        assert!(small.get(0, 0) && small.get(0, 1) && !small.get(0, 2));
        assert_eq!(fit_mask(&mask, 8), mask);
    }
}
