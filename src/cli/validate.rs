//! `attnlab validate`: checks experiment files without training.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Experiment;

/// `attnlab validate` options.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Experiment files (TOML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

impl ValidateArgs {
    /// Prints `ok` or `invalid` (with every error) per file; exit status 1 if any is
    /// invalid.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let mut ok = true;
        for file in &self.files {
            match Experiment::load_and_plan(file) {
                Ok((experiment, plans)) => {
                    println!(
                        "ok      {}: \"{}\", {} run(s)",
                        file.display(),
                        experiment.name,
                        plans.len()
                    );
                }
                Err(errors) => {
                    ok = false;
                    println!("invalid {}", file.display());
                    for e in &errors.0 {
                        println!("  {e}");
                    }
                }
            }
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
