//! The editor panel's smaller widgets: the "Allow reading" checkboxes beside a corpus
//! refused for lying outside the experiment's folder, `train.keep_checkpoints` and
//! `train.eval_lengths`.

use std::num::NonZeroUsize;

use egui::{ComboBox, DragValue, RichText, TextEdit, Ui};

use crate::app::view_model::editor::{Editor, format_lengths, parse_lengths};
use crate::config::{Field, KeepCheckpoints, Mixer, Settings};

/// A checkbox beside each text file outside the experiment's folder: ticked, the
/// file may be read, for this session only (the window's `--allow-file`; the
/// experiment itself never says so, and nothing is saved).
pub(super) fn outside_files_ui(ui: &mut Ui, editor: &mut Editor) {
    for (file, allowed) in editor.outside_files().to_vec() {
        let mut allow = allowed;
        let label = format!("Allow reading {} (this session only)", file.display());
        if ui
            .checkbox(&mut allow, label)
            .on_hover_text(
                "This file is not in the experiment's folder. An experiment from \
                 someone else can name any file you can read (and, with a remote \
                 backend, send its text to that server): allow it only if you meant \
                 this experiment to read it. Nothing is saved: the next session asks \
                 again.",
            )
            .changed()
        {
            editor.set_allowed(&file, allow);
        }
    }
}

/// `train.keep_checkpoints`: latest only, all, or the latest N models.
pub(super) fn keep_checkpoints_ui(ui: &mut Ui, field: &Field, s: &mut Settings) {
    let keep = &mut s.train.keep_checkpoints;
    ui.horizontal(|ui| {
        let label = match keep {
            KeepCheckpoints::Latest => "latest only".to_string(),
            KeepCheckpoints::All => "every checkpoint".to_string(),
            KeepCheckpoints::Last(n) => format!("the last {n}"),
        };
        ComboBox::from_label(field.label)
            .selected_text(label)
            .show_ui(ui, |ui| {
                ui.selectable_value(keep, KeepCheckpoints::Latest, "latest only");
                ui.selectable_value(keep, KeepCheckpoints::All, "every checkpoint");
                if ui
                    .selectable_label(matches!(keep, KeepCheckpoints::Last(_)), "the last N")
                    .clicked()
                    && !matches!(keep, KeepCheckpoints::Last(_))
                {
                    *keep = KeepCheckpoints::Last(NonZeroUsize::MIN.saturating_add(4));
                }
            })
            .response
            .on_hover_text(field.help);
        if let KeepCheckpoints::Last(n) = keep {
            let mut count = n.get();
            if ui
                .add(DragValue::new(&mut count).range(1..=1_000_000))
                .changed()
                && let Some(count) = NonZeroUsize::new(count)
            {
                *n = count;
            }
        }
    });
}

/// `train.eval_lengths` as text, `128, 256, 512`: while typed, text that is not a list
/// of whole numbers stays as typed and says why, and the settings keep their last
/// good list; otherwise the settings show through. Text being typed belongs to its
/// target (`prefix`: the base or a run), so it does not follow the user to another.
pub(super) fn eval_lengths_ui(ui: &mut Ui, field: &Field, prefix: &str, s: &mut Settings) {
    let id = ui.make_persistent_id((prefix, field.path));
    let current = format_lengths(&s.train.eval_lengths);
    let mut problem = None;
    ui.horizontal(|ui| {
        let mut text = ui
            .data_mut(|d| d.get_temp::<String>(id))
            .unwrap_or_else(|| current.clone());
        let response = ui.add(
            TextEdit::singleline(&mut text)
                .desired_width(110.0)
                .hint_text("e.g. 128, 256"),
        );
        ui.label(field.label).on_hover_text(field.help);
        match parse_lengths(&text) {
            Ok(lengths) if response.changed() => s.train.eval_lengths = lengths,
            Ok(_) => {}
            Err(e) => problem = Some(e),
        }
        if response.has_focus() || problem.is_some() {
            ui.data_mut(|d| d.insert_temp(id, text));
        } else {
            ui.data_mut(|d| d.remove::<String>(id));
        }
    });
    if let Some(p) = problem {
        ui.label(RichText::new(p).small().color(ui.visuals().error_fg_color));
    }
}

/// `model.mixer`: the token mixer of every layer and its parameters; a per-layer list
/// (`model.layer_mixers`) is shown, and edited in the file.
pub(super) fn mixer_ui(ui: &mut Ui, field: &Field, s: &mut Settings) {
    let m = &mut s.model;
    if !m.layer_mixers.is_empty() {
        let names: Vec<String> = m.layer_mixers.iter().map(Mixer::label).collect();
        ui.label(
            RichText::new(format!(
                "mixers per layer: {} (edit in the file)",
                names.join(", ")
            ))
            .small(),
        )
        .on_hover_text(field.help);
        return;
    }
    ui.horizontal(|ui| {
        ComboBox::from_id_salt("model.mixer")
            .selected_text(m.mixer.name())
            .show_ui(ui, |ui| {
                for kind in Mixer::KINDS {
                    if ui.selectable_label(m.mixer.name() == kind, kind).clicked()
                        && m.mixer.name() != kind
                        && let Some(chosen) = Mixer::of_kind(kind)
                    {
                        m.mixer = chosen;
                    }
                }
            })
            .response
            .on_hover_text(field.help);
        ui.label(field.label);
    });
    ui.horizontal(|ui| match &mut m.mixer {
        Mixer::Based {
            feature_dim,
            window,
        } => {
            ui.label("feature_dim");
            ui.add(DragValue::new(feature_dim).range(1..=crate::config::MAX_FEATURE_DIM));
            ui.label("window");
            ui.add(DragValue::new(window).range(1..=4096));
        }
        Mixer::Conv { short } => {
            ui.checkbox(short, "short conv (3 taps)");
        }
        Mixer::Ssm { state } => {
            ui.label("state N");
            ui.add(DragValue::new(state).range(1..=crate::config::MAX_SSM_STATE));
        }
        Mixer::Attention | Mixer::Linear => {}
    });
}
