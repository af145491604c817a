//! Modal dialogs: a file that could not be opened, "discard unsaved changes?", and
//! the fork dialog (`fork_modal`).

use egui::{RichText, Ui};

use super::widgets::ERROR_COLOR;
use super::workbench::{App, Pending};

/// Draws whichever modal is waiting.
pub fn modals_ui(ui: &mut Ui, app: &mut App) {
    if let Some(error) = app.load_error.clone() {
        let modal = egui::Modal::new(egui::Id::unique("load-error")).show(ui.ctx(), |ui| {
            ui.set_max_width(560.0);
            ui.heading("This file could not be opened");
            ui.label(RichText::new(&error).color(ERROR_COLOR).monospace());
            ui.label("The experiment you were editing is unchanged.");
            ui.button("OK").clicked()
        });
        if modal.inner || modal.should_close() {
            app.load_error = None;
        }
    }
    if app.pending.is_some() {
        let modal = egui::Modal::new(egui::Id::unique("discard")).show(ui.ctx(), |ui| {
            ui.heading("Discard unsaved changes?");
            ui.label("The experiment has edits that are not saved to a file.");
            ui.horizontal(|ui| {
                if ui.button("Discard changes").clicked() {
                    return Some(true);
                }
                if ui.button("Cancel").clicked() {
                    return Some(false);
                }
                None
            })
            .inner
        });
        let decision = modal.inner.or(modal.should_close().then_some(false));
        match decision {
            Some(true) => {
                if let Some(Pending::Load { experiment, path }) = app.pending.take() {
                    app.load(*experiment, path);
                }
            }
            Some(false) => app.pending = None,
            None => {}
        }
    }
    super::fork_modal::fork_modal_ui(ui, app);
}
