//! Attention maps and masks as textures: built once when a snapshot arrives (or a
//! pattern changes), drawn every frame, with exact values looked up on hover.

use std::collections::HashMap;

use egui::{
    Color32, ColorImage, Pos2, Rect, Response, RichText, Sense, Stroke, TextureHandle,
    TextureOptions, Ui, Vec2,
};

use crate::attention::Mask;
use crate::export::{colormap_rgb, diverging_rgb, sqrt_scaled};

/// Textures by key; rebuilt only for keys not seen yet.
#[derive(Default)]
pub struct TextureCache {
    textures: HashMap<String, TextureHandle>,
}

impl TextureCache {
    /// Most textures kept; beyond this the cache starts over (each map is small).
    const MAX: usize = 768;

    /// The texture for `key`, made by `build` the first time.
    pub fn get(&mut self, ui: &Ui, key: &str, build: impl FnOnce() -> ColorImage) -> TextureHandle {
        if let Some(t) = self.textures.get(key) {
            return t.clone();
        }
        if self.textures.len() >= Self::MAX {
            self.textures.clear();
        }
        let texture = ui.ctx().load_texture(key, build(), TextureOptions::NEAREST);
        self.textures.insert(key.to_string(), texture.clone());
        texture
    }

    /// Number of textures held (for tests: textures are not rebuilt every frame).
    pub fn count(&self) -> usize {
        self.textures.len()
    }
}

/// A perceptual dark-to-bright colour scale (viridis stops).
pub fn colormap(t: f32) -> Color32 {
    let [r, g, b] = colormap_rgb(t);
    Color32::from_rgb(r, g, b)
}

/// The diverging colour scale of difference maps, `t` in `-1..=1`.
pub fn diverging(t: f32) -> Color32 {
    let [r, g, b] = diverging_rgb(t);
    Color32::from_rgb(r, g, b)
}

/// A colour scale's legend: a bar from `low` to `high` with its two end labels and
/// what it measures, so every heatmap says what its colours mean.
pub fn colorbar_ui(ui: &mut Ui, scale: impl Fn(f32) -> Color32, low: &str, high: &str, what: &str) {
    ui.horizontal(|ui| {
        ui.label(RichText::new(low).small());
        let (rect, _) = ui.allocate_exact_size(Vec2::new(140.0, 10.0), Sense::hover());
        let painter = ui.painter_at(rect);
        let steps = 40;
        for i in 0..steps {
            let t = i as f32 / (steps - 1) as f32;
            let x0 = rect.min.x + rect.width() * i as f32 / steps as f32;
            let x1 = rect.min.x + rect.width() * (i + 1) as f32 / steps as f32;
            painter.rect_filled(
                Rect::from_min_max(Pos2::new(x0, rect.min.y), Pos2::new(x1 + 0.5, rect.max.y)),
                0.0,
                scale(t),
            );
        }
        ui.label(RichText::new(high).small());
        ui.label(RichText::new(what).small().weak());
    });
}

/// The legend of attention maps: rows are queries, columns keys, colours relative to
/// each map's largest weight on a square-root scale.
pub fn attention_legend_ui(ui: &mut Ui) {
    colorbar_ui(
        ui,
        colormap,
        "0",
        "max",
        "weight / the map's largest (square-root scale) · rows: query (down) · columns: key (right)",
    );
}

/// A difference map as an image: `a - b` per cell over `scale` (the largest
/// absolute difference), blue where `b` is larger, red where `a` is.
pub fn difference_image(a: &[f32], b: &[f32], n: usize, scale: f32) -> ColorImage {
    let scale = scale.max(1e-12);
    let pixels = a
        .iter()
        .zip(b)
        .map(|(x, y)| diverging((x - y) / scale))
        .collect();
    ColorImage::new([n, n], pixels)
}

/// An `n x n` attention map as an image: each cell relative to the map's largest
/// weight, on a square-root scale so weak but real attention stays visible.
pub fn attention_image(map: &[f32], n: usize) -> ColorImage {
    let pixels = sqrt_scaled(map).map(colormap).collect();
    ColorImage::new([n, n], pixels)
}

/// A mask as an image: visible pairs bright, hidden pairs dark.
pub fn mask_image(mask: &Mask) -> ColorImage {
    let pixels = mask
        .as_slice()
        .iter()
        .map(|&v| {
            if v {
                Color32::from_rgb(90, 170, 255)
            } else {
                Color32::from_gray(28)
            }
        })
        .collect();
    ColorImage::new([mask.n(), mask.n()], pixels)
}

/// A mask as a translucent overlay: hidden pairs shaded.
pub fn mask_overlay_image(mask: &Mask) -> ColorImage {
    let pixels = mask
        .as_slice()
        .iter()
        .map(|&v| {
            if v {
                Color32::TRANSPARENT
            } else {
                Color32::from_black_alpha(150)
            }
        })
        .collect();
    ColorImage::new([mask.n(), mask.n()], pixels)
}

