//! The command line: the arguments (`attnlab` with none opens the workbench, which
//! `main.rs` dispatches) and the headless subcommands that run experiment files.
//!
//! Shaped like rerun's `commands/`: one file per subcommand, each with its own
//! `Args` struct (the flags, their help and defaults) and the code that carries it
//! out; `report.rs` holds the result tables and the progress display of `run`.

mod ablate;
mod bench;
mod eval;
mod export;
mod head_args;
mod patch;
mod report;
mod run;
mod secret_arg;
mod serve;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use ablate::AblateArgs;
pub use bench::BenchArgs;
pub use eval::EvalArgs;
pub use export::ExportArgs;
pub use patch::PatchArgs;
pub use run::RunArgs;
pub use serve::ServeArgs;
pub use validate::ValidateArgs;

/// attnlab: see how self-attention captures long-range dependencies and what sparse
/// attention gains or loses.
#[derive(Debug, Parser)]
#[command(name = "attnlab", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; with none, the workbench window opens.
    #[command(subcommand)]
    pub command: Option<HeadlessCommand>,
    /// An experiment file to open in the window (default: the last one open).
    pub file: Option<PathBuf>,
}

/// The headless subcommands.
#[derive(Debug, Subcommand)]
pub enum HeadlessCommand {
    /// Train every run of one or more experiment files, recording each under --out.
    Run(RunArgs),
    /// Check experiment files without training; exit status 1 if any is invalid.
    Validate(ValidateArgs),
    /// Write figures and numbers of run records: metrics.csv, curves.svg, the last
    /// snapshot's attention as PNG and .npy, and summary.csv over all of them.
    Export(ExportArgs),
    /// Evaluate recorded runs' saved models on fresh seeded examples: one JSON line per
    /// run and dependency distance (`run`, `distance`, `accuracy`, `examples`).
    Eval(EvalArgs),
    /// Ablate heads of recorded runs' saved models (zeroed or replaced by their mean)
    /// and measure what the model loses: one JSON line per run, step and set of heads
    /// (`loss`, `accuracy`, `clean_loss`, `clean_accuracy`, accuracy by distance).
    Ablate(AblateArgs),
    /// Activation patching: heads' outputs on a clean input put into the model reading
    /// the task's corrupted input; one JSON line per run, step and set of heads with
    /// `recovered` (0: none of the clean answer's logit lead comes back, 1: all).
    Patch(PatchArgs),
    /// Serve this machine's best device to other machines (burn's remote backend):
    /// they train on it with `--backend remote:ADDR` or `train.backend = { remote =
    /// "ADDR" }`. Runs until stopped (Ctrl+C).
    Serve(ServeArgs),
    /// Time the reference workloads (docs/performance.md, "Reference workloads"); one JSON
    /// object per line on stdout.
    Bench(BenchArgs),
}

/// Runs a headless subcommand.
pub fn execute(command: HeadlessCommand) -> anyhow::Result<ExitCode> {
    match command {
        HeadlessCommand::Run(args) => args.execute(),
        HeadlessCommand::Validate(args) => args.execute(),
        HeadlessCommand::Export(args) => args.execute(),
        HeadlessCommand::Eval(args) => args.execute(),
        HeadlessCommand::Ablate(args) => args.execute(),
        HeadlessCommand::Patch(args) => args.execute(),
        HeadlessCommand::Serve(args) => args.execute(),
        HeadlessCommand::Bench(args) => args.execute(),
    }
}

/// The process's exit code for a front end's result; an error is printed once, here.
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The record folders named on the command line: record folders as given, and every
/// record under a folder of them.
/// `--batches` of eval, ablate and patch: 1 to [`crate::inspect::MAX_BATCHES`].
fn batches_arg() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new()
        .range(1..=crate::inspect::MAX_BATCHES as u64)
}

fn record_folders(dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for dir in dirs {
        if dir.join("summary.json").exists() {
            folders.push(dir.clone());
        } else {
            let found = crate::records::list_records(dir);
            anyhow::ensure!(
                !found.is_empty(),
                "{} is neither a run record nor a folder of records",
                dir.display()
            );
            folders.extend(found.into_iter().map(|r| r.dir));
        }
    }
    Ok(folders)
}

/// Runs `each` on every record folder `dirs` name, each on its own: a folder that
/// holds no record, an error or even a panic is reported on stderr (`attnlab
/// COMMAND: ...`, naming the record) and the others are done. Exit status 1 if any
/// failed.
fn each_record(
    command: &str,
    dirs: &[PathBuf],
    mut each: impl FnMut(&std::path::Path) -> Result<(), String>,
) -> ExitCode {
    let mut failed = 0;
    let mut folders = Vec::new();
    for dir in dirs {
        match record_folders(std::slice::from_ref(dir)) {
            Ok(found) => folders.extend(found),
            Err(e) => {
                eprintln!("attnlab {command}: {e:#}");
                failed += 1;
            }
        }
    }
    for folder in &folders {
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| each(folder)));
        let problem = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(panic) => format!(
                "{}: failed unexpectedly: {}",
                folder.display(),
                crate::trainer::panic_text(panic.as_ref())
            ),
        };
        eprintln!("attnlab {command}: {problem}");
        failed += 1;
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, HeadlessCommand};

    #[test]
    fn a_file_alone_opens_the_window_with_it_and_subcommands_still_parse() {
        let cli =
            Cli::try_parse_from(["attnlab", "experiments/dense_vs_local.toml"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(
            cli.file.as_deref(),
            Some(std::path::Path::new("experiments/dense_vs_local.toml"))
        );
        let cli = Cli::try_parse_from(["attnlab", "validate", "a.toml"]).expect("parses");
        assert!(matches!(cli.command, Some(HeadlessCommand::Validate(_))));
        assert!(cli.file.is_none());
        assert!(
            Cli::try_parse_from(["attnlab"])
                .expect("parses")
                .file
                .is_none()
        );
    }
}
