//! The menu bar, drawn from [`UiCommand`]s (labels, shortcuts and hover text come
//! from there), plus the shipped examples and a typed-path fallback for hosts
//! without a native file dialog.

use std::path::PathBuf;

use egui::Ui;

use super::commands::UiCommand;
use super::examples::SHIPPED;
use super::pane::Pane;
use super::workbench::App;

/// The menu bar; commands chosen are carried out after it is drawn.
pub fn menu_ui(ui: &mut Ui, app: &mut App) {
    let mut chosen = Vec::new();
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            for command in UiCommand::FILE {
                if command.menu_button_ui(ui, true) {
                    chosen.push(command);
                    ui.close();
                }
            }
            ui.horizontal(|ui| {
                ui.label("PNG scale")
                    .on_hover_text("Pixels per point of a pane saved as PNG: 2 gives twice the screen's detail");
                for scale in super::figure::SCALES {
                    ui.selectable_value(&mut app.state.png_scale, scale, format!("{scale}x"));
                }
            });
            ui.separator();
            path_fallback_ui(ui, app);
            ui.separator();
            if UiCommand::Quit.menu_button_ui(ui, true) {
                chosen.push(UiCommand::Quit);
            }
        });
        ui.menu_button("Examples", |ui| {
            for example in SHIPPED {
                if ui.button(example.file).clicked() {
                    app.open_example(example.file);
                    ui.close();
                }
            }
        });
        ui.menu_button("Runs", |ui| {
            let active = app.runs.any_active();
            for command in UiCommand::RUNS {
                let enabled = match command {
                    UiCommand::RunAll => app.editor.is_valid(),
                    UiCommand::StopAll | UiCommand::Pause | UiCommand::Continue => active,
                    UiCommand::Fork => app.fork_target().is_ok(),
                    _ => true,
                };
                if command.menu_button_ui(ui, enabled) {
                    chosen.push(command);
                    ui.close();
                }
            }
            ui.separator();
            ui.horizontal(|ui| {
                let l = ui.label("Runs at once");
                ui.add(egui::DragValue::new(&mut app.state.parallel_runs).range(0..=64))
                    .labelled_by(l.id)
                    .on_hover_text(
                        "How many runs train side by side (0: from the cores and the memory estimate); takes effect at the next Run when nothing is training",
                    );
            });
        });
        ui.menu_button("View", |ui| {
            for pane in Pane::ALL {
                if UiCommand::Show(pane).menu_button_ui(ui, true) {
                    chosen.push(UiCommand::Show(pane));
                    ui.close();
                }
            }
        });
    });
    for command in chosen {
        app.run_command(command);
    }
}

/// Open or save a typed path (the native dialog needs xdg-desktop-portal or zenity).
fn path_fallback_ui(ui: &mut Ui, app: &mut App) {
    ui.label("Open or save a path:");
    ui.add(egui::TextEdit::singleline(&mut app.path_input).hint_text("path/to/experiment.toml"));
    ui.horizontal(|ui| {
        let path = PathBuf::from(app.path_input.trim());
        let has_path = !app.path_input.trim().is_empty();
        if ui
            .add_enabled(has_path, egui::Button::new("Open path"))
            .clicked()
        {
            app.open_path(&path);
            ui.close();
        }
        if ui
            .add_enabled(has_path, egui::Button::new("Save to path"))
            .clicked()
        {
            app.save_to(&path);
            ui.close();
        }
    });
}
