//! The workbench window (eframe/egui): edit an experiment, run it on the background
//! trainer, watch curves and attention maps live, compare runs, reopen past runs.
//!
//! The shell follows rerun's viewer: `workbench` holds the state, `frame` the order
//! of one frame, `actions` what the user can do (what the menus, shortcuts and tests
//! call), `commands` every command's label, shortcut and hover text, `pane` the list
//! of tabs, `tiles` their layout, `menu`, `shell` and `modals` the window's frame.
//! `panes/` holds one file per pane or panel, each with a `*_ui` function that draws
//! from (and edits) the state it is given; `view_model/` the state and numbers they
//! draw, without egui. `fork` and `fork_modal` are "Fork from here". Beside them,
//! work off the UI thread: `background` (records), `files` (dialogs),
//! `server_probes`, `figure` (a pane drawn off screen). Nothing here is shared with
//! the trainer thread except its channels.

mod actions;
mod background;
mod commands;
mod examples;
mod figure;
mod files;
mod fork;
mod fork_modal;
mod frame;
mod frame_stats;
mod heatmap;
mod menu;
mod modals;
mod pane;
mod panes;
mod past_runs;
mod server_probes;
mod shell;
mod state;
mod tiles;
mod trainer_link;
mod view_model;
mod widgets;
mod workbench;

use std::process::ExitCode;

pub use commands::UiCommand;
pub use examples::{SHIPPED, ShippedExperiment};
pub use files::{FileChoice, FileRequest};
pub use pane::Pane;
pub use state::PersistedState;
pub use view_model::editor::{Editor, Target};
pub use view_model::interventions::{CurvePoint, HeadGrid, InterventionsView, Progress};
pub use view_model::run_list::RunViews;
pub use view_model::run_views::{MAX_VIEW_SNAPSHOT_BYTES, RunView, Source};
pub use view_model::sweep::{
    Cell, CostAxis, ParetoPoint, SweepMetric, SweepTable, pareto, sweep_table, table_csv,
};
pub use workbench::App;

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
