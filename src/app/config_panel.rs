//! The experiment editor's panel: task, model, attention pattern(s) and training
//! settings of the base configuration or of one run, with errors marked at the field.

use egui::{ComboBox, RichText, TextEdit, Ui};

use super::editor::{Editor, Target};
use super::pattern_editor::pattern_ui;
use super::widgets::{ERROR_COLOR, error_ui, f64_ui, field_error, usize_ui};
use crate::config::{BackendChoice, ModelKind, Settings, TaskKind};

/// The whole editor. Returns whether the experiment changed.
pub fn editor_ui(ui: &mut Ui, editor: &mut Editor) -> bool {
    let mut changed = false;
    let l = ui.label("Experiment name");
    changed |= ui
        .add(TextEdit::singleline(&mut editor.experiment.name).desired_width(f32::INFINITY))
        .labelled_by(l.id)
        .changed();
    error_ui(ui, field_error(&editor.errors, "name"));

    ui.separator();
    changed |= target_ui(ui, editor);
    ui.separator();

    let prefix = editor.prefix();
    let mut settings = editor.settings().clone();
    let errors = editor.errors.clone();
    let err = |field: &str| field_error(&errors, &format!("{prefix}{field}")).map(str::to_owned);

    egui::CollapsingHeader::new("Task")
        .default_open(true)
        .show(ui, |ui| task_ui(ui, &mut settings, &err));
    egui::CollapsingHeader::new("Model")
        .default_open(true)
        .show(ui, |ui| model_ui(ui, &mut settings, &err));
    egui::CollapsingHeader::new("Training")
        .default_open(true)
        .show(ui, |ui| train_ui(ui, &mut settings, &err));

    if editor.apply(settings) {
        changed = true;
    } else if changed {
        editor.validate();
    }

    if !editor.errors.0.is_empty() {
        ui.separator();
        ui.label(
            RichText::new(format!(
                "{} problem(s) to fix before running:",
                editor.errors.0.len()
            ))
            .color(ERROR_COLOR),
        );
        for e in &editor.errors.0 {
            ui.label(RichText::new(e.to_string()).color(ERROR_COLOR).small());
        }
    }
    changed
}

/// Which settings are edited, and the run list (add, duplicate, remove, rename).
fn target_ui(ui: &mut Ui, editor: &mut Editor) -> bool {
    let mut changed = false;
    let names: Vec<String> = editor
        .experiment
        .runs
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let selected = match editor.target {
        Target::Base => "all runs (base)".to_string(),
        Target::Run(i) => names.get(i).cloned().unwrap_or_default(),
    };
    ComboBox::from_label("Editing")
        .selected_text(selected)
        .width(180.0)
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut editor.target, Target::Base, "all runs (base)");
            for (i, name) in names.iter().enumerate() {
                ui.selectable_value(&mut editor.target, Target::Run(i), name);
            }
        });
    ui.horizontal(|ui| {
        if ui
            .button("Duplicate run")
            .on_hover_text("Add a copy of this run to vary it")
            .clicked()
        {
            editor.duplicate_run();
            changed = true;
        }
        let e = &editor.experiment;
        if (!e.sweep.is_empty() || e.base.train.seeds.len() > 1)
            && ui
                .button("Expand sweep")
                .on_hover_text("Write the sweep and seeds out as plain runs, to see and edit each before training")
                .clicked()
        {
            editor.expand_sweep();
            changed = true;
        }
        if let Target::Run(i) = editor.target {
            let can_remove = editor.experiment.runs.len() > 1;
            if ui
                .add_enabled(can_remove, egui::Button::new("Remove run"))
                .on_disabled_hover_text("An experiment needs at least one run")
                .clicked()
            {
                editor.remove_run(i);
                changed = true;
            }
        }
    });
    if let Target::Run(i) = editor.target
        && let Some(run) = editor.experiment.runs.get_mut(i)
    {
        let l = ui.label("Run name");
        changed |= ui
            .add(TextEdit::singleline(&mut run.name))
            .labelled_by(l.id)
            .changed();
        error_ui(ui, field_error(&editor.errors, &format!("runs[{i}].name")));
        let own = run.overridden_fields();
        let reset = ui
            .horizontal_wrapped(|ui| {
                if own.is_empty() {
                    ui.label(
                        RichText::new("Sets nothing itself: everything comes from the base.")
                            .small(),
                    );
                    false
                } else {
                    ui.label(RichText::new(format!("Sets itself: {}", own.join(", "))).small())
                        .on_hover_text("Base edits do not reach these fields of this run");
                    ui.small_button("Reset to base")
                        .on_hover_text("Inherit every field from the base again")
                        .clicked()
                }
            })
            .inner;
        if reset {
            editor.reset_run(i);
            changed = true;
        }
    } else {
        ui.label(
            RichText::new(format!(
                "{} run(s). Changes here apply to every run that does not set the field itself.",
                names.len()
            ))
            .small(),
        );
    }
    changed
}

