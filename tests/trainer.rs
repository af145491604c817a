//! The trainer thread through its public protocol: event order, stop, pause, seeding,
//! divergence, backend failure, warnings, and run records.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use attnlab::config::{BackendChoice, ModelKind, RunPlan};
use attnlab::records::{RunRecord, RunStatus};
use attnlab::trainer::{Command, Event, Fault, RunPhase, StartRun, Trainer};

mod common;
use common::experiments::{first_plan, tiny_plan};
use common::files::{changed_files, files_under};
use common::float::close;
use common::train::{DEADLINE, local_trainer, losses, next, one_at_a_time, start};

/// A tiny run (one layer, six steps, snapshots every 2 steps); `extra` lines override
/// fields of its `[train]` table.
fn plan(extra: &str) -> RunPlan {
    tiny_plan("", &format!("snapshot_every = 2\n{extra}"))
}

/// Collects events until `count` runs have finished (within the deadline from
/// `since`), and checks each run's events follow the documented order.
fn collect_since(trainer: &Trainer, count: usize, since: Instant) -> Vec<Event> {
    let events = common::train::collect_since(trainer, count, since);
    check_order(&events);
    events
}

/// [`collect_since`] now.
fn collect(trainer: &Trainer, count: usize) -> Vec<Event> {
    collect_since(trainer, count, Instant::now())
}

/// Each run's events follow the protocol's grammar ([`RunPhase::after`], the same
/// definition the protocol documents). A run whose `Queued` came before `events`
/// began is checked from where it stands (as queued, or as running once it started).
fn check_order(events: &[Event]) {
    let mut at: HashMap<u64, RunPhase> = HashMap::new();
    for e in events {
        let id = e.run_id();
        let state = at.get(&id).copied().or(match e {
            Event::Queued { .. } => None,
            Event::Started { .. } | Event::Finished { .. } => Some(RunPhase::Queued),
            _ => Some(RunPhase::Running),
        });
        let Some(next) = RunPhase::after(state, e) else {
            panic!("run {id}: {} after {state:?}", name(e));
        };
        at.insert(id, next);
    }
}

fn name(e: &Event) -> &'static str {
    match e {
        Event::Queued { .. } => "queued",
        Event::Started { .. } => "started",
        Event::Step { .. } => "step",
        Event::Eval { .. } => "eval",
        Event::Snapshot { .. } => "snapshot",
        Event::Paused { .. } => "paused",
        Event::Continued { .. } => "continued",
        Event::Warning { .. } => "warning",
        Event::Finished { .. } => "finished",
    }
}

#[test]
fn events_follow_the_documented_order_and_records_are_complete() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let trainer = local_trainer(1);
    start(&trainer, 1, plan(""), Some(dir.path()));
    let events = collect(&trainer, 1);
    let names: Vec<_> = events.iter().map(name).collect();
    assert_eq!(names[0], "queued");
    assert_eq!(names[1], "started");
    assert_eq!(*names.last().expect("events"), "finished");
    assert_eq!(names.iter().filter(|n| **n == "step").count(), 6);
    assert!(!names.contains(&"warning"), "{names:?}");
    // Eval at 3 and 6 (the end), snapshots at 0, 2, 4, 6.
    let evals: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Eval { metrics, .. } => Some(metrics.step),
            _ => None,
        })
        .collect();
    assert_eq!(evals, vec![3, 6]);
    let snaps: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Snapshot { snapshot, .. } => Some(snapshot.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        snaps.iter().map(|s| s.step).collect::<Vec<_>>(),
        vec![0, 2, 4, 6]
    );
    let s = &snaps[0];
    assert_eq!((s.layers, s.heads, s.n, s.seq_len), (1, 2, 16, 16));
    assert_eq!(s.weights.len(), 2 * 16 * 16);
    let Event::Started {
        backend,
        record_dir,
        probe,
        params,
        ..
    } = &events[1]
    else {
        panic!("second event is Started")
    };
    assert_eq!(backend.backend, "cpu");
    assert!(!backend.adapter.is_empty());
    assert!(*params > 0);
    assert_eq!(probe.tokens.len(), 16);
    assert_eq!(probe.dependencies.len(), 12);
    let Some(Event::Finished { summary, .. }) = events.last() else {
        panic!()
    };
    assert_eq!(summary.status, RunStatus::Finished, "{:?}", summary.message);
    assert_eq!(summary.steps, 6);
    assert!(summary.final_accuracy.is_some() && summary.final_loss.is_some());

    // The run record holds the same run.
    let record = RunRecord::open(record_dir.as_deref().expect("recorded")).expect("record opens");
    assert_eq!(record.summary.status, RunStatus::Finished);
    assert_eq!(record.summary.backend, "cpu");
    let metrics = record.metrics().expect("metrics.csv");
    assert_eq!(metrics.iter().filter(|m| !m.eval).count(), 6);
    assert_eq!(metrics.iter().filter(|m| m.eval).count(), 2);
    let (_, stored) = record
        .snapshots()
        .expect("readable")
        .expect("snapshots stored");
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3].weights, snaps[3].weights);
    let again = record.experiment().expect("config.toml parses");
    assert_eq!(
        again.run_settings(0).ok().as_ref(),
        Some(plan("").settings())
    );
    assert_eq!(record.summary.kernels.len(), 1);
}

