//! The receptive field of one query through the layers, side by side: what the masks
//! let reach it (structural, the composition of the layers' masks) and what the
//! trained weights carry to it (attention rollout with the residual path). The seed's
//! stacking argument (a local window w over L layers reaches L * w) on the run's own
//! weights.

use egui::{Color32, ColorImage, RichText, Slider, TextureHandle, Ui, Vec2};

use super::attention::AttentionViewState;
use crate::app::heatmap::{TextureCache, colorbar_ui, colormap};
use crate::app::view_model::analysis::{FieldCache, ReceptiveField};
use crate::app::view_model::run_views::RunView;
use crate::records::AttentionSnapshot;

/// Height of one layer's strip, points.
const STRIP: f32 = 14.0;

/// The section for `run` at the scrubber's snapshot.
pub fn receptive_field_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    fields: &mut FieldCache,
    scrubber: &mut AttentionViewState,
    run: &RunView,
) {
    let Some(last) = run.snapshots.len().checked_sub(1) else {
        return;
    };
    let snapshot = &run.snapshots[scrubber.snapshot.unwrap_or(last).min(last)];
    let n = snapshot.n;
    let scale = snapshot.seq_len.div_ceil(n.max(1)).max(1);
    let query = query_picker_ui(ui, scrubber, run, snapshot, scale);
    let Some(field) = fields.get(run.id, run.masks(), snapshot, query) else {
        return;
    };
    let source = dependency_of(run, scale, query);
    ui.label(
        RichText::new(match source {
            Some(k) => format!(
                "Its answer is read from key {k} (red tick). Left: which keys can reach it after each layer (the masks composed); right: how much does (attention rollout: heads averaged, residual path added)."
            ),
            None => "Left: which keys can reach it after each layer (the masks composed); right: how much does (attention rollout: heads averaged, residual path added).".into(),
        })
        .small(),
    );
    let width = ((ui.available_width() - 140.0) / 2.0).clamp(120.0, 640.0);
    let key = |what: &str| format!("rf/{what}/{}/{}/{query}", run.id, snapshot.step);
    let structural = cache.get(ui, &key("s"), || structural_image(field));
    let learned = cache.get(ui, &key("l"), || learned_image(field));
    egui::Grid::new(("receptive", run.id))
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            ui.label("");
            ui.label(RichText::new("structural (masks)").small());
            ui.label(RichText::new("learned (rollout)").small());
            ui.end_row();
            ui.vertical(|ui| {
                for l in 0..field.structural.len() {
                    ui.add_sized(
                        Vec2::new(80.0, STRIP),
                        egui::Label::new(RichText::new(format!("after layer {}", l + 1)).small()),
                    );
                }
            });
            for texture in [&structural, &learned] {
                field_strips_ui(ui, texture, field, [n, query], source, width);
            }
            ui.end_row();
        });
    colorbar_ui(
        ui,
        colormap,
        "0",
        "max",
        "rollout weight / the row's largest (square-root scale) · columns: key position · white tick: the query",
    );
    reach_summary_ui(ui, field, [n, query], scale);
}

/// The query the field is drawn for (the scrubber's, by default the first answer's
/// query: its source is what must be reached), with the header that picks it.
fn query_picker_ui(
    ui: &mut Ui,
    scrubber: &mut AttentionViewState,
    run: &RunView,
    snapshot: &AttentionSnapshot,
    scale: usize,
) -> usize {
    let n = snapshot.n;
    let default = run
        .probe
        .as_ref()
        .and_then(|p| p.dependencies.first())
        .map_or(n.saturating_sub(1), |(q, _)| q / scale);
    let mut query = scrubber.query.unwrap_or(default).min(n.saturating_sub(1));
    ui.horizontal(|ui| {
        ui.label(RichText::new("Receptive field").strong());
        let l = ui.label("of query");
        if ui
            .add(Slider::new(&mut query, 0..=n.saturating_sub(1)))
            .labelled_by(l.id)
            .changed()
        {
            scrubber.query = Some(query);
        }
        ui.label(format!("at step {}", snapshot.step));
        if scale > 1 {
            ui.label(format!("(cells of {scale} positions)"));
        }
    });
    query
}

/// The key cell query cell `q`'s answer is read from, in cells of `scale` positions.
fn dependency_of(run: &RunView, scale: usize, q: usize) -> Option<usize> {
    run.probe.as_ref().and_then(|p| {
        p.dependencies
            .iter()
            .find(|(dq, _)| dq / scale == q)
            .map(|(_, k)| k / scale)
    })
}

