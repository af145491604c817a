//! The Mask preview pane: each layer's mask at the current sequence length before
//! anything trains, and what the stack of layers can link (its receptive field).

use egui::{RichText, Ui};

use crate::app::heatmap::{TextureCache, map_ui, mask_image};
use crate::app::widgets::ERROR_COLOR;
use crate::attention::{AttentionPattern, Mask, Reach, compose};
use crate::config::{ModelKind, Settings, TaskKind};

/// Most positions previewed (and composed); longer sequences show their first
/// `MAX_PREVIEW` positions.
const MAX_PREVIEW: usize = 512;

/// Masks and their composition, computed when the settings change, not every frame.
#[derive(Default)]
pub struct PreviewCache {
    textures: TextureCache,
    computed: std::collections::HashMap<String, (Vec<Mask>, Reach, Mask)>,
}

/// Previews every run of an experiment, one row each (the base is what they share).
pub fn experiment_preview_ui(ui: &mut Ui, cache: &mut PreviewCache, runs: &[(String, Settings)]) {
    egui::ScrollArea::vertical()
        .id_salt("preview-runs")
        .show(ui, |ui| {
            mask_legend_ui(ui);
            let side = ((ui.available_width() - 40.0) / 5.0).clamp(96.0, 220.0);
            for (name, settings) in runs {
                ui.push_id(name, |ui| mask_preview_ui(ui, cache, name, settings, side));
                ui.separator();
            }
        });
}

/// What the preview's colours and axes mean.
pub fn mask_legend_ui(ui: &mut Ui) {
    ui.label(
        RichText::new(
            "Blue: the query may attend to the key (or, for the stack, depend on it); dark: it cannot. Rows: query (down) · columns: key (right).",
        )
        .small()
        .weak(),
    );
}

/// Previews `settings` (named `label`), maps at most `max_side` wide.
pub fn mask_preview_ui(
    ui: &mut Ui,
    cache: &mut PreviewCache,
    label: &str,
    settings: &Settings,
    max_side: f32,
) {
    if settings.model.kind == ModelKind::Lstm {
        ui.label(
            "An LSTM has no attention: information moves one position per step through its state.",
        );
        return;
    }
    let n_full = settings.task.seq_len;
    let checks: Vec<_> = settings
        .model
        .layer_patterns()
        .iter()
        .filter_map(|p| p.check(n_full).err())
        .collect();
    if n_full < 2 || settings.model.layers == 0 || !checks.is_empty() {
        ui.label(
            RichText::new("Fix the attention settings to see the preview.").color(ERROR_COLOR),
        );
        return;
    }
    let n = n_full.min(MAX_PREVIEW);
    let patterns = settings.model.layer_patterns();
    let key_base = cache.compute(settings, &patterns, n);
    let Some((masks, reach, reach_mask)) = cache.computed.get(&key_base) else {
        return;
    };

    ui.heading(format!("{label}: {}", settings.model.attention_label()));
    ui.label(reach_summary(settings, &patterns, masks, reach, n));
    task_distance_ui(ui, settings, reach, n);
    if n < n_full {
        ui.label(RichText::new(format!("Showing the first {n} of {n_full} positions.")).small());
    }

    let side = ((ui.available_width() - 16.0) / (masks.len() + 1) as f32).clamp(96.0, max_side);
    let textures = &mut cache.textures;
    egui::ScrollArea::horizontal()
        .id_salt("preview-maps")
        .show(ui, |ui| {
            ui.horizontal_top(|ui| {
                for (l, mask) in masks.iter().enumerate() {
                    map_column_ui(
                        ui,
                        textures,
                        &format!("mask/{key_base}/{l}"),
                        mask,
                        side,
                        &format!("layer {}", l + 1),
                        &patterns[l].label(),
                    );
                }
                map_column_ui(
                    ui,
                    textures,
                    &format!("reach/{key_base}"),
                    reach_mask,
                    side,
                    "all layers",
                    "what the stack links",
                );
            });
        });
}

impl PreviewCache {
    /// Computes the masks of `settings` (whose layers' `patterns` they are) over `n`
    /// positions and their composition unless they are kept already (at most 33
    /// settings are); their key.
    fn compute(&mut self, settings: &Settings, patterns: &[AttentionPattern], n: usize) -> String {
        let causal = settings.model.causal;
        let key_base = format!("{patterns:?}/{n}/{causal}/{}", settings.train.seed);
        if !self.computed.contains_key(&key_base) {
            if self.computed.len() > 32 {
                self.computed.clear();
            }
            let masks = settings.model.layer_masks(n, settings.train.seed);
            let reach = compose(&masks);
            let reach_mask = reach.to_mask();
            self.computed
                .insert(key_base.clone(), (masks, reach, reach_mask));
        }
        key_base
    }
}

/// What the stack of `masks` links over the first `n` positions, and the layers'
/// local reach added up where every layer has one.
fn reach_summary(
    settings: &Settings,
    patterns: &[AttentionPattern],
    masks: &[Mask],
    reach: &Reach,
    n: usize,
) -> String {
    let radius = reach.full_radius(settings.model.causal);
    let within = if radius + 1 >= n {
        format!("every pair of positions (of the first {n}) is linked")
    } else {
        format!("every pair of positions up to {radius} apart is linked")
    };
    let mut summary = format!(
        "{} layer(s) at seq_len {}: {within}; {:.0}% of all pairs are linked.",
        masks.len(),
        settings.task.seq_len,
        reach.coverage() * 100.0
    );
    if let Some(per_layer) = patterns
        .iter()
        .map(|p| p.local_reach())
        .collect::<Option<Vec<_>>>()
    {
        let total: usize = per_layer.iter().sum();
        summary.push_str(&format!(
            " Local reach per layer adds up to {total} (L x w)."
        ));
    }
    summary
}

/// For a task with a distance (recall, induction): whether `reach` links it within
/// the `n` positions previewed.
fn task_distance_ui(ui: &mut Ui, settings: &Settings, reach: &Reach, n: usize) {
    if !matches!(settings.task.kind, TaskKind::Recall | TaskKind::Induction) {
        return;
    }
    let d = settings.task.distance;
    if d >= n {
        ui.label(format!(
            "The task's distance {d} is beyond the {n} previewed positions."
        ));
    } else if reach.links_distance(d) {
        ui.label(
            RichText::new(format!(
                "The task's distance {d} is within reach: a model can link it (whether training finds the path is another matter; see the Distance pane)."
            ))
            .strong(),
        );
    } else {
        ui.label(
            RichText::new(format!(
                "The task's distance {d} is out of reach: no number of training steps can solve it (expect chance accuracy)."
            ))
            .color(ERROR_COLOR)
            .strong(),
        );
    }
}

fn map_column_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    key: &str,
    mask: &Mask,
    side: f32,
    title: &str,
    subtitle: &str,
) {
    ui.vertical(|ui| {
        ui.label(RichText::new(title).strong());
        ui.label(
            RichText::new(format!(
                "{subtitle}, {:.1}% of pairs",
                mask.density() * 100.0
            ))
            .small(),
        );
        let texture = cache.get(ui, key, || mask_image(mask));
        let shown = map_ui(ui, &texture, None, mask.n(), side, &[]);
        if let Some((q, k)) = shown.hovered {
            shown.response.on_hover_text(format!(
                "query {q}, key {k}: {}",
                if mask.get(q, k) { "visible" } else { "hidden" }
            ));
        }
    });
}
