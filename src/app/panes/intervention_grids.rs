//! The Interventions pane's grids: layers x heads of the accuracy drop under
//! ablation, the patching recovery and the Heads pane's statistic, side by side, each
//! cell coloured with its value written in it (exact on hover, named `1.2 drop: ...`
//! for screen readers), and the statistic's rank correlation with the drop.

use egui::{Align2, Color32, FontId, RichText, Sense, Stroke, Ui, Vec2};

use crate::app::heatmap::{colorbar_ui, colormap, diverging};
use crate::app::view_model::interventions::HeadGrid;
use crate::app::view_model::run_views::RunView;
use crate::attention::spearman;
use crate::attention::{HeadStats, Stat};
use crate::model::HeadRef;

/// A grid cell's size, in points.
const CELL: Vec2 = Vec2::new(54.0, 22.0);

/// One layers x heads grid: what it shows and how.
struct GridSpec<'a> {
    id: &'a str,
    /// Names a cell for screen readers and tests: `1.2 drop: 0.125`.
    short: &'a str,
    layers: usize,
    heads: usize,
    /// Layer-major.
    values: &'a [Option<f64>],
    color: &'a dyn Fn(f64) -> Color32,
    hover: &'a dyn Fn(HeadRef, Option<f64>) -> String,
}

/// The drop grid, the recovery grid and the statistic's grid side by side, and the
/// rank correlation; the head clicked, if any.
pub fn grids_ui(
    ui: &mut Ui,
    picked: Option<HeadRef>,
    stat: &mut Stat,
    run: &RunView,
    grid: &HeadGrid,
) -> Option<HeadRef> {
    ui.label(format!(
        "Step {}: clean accuracy {:.3} over {} examples. Each head ablated alone, and \
         patched alone; click a head to see it over training.",
        grid.step, grid.clean_accuracy, grid.examples
    ));
    let n = grid.layers * grid.heads;
    let at = run
        .head_stats
        .iter()
        .rev()
        .find(|(s, _)| *s <= grid.step)
        .or(run.head_stats.first())
        .filter(|(_, s)| s.len() == n);
    let drops = grid.drops();
    let mut clicked = None;
    ui.horizontal_wrapped(|ui| {
        ui.vertical(|ui| clicked = clicked.or(drop_grid_ui(ui, picked, grid, &drops)));
        ui.vertical(|ui| clicked = clicked.or(recovery_grid_ui(ui, picked, grid)));
        ui.vertical(|ui| {
            let shape = Shape {
                layers: grid.layers,
                heads: grid.heads,
                picked,
            };
            clicked = clicked.or(statistic_grid_ui(ui, stat, at, shape));
        });
    });
    if let Some((_, stats)) = at {
        let (s, d): (Vec<f64>, Vec<f64>) = stats
            .iter()
            .zip(&drops)
            .filter_map(|(h, d)| stat.of(h).map(|s| (s, *d)))
            .unzip();
        let name = stat.name();
        ui.label(match spearman(&s, &d) {
            Some(rho) => format!(
                "Spearman rank correlation between {name} and the accuracy drop over {} heads: \
                 {rho:+.2} (+1: the statistic orders the heads exactly as ablation does).",
                s.len()
            ),
            None => format!(
                "Spearman rank correlation between {name} and the accuracy drop is undefined \
                 (one of them is the same for every head)."
            ),
        });
    }
    clicked
}

/// A grid's layers, heads and the picked head.
#[derive(Clone, Copy)]
struct Shape {
    layers: usize,
    heads: usize,
    picked: Option<HeadRef>,
}

fn drop_grid_ui(
    ui: &mut Ui,
    picked: Option<HeadRef>,
    grid: &HeadGrid,
    drops: &[f64],
) -> Option<HeadRef> {
    ui.label(RichText::new("accuracy drop under ablation").strong());
    // At least 0.05 for full colour, so that noise around 0 stays dark.
    let scale = drops.iter().fold(0.05_f64, |m, d| m.max(d.abs()));
    symmetric_legend_ui(ui, scale, "clean - ablated accuracy");
    let values: Vec<Option<f64>> = drops.iter().copied().map(Some).collect();
    let clean = grid.clean_accuracy;
    let hover = |head: HeadRef, v: Option<f64>| {
        let drop = v.unwrap_or(0.0);
        format!(
            "{head} (layer {}, head {}) ablated: accuracy {:.3}, {:+.3} from clean {clean:.3}\n\
             Click: its drop at every saved step",
            head.layer + 1,
            head.head + 1,
            clean - drop,
            -drop,
        )
    };
    let color = |v: f64| diverging((v / scale) as f32);
    let spec = GridSpec {
        id: "ablation-grid",
        short: "drop",
        layers: grid.layers,
        heads: grid.heads,
        values: &values,
        color: &color,
        hover: &hover,
    };
    head_grid_ui(ui, &spec, picked)
}

