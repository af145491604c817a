//! The Interventions pane: which heads a run needs, not only what they attend to. At
//! the saved step nearest the attention scrubber's, every head is ablated alone
//! (accuracy drop) and patched alone from a clean into a corrupted input (recovery),
//! measured on a helper thread when Measure is pressed (`view_model::interventions`).
//! Beside the two layers x heads grids: the Heads pane's statistic at that step and its
//! rank correlation with the drop. Clicking a head measures its ablation at every saved
//! step, drawn on the loss's step axis next to its statistic over training.
//! Below, "Attention with heads ablated" (`ablated_attention`) redraws the probe's
//! attention with chosen heads zeroed.

use std::path::Path;

use egui::{Color32, ProgressBar, RichText, Ui};
use egui_plot::{Line, Plot, PlotPoints, Points, VLine};

use super::ablated_attention::{Section, ablated_attention_ui};
use super::attention::AttentionViewState;
use super::intervention_grids::grids_ui;
use crate::app::heatmap::TextureCache;
use crate::app::view_model::interventions::{
    InterventionsView, MAX_BATCHES, Progress, SEED, Wake, nearest_step,
};
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::{ERROR_COLOR, run_color};
use crate::attention::Stat;
use crate::config::{KeepCheckpoints, ModelKind};
use crate::inspect::AblationMode;
use crate::model::HeadRef;

/// The whole pane for `run`; `stat` is the Heads pane's statistic (shared with it);
/// `cache` holds the maps of "Attention with heads ablated".
pub fn interventions_ui(
    ui: &mut Ui,
    cache: &mut TextureCache,
    view: &mut InterventionsView,
    stat: &mut Stat,
    scrubber: &AttentionViewState,
    run: &RunView,
    wake: &Wake,
) {
    ui.horizontal(|ui| {
        ui.label(RichText::new(&run.name).strong());
        ui.label(run.settings.model.attention_label());
    });
    if run.settings.model.kind == ModelKind::Lstm {
        ui.label("An LSTM has no attention heads to ablate or patch.");
        return;
    }
    let Some(record) = run.record_dir.clone() else {
        ui.label(
            "This run has no record folder yet: its weights are saved once it trains \
             (train.checkpoint_every sets how often).",
        );
        return;
    };
    let training = !run.status.is_terminal();
    let Some(steps) = saved_steps_ui(ui, view, run, &record, training, wake) else {
        return;
    };
    let wanted = scrubber_step(run, scrubber);
    let Some(step) = nearest_step(&steps, wanted) else {
        ui.label(
            "No saved model yet: the record has no checkpoint (train.checkpoint_every sets \
             how often one is saved).",
        );
        return;
    };
    controls_ui(ui, view, run, &record, wanted, wake);
    step_note_ui(ui, run, &steps, step, wanted, training);
    grid_progress_ui(ui, view);
    let section = Section {
        record: &record,
        step,
        layers: run.settings.model.layers,
        heads: run.settings.model.heads,
    };
    let Some(grid) = view.grid(&record, step).cloned() else {
        ui.label("Not measured at this step with this mode and batch count: press Measure.");
        ablated_attention_ui(ui, cache, view, &section, wake);
        return;
    };
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if let Some(head) = grids_ui(ui, view.picked, stat, run, &grid) {
                pick_head(view, run, &record, &steps, head, wake);
            }
            let picked = view
                .picked
                .filter(|h| h.layer < grid.layers && h.head < grid.heads);
            if let Some(head) = picked {
                ui.separator();
                let picked = Picked {
                    record: &record,
                    head,
                    grid_step: grid.step,
                };
                head_over_training_ui(ui, view, *stat, run, picked, wake);
            }
            ui.separator();
            ablated_attention_ui(ui, cache, view, &section, wake);
        });
}

/// The steps `record` saved weights at (listed again as a `training` run saves
/// more), or `None` with what is said instead while they are read or when they
/// cannot be.
fn saved_steps_ui(
    ui: &mut Ui,
    view: &mut InterventionsView,
    run: &RunView,
    record: &Path,
    training: bool,
    wake: &Wake,
) -> Option<Vec<usize>> {
    view.refresh_steps(
        record,
        run.steps_done() * 2 + usize::from(!training),
        training,
        wake,
    );
    match view.steps(record) {
        None => {
            ui.label("Reading which steps the record saved...");
            None
        }
        Some(Err(e)) => {
            ui.label(RichText::new(e).color(ERROR_COLOR));
            None
        }
        Some(Ok(steps)) => Some(steps.clone()),
    }
}

