//! `attnlab run`: trains every run of experiment files (or continues recorded runs
//! from their checkpoints), feeding them to the trainer a few at a time, and prints
//! the result tables when all have ended.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::report::{Progress, print_bits_per_char, print_groups, print_references, print_table};
use super::secret_arg::{SecretArg, redact_secrets};
use crate::config::{BackendSetting, Experiment, FieldSetting, RunPlan};
use crate::device::{Token, credentials_path, set_server_token, split_backend_tokens};
use crate::records::{DEFAULT_ROOT, RecordLock, RunRecord, RunStatus, RunSummary, check_resume};
use crate::trainer::{Command, Event, Placement, STOPPED_BEFORE_START, StartRun, Trainer};

/// Runs queued on the trainer ahead of the one training: enough to keep it busy,
/// few enough that the trainer's events never wait on a CLI still queueing runs.
const RUNS_AHEAD: usize = 4;

/// `attnlab run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Experiment files (TOML).
    #[arg(required_unless_present_any = ["resume", "fork"])]
    pub files: Vec<PathBuf>,
    /// Continue these recorded runs from their last checkpoint instead (record
    /// folders; with --steps, train up to that many steps in all).
    #[arg(long, value_name = "RUN_DIR", num_args = 1..)]
    pub resume: Vec<PathBuf>,
    /// Override every run's backend: auto, cpu, wgpu, or remote:ADDR[,ADDR...]
    /// (servers started with `attnlab serve`; several form a pool, one run each).
    /// An address may carry its server's token, TOKEN@ws://host:port; the record
    /// keeps only the address.
    #[arg(long, value_parser = SecretArg(parse_backend), value_name = "BACKEND")]
    pub backend: Option<BackendArg>,
    /// The token to present to the servers of --backend (those without one of their
    /// own there), and to no other: refused without a remote --backend. Never written
    /// into records. Visible to other users in the process list: prefer --token-file
    /// or the credentials file.
    #[arg(long, value_name = "TOKEN", value_parser = SecretArg(super::serve::parse_token), conflicts_with = "token_file")]
    pub token: Option<Token>,
    /// Read that token from this file (its first line); for the servers of --backend
    /// only, as --token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Folder for run records.
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub out: PathBuf,
    /// Only the runs with these names (repeatable).
    #[arg(long = "run", value_name = "NAME")]
    pub runs: Vec<String>,
    /// Override every run's number of steps (e.g. for a quick look).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Set a field in every run, e.g. `--set train.lr=3e-4 --set task.distance=32`
    /// (repeatable; docs/experiments.md's field table lists them). With --resume, only the
    /// fields that may change mid-run.
    #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = FieldSetting::parse)]
    pub set: Vec<FieldSetting>,
    /// Print only the final table.
    #[arg(long, short)]
    pub quiet: bool,
    /// Let a text task read this file (or the files under this folder) although it
    /// lies outside the experiment file's folder, or (--resume, --fork) outside the
    /// record's folder without this machine's allowance (repeatable).
    #[arg(long = "allow-file", value_name = "PATH")]
    pub allow_files: Vec<PathBuf>,
    /// Start a new run from this record's weights at --at STEP, with the --set
    /// changes (only fields that may change mid-run); its record names its parent.
    #[arg(
        long,
        value_name = "RUN_DIR",
        requires = "at",
        conflicts_with = "resume"
    )]
    pub fork: Option<PathBuf>,
    /// The parent's step to fork at: its latest checkpoint (the child continues with
    /// its optimiser) or a model kept by train.keep_checkpoints (a fresh optimiser).
    #[arg(long, value_name = "STEP", requires = "fork")]
    pub at: Option<usize>,
    /// Runs trained at once (default: from the cores and the memory estimate).
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

impl RunArgs {
    /// Loads every run named, then trains them all; exit status 1 if any failed or
    /// diverged, 130 if stopped by Ctrl+C.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        // Tokens go to the process's credential store, never into the settings.
        let token = match (self.token, &self.token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(Token::from_file(path)?),
            (None, None) => None,
        };
        let overrides = Overrides {
            backend: bind_tokens(self.backend, token)?,
            steps: self.steps,
            set: self.set,
        };
        let mut work: Vec<Job> = if self.files.is_empty() {
            Vec::new()
        } else {
            load_plans(&self.files, &overrides, &self.runs, &self.allow_files)?
                .into_iter()
                .map(|plan| Job {
                    plan,
                    resume: None,
                    changes: Vec::new(),
                })
                .collect()
        };
        work.extend(resume_jobs(&self.resume, &overrides, &self.allow_files)?);
        if let (Some(parent), Some(at)) = (&self.fork, self.at) {
            work.push(fork_job(
                parent,
                at,
                &self.out,
                &overrides,
                &self.allow_files,
            )?);
        }
        let plans: Vec<RunPlan> = work.iter().map(|j| j.plan.clone()).collect();
        tell_remote_corpora(&plans);
        // Remote servers: one run per server at a time, each server an executor.
        let placement = Placement::choose(Placement::servers_of(&plans), self.jobs, &plans);
        run(&work, &self.out, self.quiet, placement)
    }
}