/// Where `(query, key)` position pairs of a sequence of `seq_len` fall on a map of
/// `n x n` cells (averaged down when `n < seq_len`): the marks [`map_ui`] draws.
pub fn cell_marks(pairs: &[(usize, usize)], seq_len: usize, n: usize) -> Vec<(usize, usize)> {
    let scale = seq_len.max(1) as f64 / n.max(1) as f64;
    pairs
        .iter()
        .map(|&(q, k)| ((q as f64 / scale) as usize, (k as f64 / scale) as usize))
        .collect()
}

/// The positions `first..=last` that map cell `cell` of `n` averages over a
/// sequence of `seq_len` (one position when the map is at full resolution).
pub fn cell_positions(cell: usize, seq_len: usize, n: usize) -> (usize, usize) {
    let scale = seq_len.max(1) as f64 / n.max(1) as f64;
    let first = (cell as f64 * scale) as usize;
    let last = (((cell + 1) as f64 * scale) as usize).max(first + 1) - 1;
    (first, last)
}

/// A drawn square map: where it is and which cell the pointer is over.
pub struct MapResponse {
    /// The widget's response.
    pub response: Response,
    /// `(query, key)` under the pointer, in map cells.
    pub hovered: Option<(usize, usize)>,
    /// `(query, key)` clicked this frame, in map cells.
    pub clicked: Option<(usize, usize)>,
}

/// Draws `texture` (an `n x n` map, row = query, column = key) in a square of side
/// `side`, with an optional overlay texture and marked cells (`(query, key)` in map
/// cells).
pub fn map_ui(
    ui: &mut Ui,
    texture: &TextureHandle,
    overlay: Option<&TextureHandle>,
    n: usize,
    side: f32,
    marks: &[(usize, usize)],
) -> MapResponse {
    let (rect, response) = ui.allocate_exact_size(Vec2::splat(side), Sense::click());
    let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
    let painter = ui.painter_at(rect);
    painter.image(texture.id(), rect, uv, Color32::WHITE);
    if let Some(overlay) = overlay {
        painter.image(overlay.id(), rect, uv, Color32::WHITE);
    }
    let cell = side / n.max(1) as f32;
    let stroke = Stroke::new(1.0, Color32::from_rgb(255, 80, 80));
    for &(q, k) in marks.iter().take(1024) {
        let min = rect.min + Vec2::new(k as f32 * cell, q as f32 * cell);
        if cell >= 5.0 {
            // Big cells: outline the cell, its colour stays visible inside.
            let r = Rect::from_min_size(min, Vec2::splat(cell));
            painter.rect_stroke(r, 0.0, stroke, egui::StrokeKind::Outside);
        } else {
            // Small cells: an outline would cover the cell, so a tick just left of
            // it points at it instead.
            let y = min.y + cell / 2.0;
            painter.line_segment(
                [Pos2::new(min.x - 5.0, y), Pos2::new(min.x - 1.5, y)],
                stroke,
            );
        }
    }
    painter.rect_stroke(
        rect,
        0.0,
        Stroke::new(1.0, Color32::from_gray(90)),
        egui::StrokeKind::Outside,
    );
    let hovered = response.hover_pos().and_then(|p| {
        let rel = p - rect.min;
        let (k, q) = ((rel.x / cell) as usize, (rel.y / cell) as usize);
        (q < n && k < n).then_some((q, k))
    });
    let clicked = hovered.filter(|_| response.clicked());
    MapResponse {
        response,
        hovered,
        clicked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_of_a_map_averaged_down_cover_their_positions() {
        assert_eq!(cell_positions(5, 64, 64), (5, 5), "full resolution");
        assert_eq!(cell_positions(3, 256, 128), (6, 7));
        assert_eq!(cell_positions(0, 300, 128), (0, 1));
        assert_eq!(
            cell_marks(&[(10, 3), (255, 0)], 256, 128),
            [(5, 1), (127, 0)]
        );
        assert_eq!(cell_marks(&[(10, 3)], 64, 64), [(10, 3)]);
    }

    #[test]
    fn colormap_runs_dark_to_bright() {
        let lum = |c: Color32| c.r() as u32 + c.g() as u32 + c.b() as u32;
        assert!(lum(colormap(0.0)) < lum(colormap(0.5)));
        assert!(lum(colormap(0.5)) < lum(colormap(1.0)));
        assert_eq!(colormap(2.0), colormap(1.0));
    }

    #[test]
    fn images_have_one_pixel_per_cell() {
        let img = attention_image(&[0.0, 1.0, 0.5, 0.5], 2);
        assert_eq!(img.size, [2, 2]);
        assert_eq!(img.pixels[1], colormap(1.0));
        let mask = crate::attention::AttentionPattern::Local { window: 1 }.mask(5, false, 0);
        assert_eq!(mask_image(&mask).size, [5, 5]);
    }
}