#[test]
fn same_seed_same_metrics_and_other_seed_differs() {
    let _turn = one_at_a_time();
    let trainer = local_trainer(1);
    start(&trainer, 1, plan(""), None);
    start(&trainer, 2, plan(""), None);
    start(&trainer, 3, plan("seed = 99\n"), None);
    let events = collect(&trainer, 3);
    assert_eq!(losses(&events, 1).len(), 6);
    assert_eq!(
        losses(&events, 1),
        losses(&events, 2),
        "same file and seed, same metrics"
    );
    assert_ne!(
        losses(&events, 1),
        losses(&events, 3),
        "another seed gives other metrics"
    );
}

/// `train.weight_decay` above 0 trains with AdamW: the first step's loss (before any
/// update) is the same, the following ones differ from plain Adam's.
#[test]
fn weight_decay_switches_to_adamw() {
    let _turn = one_at_a_time();
    let trainer = local_trainer(1);
    start(&trainer, 1, plan(""), None);
    start(&trainer, 2, plan("weight_decay = 0.5\n"), None);
    let events = collect(&trainer, 2);
    let (adam, adamw) = (losses(&events, 1), losses(&events, 2));
    assert_eq!(adam[0], adamw[0], "same initial model and batch");
    assert_ne!(adam[2..], adamw[2..], "decoupled decay changes the updates");
    assert!(adamw.iter().all(|l| l.is_finite()));
}

#[test]
fn stop_ends_a_run_within_a_step_and_drops_queued_runs() {
    let _turn = one_at_a_time();
    let trainer = local_trainer(1);
    start(&trainer, 1, plan("steps = 100000\n"), None);
    start(&trainer, 2, plan(""), None);
    // Wait for the first step of run 1, then stop everything.
    let since = Instant::now();
    loop {
        if matches!(next(&trainer, since + DEADLINE), Event::Step { id: 1, .. }) {
            break;
        }
    }
    trainer.send(Command::StopAll).expect("alive");
    let events = collect_since(&trainer, 2, since);
    let summaries: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Finished { id, summary } => Some((*id, summary.status, summary.steps)),
            _ => None,
        })
        .collect();
    assert_eq!(summaries.len(), 2);
    let (_, status, steps) = summaries.iter().find(|s| s.0 == 1).copied().expect("run 1");
    assert_eq!(status, RunStatus::Stopped);
    assert!(steps < 50, "stopped promptly, after {steps} steps");
    let (_, status, steps) = summaries.iter().find(|s| s.0 == 2).copied().expect("run 2");
    assert_eq!((status, steps), (RunStatus::Stopped, 0));
}

#[test]
fn pause_and_continue() {
    let _turn = one_at_a_time();
    let trainer = local_trainer(1);
    start(&trainer, 1, plan("steps = 40\n"), None);
    let since = Instant::now();
    loop {
        if matches!(next(&trainer, since + DEADLINE), Event::Step { .. }) {
            break;
        }
    }
    trainer.send(Command::Pause).expect("alive");
    loop {
        if let Event::Paused { .. } = next(&trainer, since + DEADLINE) {
            break;
        }
    }
    // Nothing trains while paused.
    assert!(
        trainer
            .events()
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "no events while paused"
    );
    trainer.send(Command::Continue).expect("alive");
    let events = collect_since(&trainer, 1, since);
    assert!(matches!(events[0], Event::Continued { .. }));
    let Some(Event::Finished { summary, .. }) = events.last() else {
        panic!()
    };
    assert_eq!((summary.status, summary.steps), (RunStatus::Finished, 40));
}

