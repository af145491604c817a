//! `attnlab eval`: recorded runs' saved models evaluated on fresh seeded examples,
//! accuracy by dependency distance as JSON lines.

use std::path::PathBuf;
use std::process::ExitCode;

use super::each_record;
use crate::config::BackendChoice;

/// `attnlab eval` options.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Record folders, or folders of records (every record under them).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub records: Vec<PathBuf>,
    /// Seed of the examples (a different seed gives different examples).
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Batches evaluated, drawn and scored one at a time (each the run's
    /// `train.batch` examples; at most 100,000).
    #[arg(long, default_value_t = 8, value_parser = super::batches_arg())]
    pub batches: usize,
    /// Merge distances into buckets this wide (each named by its largest distance).
    #[arg(long, default_value_t = 1, value_name = "WIDTH")]
    pub bucket: usize,
    /// Evaluate at these sequence lengths too (comma-separated; default: the run's
    /// own). Learned positions are refused beyond the length they were trained at.
    #[arg(long = "seq-len", value_delimiter = ',', value_name = "N,...")]
    pub seq_len: Vec<usize>,
    /// auto, cpu or wgpu.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    pub backend: BackendChoice,
    /// Let a run's text task read this file (or the files under this folder)
    /// although it lies outside the record's folder and this machine did not allow it
    /// when the run trained (a record from elsewhere; repeatable).
    #[arg(long = "allow-file", value_name = "PATH")]
    pub allow_files: Vec<PathBuf>,
}

impl EvalArgs {
    /// Evaluates each record on its own: a damaged or hostile one (even one whose
    /// evaluation panics) is reported on stderr, naming it, and the others evaluated;
    /// exit status 1 if any failed.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let lengths: Vec<Option<usize>> = if self.seq_len.is_empty() {
            vec![None]
        } else {
            self.seq_len.iter().copied().map(Some).collect()
        };
        Ok(each_record("eval", &self.records, |folder| {
            let mut refused = Vec::new();
            for &length in &lengths {
                let e = match crate::inspect::evaluate_record(
                    folder,
                    self.seed,
                    self.batches,
                    self.backend,
                    length,
                    &self.allow_files,
                ) {
                    Ok(e) => e,
                    // One length refused (learned positions, a task that does not
                    // fit): the other lengths are still evaluated.
                    Err(e) if lengths.len() > 1 => {
                        refused.push(e.to_string());
                        continue;
                    }
                    Err(e) => return Err(e.to_string()),
                };
                for c in e.by_distance.bucketed(self.bucket) {
                    let line = serde_json::json!({
                        "run": e.run,
                        "record": folder.file_name().map(|n| n.to_string_lossy()),
                        "step": e.step,
                        "seq_len": e.seq_len,
                        "distance": c.distance,
                        "accuracy": c.accuracy(),
                        "examples": c.total,
                    });
                    println!("{line}");
                }
                eprintln!(
                    "{}: step {}, seq_len {}, accuracy {:.4}, loss {:.4}",
                    e.run, e.step, e.seq_len, e.accuracy, e.loss
                );
            }
            if refused.is_empty() {
                Ok(())
            } else {
                Err(refused.join("; "))
            }
        }))
    }
}
