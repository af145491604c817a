//! The workbench window (eframe/egui).

use std::process::ExitCode;

/// Opens the workbench window.
pub fn run() -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "the workbench window is not part of this build yet; use `attnlab run FILE` or `attnlab validate FILE`"
    )
}