/// `--backend` as given: the setting, and the tokens its addresses carried.
#[derive(Clone, Debug)]
pub struct BackendArg {
    setting: BackendSetting,
    tokens: Vec<(String, Token)>,
}

/// `--backend`'s setting, its tokens handed to the process's credential store, each
/// for its own address, and `token` (`--token`, `--token-file`) for the addresses of
/// `--backend` without one. A token without a remote `--backend` is refused: the
/// servers an experiment file or a record names are never sent it.
fn bind_tokens(
    backend: Option<BackendArg>,
    token: Option<Token>,
) -> anyhow::Result<Option<BackendSetting>> {
    let addresses = backend
        .as_ref()
        .map(|b| b.setting.addresses())
        .unwrap_or_default();
    if let Some(token) = token {
        anyhow::ensure!(
            !addresses.is_empty(),
            "--token and --token-file are sent only to the servers --backend names on the same command line, \
             and there is no remote --backend here (the servers an experiment file or a record names are never \
             sent them). To allow it, give --backend remote:ADDRESS with the token, or --backend \
             remote:TOKEN@ADDRESS, or put the address in the credentials file {} \
             (\"ws://host:port\" = \"TOKEN\" under [tokens], readable only by you)",
            credentials_path().map_or_else(
                || "(attnlab/credentials.toml under $XDG_CONFIG_HOME or ~/.config)".to_string(),
                |p| p.display().to_string()
            )
        );
        for address in &addresses {
            set_server_token(address, token.clone());
        }
    }
    Ok(backend.map(|backend| {
        for (address, token) in backend.tokens {
            set_server_token(&address, token);
        }
        backend.setting
    }))
}

/// Parses `--backend`, splitting `TOKEN@` off remote addresses first.
fn parse_backend(value: &str) -> Result<BackendArg, String> {
    let (text, tokens) = split_backend_tokens(value).map_err(|e| e.to_string())?;
    let setting =
        BackendSetting::parse(&text).map_err(|e| redact_secrets(&e.to_string(), value))?;
    Ok(BackendArg { setting, tokens })
}

/// `--backend`, `--steps` and `--set`: what the command line changes in every run.
struct Overrides {
    backend: Option<BackendSetting>,
    steps: Option<usize>,
    set: Vec<FieldSetting>,
}

impl Overrides {
    /// Whether nothing is overridden.
    fn is_empty(&self) -> bool {
        self.backend.is_none() && self.steps.is_none() && self.set.is_empty()
    }

    /// `plan` with the overrides applied, checked again.
    fn apply(&self, plan: &RunPlan) -> anyhow::Result<RunPlan> {
        let mut settings = plan.settings().clone();
        for setting in &self.set {
            settings = setting
                .apply(&settings)
                .map_err(|e| anyhow::anyhow!("--set {setting:?}: {e}"))?;
        }
        Ok(plan.revise(|s| {
            *s = settings;
            if let Some(b) = &self.backend {
                s.train.backend = b.clone();
            }
            if let Some(steps) = self.steps {
                s.train.steps = steps;
            }
        })?)
    }

    /// Refuses, for a resumed run, any `--set` of a field that may not change
    /// mid-run (the model's shapes, the data, the seed).
    fn check_mid_run(&self) -> anyhow::Result<()> {
        for setting in &self.set {
            anyhow::ensure!(
                setting.field.fork,
                "--set {setting:?}: {} cannot change when resuming a run (the checkpoint's model, data or optimiser depend on it)",
                setting.field.path
            );
        }
        Ok(())
    }
}

/// Loads, validates and filters the runs of every file; nothing trains unless every
/// file is valid.
fn load_plans(
    files: &[PathBuf],
    overrides: &Overrides,
    only: &[String],
    allowed: &[PathBuf],
) -> anyhow::Result<Vec<RunPlan>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match Experiment::load_and_plan_allowing(file, allowed) {
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
    if overrides.is_empty() {
        return Ok(plans);
    }
    plans
        .iter()
        .map(|plan| {
            overrides.apply(plan).map_err(|e| {
                anyhow::anyhow!("with --steps/--backend/--set, run \"{}\": {e}", plan.name())
            })
        })
        .collect()
}