/// One side of the field, a strip per layer: `texture` with the answer's `source`
/// ticked red above and the query white below; hovering tells a key's reach and
/// rollout weight. `[n, query]`: the snapshot's side and the query cell.
fn field_strips_ui(
    ui: &mut Ui,
    texture: &TextureHandle,
    field: &ReceptiveField,
    [n, query]: [usize; 2],
    source: Option<usize>,
    width: f32,
) {
    let layers = field.structural.len();
    let size = Vec2::new(width, STRIP * layers as f32 + (layers as f32 - 1.0) * 2.0);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.image(
        texture.id(),
        rect,
        egui::Rect::from_min_max(egui::Pos2::ZERO, egui::Pos2::new(1.0, 1.0)),
        Color32::WHITE,
    );
    let x = |k: usize| rect.min.x + (k as f32 + 0.5) / n as f32 * rect.width();
    let stroke = egui::Stroke::new(1.5, Color32::from_rgb(255, 80, 80));
    if let Some(k) = source {
        painter.line_segment(
            [
                egui::pos2(x(k), rect.min.y - 4.0),
                egui::pos2(x(k), rect.min.y),
            ],
            stroke,
        );
    }
    painter.line_segment(
        [
            egui::pos2(x(query), rect.max.y),
            egui::pos2(x(query), rect.max.y + 4.0),
        ],
        egui::Stroke::new(1.5, Color32::WHITE),
    );
    if let Some(p) = response.hover_pos() {
        let k = (((p.x - rect.min.x) / rect.width()) * n as f32) as usize;
        let l = (((p.y - rect.min.y) / rect.height()) * layers as f32) as usize;
        if k < n && l < layers {
            response.on_hover_text(format!(
                "key {k} after layer {}: {}, rollout weight {:.4}",
                l + 1,
                if field.structural[l][k] {
                    "can reach"
                } else {
                    "cannot reach"
                },
                field.learned[l][k]
            ));
        }
    }
}

/// A line per layer: how many key cells can reach the query and the radius that
/// holds 90% of the learned mass, in positions (`scale` per cell).
fn reach_summary_ui(ui: &mut Ui, field: &ReceptiveField, [n, query]: [usize; 2], scale: usize) {
    for l in 0..field.structural.len() {
        let can = field.structural[l].iter().filter(|&&b| b).count();
        let within = mass_radius(&field.learned[l], query, 0.9);
        ui.label(
            RichText::new(format!(
                "after layer {}: {can} of {n} key cells can reach it; 90% of the learned mass lies within {} positions",
                l + 1,
                within * scale
            ))
            .small(),
        );
    }
}

/// The smallest radius around `query` holding `fraction` of `row`'s mass.
pub fn mass_radius(row: &[f32], query: usize, fraction: f32) -> usize {
    let total: f32 = row.iter().sum();
    if total <= 0.0 {
        return 0;
    }
    (0..row.len())
        .find(|&r| {
            let lo = query.saturating_sub(r);
            let hi = (query + r).min(row.len() - 1);
            row[lo..=hi].iter().sum::<f32>() >= fraction * total
        })
        .unwrap_or(row.len())
}

/// Reachable keys bright, the rest dark; one row per layer.
fn structural_image(field: &ReceptiveField) -> ColorImage {
    let pixels = field
        .structural
        .iter()
        .flat_map(|row| {
            row.iter().map(|&b| {
                if b {
                    Color32::from_rgb(90, 170, 255)
                } else {
                    Color32::from_gray(28)
                }
            })
        })
        .collect();
    ColorImage::new([field.n, field.structural.len()], pixels)
}

/// Rollout weights, each row relative to its largest on a square-root scale.
fn learned_image(field: &ReceptiveField) -> ColorImage {
    let pixels = field
        .learned
        .iter()
        .flat_map(|row| {
            let max = row.iter().copied().fold(1e-12f32, f32::max);
            row.iter().map(move |&v| colormap((v / max).sqrt()))
        })
        .collect();
    ColorImage::new([field.n, field.learned.len()], pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_radius_grows_until_the_fraction_is_held() {
        let row = [0.0, 0.1, 0.0, 0.8, 0.1];
        assert_eq!(mass_radius(&row, 3, 0.75), 0);
        assert_eq!(mass_radius(&row, 3, 0.85), 1);
        assert_eq!(mass_radius(&row, 3, 0.99), 2);
        assert_eq!(mass_radius(&[0.0; 4], 1, 0.9), 0);
    }
}
