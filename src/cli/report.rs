//! What `attnlab run` shows: a progress bar per run while it trains (a line per
//! evaluation when stderr is not a terminal) and the result tables at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::config::RunPlan;
use crate::records::{LengthFigure, RunStatus, RunSummary, mean_sd};
use crate::trainer::Event;

/// Seed replicates grouped: mean +- sd of the final metrics, how many solved the task
/// (held-out accuracy >= `train.solved_at`) and at which step each did.
pub(super) fn print_groups(
    plans: &[RunPlan],
    summaries: &BTreeMap<u64, RunSummary>,
    solved_at: &BTreeMap<u64, usize>,
) {
    let mut groups: Vec<(&str, Vec<u64>)> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == plan.group()) {
            Some((_, ids)) => ids.push(i as u64),
            None => groups.push((plan.group(), vec![i as u64])),
        }
    }
    if groups.iter().all(|(_, ids)| ids.len() < 2) {
        return;
    }
    println!();
    println!(
        "{:<36} {:>5} {:>17} {:>17} {:>7}  solved at step",
        "group (seeds)", "runs", "eval acc", "eval loss", "solved"
    );
    for (group, ids) in groups {
        let finished: Vec<&RunSummary> = ids
            .iter()
            .filter_map(|id| summaries.get(id))
            .filter(|s| s.status == RunStatus::Finished)
            .collect();
        let stat = |values: Vec<f64>| {
            mean_sd(&values).map_or("-".to_string(), |(m, sd)| format!("{m:.3} ± {sd:.3}"))
        };
        let acc = stat(finished.iter().filter_map(|s| s.final_accuracy).collect());
        let loss = stat(finished.iter().filter_map(|s| s.final_loss).collect());
        let steps: Vec<String> = ids
            .iter()
            .map(|id| solved_at.get(id).map_or("-".into(), |s| s.to_string()))
            .collect();
        let solved = ids.iter().filter(|id| solved_at.contains_key(id)).count();
        println!(
            "{:<36} {:>5} {:>17} {:>17} {:>7}  {}",
            truncate(group, 36),
            format!("{}/{}", finished.len(), ids.len()),
            acc,
            loss,
            format!("{solved}/{}", ids.len()),
            steps.join(", ")
        );
        let mut lengths: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for l in finished.iter().flat_map(|s| &s.final_lengths) {
            lengths.entry(l.seq_len).or_default().push(l.accuracy);
        }
        if !lengths.is_empty() {
            let at: Vec<String> = lengths
                .iter()
                .map(|(n, acc)| format!("{n}: {}", stat(acc.clone())))
                .collect();
            println!("    eval acc at other lengths: {}", at.join("; "));
        }
    }
}

/// `256: acc 0.9120, loss 0.2100; 512: ...`: the held-out figures at each of
/// `train.eval_lengths`.
fn lengths_text(lengths: &[LengthFigure]) -> String {
    lengths
        .iter()
        .map(|l| format!("{}: acc {:.4}, loss {:.4}", l.seq_len, l.accuracy, l.loss))
        .collect::<Vec<_>>()
        .join("; ")
}

/// For runs of a next-token task (text, markov): the held-out loss in bits per
/// character or state.
pub(super) fn print_bits_per_char(plans: &[RunPlan], summaries: &BTreeMap<u64, RunSummary>) {
    for (id, s) in summaries {
        let unit = plans
            .get(*id as usize)
            .and_then(|p| p.settings().task.kind.next_token_unit());
        if let (Some(unit), Some(loss)) = (unit, s.final_loss) {
            println!(
                "{}: {:.3} bits per {unit} (held-out)",
                s.name,
                loss / std::f64::consts::LN_2
            );
        }
    }
}

/// For runs with a published figure (`[reference]`): ours beside it and the verdict
/// (never the exit code's business); and the in-context Markov task's closed-form
/// levels.
pub(super) fn print_references(summaries: &BTreeMap<u64, RunSummary>) {
    let checks: Vec<(&RunSummary, &crate::config::ReferenceCheck)> = summaries
        .values()
        .filter_map(|s| s.reference.as_ref().map(|r| (s, r)))
        .collect();
    for s in summaries.values() {
        if let Some(b) = &s.baselines {
            println!(
                "{}: held-out loss {} against the in-context levels: uniform {:.4}, unigram {:.4}, bigram (Bayes-optimal) {:.4}",
                s.name,
                s.final_loss.map_or("-".to_string(), |l| format!("{l:.4}")),
                b.uniform,
                b.unigram,
                b.bigram
            );
        }
    }
    let Some((_, first)) = checks.first() else {
        return;
    };
    println!();
    println!("checked against {}", first.source);
    println!(
        "{:<28} {:<8} {:>9} {:>18}  {:<26} verdict",
        "run", "metric", "ours", "published", "rule"
    );
    for (s, c) in &checks {
        if c.source != first.source {
            println!("  ({}: {})", s.name, c.source);
        }
        println!(
            "{:<28} {:<8} {:>9} {:>18}  {:<26} {}{}",
            truncate(&s.name, 28),
            c.metric.name(),
            c.ours.map_or("-".to_string(), |v| format!("{v:.4}")),
            truncate(&c.published_label, 18),
            truncate(&c.rule, 26),
            c.verdict.name(),
            c.reason
                .as_deref()
                .map_or(String::new(), |r| format!(" ({r})"))
        );
    }
}