#[test]
fn divergence_and_panics_end_only_their_run() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let trainer = local_trainer(1);
    let mut nan = StartRun::new(1, plan("steps = 20\n"), Some(dir.path().into()));
    nan.fault = Some(Fault::NanLossAt(4));
    let mut boom = StartRun::new(2, plan("steps = 20\n"), Some(dir.path().into()));
    boom.fault = Some(Fault::PanicAt(3));
    trainer.start(nan).expect("alive");
    trainer.start(boom).expect("alive");
    start(&trainer, 3, plan(""), None);
    let events = collect(&trainer, 3);
    let summaries: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Finished { summary, .. } => Some(summary.as_ref().clone()),
            _ => None,
        })
        .collect();
    assert_eq!(summaries[0].status, RunStatus::Diverged);
    assert_eq!(summaries[0].steps, 3, "the diverged step does not count");
    let message = summaries[0].message.as_deref().unwrap_or("");
    assert!(
        message.contains("NaN") && message.contains("step 4") && message.contains("lr"),
        "{message}"
    );
    assert_eq!(summaries[1].status, RunStatus::Failed);
    let message = summaries[1].message.as_deref().unwrap_or("");
    assert!(
        message.contains("panicked") && message.contains("injected fault"),
        "{message}"
    );
    assert_eq!(
        summaries[2].status,
        RunStatus::Finished,
        "the thread survives and trains on"
    );

    // Both failures are in their run records, with the message.
    let records = attnlab::records::list_records(dir.path());
    assert_eq!(records.len(), 2);
    for r in records {
        assert!(matches!(
            r.summary.status,
            RunStatus::Diverged | RunStatus::Failed
        ));
        assert!(r.summary.message.is_some());
    }
}

#[test]
fn lstm_trains_and_has_no_attention_maps() {
    let _turn = one_at_a_time();
    let trainer = local_trainer(1);
    let p = plan("")
        .revise(|s| {
            s.model.kind = ModelKind::Lstm;
            s.train.backend = BackendChoice::Cpu.into();
        })
        .expect("valid");
    start(&trainer, 1, p, None);
    let events = collect(&trainer, 1);
    assert!(!events.iter().any(|e| matches!(e, Event::Snapshot { .. })));
    let Some(Event::Finished { summary, .. }) = events.last() else {
        panic!()
    };
    assert_eq!(summary.status, RunStatus::Finished, "{:?}", summary.message);
}

#[test]
fn a_run_without_a_backend_goes_from_queued_to_failed() {
    let _turn = one_at_a_time();
    let trainer = local_trainer(1);
    let mut run = StartRun::new(1, plan(""), None);
    run.fault = Some(Fault::NoBackend);
    trainer.start(run).expect("alive");
    start(&trainer, 2, plan("steps = 1\n"), None);
    let events = collect(&trainer, 2);
    let first: Vec<_> = events
        .iter()
        .filter(|e| e.run_id() == 1)
        .map(name)
        .collect();
    assert_eq!(first, ["queued", "finished"]);
    let Some(Event::Finished { summary, .. }) = events
        .iter()
        .find(|e| e.run_id() == 1 && matches!(e, Event::Finished { .. }))
    else {
        panic!("run 1 finished")
    };
    assert_eq!(summary.status, RunStatus::Failed);
    assert!(
        summary
            .message
            .as_deref()
            .unwrap_or("")
            .contains("no backend"),
        "{:?}",
        summary.message
    );
    let second: Vec<_> = events
        .iter()
        .filter(|e| e.run_id() == 2)
        .map(name)
        .collect();
    assert_eq!(second.last(), Some(&"finished"));
    assert!(
        second.contains(&"started"),
        "the next run trains: {second:?}"
    );
}

#[test]
fn an_unwritable_record_folder_fails_the_run_with_the_reason() {
    let _turn = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the records folder should be: nothing can be created under it.
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, "x").expect("write");
    let trainer = local_trainer(1);
    start(&trainer, 1, plan("steps = 2\n"), Some(&blocked));
    start(&trainer, 2, plan("steps = 2\n"), Some(dir.path()));
    let events = collect(&trainer, 2);
    let first: Vec<_> = events
        .iter()
        .filter(|e| e.run_id() == 1)
        .map(name)
        .collect();
    assert_eq!(first, ["queued", "finished"], "it never starts");
    let summary = |id: u64| {
        events
            .iter()
            .find_map(|e| match e {
                Event::Finished { id: i, summary } if *i == id => Some(summary.clone()),
                _ => None,
            })
            .expect("finished")
    };
    let failed = summary(1);
    assert_eq!(failed.status, RunStatus::Failed);
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("cannot create the run record"),
        "{message}"
    );
    assert_eq!(failed.record_id, None);
    assert_eq!(
        summary(2).status,
        RunStatus::Finished,
        "the next run trains"
    );
}

