//! The experiment editor's panel: task, model, attention pattern(s) and training
//! settings of the base configuration or of one run, with errors marked at the field.
//! Every field's widget, label, range and hover text come from the field registry
//! (`config::fields`): a new field appears here without an edit to this file.

use egui::{ComboBox, DragValue, RichText, TextEdit, Ui};

use super::config_extras::{eval_lengths_ui, keep_checkpoints_ui, mixer_ui, outside_files_ui};
use super::config_target::target_ui;
use super::pattern_editor::pattern_ui;
use crate::app::view_model::editor::Editor;
use crate::app::widgets::{ERROR_COLOR, error_ui, field_error};
use crate::config::fields::{self, Access};
use crate::config::{BackendChoice, Field, Section, Settings};

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
    let chance = editor.chance_accuracy();
    let err = |field: &str| field_error(&errors, &format!("{prefix}{field}")).map(str::to_owned);

    egui::CollapsingHeader::new("Task")
        .default_open(true)
        .show(ui, |ui| {
            section_ui(ui, Section::Task, &mut settings, &prefix, chance, &err)
        });
    egui::CollapsingHeader::new("Model")
        .default_open(true)
        .show(ui, |ui| {
            section_ui(ui, Section::Model, &mut settings, &prefix, chance, &err)
        });
    egui::CollapsingHeader::new("Training")
        .default_open(true)
        .show(ui, |ui| {
            section_ui(ui, Section::Train, &mut settings, &prefix, chance, &err)
        });

    if editor.apply(settings) {
        changed = true;
    } else if changed {
        editor.validate();
    }

    if !editor.errors.0.is_empty() || !editor.outside_files().is_empty() {
        ui.separator();
    }
    if !editor.errors.0.is_empty() {
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
    outside_files_ui(ui, editor);
    changed
}

/// The fields of `section` that apply to `s` (the settings of the target `prefix`
/// names), each with the widget its registry entry calls for; structured fields
/// (patterns, the backend, the text file) get their own widgets in their place.
fn section_ui(
    ui: &mut Ui,
    section: Section,
    s: &mut Settings,
    prefix: &str,
    chance: f64,
    err: &dyn Fn(&str) -> Option<String>,
) {
    let layers_before = s.model.layers;
    for field in fields::in_section(section) {
        if !(field.applies)(s) {
            continue;
        }
        let error = err(field.path);
        match field.access {
            Access::Structured if is(field, &fields::FILE) => file_ui(ui, field, s, error),
            Access::Structured if is(field, &fields::LAYER_ATTENTION) => {
                patterns_ui(ui, s, layers_before, err);
            }
            Access::Structured if is(field, &fields::BACKEND) => backend_ui(ui, field, s),
            Access::Structured if is(field, &fields::MIXER) => {
                mixer_ui(ui, field, s);
                error_ui(ui, error.as_deref());
            }
            Access::Structured if is(field, &fields::KEEP_CHECKPOINTS) => {
                keep_checkpoints_ui(ui, field, s);
                error_ui(ui, error.as_deref());
            }
            Access::Structured if is(field, &fields::EVAL_LENGTHS) => {
                eval_lengths_ui(ui, field, prefix, s);
                error_ui(ui, error.as_deref());
            }
            Access::Structured if is(field, &fields::SEEDS) => {
                if !s.train.seeds.is_empty() {
                    ui.label(
                        RichText::new(format!("seeds {:?} (edit in the file)", s.train.seeds))
                            .small(),
                    )
                    .on_hover_text(field.help);
                }
                error_ui(ui, error.as_deref());
            }
            // The single pattern is drawn with the per-layer list.
            Access::Structured => {}
            _ => field_ui(ui, field, s, error.as_deref()),
        }
    }
    if section == Section::Task {
        ui.label(RichText::new(format!("chance accuracy {chance:.3}")).small());
    }
}

fn is(field: &Field, other: &'static Field) -> bool {
    std::ptr::eq(field, other)
}

/// The hover text of a field: what it does, its unit and what is allowed.
fn hover_text(field: &Field) -> String {
    let mut text = field.help.to_string();
    if !field.unit.is_empty() {
        text.push_str(&format!(" ({})", field.unit));
    }
    let allowed = field.allowed();
    if !allowed.is_empty() {
        text.push_str(&format!(". Allowed: {allowed}"));
    }
    if !field.bounds_why.is_empty() {
        text.push_str(&format!(" ({})", field.bounds_why));
    }
    text
}

