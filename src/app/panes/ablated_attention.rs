//! The Interventions pane's "Attention with heads ablated": tick heads, press Draw,
//! and the probe's attention of every layer and head at the saved step is drawn twice
//! side by side, as trained and with the ticked heads zeroed
//! (`view_model::ablated_attention` computes both on a helper thread), in the
//! Attention pane's colours, so the change in later layers shows.

use std::path::Path;

use egui::{Color32, RichText, Ui};

use crate::app::heatmap::{TextureCache, attention_image, attention_legend_ui, map_ui};
use crate::app::view_model::ablated_attention::{AblatedAttention, heads_label};
use crate::app::view_model::interventions::{InterventionsView, Wake};
use crate::app::widgets::ERROR_COLOR;
use crate::model::HeadRef;

/// Where the section draws from: the record, its saved step and the model's shape.
pub struct Section<'a> {
    /// The record's folder.
    pub record: &'a Path,
    /// The saved step whose weights are used.
    pub step: usize,
    /// Layers of the model.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
}

/// The collapsible section: head checkboxes, Draw, progress, and the two grids.
pub fn ablated_attention_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    view: &mut InterventionsView,
    section: &Section<'_>,
    wake: &Wake,
) {
    egui::CollapsingHeader::new("Attention with heads ablated")
        .id_salt("ablated-attention")
        .show(ui, |ui| {
            view.ablated.poll();
            let picked = view.picked;
            let state = &mut view.ablated;
            let chosen = state.chosen(picked);
            ui.label(
                RichText::new(format!(
                    "The probe's attention at step {}, every layer and head, as trained and \
                     with the ticked heads' outputs zeroed: an ablated head's own weights stay \
                     as trained, the layers above it show what changes.",
                    section.step
                ))
                .small(),
            );
            egui::Grid::new("ablated-attention-heads").show(ui, |ui| {
                for layer in 0..section.layers {
                    ui.label(RichText::new(format!("layer {}", layer + 1)).small());
                    for h in 0..section.heads {
                        let head = HeadRef { layer, head: h };
                        let mut on = chosen.contains(&head);
                        if ui
                            .checkbox(&mut on, head.to_string())
                            .on_hover_text(format!("Ablate layer {}, head {}", layer + 1, h + 1))
                            .changed()
                        {
                            state.toggle(head, on, picked);
                        }
                    }
                    ui.end_row();
                }
            });
            let chosen = state.chosen(picked);
            ui.horizontal(|ui| {
                let running = state.progress().map(ToString::to_string);
                if ui
                    .add_enabled(running.is_none(), egui::Button::new("Draw"))
                    .on_hover_text(
                        "Compute the probe's attention as trained and with the ticked heads \
                         ablated (on a helper thread)",
                    )
                    .on_disabled_hover_text("Drawing: wait, or cancel it")
                    .clicked()
                {
                    state.draw(section.record, section.step, chosen.clone(), wake);
                }
                if let Some(what) = running {
                    ui.spinner();
                    ui.label(what);
                    if ui.button("Cancel").clicked() {
                        state.cancel();
                    }
                }
            });
            if let Some(e) = state.error() {
                ui.label(RichText::new(e).color(ERROR_COLOR));
            }
            match state.result(section.record, section.step, &chosen) {
                Some(result) => pair_ui(ui, cache, section.record, &result),
                None if state.progress().is_none() => {
                    ui.label(format!(
                        "Not drawn at step {} with {} ablated: press Draw.",
                        section.step,
                        heads_label(&chosen)
                    ));
                }
                None => {}
            }
        });
}

/// The two grids side by side.
fn pair_ui(ui: &mut Ui, cache: &mut TextureCache, record: &Path, result: &AblatedAttention) {
    attention_legend_ui(ui);
    let heads = result.heads.max(1);
    let side = ((ui.available_width() / 2.0 - 70.0) / heads as f32 - 6.0).clamp(24.0, 140.0);
    let title = format!("with {} ablated", result.ablated_label());
    egui::ScrollArea::horizontal()
        .id_salt("ablated-attention-scroll")
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                for (ablated, name) in [(false, "as trained"), (true, title.as_str())] {
                    ui.vertical(|ui| {
                        ui.label(RichText::new(name).strong());
                        grid_ui(ui, cache, record, result, ablated, side);
                    });
                    ui.add_space(12.0);
                }
            });
        });
}

/// One layers x heads grid of maps, as trained or ablated.
fn grid_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    record: &Path,
    result: &AblatedAttention,
    ablated: bool,
    side: f32,
) {
    let n = result.n;
    let set = result.ablated_label();
    egui::Grid::new(("ablated-attention-grid", ablated))
        .spacing([4.0, 4.0])
        .show(ui, |ui| {
            ui.label("");
            for h in 0..result.heads {
                ui.label(RichText::new(format!("head {}", h + 1)).small());
            }
            ui.end_row();
            for layer in 0..result.layers {
                ui.label(RichText::new(format!("layer {}", layer + 1)).small());
                for h in 0..result.heads {
                    let head = HeadRef { layer, head: h };
                    let map = result.map(ablated, head);
                    if map.len() != n * n || n == 0 {
                        ui.label("-");
                        continue;
                    }
                    let key = format!(
                        "ablated-attn/{}/{}/{set}/{ablated}/{layer}/{h}",
                        record.display(),
                        result.step
                    );
                    let texture = cache.get(ui, &key, || attention_image(map, n));
                    let shown = map_ui(ui, &texture, None, n, side, &[]);
                    let zeroed = ablated && result.ablated.contains(&head);
                    if zeroed {
                        let stroke = egui::Stroke::new(2.0, Color32::from_rgb(255, 80, 80));
                        ui.painter().rect_stroke(
                            shown.response.rect,
                            0.0,
                            stroke,
                            egui::StrokeKind::Outside,
                        );
                    }
                    if let Some((q, k)) = shown.hovered {
                        let clean = result.map(false, head).get(q * n + k).copied();
                        let mut text = format!(
                            "layer {} head {}\nquery {q} -> key {k}\nweight {:.4}",
                            layer + 1,
                            h + 1,
                            map[q * n + k]
                        );
                        if let (true, Some(c)) = (ablated, clean) {
                            text.push_str(&format!(" (as trained {c:.4})"));
                        }
                        if zeroed {
                            text.push_str("\nablated: its output is zeroed after these weights");
                        }
                        shown.response.on_hover_text(text);
                    }
                }
                ui.end_row();
            }
        });
}