/// Runs with the same names started at once (threads here, processes alike) get a
/// folder each: the folder is claimed exclusively.
#[test]
fn record_folders_are_never_shared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut summary =
                    attnlab::records::RunSummary::unstarted("e", "r", 1, RunStatus::Running);
                attnlab::records::RecordWriter::create(
                    &root,
                    "e",
                    "r",
                    "name = \"e\"\n",
                    &mut summary,
                )
                .expect("created");
                summary.record_id.expect("id")
            })
        })
        .collect();
    let mut ids: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().expect("joined"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "{ids:?}");
}

#[test]
fn started_names_each_layers_kernel() {
    let _turn = one_at_a_time();
    let text = "name = \"k\"\n[task]\nseq_len = 256\nvocab = 8\ndistance = 4\n\
                [model]\nheads = 2\nd_model = 16\nd_ff = 32\n\
                layer_attention = [\"dense\", { kind = \"local\", window = 4 }, { kind = \"local\", window = 100 }]\n\
                layers = 3\n[train]\nsteps = 1\nbatch = 2\neval_batches = 1\nbackend = \"cpu\"\n";
    let plan = first_plan(text);
    let plan_again = plan.clone();
    let trainer = local_trainer(1);
    start(&trainer, 1, plan, None);
    let events = collect(&trainer, 1);
    let Some(Event::Started { kernels, .. }) =
        events.iter().find(|e| matches!(e, Event::Started { .. }))
    else {
        panic!("started")
    };
    let names: Vec<&str> = kernels.iter().map(|k| k.kernel.as_str()).collect();
    // On the CPU backend every layer trains with the fused tile kernel.
    assert_eq!(names, ["fused", "fused", "fused"]);
    assert!(kernels.iter().all(|k| k.reason.is_none()));

    // burn's composed ops (what wgpu uses) choose per layer, and say why.
    let composed = attnlab::model::Mixing::for_plan(
        &plan_again,
        &attnlab::device::CpuBackend::device(),
        attnlab::model::SparseMode::Composed,
    );
    let names: Vec<&str> = composed.layers().iter().map(|k| k.kind.name()).collect();
    assert_eq!(names, ["dense", "block_sparse", "masked_dense"]);
    assert_eq!(composed.layers()[0].reason, None);
    assert_eq!(composed.layers()[1].reason, None);
    assert!(
        composed.layers()[2].reason.is_some(),
        "masked dense says why"
    );
}