/// Says, once per corpus and servers, that a text run on a remote backend sends its
/// corpus's characters (as tokens) to the server.
fn tell_remote_corpora(plans: &[RunPlan]) {
    let mut told = std::collections::BTreeSet::new();
    for plan in plans {
        let s = plan.settings();
        let servers = s.train.backend.addresses().join(", ");
        if s.task.kind == crate::tasks::TaskKind::Text
            && !servers.is_empty()
            && told.insert((s.task.file.clone(), servers.clone()))
        {
            eprintln!(
                "note: run \"{}\" trains on {servers}: the text of {:?} travels to that server",
                plan.name(),
                s.task.file
            );
        }
    }
}

/// One run for `attnlab run`: a plan, and the record it continues, if resumed.
struct Job {
    plan: RunPlan,
    resume: Option<PathBuf>,
    /// For a resumed run, the fields the command line sets on purpose.
    changes: Vec<String>,
}

impl Job {
    /// The command that starts it as run `id`: resumed in its record, or new under
    /// `out`.
    fn start(&self, id: u64, out: &Path) -> StartRun {
        match &self.resume {
            Some(dir) => {
                StartRun::resume(id, self.plan.clone(), dir.clone()).changing(self.changes.clone())
            }
            None => StartRun::new(id, self.plan.clone(), Some(out.to_path_buf())),
        }
    }
}

/// The runs recorded in `dirs`, to continue from their checkpoints, each checked before
/// anything trains (`records::check_resume`: the run its summary names, a checkpoint,
/// the settings that checkpoint was trained with, changed only by `--steps` and what
/// `--set`/`--backend` change on purpose) and refused while another process writes it.
fn resume_jobs(
    dirs: &[PathBuf],
    overrides: &Overrides,
    allowed: &[PathBuf],
) -> anyhow::Result<Vec<Job>> {
    if !dirs.is_empty() {
        overrides.check_mid_run()?;
    }
    let mut changes: Vec<String> = overrides
        .set
        .iter()
        .map(|s| s.field.path.to_string())
        .collect();
    if overrides.backend.is_some() {
        changes.push("train.backend".into());
    }
    let mut jobs = Vec::new();
    for dir in dirs {
        let cannot =
            |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot resume {}: {e}", dir.display());
        let record = RunRecord::open(dir).map_err(|e| cannot(&e))?;
        let plan = record.plan_allowing(allowed).map_err(|e| cannot(&e))?;
        let plan = overrides.apply(&plan).map_err(|e| cannot(&e))?;
        check_resume(dir, &plan, &changes).map_err(|e| cannot(&e))?;
        // Another process writing it is refused now, before other runs train (the
        // trainer locks it again, and refuses a second run of this process on it).
        drop(RecordLock::acquire(dir).map_err(|e| cannot(&e))?);
        jobs.push(Job {
            plan,
            resume: Some(dir.clone()),
            changes: changes.clone(),
        });
    }
    Ok(jobs)
}

/// The child of the run recorded in `parent`, forked at step `at` under `out` with
/// the command line's changes (only fields that may change mid-run), to train as a
/// resumed run.
fn fork_job(
    parent: &Path,
    at: usize,
    out: &Path,
    overrides: &Overrides,
    allowed: &[PathBuf],
) -> anyhow::Result<Job> {
    overrides.check_mid_run()?;
    let cannot =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot fork {}: {e}", parent.display());
    let record = RunRecord::open(parent).map_err(|e| cannot(&e))?;
    let plan = record.plan_allowing(allowed).map_err(|e| cannot(&e))?;
    let plan = overrides.apply(&plan).map_err(|e| cannot(&e))?;
    anyhow::ensure!(
        at < plan.settings().train.steps,
        "cannot fork {} at step {at}: the run plans {} steps, so nothing is left to train (raise them with --steps)",
        parent.display(),
        plan.settings().train.steps
    );
    let child = crate::records::fork_record(parent, at, out, &plan).map_err(|e| cannot(&e))?;
    eprintln!(
        "forked {} at step {at} into {}",
        parent.display(),
        child.display()
    );
    Ok(Job {
        plan,
        resume: Some(child),
        changes: Vec::new(),
    })
}

