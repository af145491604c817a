//! `attnlab export`: figures and numbers of run records, written to a folder.

use std::path::PathBuf;
use std::process::ExitCode;

use super::named_records;

/// `attnlab export` options.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Record folders, or folders of records (every record under them).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub records: Vec<PathBuf>,
    /// Where to write (one folder per record inside).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

impl ExportArgs {
    /// Reads every record named (all or none), then writes their exports.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let records = named_records(&self.records)?;
        let written = crate::export::export_records(&records, &self.to)?;
        eprintln!(
            "exported {} record(s): {} file(s) under {}",
            records.len(),
            written.len(),
            self.to.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
