//! `attnlab export`: figures and numbers of run records, written to a folder.

use std::path::PathBuf;
use std::process::ExitCode;

use super::record_folders;
use crate::records::RunRecord;

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
    /// Exports each record on its own: one that cannot be read or exported (even one
    /// whose export panics) is reported on stderr, naming it, and the others exported;
    /// exit status 1 if any failed. A destination inside a record is refused whole.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let mut failed = 0;
        let mut records = Vec::new();
        for dir in &self.records {
            let folders = match record_folders(std::slice::from_ref(dir)) {
                Ok(folders) => folders,
                Err(e) => {
                    eprintln!("attnlab export: {e:#}");
                    failed += 1;
                    continue;
                }
            };
            for folder in folders {
                let opened = std::panic::catch_unwind(|| RunRecord::open(&folder));
                match opened {
                    Ok(Ok(record)) => records.push(record),
                    Ok(Err(e)) => {
                        eprintln!(
                            "attnlab export: cannot read the record {}: {e}",
                            folder.display()
                        );
                        failed += 1;
                    }
                    Err(panic) => {
                        eprintln!(
                            "attnlab export: cannot read the record {}: {}",
                            folder.display(),
                            crate::trainer::panic_text(panic.as_ref())
                        );
                        failed += 1;
                    }
                }
            }
        }
        if !records.is_empty() {
            let exported = crate::export::export_each(&records, &self.to)?;
            for (dir, e) in &exported.failed {
                eprintln!("attnlab export: the record {}: {e}", dir.display());
            }
            failed += exported.failed.len();
            eprintln!(
                "exported {} record(s): {} file(s) under {}",
                records.len() - exported.failed.len(),
                exported.written.len(),
                self.to.display()
            );
        }
        Ok(if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}
