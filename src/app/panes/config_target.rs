//! The editor panel's target: which settings are edited (the base or one run), and
//! the run list (duplicate, expand the sweep, remove, rename, reset to the base).

use egui::{ComboBox, RichText, TextEdit, Ui};

use crate::app::view_model::editor::{Editor, Target};
use crate::app::widgets::{error_ui, field_error};

/// Which settings are edited, and the run list (add, duplicate, remove, rename).
/// Returns whether the experiment changed.
pub(super) fn target_ui(ui: &mut Ui, editor: &mut Editor) -> bool {
    let names: Vec<String> = editor
        .experiment
        .runs
        .iter()
        .map(|r| r.name.clone())
        .collect();
    target_choice_ui(ui, &mut editor.target, &names);
    let mut changed = ui.horizontal(|ui| run_list_ui(ui, editor)).inner;
    match editor.target {
        Target::Run(i) if i < editor.experiment.runs.len() => changed |= run_ui(ui, editor, i),
        _ => {
            ui.label(
                RichText::new(format!(
                    "{} run(s). Changes here apply to every run that does not set the field itself.",
                    names.len()
                ))
                .small(),
            );
        }
    }
    changed
}

/// "Editing": the base or one of the runs (`names`).
fn target_choice_ui(ui: &mut Ui, target: &mut Target, names: &[String]) {
    let selected = match *target {
        Target::Base => "all runs (base)".to_string(),
        Target::Run(i) => names.get(i).cloned().unwrap_or_default(),
    };
    ComboBox::from_label("Editing")
        .selected_text(selected)
        .width(180.0)
        .show_ui(ui, |ui| {
            ui.selectable_value(target, Target::Base, "all runs (base)");
            for (i, name) in names.iter().enumerate() {
                ui.selectable_value(target, Target::Run(i), name);
            }
        });
}

/// Duplicate run, Expand sweep (when there is one, or several seeds) and Remove run
/// (of a run target). Returns whether one changed the experiment.
fn run_list_ui(ui: &mut Ui, editor: &mut Editor) -> bool {
    let mut changed = false;
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
            .on_hover_text(
                "Write the sweep and seeds out as plain runs, to see and edit each before training",
            )
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
    changed
}

/// Run `i`'s name (and its error), and the fields it sets itself with "Reset to
/// base". Returns whether the experiment changed.
fn run_ui(ui: &mut Ui, editor: &mut Editor, i: usize) -> bool {
    let mut changed = run_name_ui(ui, editor, i);
    error_ui(ui, field_error(&editor.errors, &format!("runs[{i}].name")));
    let own = editor.experiment.runs[i].overridden_fields();
    if overrides_ui(ui, &own) {
        editor.reset_run(i);
        changed = true;
    }
    changed
}

/// "Run name" of run `i`; the published figure follows a rename. Returns whether
/// the name changed.
fn run_name_ui(ui: &mut Ui, editor: &mut Editor, i: usize) -> bool {
    let run = &mut editor.experiment.runs[i];
    let l = ui.label("Run name");
    let before = run.name.clone();
    let changed = ui
        .add(TextEdit::singleline(&mut run.name))
        .labelled_by(l.id)
        .changed();
    // The published figure follows the run's name.
    if run.name != before
        && let Some(reference) = &mut editor.experiment.reference
    {
        reference.rename_run(&before, &[&run.name]);
    }
    changed
}

/// The fields a run sets itself (`own`), with "Reset to base" when there are any.
/// Returns whether Reset was clicked.
fn overrides_ui(ui: &mut Ui, own: &[String]) -> bool {
    ui.horizontal_wrapped(|ui| {
        if own.is_empty() {
            ui.label(RichText::new("Sets nothing itself: everything comes from the base.").small());
            false
        } else {
            ui.label(RichText::new(format!("Sets itself: {}", own.join(", "))).small())
                .on_hover_text("Base edits do not reach these fields of this run");
            ui.small_button("Reset to base")
                .on_hover_text("Inherit every field from the base again")
                .clicked()
        }
    })
    .inner
}