/// A run stopped midway and resumed from its checkpoint continues exactly as the
/// uninterrupted run with the same seed: the same loss at every later step, one
/// curve without a seam in its record.
#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let _turn = one_at_a_time();
    let p = plan("steps = 12\ncheckpoint_every = 0\n");
    let losses = |events: &[Event]| -> Vec<(usize, f64)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Step { metrics, .. } => Some((metrics.step, metrics.loss)),
                _ => None,
            })
            .collect()
    };
    let trainer = local_trainer(1);
    let whole = tempfile::tempdir().expect("tempdir");
    start(&trainer, 1, p.clone(), Some(whole.path()));
    let uninterrupted = losses(&collect(&trainer, 1));
    assert_eq!(uninterrupted.len(), 12);

    // The same run, stopped after step 5 or so: a checkpoint is saved at the stop.
    let parts = tempfile::tempdir().expect("tempdir");
    start(&trainer, 2, p.clone(), Some(parts.path()));
    let since = Instant::now();
    let mut record_dir = None;
    loop {
        match next(&trainer, since + DEADLINE) {
            Event::Started { record_dir: d, .. } => record_dir = d,
            Event::Step { metrics, .. } if metrics.step == 5 => break,
            _ => {}
        }
    }
    trainer.send(Command::Stop(2)).expect("alive");
    let first = collect_since(&trainer, 1, since);
    let stopped_at = losses(&first).last().map_or(5, |l| l.0);
    assert!(stopped_at < 12, "stopped before the end, at {stopped_at}");
    let dir = record_dir.expect("recorded");
    let record = RunRecord::open(&dir).expect("record");
    assert_eq!(record.summary.status, RunStatus::Stopped);
    assert_eq!(record.checkpoint_step, Some(stopped_at));
    assert!(record.resumable());

    trainer
        .start(StartRun::resume(3, p.clone(), dir.clone()))
        .expect("alive");
    let second = collect(&trainer, 1);
    let resumed = second.iter().find_map(|e| match e {
        Event::Started { resumed_from, .. } => Some(*resumed_from),
        _ => None,
    });
    assert_eq!(resumed, Some(Some(stopped_at)));
    let Some(Event::Finished { summary, .. }) = second.last() else {
        panic!("finished")
    };
    assert_eq!(summary.status, RunStatus::Finished, "{:?}", summary.message);
    assert_eq!(summary.steps, 12);
    let continued = losses(&second);
    assert_eq!(
        continued.iter().map(|l| l.0).collect::<Vec<_>>(),
        ((stopped_at + 1)..=12).collect::<Vec<_>>()
    );
    for (step, loss) in continued {
        let (_, want) = uninterrupted[step - 1];
        assert!(
            close(want, loss),
            "step {step}: resumed {loss} vs uninterrupted {want}"
        );
    }
    // One curve in the record: every step once, in order.
    let record = RunRecord::open(&dir).expect("record");
    assert_eq!(record.summary.status, RunStatus::Finished);
    let steps: Vec<usize> = record
        .metrics()
        .expect("metrics")
        .iter()
        .filter(|m| !m.eval)
        .map(|m| m.metrics.step)
        .collect();
    assert_eq!(steps, (1..=12).collect::<Vec<_>>());
}

/// A stop that arrives during a long evaluation is honoured there: the run ends at the
/// step it was evaluating, not after the whole evaluation and another step.
#[test]
fn stop_is_honoured_during_a_long_evaluation() {
    let _turn = one_at_a_time();
    let trainer = local_trainer(1);
    start(
        &trainer,
        1,
        plan("steps = 1000\neval_every = 1\neval_batches = 100000\n"),
        None,
    );
    let since = Instant::now();
    loop {
        if matches!(next(&trainer, since + DEADLINE), Event::Step { .. }) {
            break;
        }
    }
    // The evaluation of step 1 (100,000 batches) is under way.
    trainer.send(Command::Stop(1)).expect("alive");
    let events = collect_since(&trainer, 1, since);
    let Some(Event::Finished { summary, .. }) = events.last() else {
        panic!("finished")
    };
    assert_eq!(summary.status, RunStatus::Stopped);
    assert_eq!(summary.steps, 1, "stopped during the first evaluation");
}

/// A pool trains runs side by side: every run's events keep their order, runs start
/// in queue order, and a run's metrics are the same as when it trains alone.
#[test]
fn a_pool_trains_runs_side_by_side_with_the_same_results() {
    let _turn = one_at_a_time();
    let p = plan("steps = 200\neval_every = 100\nsnapshot_every = 100\n");
    let alone = {
        let trainer = local_trainer(1);
        start(&trainer, 1, p.clone(), None);
        losses(&collect(&trainer, 1), 1)
    };
    let trainer = local_trainer(2);
    assert_eq!(trainer.workers(), 2);
    for id in 1..=4 {
        start(&trainer, id, p.clone(), None);
    }
    let events = collect(&trainer, 4);
    for id in 1..=4 {
        assert_eq!(losses(&events, id), alone, "run {id} as when alone");
    }
    let position = |want: &dyn Fn(&Event) -> bool| events.iter().position(want).expect("event");
    let second_started = position(&|e| matches!(e, Event::Started { id: 2, .. }));
    let first_finished = position(&|e| matches!(e, Event::Finished { id: 1, .. }));
    assert!(
        second_started < first_finished,
        "runs 1 and 2 trained side by side"
    );
    let third_started = position(&|e| matches!(e, Event::Started { id: 3, .. }));
    assert!(second_started < third_started, "runs start in queue order");
}

/// The record folder a run's `Started` named.
fn record_dir_of(events: &[Event]) -> std::path::PathBuf {
    events
        .iter()
        .find_map(|e| match e {
            Event::Started { record_dir, .. } => record_dir.clone(),
            _ => None,
        })
        .expect("the run was recorded")
}