/// One row per run: status, steps, final held-out loss and accuracy, speed, peak
/// memory, backend and record.
pub(super) fn print_table(summaries: &BTreeMap<u64, RunSummary>) {
    println!(
        "{:<28} {:<9} {:>7} {:>9} {:>9} {:>8} {:>8} {:>9} {:>7}  record",
        "run",
        "status",
        "steps",
        "eval loss",
        "eval acc",
        "steps/s",
        "peak MiB",
        "state",
        "backend"
    );
    for s in summaries.values() {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!(
            "{:<28} {:<9} {:>7} {:>9} {:>9} {:>8.2} {:>8} {:>9} {:>7}  {}",
            truncate(&s.name, 28),
            s.status.name(),
            s.steps,
            f(s.final_loss),
            f(s.final_accuracy),
            s.steps_per_sec,
            s.peak_memory_bytes.map_or("-".to_string(), |b| format!(
                "{:.1}",
                b as f64 / (1 << 20) as f64
            )),
            s.state_floats.map_or("-".to_string(), floats_text),
            s.backend,
            s.record_id.as_deref().unwrap_or("-")
        );
        if !s.final_lengths.is_empty() {
            println!("    at other lengths: {}", lengths_text(&s.final_lengths));
        }
        if let Some(m) = &s.message {
            println!("    {m}");
        }
    }
}

/// A count of floats, short: `1536`, `24.6k`, `1.2M`.
fn floats_text(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..10_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// `s` cut to `n` characters, the last one an ellipsis when cut.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// A progress bar per run on a terminal; a line per evaluation otherwise.
pub(super) struct Progress {
    bars: Vec<ProgressBar>,
    names: Vec<String>,
    /// Per run: for a next-token task (text, markov), the unit its loss is also shown
    /// in (`bits/char`, `bits/state`); `None` for the other tasks.
    bits_unit: Vec<Option<&'static str>>,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// One bar per plan (hidden unless stderr is a terminal and not `quiet`).
    pub(super) fn new(plans: &[RunPlan], quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal() && !quiet;
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template(
            "{prefix:>20} {bar:30.cyan/blue} {pos:>6}/{len:6} {msg} [{elapsed_precise} eta {eta}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = plans
            .iter()
            .map(|p| {
                let bar = if terminal {
                    multi.add(ProgressBar::new(p.settings().train.steps as u64))
                } else {
                    ProgressBar::hidden()
                };
                bar.set_style(style.clone());
                bar.set_prefix(truncate(p.name(), 20));
                bar.set_message("queued");
                bar
            })
            .collect();
        Self {
            bars,
            names: plans.iter().map(|p| p.name().to_string()).collect(),
            bits_unit: plans
                .iter()
                .map(|p| p.settings().task.kind.bits_unit())
                .collect(),
            terminal,
            quiet,
        }
    }

    /// Shows one trainer event on its run's bar, or as a line of the log.
    pub(super) fn on_event(&self, event: &Event) {
        let id = event.run_id() as usize;
        let (Some(bar), Some(name)) = (self.bars.get(id), self.names.get(id)) else {
            return;
        };
        let log = !self.terminal && !self.quiet;
        match event {
            Event::Started {
                backend,
                kernels,
                record_dir,
                ..
            } => {
                bar.enable_steady_tick(Duration::from_millis(250));
                bar.set_message(format!("on {}", backend.backend));
                if log {
                    eprintln!(
                        "[{name}] {}",
                        started_line(backend, kernels, record_dir.as_deref())
                    );
                }
            }
            Event::Step { metrics, .. } => {
                bar.set_position(metrics.step as u64);
                bar.set_message(format!(
                    "loss {:.4} acc {:.3}",
                    metrics.loss, metrics.accuracy
                ));
            }
            Event::Eval {
                metrics, lengths, ..
            } if log => {
                let bits = match self.bits_unit.get(id).copied().flatten() {
                    Some(unit) => format!("  {:.3} {unit}", metrics.loss / std::f64::consts::LN_2),
                    None => String::new(),
                };
                let at: String = lengths
                    .iter()
                    .map(|l| format!("  acc@{} {:.3}", l.seq_len, l.metrics.accuracy))
                    .collect();
                eprintln!(
                    "[{name}] step {:>6}  eval loss {:.4}{bits}  acc {:.3}{at}  ({:.1} s)",
                    metrics.step, metrics.loss, metrics.accuracy, metrics.elapsed_secs
                );
            }
            Event::Warning { message, .. } => {
                bar.suspend(|| eprintln!("[{name}] warning: {message}"));
            }
            Event::Finished { summary, .. } => finished(bar, name, summary, log),
            _ => {}
        }
    }
}

/// What the log says as a run starts: where it trains and each layer's kernel.
fn started_line(
    backend: &crate::records::BackendInfo,
    kernels: &[crate::records::LayerKernelInfo],
    record_dir: Option<&std::path::Path>,
) -> String {
    let attention = if kernels.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = kernels.iter().map(|k| k.kernel.as_str()).collect();
        format!("; attention per layer: {}", names.join(", "))
    };
    format!(
        "started on {} ({}; {}){attention}{}",
        backend.backend,
        backend.adapter,
        backend.reason,
        record_dir.map_or(String::new(), |d| format!(", recording to {}", d.display()))
    )
}

/// A finished run's bar, and its reason on stderr when it failed (even with
/// `--quiet`: a run that failed is news).
fn finished(bar: &ProgressBar, name: &str, summary: &RunSummary, log: bool) {
    bar.disable_steady_tick();
    bar.finish_with_message(format!(
        "{} acc {}",
        summary.status.name(),
        summary
            .final_accuracy
            .map_or("-".into(), |a| format!("{a:.3}"))
    ));
    if matches!(summary.status, RunStatus::Failed | RunStatus::Diverged) {
        bar.suspend(|| {
            eprintln!(
                "[{name}] {}: {}",
                summary.status.name(),
                summary.message.as_deref().unwrap_or("no reason given")
            )
        });
    } else if log {
        eprintln!("[{name}] {}", summary.status.name());
    }
}