/// Picks `head` (clicked in a grid) and measures its ablation at the saved `steps`
/// its curve lacks, unless that is already running.
fn pick_head(
    view: &mut InterventionsView,
    run: &RunView,
    record: &Path,
    steps: &[usize],
    head: HeadRef,
    wake: &Wake,
) {
    view.picked = Some(head);
    let curve = view.curve(record, head);
    let missing = steps.iter().any(|s| !curve.iter().any(|p| p.step == *s));
    let running = view.curve_progress().is_some_and(|(h, _)| h == head);
    if missing && !running {
        view.measure_curve(record.to_path_buf(), &run.name, head, wake);
    }
}

/// The grid measurement's progress (with Cancel) and its error.
fn grid_progress_ui(ui: &mut Ui, view: &mut InterventionsView) {
    if let Some(progress) = view.grid_progress().cloned()
        && progress_ui(ui, &progress)
    {
        view.cancel_grid();
    }
    if let Some(e) = view.grid_error() {
        ui.label(RichText::new(e).color(ERROR_COLOR));
    }
}

/// The attention scrubber's step (the Attention and Heads panes'); `None` before the
/// first snapshot.
fn scrubber_step(run: &RunView, scrubber: &AttentionViewState) -> Option<usize> {
    let last = run.snapshots.len().checked_sub(1)?;
    run.snapshots
        .get(scrubber.snapshot.unwrap_or(last).min(last))
        .map(|s| s.step)
}

fn controls_ui(
    ui: &mut Ui,
    view: &mut InterventionsView,
    run: &RunView,
    record: &Path,
    wanted: Option<usize>,
    wake: &Wake,
) {
    ui.horizontal(|ui| {
        let measuring = view.grid_progress().is_some();
        if ui
            .add_enabled(!measuring, egui::Button::new("Measure"))
            .on_hover_text(
                "Ablate each head alone, then patch each head alone, at the saved step nearest \
                 the scrubber's (on a helper thread)",
            )
            .on_disabled_hover_text("A measurement is running: wait, or cancel it")
            .clicked()
        {
            view.measure(record.to_path_buf(), &run.name, wanted, wake);
        }
        ui.label("ablation");
        ui.selectable_value(&mut view.mode, AblationMode::Zero, "zero")
            .on_hover_text("An ablated head's output is 0 (before the output projection)");
        ui.selectable_value(&mut view.mode, AblationMode::Mean, "mean")
            .on_hover_text(
                "An ablated head's output is its per-position mean over a reference batch",
            );
        let l = ui.label("batches");
        ui.add(egui::DragValue::new(&mut view.batches).range(1..=MAX_BATCHES))
            .labelled_by(l.id)
            .on_hover_text(format!(
                "Batches evaluated per head, each train.batch = {} examples (seed {SEED}, the \
                 same for every head)",
                run.settings.train.batch
            ));
    });
}

/// Which step's weights are tested, and how to keep more.
fn step_note_ui(
    ui: &mut Ui,
    run: &RunView,
    steps: &[usize],
    step: usize,
    wanted: Option<usize>,
    training: bool,
) {
    let from = match wanted {
        Some(w) if w == step => "the scrubber's step".to_string(),
        Some(w) => format!("the saved step nearest the scrubber's step {w}"),
        None => "the latest saved step".to_string(),
    };
    let listed = if steps.len() <= 12 {
        steps
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        let (first, last) = (steps[0], steps[steps.len() - 1]);
        format!("{} steps from {first} to {last}", steps.len())
    };
    let keep = match run.settings.train.keep_checkpoints {
        KeepCheckpoints::Latest => {
            "train.keep_checkpoints = \"all\" (or a count) keeps the weights of every \
             checkpoint, not only the latest"
        }
        _ => "train.keep_checkpoints sets how many checkpoints' weights are kept",
    };
    let mut text = format!("Weights of step {step} ({from}). Saved: {listed}; {keep}.");
    if training {
        text.push_str(" The run is training: later steps appear as it saves them.");
    }
    ui.label(RichText::new(text).small());
}

/// A measurement's progress bar; whether its Cancel was clicked.
fn progress_ui(ui: &mut Ui, progress: &Progress) -> bool {
    ui.horizontal(|ui| {
        ui.add(
            ProgressBar::new(progress.fraction)
                .desired_width(420.0)
                .text(format!("{}: {}", progress.run, progress.what)),
        );
        ui.button("Cancel").clicked()
    })
    .inner
}

