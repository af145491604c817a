//! `attnlab bench`: the reference workloads (docs/performance.md, "Reference workloads"), each
//! configuration timed in a child process of its own (so its peak memory is its
//! own), one JSON line per configuration on stdout.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;

use crate::bench::{Workload, bench_mixer, bench_patterns, default_pattern, run_one};
use crate::config::BackendChoice;

/// `attnlab bench` options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// w1: training step; w2: one attention layer; overhead: trainer vs bare loop.
    #[arg(long, value_enum, num_args = 1.., default_values_t = [Workload::W1, Workload::W2])]
    pub workload: Vec<Workload>,
    /// cpu (default) or wgpu.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    pub backend: BackendChoice,
    /// Sequence lengths (default: W1 256 1024; W2 256 ... 4096).
    #[arg(long, num_args = 1..)]
    pub seq: Vec<usize>,
    /// Patterns by name, with the reference workloads' parameters (window 64, block 64, ...).
    #[arg(long, num_args = 1..)]
    pub attn: Vec<String>,
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Compute sparse patterns as masked dense attention (the O(n^2) reference).
    #[arg(long)]
    pub masked: bool,
    /// A CI-sized smoke run (small sizes, 2 steps); its times mean nothing.
    #[arg(long)]
    pub quick: bool,
    /// Run one configuration in this process (used by the parent run).
    #[arg(long, hide = true)]
    pub single: bool,
}

/// What the parent reads of a child's result line (a [`crate::bench::BenchResult`]
/// as JSON): a line without these fields is an error, never a time of 0.
#[derive(Debug, Deserialize)]
struct ChildResult {
    /// Median milliseconds per step.
    step_ms: f64,
    /// Peak resident memory of the child, MiB.
    peak_rss_mb: f64,
}

/// Reads a child's result line.
fn parse_result(line: &str) -> anyhow::Result<ChildResult> {
    serde_json::from_str(line)
        .with_context(|| format!("the benchmark process printed {line:?}, not a result"))
}

impl BenchArgs {
    /// With `--single`, times one configuration in this process; otherwise each
    /// configuration asked for in a child process. Exit status 1 if any child failed.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        if self.single {
            self.measure_here()
        } else {
            self.measure_in_children()
        }
    }

    /// The child's part: one configuration, its result as one JSON line.
    fn measure_here(&self) -> anyhow::Result<ExitCode> {
        let (Some(&workload), Some(attn), Some(&seq)) =
            (self.workload.first(), self.attn.first(), self.seq.first())
        else {
            anyhow::bail!("--single needs one --workload, --attn and --seq");
        };
        let result = run_one(
            workload,
            attn,
            seq,
            self.backend,
            !self.masked,
            self.warmup,
            self.steps,
        )?;
        println!("{}", serde_json::to_string(&result)?);
        Ok(ExitCode::SUCCESS)
    }

    /// The parent's part: every workload, length and pattern asked for, each in a
    /// child process; progress on stderr, the children's result lines on stdout.
    fn measure_in_children(&self) -> anyhow::Result<ExitCode> {
        let (steps, warmup) = if self.quick {
            (2, 1)
        } else {
            (self.steps.max(1), self.warmup)
        };
        let exe = std::env::current_exe().context("cannot find the attnlab executable")?;
        let mut failed = false;
        for &workload in &self.workload {
            let seqs = match (self.seq.is_empty(), self.quick, workload) {
                (false, _, _) => self.seq.clone(),
                (true, true, Workload::W2 | Workload::Mixers) => vec![256, 512],
                (true, true, _) => vec![64],
                (true, false, Workload::W2 | Workload::Mixers) => vec![256, 512, 1024, 2048, 4096],
                (true, false, _) => vec![256, 1024],
            };
            let attns: Vec<String> = if self.attn.is_empty() {
                bench_patterns(workload)
                    .into_iter()
                    .map(String::from)
                    .collect()
            } else {
                self.attn.clone()
            };
            for seq in &seqs {
                for attn in &attns {
                    if workload == Workload::Mixers {
                        if bench_mixer(attn).is_none() {
                            anyhow::bail!(
                                "unknown mixer `{attn}`; one of linear, based, conv, ssm"
                            );
                        }
                    } else if default_pattern(attn).is_none() {
                        anyhow::bail!(
                            "unknown pattern `{attn}`; one of {:?}",
                            crate::attention::PATTERN_KINDS
                        );
                    }
                    let name = format!("{workload:?}").to_lowercase();
                    eprint!("{name} {attn:>10} seq {seq:>5} ... ");
                    let child = Child {
                        exe: &exe,
                        workload: &name,
                        attn,
                        seq: *seq,
                        steps,
                        warmup,
                    };
                    match self.run_child(&child)? {
                        Some(line) => println!("{line}"),
                        None => failed = true,
                    }
                }
            }
        }
        Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Runs one child and ends the progress line on stderr: its result line, or
    /// `None` when it failed or printed no result (the reason said on stderr).
    fn run_child(&self, child: &Child<'_>) -> anyhow::Result<Option<String>> {
        let output = std::process::Command::new(child.exe)
            .args(["bench", "--single", "--workload", child.workload])
            .args(["--attn", child.attn])
            .args(["--seq", &child.seq.to_string()])
            .args(["--steps", &child.steps.to_string()])
            .args(["--warmup", &child.warmup.to_string()])
            .args(["--backend", self.backend.name()])
            .args(self.masked.then_some("--masked"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("cannot start a benchmark process")?;
        if !output.status.success() {
            eprintln!("failed");
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&output.stdout).trim().to_string();
        match parse_result(&line) {
            Ok(result) => {
                eprintln!(
                    "{:.1} ms/step, {:.0} MiB",
                    result.step_ms, result.peak_rss_mb
                );
                Ok(Some(line))
            }
            Err(e) => {
                eprintln!("failed: {e:#}");
                Ok(None)
            }
        }
    }
}

/// One configuration timed in a child process.
struct Child<'a> {
    /// The attnlab executable.
    exe: &'a Path,
    /// `w1`, `w2` or `overhead`.
    workload: &'a str,
    /// The pattern's name.
    attn: &'a str,
    /// Sequence length.
    seq: usize,
    /// Timed steps.
    steps: usize,
    /// Untimed warm-up steps.
    warmup: usize,
}

#[cfg(test)]
mod tests {
    use super::parse_result;
    use crate::bench::BenchResult;

    #[test]
    fn a_childs_result_line_parses_and_a_missing_field_is_an_error() {
        let result = BenchResult {
            implementation: "attnlab".into(),
            backend: "cpu".into(),
            workload: "train_step".into(),
            attn: "dense".into(),
            pattern: "dense".into(),
            seq: 64,
            batch: 2,
            step_ms: 1.5,
            tokens_per_s: 85_333.0,
            peak_rss_mb: 12.0,
            peak_alloc_mb: None,
            steps: 2,
            attended_pairs: 4096,
            computed_pairs: 4096,
            kernel: "fused".into(),
            isa: None,
            bare_step_ms: None,
            overhead_pct: None,
        };
        let line = serde_json::to_string(&result).expect("serialises");
        let parsed = parse_result(&line).expect("a child's line parses");
        assert_eq!((parsed.step_ms, parsed.peak_rss_mb), (1.5, 12.0));

        let mut value = serde_json::to_value(&result).expect("serialises");
        value.as_object_mut().expect("an object").remove("step_ms");
        let e = parse_result(&value.to_string()).expect_err("step_ms is missing");
        assert!(
            format!("{e:#}").contains("missing field `step_ms`"),
            "{e:#}"
        );
        assert!(parse_result("").is_err());
    }
}