/// One number, switch or choice, labelled and explained by its registry entry.
/// Dragging stays within the field's bounds, but a value loaded from a file is never
/// changed behind the user's back: one outside them stays and the validator marks it.
fn field_ui(ui: &mut Ui, field: &Field, s: &mut Settings, error: Option<&str>) {
    let hover = hover_text(field);
    match field.access {
        Access::Int { get, set, min, max } => {
            let mut value = get(s);
            let changed = number_ui(ui, field.label, &hover, &mut value, |d| {
                d.range(min..=max).speed(0.2)
            });
            if changed {
                set(s, value);
            }
        }
        Access::Float {
            get, set, min, max, ..
        } => {
            let mut value = get(s);
            let speed = (value.abs() * 0.01).max(1e-6);
            let changed = number_ui(ui, field.label, &hover, &mut value, |d| {
                d.speed(speed)
                    .range(min..=max)
                    .custom_formatter(|v, _| float_text(v))
                    .custom_parser(|t| t.trim().parse::<f64>().ok())
            });
            if changed {
                set(s, value);
            }
        }
        Access::Bool { get, set } => {
            let mut value = get(s);
            if ui
                .checkbox(&mut value, field.label)
                .on_hover_text(&hover)
                .changed()
            {
                set(s, value);
            }
        }
        Access::Choice { names, get, set } => {
            let mut chosen = get(s);
            ComboBox::from_label(field.label)
                .selected_text(chosen)
                .show_ui(ui, |ui| {
                    for name in names() {
                        ui.selectable_value(&mut chosen, name, name);
                    }
                })
                .response
                .on_hover_text(&hover);
            if chosen != get(s) {
                set(s, chosen);
            }
        }
        Access::Structured => {}
    }
    error_ui(ui, error);
}

/// `label [value]`, the value dragged as `drag` sets up; never clamps a value loaded
/// from a file. Returns whether it changed.
fn number_ui<N: egui::emath::Numeric>(
    ui: &mut Ui,
    label: &str,
    hover: &str,
    value: &mut N,
    drag: impl FnOnce(DragValue<'_>) -> DragValue<'_>,
) -> bool {
    ui.horizontal(|ui| {
        let l = ui.label(label).on_hover_text(hover);
        ui.add(drag(DragValue::new(value)).clamp_existing_to_range(false))
            .labelled_by(l.id)
            .on_hover_text(hover)
            .changed()
    })
    .inner
}

/// Small and large numbers in scientific notation (learning rates), others plainly.
fn float_text(v: f64) -> String {
    if v == 0.0 || (1e-2..1e3).contains(&v.abs()) {
        let plain = format!("{v:.3}");
        plain
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.1e}")
    }
}

fn file_ui(ui: &mut Ui, field: &Field, s: &mut Settings, error: Option<String>) {
    ui.horizontal(|ui| {
        let l = ui.label(field.label);
        ui.add(egui::TextEdit::singleline(&mut s.task.file).desired_width(180.0))
            .labelled_by(l.id)
            .on_hover_text(field.help);
    });
    error_ui(ui, error.as_deref());
}

/// The attention pattern of every layer, or one per layer.
fn patterns_ui(
    ui: &mut Ui,
    s: &mut Settings,
    layers_before: usize,
    err: &dyn Fn(&str) -> Option<String>,
) {
    let m = &mut s.model;
    let mut per_layer = !m.layer_attention.is_empty();
    if ui
        .checkbox(&mut per_layer, fields::LAYER_ATTENTION.label)
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
        pattern_ui(
            ui,
            fields::ATTENTION.label,
            &mut m.attention,
            fields::ATTENTION.path,
            err,
        );
    } else {
        error_ui(ui, err(fields::LAYER_ATTENTION.path).as_deref());
        for (l, p) in m.layer_attention.iter_mut().enumerate() {
            pattern_ui(
                ui,
                &format!("layer {}", l + 1),
                p,
                &format!("{}[{l}]", fields::LAYER_ATTENTION.path),
                err,
            );
        }
    }
}

fn backend_ui(ui: &mut Ui, field: &Field, s: &mut Settings) {
    let t = &mut s.train;
    ComboBox::from_label(field.label)
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