/// Trains `jobs` on a pool of `workers` (or one worker per remote server), queueing
/// them a few at a time, then prints the tables. Ctrl+C stops every run.
fn run(jobs: &[Job], out: &Path, quiet: bool, placement: Placement) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!jobs.is_empty(), "no runs to train");
    let plans: Vec<RunPlan> = jobs.iter().map(|j| j.plan.clone()).collect();
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let trainer =
        Trainer::spawn(placement, Box::new(|| {})).context("cannot start the trainer thread")?;
    if !quiet {
        announce_placement(&trainer);
    }
    let interrupted = stop_on_ctrl_c(trainer.commands());
    let progress = Progress::new(&plans, quiet);
    let done = drive(&trainer, jobs, &plans, out, &progress, &interrupted)?;
    drop(progress);
    print_table(&done.summaries);
    print_bits_per_char(&plans, &done.summaries);
    print_groups(&plans, &done.summaries, &done.solved_at);
    print_references(&done.summaries);
    Ok(exit_code(&done.summaries))
}

/// Says where the runs train when it is not one run on this machine.
fn announce_placement(trainer: &Trainer) {
    let (workers, servers) = (trainer.workers(), trainer.servers());
    if !servers.is_empty() {
        eprintln!(
            "training on {} remote server(s), one run each at a time: {}",
            servers.len(),
            servers.join(", ")
        );
    } else if workers > 1 {
        eprintln!("training up to {workers} runs at once");
    }
}

/// Ctrl+C stops every run (each recorded as stopped) and sets the returned flag, which
/// stops queueing; a second Ctrl+C exits at once with 130.
fn stop_on_ctrl_c(commands: crossbeam_channel::Sender<Command>) -> Arc<AtomicBool> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl+C: the user will not wait for the runs to record their stop.
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: stopping (the current run is recorded as stopped; Ctrl+C again exits at once)"
        );
        // Never blocks (a full command channel must not hold the handler); ignored:
        // if the trainer is gone or full, the interrupted flag still stops queueing.
        let _ = commands.try_send(Command::StopAll);
    }) {
        eprintln!("warning: Ctrl+C will not stop runs gracefully: {e}");
    }
    interrupted
}

/// What the runs of one call ended with.
struct Done {
    /// Each run's summary, by id.
    summaries: BTreeMap<u64, RunSummary>,
    /// The first step at which each run's held-out accuracy reached its solved_at.
    solved_at: BTreeMap<u64, usize>,
}

/// Queues the runs a few at a time as earlier ones finish, so a file of hundreds of
/// runs never fills the command channel while the trainer waits to deliver events
/// (each side would wait on the other forever), and follows their events until every
/// run has finished; after an interrupt, the runs not yet started end as stopped.
fn drive(
    trainer: &Trainer,
    jobs: &[Job],
    plans: &[RunPlan],
    out: &Path,
    progress: &Progress,
    interrupted: &AtomicBool,
) -> anyhow::Result<Done> {
    let mut waiting: VecDeque<(u64, &Job)> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (i as u64, j))
        .collect();
    let mut done = Done {
        summaries: BTreeMap::new(),
        solved_at: BTreeMap::new(),
    };
    let mut queued = 0usize;
    loop {
        while queued < RUNS_AHEAD + trainer.workers() && !interrupted.load(Ordering::SeqCst) {
            let Some((id, job)) = waiting.pop_front() else {
                break;
            };
            trainer.start(job.start(id, out))?;
            queued += 1;
        }
        if interrupted.load(Ordering::SeqCst) {
            for (id, job) in waiting.drain(..) {
                let summary = StartRun::new(id, job.plan.clone(), None)
                    .ended_unstarted(RunStatus::Stopped, STOPPED_BEFORE_START.to_string());
                progress.on_event(&Event::Finished {
                    id,
                    summary: Box::new(summary.clone()),
                });
                done.summaries.insert(id, summary);
            }
        }
        if queued == 0 {
            return Ok(done);
        }
        let event = match trainer.events().recv_timeout(Duration::from_millis(250)) {
            Ok(event) => event,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the trainer thread ended unexpectedly")
            }
        };
        if let Event::Finished { id, summary } = &event {
            done.summaries.insert(*id, summary.as_ref().clone());
            queued -= 1;
        }
        if let Event::Eval { id, metrics, .. } = &event
            && let Some(plan) = plans.get(*id as usize)
            && metrics.accuracy >= plan.settings().train.solved_at
        {
            done.solved_at.entry(*id).or_insert(metrics.step);
        }
        progress.on_event(&event);
    }
}

/// 1 when a run failed or diverged, else 130 when one was stopped, else 0.
fn exit_code(summaries: &BTreeMap<u64, RunSummary>) -> ExitCode {
    let failed = summaries
        .values()
        .any(|s| matches!(s.status, RunStatus::Failed | RunStatus::Diverged));
    let stopped = summaries.values().any(|s| s.status == RunStatus::Stopped);
    if failed {
        ExitCode::FAILURE
    } else if stopped {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    }
}