fn task_ui(ui: &mut Ui, s: &mut Settings, err: &dyn Fn(&str) -> Option<String>) {
    let t = &mut s.task;
    ComboBox::from_label("task kind")
        .selected_text(t.kind.name())
        .show_ui(ui, |ui| {
            for kind in TaskKind::ALL {
                ui.selectable_value(&mut t.kind, kind, kind.name());
            }
        });
    usize_ui(
        ui,
        "seq_len",
        &mut t.seq_len,
        8192,
        err("task.seq_len").as_deref(),
    );
    usize_ui(
        ui,
        "vocab",
        &mut t.vocab,
        4096,
        err("task.vocab").as_deref(),
    );
    match t.kind {
        TaskKind::Recall | TaskKind::Induction => {
            usize_ui(
                ui,
                "distance",
                &mut t.distance,
                8192,
                err("task.distance").as_deref(),
            );
        }
        TaskKind::Mqar => {
            usize_ui(
                ui,
                "pairs",
                &mut t.pairs,
                4096,
                err("task.pairs").as_deref(),
            );
        }
        TaskKind::SelectiveCopy => {
            usize_ui(
                ui,
                "tokens",
                &mut t.tokens,
                4096,
                err("task.tokens").as_deref(),
            );
        }
        TaskKind::Text => {
            ui.horizontal(|ui| {
                let l = ui.label("file");
                ui.add(egui::TextEdit::singleline(&mut t.file).desired_width(180.0))
                    .labelled_by(l.id)
                    .on_hover_text(format!(
                        "A UTF-8 text file, relative to the experiment file; {} is built in",
                        crate::tasks::SHIPPED_NAME
                    ));
            });
            if let Some(e) = err("task.file") {
                ui.label(RichText::new(e).color(super::widgets::ERROR_COLOR).small());
            }
        }
    }
    ui.label(RichText::new(format!("chance accuracy {:.3}", t.chance_accuracy())).small());
}

fn model_ui(ui: &mut Ui, s: &mut Settings, err: &dyn Fn(&str) -> Option<String>) {
    let m = &mut s.model;
    ComboBox::from_label("model kind")
        .selected_text(match m.kind {
            ModelKind::Transformer => "transformer",
            ModelKind::Lstm => "lstm",
        })
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut m.kind, ModelKind::Transformer, "transformer");
            ui.selectable_value(&mut m.kind, ModelKind::Lstm, "lstm");
        });
    let layers_before = m.layers;
    usize_ui(
        ui,
        "layers",
        &mut m.layers,
        48,
        err("model.layers").as_deref(),
    );
    usize_ui(
        ui,
        "d_model",
        &mut m.d_model,
        4096,
        err("model.d_model").as_deref(),
    );
    if m.kind == ModelKind::Lstm {
        return;
    }
    usize_ui(ui, "heads", &mut m.heads, 64, err("model.heads").as_deref());
    usize_ui(ui, "d_ff", &mut m.d_ff, 16384, err("model.d_ff").as_deref());
    ui.checkbox(&mut m.causal, "causal");

    let mut per_layer = !m.layer_attention.is_empty();
    if ui
        .checkbox(&mut per_layer, "a pattern per layer")
        .on_hover_text("Give each layer its own pattern (e.g. local below, dense on top)")
        .changed()
    {
        m.layer_attention = if per_layer {
            vec![m.attention.clone(); m.layers]
        } else {
            Vec::new()
        };
    }
    // The list follows the layer count only when the user changes the count here: a
    // loaded file's list is never rewritten behind the user's back (a mismatch is
    // marked by the validator instead).
    if m.layers != layers_before && !m.layer_attention.is_empty() {
        m.layer_attention
            .resize(m.layers.max(1), m.attention.clone());
    }
    if m.layer_attention.is_empty() {
        pattern_ui(ui, "attention", &mut m.attention, "model.attention", err);
    } else {
        error_ui(ui, err("model.layer_attention").as_deref());
        for (l, p) in m.layer_attention.iter_mut().enumerate() {
            pattern_ui(
                ui,
                &format!("layer {}", l + 1),
                p,
                &format!("model.layer_attention[{l}]"),
                err,
            );
        }
    }
}

fn train_ui(ui: &mut Ui, s: &mut Settings, err: &dyn Fn(&str) -> Option<String>) {
    let t = &mut s.train;
    usize_ui(
        ui,
        "steps",
        &mut t.steps,
        10_000_000,
        err("train.steps").as_deref(),
    );
    usize_ui(
        ui,
        "batch",
        &mut t.batch,
        4096,
        err("train.batch").as_deref(),
    );
    f64_ui(ui, "lr", &mut t.lr, err("train.lr").as_deref());
    let mut seed = usize::try_from(t.seed).unwrap_or(usize::MAX);
    if usize_ui(
        ui,
        "seed",
        &mut seed,
        i64::MAX as usize,
        err("train.seed").as_deref(),
    )
    .changed()
    {
        t.seed = seed as u64;
    }
    usize_ui(
        ui,
        "eval_every",
        &mut t.eval_every,
        10_000_000,
        err("train.eval_every").as_deref(),
    );
    usize_ui(
        ui,
        "eval_batches",
        &mut t.eval_batches,
        1000,
        err("train.eval_batches").as_deref(),
    );
    usize_ui(
        ui,
        "snapshot_every",
        &mut t.snapshot_every,
        10_000_000,
        err("train.snapshot_every").as_deref(),
    );
    usize_ui(
        ui,
        "checkpoint_every",
        &mut t.checkpoint_every,
        10_000_000,
        err("train.checkpoint_every").as_deref(),
    );
    ComboBox::from_label("backend")
        .selected_text(t.backend.label())
        .show_ui(ui, |ui| {
            for b in BackendChoice::ALL {
                ui.selectable_value(&mut t.backend, b.into(), b.name());
            }
            if let crate::config::BackendSetting::Remote { .. } = t.backend {
                let (label, current) = (t.backend.label(), t.backend.clone());
                ui.selectable_value(&mut t.backend, current, label);
            }
        })
        .response
        .on_hover_text("Remote servers: write train.backend = { remote = \"ws://host:port\" } in the file, or add servers under Devices");
}
