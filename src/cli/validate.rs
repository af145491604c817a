//! `attnlab validate`: checks experiment files without training.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Experiment, estimate, human_bytes, memory_limit};

/// `attnlab validate` options.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Experiment files (TOML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Let a text task read this file (or the files under this folder) although it
    /// lies outside the experiment file's folder (repeatable).
    #[arg(long = "allow-file", value_name = "PATH")]
    pub allow_files: Vec<PathBuf>,
}

impl ValidateArgs {
    /// Prints the memory this process can get and the limit that sets it, then `ok`
    /// (with each run's estimated peak memory) or `invalid` (with every error) per
    /// file; exit status 1 if any is invalid.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        match memory_limit() {
            Some(limit) => println!("available: {} ({})", human_bytes(limit.bytes), limit.source),
            None => println!("available: unknown (runs are not checked against memory)"),
        }
        let mut ok = true;
        for file in &self.files {
            match Experiment::load_and_plan_allowing(file, &self.allow_files) {
                Ok((experiment, plans)) => {
                    println!(
                        "ok      {}: \"{}\", {} run(s)",
                        file.display(),
                        experiment.name,
                        plans.len()
                    );
                    let width = plans.iter().map(|p| p.name().chars().count()).max();
                    for plan in &plans {
                        println!(
                            "  {:<width$}  ~{} peak memory",
                            plan.name(),
                            human_bytes(estimate(plan.settings()).total()),
                            width = width.unwrap_or(0)
                        );
                    }
                }
                Err(errors) => {
                    ok = false;
                    println!("invalid {}", file.display());
                    // Capped as ConfigErrors' Display caps them: a hostile file may
                    // hold thousands of problems.
                    for line in errors.to_string().lines() {
                        println!("  {line}");
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