fn recovery_grid_ui(ui: &mut Ui, picked: Option<HeadRef>, grid: &HeadGrid) -> Option<HeadRef> {
    ui.label(RichText::new("patching recovery").strong());
    let values = match &grid.recovery {
        Ok(values) => values,
        Err(reason) => {
            ui.set_max_width(360.0);
            ui.label(RichText::new(format!("Refused: {reason}")).small());
            return None;
        }
    };
    let scale = values.iter().flatten().fold(1.0_f64, |m, v| m.max(v.abs()));
    symmetric_legend_ui(ui, scale, "share of the answer restored");
    let hover = |head: HeadRef, v: Option<f64>| match v {
        Some(v) => format!(
            "{head} patched from the clean input into the corrupted one restores {v:.3} of \
             the clean-corrupted logit difference on the answer (1: all, 0: none)\n\
             Click: its drop at every saved step"
        ),
        None => format!(
            "{head}: the clean and corrupted inputs give the same answer logits: nothing to restore"
        ),
    };
    let color = |v: f64| diverging((v / scale) as f32);
    let spec = GridSpec {
        id: "patching-grid",
        short: "recovery",
        layers: grid.layers,
        heads: grid.heads,
        values,
        color: &color,
        hover: &hover,
    };
    head_grid_ui(ui, &spec, picked)
}

/// The Heads pane's statistic per head at the snapshot `at` (at or before the grid's
/// step), with a picker of the statistics defined there.
fn statistic_grid_ui(
    ui: &mut Ui,
    stat: &mut Stat,
    at: Option<&(usize, Vec<HeadStats>)>,
    shape: Shape,
) -> Option<HeadRef> {
    let Some((step, stats)) = at else {
        ui.label(RichText::new("head statistic").strong());
        ui.label("No attention snapshot of this model's heads at or before this step.");
        return None;
    };
    let defined: Vec<Stat> = Stat::ALL
        .into_iter()
        .filter(|st| stats.iter().any(|h| st.of(h).is_some()))
        .collect();
    if !defined.contains(stat)
        && let Some(first) = defined.first()
    {
        *stat = *first;
    }
    let name = stat.name();
    ui.label(RichText::new(format!("{name} at step {step} (Heads pane)")).strong());
    egui::ComboBox::from_id_salt("interventions-statistic")
        .selected_text(name)
        .show_ui(ui, |ui| {
            for s in &defined {
                ui.selectable_value(stat, *s, s.name())
                    .on_hover_text(s.help());
            }
        });
    let values: Vec<Option<f64>> = stats.iter().map(|h| stat.of(h)).collect();
    let top = if stat.is_fraction() {
        1.0
    } else {
        values.iter().flatten().fold(1e-12_f64, |m, v| m.max(*v))
    };
    colorbar_ui(ui, colormap, "0", &format!("{top:.2}"), stat.help());
    let color = |v: f64| colormap((v / top) as f32);
    let hover = |head: HeadRef, v: Option<f64>| {
        v.map_or(format!("{head}: {name} undefined"), |v| {
            format!("{head}: {name} {v:.3}")
        })
    };
    let spec = GridSpec {
        id: "statistic-grid",
        short: name,
        layers: shape.layers,
        heads: shape.heads,
        values: &values,
        color: &color,
        hover: &hover,
    };
    head_grid_ui(ui, &spec, shape.picked)
}

/// A diverging legend from `-scale` (blue) to `+scale` (red).
fn symmetric_legend_ui(ui: &mut Ui, scale: f64, what: &str) {
    colorbar_ui(
        ui,
        |t| diverging(2.0 * t - 1.0),
        &format!("{:+.2}", -scale),
        &format!("{scale:+.2}"),
        what,
    );
}

/// A layers x heads grid of coloured cells with their values, labelled from 1; the
/// head clicked, if any.
fn head_grid_ui(ui: &mut Ui, spec: &GridSpec<'_>, picked: Option<HeadRef>) -> Option<HeadRef> {
    let mut clicked = None;
    egui::Grid::new(spec.id).spacing([3.0, 3.0]).show(ui, |ui| {
        ui.label("");
        for h in 0..spec.heads {
            ui.label(RichText::new(format!("head {}", h + 1)).small());
        }
        ui.end_row();
        for layer in 0..spec.layers {
            ui.label(RichText::new(format!("layer {}", layer + 1)).small());
            for h in 0..spec.heads {
                let head = HeadRef { layer, head: h };
                let value = spec.values.get(layer * spec.heads + h).copied().flatten();
                if cell_ui(ui, spec, head, value, picked == Some(head)) {
                    clicked = Some(head);
                }
            }
            ui.end_row();
        }
    });
    clicked
}

/// One cell; whether it was clicked.
fn cell_ui(
    ui: &mut Ui,
    spec: &GridSpec<'_>,
    head: HeadRef,
    value: Option<f64>,
    picked: bool,
) -> bool {
    let (rect, response) = ui.allocate_exact_size(CELL, Sense::click());
    let text = value.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    let fill = value.map_or(Color32::from_gray(60), |v| (spec.color)(v));
    let bright = u32::from(fill.r()) + u32::from(fill.g()) + u32::from(fill.b()) > 420;
    let ink = if bright {
        Color32::BLACK
    } else {
        Color32::WHITE
    };
    let painter = ui.painter();
    painter.rect_filled(rect, 2.0, fill);
    painter.text(
        rect.center(),
        Align2::CENTER_CENTER,
        &text,
        FontId::monospace(11.0),
        ink,
    );
    if picked {
        painter.rect_stroke(
            rect,
            2.0,
            Stroke::new(2.0, Color32::WHITE),
            egui::StrokeKind::Inside,
        );
    }
    let label = format!("{head} {}: {text}", spec.short);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    response.on_hover_text((spec.hover)(head, value)).clicked()
}
