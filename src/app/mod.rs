//! The workbench window (eframe/egui): edit an experiment, run it on the background
//! trainer, watch curves and attention maps live, compare runs, reopen past runs.
//!
//! `app` holds the frame loop and owns every piece of state; each panel is a file
//! with a `*_ui` function that draws from (and edits) the state it is given. Nothing
//! here is shared with the trainer thread except its channels.

mod attention_view;
mod compare;
mod config_panel;
mod cost_view;
mod examples;
mod files;
mod heatmap;
mod loss_plot;
mod mask_preview;
mod runs;
mod runs_panel;
mod state;
mod widgets;
mod workbench;

use std::process::ExitCode;

pub use config_panel::{Editor, Target};
pub use examples::{EXAMPLES, Example};
pub use files::{FileChoice, FileRequest};
pub use runs::{RunView, Runs, Source};
pub use state::PersistedState;
pub use workbench::{App, Pane};

/// Opens the workbench window (with the experiment `file`, if given) and returns when
/// it is closed.
pub fn run(file: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("attnlab")
            .with_app_id("attnlab")
            .with_inner_size([1500.0, 950.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "attnlab",
        options,
        Box::new(move |cc| {
            let mut app = App::new(cc);
            if let Some(path) = &file {
                app.open_path(path);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
