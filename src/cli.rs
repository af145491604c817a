//! The command line: the arguments (`attnlab` with none opens the workbench, which
//! `main.rs` dispatches) and the headless subcommands that run experiment files.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::bench::{Workload, bench_patterns, default_pattern, run_one};
use crate::config::{BackendChoice, BackendSetting, Experiment, RunPlan};
use crate::records::{DEFAULT_ROOT, RunStatus, RunSummary, mean_sd};
use crate::trainer::{Command, Event, ServeTransport, StartRun, Trainer};

/// Runs queued on the trainer ahead of the one training: enough to keep it busy,
/// few enough that the trainer's events never wait on a CLI still queueing runs.
const RUNS_AHEAD: usize = 4;

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
    Run {
        /// Experiment files (TOML).
        #[arg(required_unless_present = "resume")]
        files: Vec<PathBuf>,
        /// Continue these recorded runs from their last checkpoint instead (record
        /// folders; with --steps, train up to that many steps in all).
        #[arg(long, value_name = "RUN_DIR", num_args = 1..)]
        resume: Vec<PathBuf>,
        /// Override every run's backend: auto, cpu, wgpu, or remote:ADDR[,ADDR...]
        /// (servers started with `attnlab serve`; several form a pool, one run each).
        #[arg(long, value_parser = BackendSetting::parse, value_name = "BACKEND")]
        backend: Option<BackendSetting>,
        /// Folder for run records.
        #[arg(long, default_value = DEFAULT_ROOT)]
        out: PathBuf,
        /// Only the runs with these names (repeatable).
        #[arg(long = "run", value_name = "NAME")]
        runs: Vec<String>,
        /// Override every run's number of steps (e.g. for a quick look).
        #[arg(long)]
        steps: Option<usize>,
        /// Print only the final table.
        #[arg(long, short)]
        quiet: bool,
        /// Runs trained at once (default: from the cores and the memory estimate).
        #[arg(long, short)]
        jobs: Option<usize>,
    },
    /// Check experiment files without training; exit status 1 if any is invalid.
    Validate {
        /// Experiment files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write figures and numbers of run records: metrics.csv, curves.svg, the last
    /// snapshot's attention as PNG and .npy, and summary.csv over all of them.
    Export {
        /// Record folders, or folders of records (every record under them).
        #[arg(required = true, value_name = "RUN_DIR")]
        records: Vec<PathBuf>,
        /// Where to write (one folder per record inside).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Evaluate recorded runs' saved models on fresh seeded examples: one JSON line per
    /// run and dependency distance (`run`, `distance`, `accuracy`, `examples`).
    Eval {
        /// Record folders, or folders of records (every record under them).
        #[arg(required = true, value_name = "RUN_DIR")]
        records: Vec<PathBuf>,
        /// Seed of the examples (a different seed gives different examples).
        #[arg(long, default_value_t = 12345)]
        seed: u64,
        /// Batches evaluated (each the run's `train.batch` examples).
        #[arg(long, default_value_t = 8)]
        batches: usize,
        /// Merge distances into buckets this wide (each named by its largest distance).
        #[arg(long, default_value_t = 1, value_name = "WIDTH")]
        bucket: usize,
        /// auto, cpu or wgpu.
        #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
        backend: BackendChoice,
    },
    /// Serve this machine's best device to other machines (burn's remote backend):
    /// they train on it with `--backend remote:ADDR` or `train.backend = { remote =
    /// "ADDR" }`. Runs until stopped (Ctrl+C).
    Serve {
        /// websocket (trusted networks) or iroh (any network, authenticated, encrypted).
        #[arg(long, value_enum, default_value_t = ServeTransport::Websocket)]
        transport: ServeTransport,
        /// Port to listen on (0: any free port; the address is printed).
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Address to listen on (WebSocket): 0.0.0.0 for every interface.
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        /// The device served: auto (a hardware GPU, else the CPU), cpu or wgpu.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        device: BackendChoice,
        /// Iroh: keep the server's key in this file, so its id stays the same.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Iroh without n0's relays: direct connections only (clients dial
        /// iroh:<id>@host:port); for a network without the internet.
        #[arg(long)]
        no_relays: bool,
    },
    /// Time the reference workloads (README.md, "Reference workloads"); one JSON
    /// object per line on stdout.
    Bench(BenchArgs),
}

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

/// Runs a headless subcommand.
pub fn execute(command: HeadlessCommand) -> anyhow::Result<ExitCode> {
    match command {
        HeadlessCommand::Validate { files } => validate(&files),
        HeadlessCommand::Export { records, to } => export(&records, &to),
        HeadlessCommand::Eval {
            records,
            seed,
            batches,
            bucket,
            backend,
        } => eval(&records, seed, batches, bucket, backend),
        HeadlessCommand::Bench(args) => bench(&args),
        HeadlessCommand::Serve {
            transport,
            port,
            host,
            device,
            identity,
            no_relays,
        } => {
            let options = crate::trainer::ServeOptions {
                transport,
                host,
                port,
                device,
                identity,
                no_relays,
            };
            crate::trainer::serve(
                &options,
                |address| {
                    use std::io::Write;
                    // Ignored: a closed stdout means nobody reads the address; the
                    // server goes on (println! would panic).
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "attnlab serve: listening on {address}\n  clients: attnlab run FILE --backend remote:{address}"
                    );
                    let _ = out.flush();
                },
                |line| {
                    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                    eprintln!("[{stamp}] {line}");
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        HeadlessCommand::Run {
            files,
            resume,
            backend,
            out,
            runs,
            steps,
            quiet,
            jobs,
        } => {
            let mut work: Vec<Job> = if files.is_empty() {
                Vec::new()
            } else {
                load_plans(&files, backend.clone(), &runs, steps)?
                    .into_iter()
                    .map(|plan| Job { plan, resume: None })
                    .collect()
            };
            work.extend(resume_jobs(&resume, backend.clone(), steps)?);
            let plans: Vec<RunPlan> = work.iter().map(|j| j.plan.clone()).collect();
            // Remote servers: one run per server at a time, each server a worker.
            let mut servers: Vec<String> = Vec::new();
            for plan in &plans {
                for a in plan.settings().train.backend.addresses() {
                    if !servers.contains(&a) {
                        servers.push(a);
                    }
                }
            }
            let workers = jobs
                .unwrap_or_else(|| crate::trainer::default_workers(&plans))
                .max(1);
            run(&work, &out, quiet, workers, servers)
        }
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

/// The records named on the command line, each read.
fn named_records(dirs: &[PathBuf]) -> anyhow::Result<Vec<crate::records::RunRecord>> {
    record_folders(dirs)?
        .iter()
        .map(|dir| {
            crate::records::RunRecord::open(dir)
                .with_context(|| format!("cannot read the record {}", dir.display()))
        })
        .collect()
}

fn export(dirs: &[PathBuf], to: &std::path::Path) -> anyhow::Result<ExitCode> {
    let records = named_records(dirs)?;
    let written = crate::export::export_records(&records, to)?;
    eprintln!(
        "exported {} record(s): {} file(s) under {}",
        records.len(),
        written.len(),
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn eval(
    dirs: &[PathBuf],
    seed: u64,
    batches: usize,
    bucket: usize,
    backend: BackendChoice,
) -> anyhow::Result<ExitCode> {
    // Each record on its own: a damaged one is reported and the others evaluated.
    let folders = record_folders(dirs)?;
    let mut failed = 0;
    for folder in &folders {
        match crate::trainer::evaluate_record(folder, seed, batches, backend) {
            Ok(e) => {
                for c in e.by_distance.bucketed(bucket) {
                    let line = serde_json::json!({
                        "run": e.run,
                        "record": folder.file_name().map(|n| n.to_string_lossy()),
                        "step": e.step,
                        "distance": c.distance,
                        "accuracy": c.accuracy(),
                        "examples": c.total,
                    });
                    println!("{line}");
                }
                eprintln!(
                    "{}: step {}, accuracy {:.4}, loss {:.4}",
                    e.run, e.step, e.accuracy, e.loss
                );
            }
            Err(e) => {
                eprintln!("attnlab eval: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn validate(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for file in files {
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

/// Loads, validates and filters the runs of every file; nothing trains unless every
/// file is valid.
fn load_plans(
    files: &[PathBuf],
    backend: Option<BackendSetting>,
    only: &[String],
    steps: Option<usize>,
) -> anyhow::Result<Vec<RunPlan>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match Experiment::load_and_plan(file) {
            Ok((_, file_plans)) => plans.extend(file_plans),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "invalid experiment file(s), nothing was trained:\n{}",
            errors.join("\n")
        );
    }
    if !only.is_empty() {
        let unknown: Vec<&String> = only
            .iter()
            .filter(|n| !plans.iter().any(|p| p.name() == n.as_str()))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = plans.iter().map(RunPlan::name).collect();
            anyhow::bail!("no run named {unknown:?}; the runs are {names:?}");
        }
        plans.retain(|p| only.iter().any(|n| n == p.name()));
    }
    if backend.is_none() && steps.is_none() {
        return Ok(plans);
    }
    plans
        .iter()
        .map(|plan| {
            plan.revise(|s| {
                if let Some(b) = &backend {
                    s.train.backend = b.clone();
                }
                if let Some(steps) = steps {
                    s.train.steps = steps;
                }
            })
            .map_err(|e| anyhow::anyhow!("with --steps/--backend, run \"{}\": {e}", plan.name()))
        })
        .collect()
}

/// One run for `attnlab run`: a plan, and the record it continues, if resumed.
struct Job {
    plan: RunPlan,
    resume: Option<PathBuf>,
}

/// The runs recorded in `dirs`, to continue from their checkpoints.
fn resume_jobs(
    dirs: &[PathBuf],
    backend: Option<BackendSetting>,
    steps: Option<usize>,
) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for dir in dirs {
        let record = crate::records::RunRecord::open(dir)
            .with_context(|| format!("cannot resume {}", dir.display()))?;
        let Some(step) = record.checkpoint_step else {
            anyhow::bail!("cannot resume {}: it has no checkpoint", dir.display());
        };
        let (_, mut plans) = Experiment::load_and_plan(&dir.join("config.toml"))
            .map_err(|e| anyhow::anyhow!("cannot resume {}:\n{e}", dir.display()))?;
        let plan = plans
            .pop()
            .ok_or_else(|| anyhow::anyhow!("{}: config.toml has no run", dir.display()))?;
        let plan = plan
            .revise(|s| {
                if let Some(b) = &backend {
                    s.train.backend = b.clone();
                }
                if let Some(steps) = steps {
                    s.train.steps = steps;
                }
            })
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        anyhow::ensure!(
            plan.settings().train.steps > step,
            "cannot resume {}: its checkpoint is at step {step} of {}; pass --steps to train further",
            dir.display(),
            plan.settings().train.steps
        );
        jobs.push(Job {
            plan,
            resume: Some(dir.clone()),
        });
    }
    Ok(jobs)
}

fn run(
    jobs: &[Job],
    out: &std::path::Path,
    quiet: bool,
    workers: usize,
    servers: Vec<String>,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!jobs.is_empty(), "no runs to train");
    let plans: Vec<RunPlan> = jobs.iter().map(|j| j.plan.clone()).collect();
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let workers = if servers.is_empty() {
        workers
    } else {
        servers.len()
    };
    let trainer = if servers.is_empty() {
        Trainer::spawn_pool(workers, Box::new(|| {}))
    } else {
        Trainer::spawn_on_servers(servers.clone(), Box::new(|| {}))
    }
    .context("cannot start the trainer thread")?;
    if !servers.is_empty() && !quiet {
        eprintln!(
            "training on {} remote server(s), one run each at a time: {}",
            servers.len(),
            servers.join(", ")
        );
    } else if workers > 1 && !quiet {
        eprintln!("training up to {workers} runs at once");
    }
    let commands = trainer.commands();
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        eprintln!("\ninterrupted: stopping (the current run is recorded as stopped)");
        flag.store(true, Ordering::SeqCst);
        // Ignored: if the trainer is gone there is nothing left to stop.
        let _ = commands.send(Command::StopAll);
    }) {
        eprintln!("warning: Ctrl+C will not stop runs gracefully: {e}");
    }
    let progress = Progress::new(&plans, quiet);
    // Runs are queued a few at a time as earlier ones finish, so a file of hundreds
    // of runs never fills the command channel while the trainer waits to deliver
    // events (each side would wait on the other forever).
    let mut waiting: VecDeque<(u64, &Job)> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (i as u64, j))
        .collect();
    let mut summaries = BTreeMap::new();
    // The first step at which each run's held-out accuracy reached its solved_at.
    let mut solved_at: BTreeMap<u64, usize> = BTreeMap::new();
    let mut queued = 0usize;
    loop {
        while queued < RUNS_AHEAD + workers && !interrupted.load(Ordering::SeqCst) {
            let Some((id, job)) = waiting.pop_front() else {
                break;
            };
            let start = match &job.resume {
                Some(dir) => StartRun::resume(id, job.plan.clone(), dir.clone()),
                None => StartRun::new(id, job.plan.clone(), Some(out.to_path_buf())),
            };
            trainer.start(start)?;
            queued += 1;
        }
        if interrupted.load(Ordering::SeqCst) {
            for (id, job) in waiting.drain(..) {
                let plan = &job.plan;
                let mut summary =
                    RunSummary::unstarted(plan.experiment(), plan.name(), 0, RunStatus::Stopped);
                summary.message = Some("stopped before it started".into());
                progress.on_event(&Event::Finished {
                    id,
                    summary: Box::new(summary.clone()),
                });
                summaries.insert(id, summary);
            }
        }
        if queued == 0 {
            break;
        }
        let event = match trainer.events().recv_timeout(Duration::from_millis(250)) {
            Ok(event) => event,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the trainer thread ended unexpectedly")
            }
        };
        if let Event::Finished { id, summary } = &event {
            summaries.insert(*id, summary.as_ref().clone());
            queued -= 1;
        }
        if let Event::Eval { id, metrics, .. } = &event
            && let Some(plan) = plans.get(*id as usize)
            && metrics.accuracy >= plan.settings().train.solved_at
        {
            solved_at.entry(*id).or_insert(metrics.step);
        }
        progress.on_event(&event);
    }
    drop(progress);
    print_table(&summaries);
    print_bits_per_char(&plans, &summaries);
    print_groups(&plans, &summaries, &solved_at);
    let failed = summaries
        .values()
        .any(|s| matches!(s.status, RunStatus::Failed | RunStatus::Diverged));
    let stopped = summaries.values().any(|s| s.status == RunStatus::Stopped);
    Ok(if failed {
        ExitCode::FAILURE
    } else if stopped {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Seed replicates grouped: mean +- sd of the final metrics, how many solved the task
/// (held-out accuracy >= `train.solved_at`) and at which step each did.
fn print_groups(
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
    }
}

/// For runs of the text task: the held-out loss in bits per character.
fn print_bits_per_char(plans: &[RunPlan], summaries: &BTreeMap<u64, RunSummary>) {
    for (id, s) in summaries {
        let text = plans
            .get(*id as usize)
            .is_some_and(|p| p.settings().task.kind == crate::tasks::TaskKind::Text);
        if let (true, Some(loss)) = (text, s.final_loss) {
            println!(
                "{}: {:.3} bits per character (held-out)",
                s.name,
                loss / std::f64::consts::LN_2
            );
        }
    }
}

fn print_table(summaries: &BTreeMap<u64, RunSummary>) {
    println!(
        "{:<28} {:<9} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7}  record",
        "run", "status", "steps", "eval loss", "eval acc", "steps/s", "peak MiB", "backend"
    );
    for s in summaries.values() {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!(
            "{:<28} {:<9} {:>7} {:>9} {:>9} {:>8.2} {:>8} {:>7}  {}",
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
            s.backend,
            s.record_id.as_deref().unwrap_or("-")
        );
        if let Some(m) = &s.message {
            println!("    {m}");
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

/// A progress bar per run on a terminal; a line per evaluation otherwise.
struct Progress {
    bars: Vec<ProgressBar>,
    names: Vec<String>,
    /// Per run: whether it is the text task (its loss is also shown in bits/char).
    text: Vec<bool>,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    fn new(plans: &[RunPlan], quiet: bool) -> Self {
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
            text: plans
                .iter()
                .map(|p| p.settings().task.kind == crate::tasks::TaskKind::Text)
                .collect(),
            terminal,
            quiet,
        }
    }

    fn on_event(&self, event: &Event) {
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
                    let attention = if kernels.is_empty() {
                        String::new()
                    } else {
                        let names: Vec<&str> = kernels.iter().map(|k| k.kernel.as_str()).collect();
                        format!("; attention per layer: {}", names.join(", "))
                    };
                    eprintln!(
                        "[{name}] started on {} ({}; {}){attention}{}",
                        backend.backend,
                        backend.adapter,
                        backend.reason,
                        record_dir
                            .as_ref()
                            .map_or(String::new(), |d| format!(", recording to {}", d.display()))
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
            Event::Eval { metrics, .. } if log => {
                let bits = if self.text.get(id).copied().unwrap_or(false) {
                    format!("  {:.3} bits/char", metrics.loss / std::f64::consts::LN_2)
                } else {
                    String::new()
                };
                eprintln!(
                    "[{name}] step {:>6}  eval loss {:.4}{bits}  acc {:.3}  ({:.1} s)",
                    metrics.step, metrics.loss, metrics.accuracy, metrics.elapsed_secs
                );
            }
            Event::Warning { message, .. } => {
                bar.suspend(|| eprintln!("[{name}] warning: {message}"));
            }
            Event::Finished { summary, .. } => {
                bar.disable_steady_tick();
                bar.finish_with_message(format!(
                    "{} acc {}",
                    summary.status.name(),
                    summary
                        .final_accuracy
                        .map_or("-".into(), |a| format!("{a:.3}"))
                ));
                let failed = matches!(summary.status, RunStatus::Failed | RunStatus::Diverged);
                if failed {
                    // Always on stderr, even with --quiet: a run that failed is news.
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
            _ => {}
        }
    }
}

fn bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let backend = args.backend;
    if args.single {
        let (Some(&workload), Some(attn), Some(&seq)) =
            (args.workload.first(), args.attn.first(), args.seq.first())
        else {
            anyhow::bail!("--single needs one --workload, --attn and --seq");
        };
        let result = run_one(
            workload,
            attn,
            seq,
            backend,
            !args.masked,
            args.warmup,
            args.steps,
        )?;
        println!("{}", serde_json::to_string(&result)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (steps, warmup) = if args.quick {
        (2, 1)
    } else {
        (args.steps.max(1), args.warmup)
    };
    let exe = std::env::current_exe().context("cannot find the attnlab executable")?;
    let mut failed = false;
    for &workload in &args.workload {
        let seqs = match (args.seq.is_empty(), args.quick, workload) {
            (false, _, _) => args.seq.clone(),
            (true, true, Workload::W2) => vec![256, 512],
            (true, true, _) => vec![64],
            (true, false, Workload::W2) => vec![256, 512, 1024, 2048, 4096],
            (true, false, _) => vec![256, 1024],
        };
        let attns: Vec<String> = if args.attn.is_empty() {
            bench_patterns(workload)
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            args.attn.clone()
        };
        for seq in &seqs {
            for attn in &attns {
                if default_pattern(attn).is_none() {
                    anyhow::bail!(
                        "unknown pattern `{attn}`; one of {:?}",
                        crate::attention::PATTERN_KINDS
                    );
                }
                let name = format!("{workload:?}").to_lowercase();
                eprint!("{name} {attn:>10} seq {seq:>5} ... ");
                let output = std::process::Command::new(&exe)
                    .args(["bench", "--single", "--workload", &name, "--attn", attn])
                    .args(["--seq", &seq.to_string(), "--steps", &steps.to_string()])
                    .args(["--warmup", &warmup.to_string(), "--backend", backend.name()])
                    .args(args.masked.then_some("--masked"))
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .context("cannot start a benchmark process")?;
                let line = String::from_utf8_lossy(&output.stdout);
                if output.status.success() {
                    let line = line.trim();
                    let summary: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                    eprintln!(
                        "{:.1} ms/step, {:.0} MiB",
                        summary["step_ms"].as_f64().unwrap_or(0.0),
                        summary["peak_rss_mb"].as_f64().unwrap_or(0.0)
                    );
                    println!("{line}");
                } else {
                    failed = true;
                    eprintln!("failed");
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
        assert!(matches!(
            cli.command,
            Some(HeadlessCommand::Validate { .. })
        ));
        assert!(cli.file.is_none());
        assert!(
            Cli::try_parse_from(["attnlab"])
                .expect("parses")
                .file
                .is_none()
        );
    }
}
