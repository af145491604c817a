//! The editor panel's smaller widgets: the "Allow reading" checkboxes beside a corpus
//! refused for lying outside the experiment's folder, and `train.keep_checkpoints`.

use std::num::NonZeroUsize;

use egui::{ComboBox, DragValue, Ui};

use crate::app::view_model::editor::Editor;
use crate::config::{Field, KeepCheckpoints, Settings};

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