/// The summaries of the runs that finished among `events`.
fn summaries_of(events: &[Event]) -> Vec<attnlab::records::RunSummary> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Finished { summary, .. } => Some(summary.as_ref().clone()),
            _ => None,
        })
        .collect()
}

/// A resume checks before it touches: a plan whose settings differ from those the
/// checkpoint was trained with (not set on purpose) is refused, naming the field, and
/// a checkpoint that does not load fails the run; either way every file of the
/// record is as it was. Set on purpose, a field that may change mid-run is accepted.
#[test]
fn a_resume_checks_before_it_touches_the_record() {
    let _turn = one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let trainer = local_trainer(1);
    start(&trainer, 1, plan(""), Some(root.path()));
    let dir = record_dir_of(&collect(&trainer, 1));
    let before = files_under(&dir);

    let edited = plan("steps = 12\nlr = 0.002\n");
    trainer
        .start(StartRun::resume(2, edited.clone(), dir.clone()))
        .expect("alive");
    let refused = summaries_of(&collect(&trainer, 1));
    assert_eq!(refused[0].status, RunStatus::Failed);
    let message = refused[0].message.clone().unwrap_or_default();
    assert!(message.contains("train.lr"), "{message}");
    let changed = changed_files(&before, &files_under(&dir));
    assert!(changed.is_empty(), "a refused resume changed {changed:?}");

    // A checkpoint whose model does not load: the run fails, the record is untouched.
    let state = attnlab::records::read_checkpoint(&dir)
        .expect("readable")
        .expect("a checkpoint");
    let model = attnlab::records::checkpoint_dir(&dir).join(&state.model);
    let model_bytes = std::fs::read(&model).expect("model");
    std::fs::write(&model, b"not a burnpack file").expect("damage the model");
    let before_damaged = files_under(&dir);
    trainer
        .start(StartRun::resume(3, plan("steps = 12\n"), dir.clone()))
        .expect("alive");
    let failed = summaries_of(&collect(&trainer, 1));
    assert_eq!(
        failed[0].status,
        RunStatus::Failed,
        "{:?}",
        failed[0].message
    );
    let changed = changed_files(&before_damaged, &files_under(&dir));
    assert!(
        changed.is_empty(),
        "a resume that failed to load changed {changed:?}"
    );
    std::fs::write(&model, model_bytes).expect("restore the model");

    // lr set on purpose (as `--set train.lr=...` does) may change mid-run.
    trainer
        .start(StartRun::resume(4, edited, dir.clone()).changing(vec!["train.lr".into()]))
        .expect("alive");
    let resumed = summaries_of(&collect(&trainer, 1));
    assert_eq!(
        resumed[0].status,
        RunStatus::Finished,
        "{:?}",
        resumed[0].message
    );
    assert_eq!(resumed[0].steps, 12);
}

/// Two runs resuming one record at once: one is refused, naming the process that
/// writes it, and the other continues the record as if alone.
#[test]
fn a_record_has_one_writer_at_a_time() {
    let _turn = one_at_a_time();
    let root = tempfile::tempdir().expect("tempdir");
    let trainer = local_trainer(2);
    let cadence = "eval_every = 100\nsnapshot_every = 100\n";
    start(&trainer, 1, plan(cadence), Some(root.path()));
    let dir = record_dir_of(&collect(&trainer, 1));
    // The same run, trained further (only the steps may differ).
    let longer = plan(&format!("steps = 300\n{cadence}"));
    for id in [2, 3] {
        trainer
            .start(StartRun::resume(id, longer.clone(), dir.clone()))
            .expect("alive");
    }
    let summaries = summaries_of(&collect(&trainer, 2));
    let finished: Vec<_> = summaries
        .iter()
        .filter(|s| s.status == RunStatus::Finished)
        .collect();
    assert_eq!(finished.len(), 1, "{summaries:?}");
    let refused = summaries
        .iter()
        .find(|s| s.status == RunStatus::Failed)
        .expect("one refused");
    let message = refused.message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    let record = RunRecord::open(&dir).expect("record");
    assert_eq!(record.summary.status, RunStatus::Finished);
    assert_eq!(record.summary.steps, 300);
    let steps: Vec<usize> = record
        .metrics()
        .expect("metrics")
        .iter()
        .filter(|m| !m.eval)
        .map(|m| m.metrics.step)
        .collect();
    assert_eq!(steps, (1..=300).collect::<Vec<_>>());
}