/// A picked head of a record, and the step of the grid it was picked in.
struct Picked<'a> {
    record: &'a Path,
    head: HeadRef,
    grid_step: usize,
}

/// The picked head's ablation at every saved step beside its statistic over the
/// run's snapshots, both on the loss's step axis.
fn head_over_training_ui(
    ui: &mut Ui,
    view: &mut InterventionsView,
    stat: Stat,
    run: &RunView,
    picked: Picked<'_>,
    wake: &Wake,
) {
    let Picked {
        record,
        head,
        grid_step,
    } = picked;
    ui.horizontal(|ui| head_title_ui(ui, view, run, record, head, wake));
    if let Some(progress) = view.curve_progress().map(|(_, p)| p.clone())
        && progress_ui(ui, &progress)
    {
        view.cancel_curve();
    }
    if let Some(e) = view.curve_error() {
        ui.label(RichText::new(e).color(ERROR_COLOR));
    }
    let drops: Vec<[f64; 2]> = view
        .curve(record, head)
        .iter()
        .map(|p| [p.step as f64, p.drop()])
        .collect();
    if drops.is_empty() && view.curve_progress().is_none() {
        ui.label("Not measured with this mode and batch count: press Measure every saved step.");
    }
    let stats = stat_points(run, stat, head);
    let last = run.settings.train.steps as f64;
    let link = egui::Id::unique(("interventions-steps", run.id));
    let grid_line =
        || VLine::new("the grid's step", grid_step as f64).color(Color32::from_gray(160));
    ui.columns(2, |cols| {
        cols[0].label(format!(
            "accuracy drop with {head} ablated, at each saved step"
        ));
        step_plot(("intervention-drop", run.id), "accuracy drop", last, link).show(
            &mut cols[0],
            |plot| {
                let name = format!("{head} ablated");
                plot.line(Line::new(&name, PlotPoints::from(drops.clone())).color(run_color(1)));
                plot.points(Points::new(&name, drops).radius(3.0).color(run_color(1)));
                plot.vline(grid_line());
            },
        );
        cols[1].label(format!(
            "{} of {head} at each snapshot (Heads pane)",
            stat.name()
        ));
        step_plot(("intervention-statistic", run.id), stat.name(), last, link).show(
            &mut cols[1],
            |plot| {
                plot.line(Line::new(stat.name(), PlotPoints::from(stats)).color(run_color(0)));
                plot.vline(grid_line());
            },
        );
    });
}

/// The picked head's title and "Measure every saved step" (disabled while a curve
/// is measured).
fn head_title_ui(
    ui: &mut Ui,
    view: &mut InterventionsView,
    run: &RunView,
    record: &Path,
    head: HeadRef,
    wake: &Wake,
) {
    let (layer, number) = (head.layer + 1, head.head + 1);
    let title = format!("Head {head} (layer {layer}, head {number}) over training");
    ui.label(RichText::new(title).strong());
    if ui
        .add_enabled(
            view.curve_progress().is_none(),
            egui::Button::new("Measure every saved step"),
        )
        .on_hover_text(
            "Ablate this head alone at each saved step not measured yet (one evaluation \
             per step)",
        )
        .clicked()
    {
        view.measure_curve(record.to_path_buf(), &run.name, head, wake);
    }
}

/// `head`'s `stat` at each of the run's snapshots, as (step, value) points.
fn stat_points(run: &RunView, stat: Stat, head: HeadRef) -> Vec<[f64; 2]> {
    let index = head.layer * run.settings.model.heads + head.head;
    run.head_stats
        .iter()
        .filter_map(|(s, all)| {
            all.get(index)
                .and_then(|h| stat.of(h))
                .map(|v| [*s as f64, v])
        })
        .collect()
}

/// A chart over the run's steps (0 to `last`), its x axis linked by `link` to the
/// pane's other step charts.
fn step_plot<'a>(
    id_salt: impl egui::AsIdSalt,
    y_label: &str,
    last: f64,
    link: egui::Id,
) -> Plot<'a> {
    Plot::new(id_salt)
        .height(220.0)
        .x_axis_label("step")
        .y_axis_label(y_label)
        .include_x(0.0)
        .include_x(last)
        .include_y(0.0)
        .link_axis(link, [true, false])
        .allow_scroll(false)
}
