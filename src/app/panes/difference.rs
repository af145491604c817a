//! Attention differences in Compare: one map minus another (two runs at the same
//! step, layer and head, or the first run at two steps), on a diverging colour scale,
//! so what training or a pattern changed stands out.

use std::sync::Arc;

use egui::{RichText, Slider, Ui};

use crate::app::heatmap::{TextureCache, colorbar_ui, difference_image, diverging, map_ui};
use crate::app::view_model::run_views::RunView;
use crate::records::AttentionSnapshot;

/// The two snapshots subtracted (each `None` when there is none at its step), and
/// what the difference is named.
type Operands = (
    Option<Arc<AttentionSnapshot>>,
    Option<Arc<AttentionSnapshot>>,
    String,
);

/// Which difference Compare draws.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiffMode {
    /// None.
    #[default]
    Off,
    /// The first two runs compared, at the same step.
    Runs,
    /// The first run at the compare step minus itself at another step.
    Steps,
}

/// The difference section. `step`, `layer` and `head` are the compare view's;
/// `other_step` is the second step of [`DiffMode::Steps`].
#[allow(clippy::too_many_arguments)]
pub fn difference_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    mode: &mut DiffMode,
    other_step: &mut usize,
    runs: &[&RunView],
    step: usize,
    layer: usize,
    head: usize,
) {
    mode_ui(ui, mode);
    let Some(first) = runs.first() else {
        return;
    };
    let Some((a, b, what)) = operands_ui(ui, *mode, other_step, runs, step) else {
        return;
    };
    let (Some(a), Some(b)) = (a, b) else {
        ui.label("No snapshot at that step yet.");
        return;
    };
    let (Some(ma), Some(mb)) = (map_of(&a, layer, head), map_of(&b, layer, head)) else {
        ui.label("(no such layer or head in both maps)");
        return;
    };
    if a.n != b.n {
        ui.label(format!(
            "The maps have different sizes ({0}x{0} and {1}x{1}): runs of different sequence lengths cannot be subtracted.",
            a.n, b.n
        ));
        return;
    }
    ui.label(
        RichText::new(format!(
            "{what} (layer {}, head {}; snapshots at steps {} and {})",
            layer + 1,
            head + 1,
            a.step,
            b.step
        ))
        .small(),
    );
    let key = format!(
        "diff/{}/{}/{}/{}/{}/{layer}/{head}",
        first.id,
        runs.get(1).map_or(0, |r| r.id),
        a.step,
        b.step,
        *mode as u8
    );
    difference_map_ui(ui, cache, &key, ma, mb, a.n);
}

/// Which difference: off, the first two runs, or the first run at two steps.
fn mode_ui(ui: &mut Ui, mode: &mut DiffMode) {
    ui.horizontal(|ui| {
        ui.label("difference");
        ui.selectable_value(mode, DiffMode::Off, "off");
        ui.selectable_value(mode, DiffMode::Runs, "first two runs")
            .on_hover_text("The first ticked run minus the second, same step, layer and head");
        ui.selectable_value(mode, DiffMode::Steps, "first run at two steps")
            .on_hover_text("The first ticked run at the compare step minus itself at another step");
    });
}

/// The two snapshots `mode` subtracts and what the difference is named; with
/// [`DiffMode::Steps`], the slider of `other_step`. `None` when there is nothing to subtract (said why where it helps).
fn operands_ui(
    ui: &mut Ui,
    mode: DiffMode,
    other_step: &mut usize,
    runs: &[&RunView],
    step: usize,
) -> Option<Operands> {
    let first = runs.first()?;
    let at = |run: &RunView, s: usize| run.snapshot_at(s).map(|i| run.snapshots[i].clone());
    match mode {
        DiffMode::Off => None,
        DiffMode::Runs => {
            let Some(second) = runs.get(1) else {
                ui.label("Tick two runs to subtract one from the other.");
                return None;
            };
            Some((
                at(first, step),
                at(second, step),
                format!("{} - {}", first.name, second.name),
            ))
        }
        DiffMode::Steps => {
            let last = first.snapshots.last().map_or(0, |s| s.step);
            ui.horizontal(|ui| {
                let l = ui.label("minus step");
                ui.add(Slider::new(other_step, 0..=last.max(1)))
                    .labelled_by(l.id);
            });
            Some((
                at(first, step),
                at(first, *other_step),
                format!("{}: step {step} - step {other_step}", first.name),
            ))
        }
    }
}

/// `ma` minus `mb` (both `n x n`, cached under `key`) on a diverging scale as large
/// as their largest difference, with its colour bar and each cell's hover.
fn difference_map_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    key: &str,
    ma: &[f32],
    mb: &[f32],
    n: usize,
) {
    let scale = ma
        .iter()
        .zip(mb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    colorbar_ui(
        ui,
        |t| diverging(2.0 * t - 1.0),
        &format!("-{scale:.3}"),
        &format!("+{scale:.3}"),
        "weight difference (red: the first attends more) · rows: query · columns: key",
    );
    let texture = cache.get(ui, key, || difference_image(ma, mb, n, scale));
    let side = (ui.available_width() - 16.0).clamp(120.0, 360.0);
    let shown = map_ui(ui, &texture, None, n, side, &[]);
    if let Some((q, k)) = shown.hovered {
        shown.response.on_hover_text(format!(
            "query {q} -> key {k}: {:.4} - {:.4} = {:+.4}",
            ma[q * n + k],
            mb[q * n + k],
            ma[q * n + k] - mb[q * n + k]
        ));
    }
}

fn map_of(s: &AttentionSnapshot, layer: usize, head: usize) -> Option<&[f32]> {
    (layer < s.layers && head < s.heads).then(|| s.map(layer, head))
}
