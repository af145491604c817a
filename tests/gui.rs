//! The workbench driven as a user would, through egui_kittest: widgets found by their
//! labels, the real `App`, the real trainer thread on the CPU backend.

use std::time::{Duration, Instant};

use attnlab::app::{App, PersistedState};
use attnlab::config::Experiment;
use attnlab::records::RunStatus;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

const TINY: &str = r#"
name = "tiny"
[task]
seq_len = 16
vocab = 8
distance = 4
[model]
layers = 2
heads = 2
d_model = 16
d_ff = 32
[train]
steps = 12
batch = 4
eval_every = 4
eval_batches = 1
snapshot_every = 4
backend = "cpu"

[[runs]]
name = "dense"
[[runs]]
name = "local w=1"
model.attention = { kind = "local", window = 1 }
"#;

fn harness(dir: &std::path::Path, toml: &str) -> Harness<'static, App> {
    let state = PersistedState {
        experiment_toml: toml.to_string(),
        runs_root: dir.join("runs"),
        ..PersistedState::default()
    };
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| App::with_state(cc.egui_ctx.clone(), state.clone()))
}

/// Steps frames (the trainer runs on its own thread, past runs are read on helper
/// threads) until `done` and nothing is loading, or a generous timeout.
fn step_until(h: &mut Harness<'static, App>, done: impl Fn(&App) -> bool) {
    let started = Instant::now();
    while !done(h.state()) || h.state().is_loading() {
        assert!(started.elapsed() < Duration::from_secs(600), "timed out");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.run_steps(3);
}

fn is_disabled(h: &Harness<'static, App>, label: &str) -> bool {
    h.get_by_label(label).accesskit_node().is_disabled()
}

#[test]
fn run_trains_every_run_and_fills_curves_and_attention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), TINY);
    h.run_steps(2);
    assert!(!is_disabled(&h, "Run"));
    h.get_by_label("Run").click();
    h.run_steps(2);
    assert_eq!(
        h.state().runs().views.len(),
        2,
        "one live run per experiment run"
    );
    step_until(&mut h, |app| !app.runs().any_active());

    for run in &h.state().runs().views {
        assert_eq!(
            run.status,
            RunStatus::Finished,
            "{}: {:?}",
            run.name,
            run.message()
        );
        assert_eq!(run.train.len(), 12, "a loss point per step");
        assert_eq!(run.eval.len(), 3);
        assert_eq!(run.snapshots.len(), 4, "snapshots at 0, 4, 8, 12");
        assert!(
            run.record_dir
                .as_ref()
                .is_some_and(|d| d.join("summary.json").is_file())
        );
    }
    // With a finished run the editor estimates how long the experiment takes.
    assert_eq!(
        h.query_all_by_label_contains("to train at the speed of the last run")
            .count(),
        1
    );
    // The runs panel says so, and the past-runs list picked up both records.
    assert_eq!(
        h.query_all_by_label("finished").count(),
        4,
        "2 live runs + 2 records"
    );
    assert_eq!(
        h.query_all_by_label("Open").count(),
        2,
        "both records listed (disabled: already open)"
    );

    // The attention grid of the selected run: 2 layers x 2 heads.
    h.get_by_label("Attention").click();
    h.run_steps(3);
    h.get_by_label("layer 2");
    h.get_by_label("head 2");
    let textures = h.state().texture_count();
    assert!(textures >= 4, "one texture per map, got {textures}");
    h.run_steps(5);
    assert_eq!(
        h.state().texture_count(),
        textures,
        "textures are not rebuilt every frame"
    );

    // Compare shows both runs side by side with what differs.
    h.get_by_label("Compare").click();
    h.run_steps(3);
    h.get_by_label("model.attention");
    assert!(h.query_all_by_label("snapshot at step 12").count() == 2);
    // The difference of the two runs' maps, with its diverging scale.
    h.get_by_label("first two runs").click();
    h.run_steps(3);
    assert_eq!(
        h.query_all_by_label_contains("dense - local w=1").count(),
        1
    );
    assert_eq!(
        h.query_all_by_label_contains("weight difference").count(),
        1
    );

    // Heads: every head's statistics over training and at the scrubber's step, and
    // a query's receptive field through the layers.
    h.get_by_label("Heads").click();
    h.run_steps(3);
    let run = &h.state().runs().views[1];
    assert_eq!(run.head_stats.len(), 4, "statistics at every snapshot");
    assert_eq!(run.head_stats[0].1.len(), 4, "2 layers x 2 heads");
    assert!(
        h.query_all_by_label("L2 H2").count() >= 1,
        "the table's row"
    );
    h.get_by_label("Receptive field");
    assert_eq!(h.query_all_by_label_contains("after layer 2:").count(), 1);
    // The table sorts by a column when its header is clicked.
    // (The first "entropy" picks the plotted statistic, the last is the column.)
    h.query_all_by_label("entropy")
        .last()
        .expect("the entropy column")
        .click();
    h.run_steps(2);
    h.get_by_label("entropy (sorted)");

    // Distance: recall at one distance in both runs has nothing to plot yet, and says
    // what would.
    h.get_by_label("Distance").click();
    h.run_steps(3);
    assert_eq!(
        h.query_all_by_label_contains("Nothing to show yet").count(),
        1
    );
}

/// A task whose answers lie at many distances: the Distance pane plots accuracy by
/// distance within each run, live, with each run's structural reach.
#[test]
fn the_distance_pane_plots_accuracy_by_distance_within_runs() {
    let mqar = TINY
        .replace("distance = 4", "kind = \"mqar\"\npairs = 2")
        .replace("seq_len = 16", "seq_len = 24");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), &mqar);
    h.run_steps(2);
    h.get_by_label("Run").click();
    h.run_steps(2);
    step_until(&mut h, |app| !app.runs().any_active());
    for run in &h.state().runs().views {
        let latest = run.by_distance.last().expect("accuracy by distance");
        assert_eq!(latest.step, 12);
        assert!(latest.counts.len() > 1, "{}: {:?}", run.name, latest.counts);
        let total: usize = latest.counts.iter().map(|c| c.total).sum();
        assert_eq!(total, 4 * 2, "batch 4 x 2 pairs, one batch");
    }
    assert_eq!(
        h.state().runs().views[1].reach(),
        Some(2),
        "local w=1 over 2 layers"
    );
    h.get_by_label("Distance").click();
    h.run_steps(3);
    assert_eq!(h.query_all_by_label_contains("Within runs").count(), 1);
}

#[test]
fn an_invalid_field_disables_run_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), TINY);
    h.run_steps(2);
    h.get_by_label("heads").set_value_accesskit(3.0);
    h.run_steps(3);
    assert_eq!(h.state().experiment().base.model.heads, 3);
    let experiment = h.state().experiment();
    assert!(
        (0..experiment.runs.len())
            .all(|i| experiment.run_settings(i).map(|s| s.model.heads) == Ok(3)),
        "base edits reach the runs"
    );
    assert!(is_disabled(&h, "Run"));
    assert!(
        h.query_all_by_label_contains("must divide model.d_model = 16")
            .count()
            >= 1
    );
    assert!(h.state().is_dirty());
    // Ctrl+Enter does nothing while invalid.
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::CTRL,
        egui::Key::Enter,
    );
    h.run_steps(2);
    assert!(h.state().runs().views.is_empty());

    h.get_by_label("heads").set_value_accesskit(4.0);
    h.run_steps(3);
    assert!(!is_disabled(&h, "Run"));
    assert_eq!(h.query_all_by_label_contains("must divide").count(), 0);
}

#[test]
fn ctrl_enter_runs_and_escape_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = TINY.replace("steps = 12", "steps = 100000");
    let mut h = harness(dir.path(), &long);
    h.run_steps(2);
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::CTRL,
        egui::Key::Enter,
    );
    h.run_steps(2);
    assert_eq!(h.state().runs().views.len(), 2);
    step_until(&mut h, |app| app.runs().views[0].steps_done() > 0);
    h.key_press(egui::Key::Escape);
    step_until(&mut h, |app| !app.runs().any_active());
    for run in &h.state().runs().views {
        assert_eq!(run.status, RunStatus::Stopped);
        assert!(run.steps_done() < 100000);
    }
}

#[test]
fn a_broken_file_shows_its_error_and_keeps_the_experiment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), TINY);
    h.run_steps(2);
    let before = h.state().experiment().clone();
    let bad = dir.path().join("broken.toml");
    std::fs::write(&bad, "name = \"x\"\n[model]\nlayerz = 2\n").expect("write");
    h.state_mut().open_path(&bad);
    h.run_steps(3);
    let error = h.state().load_error().expect("error shown").to_string();
    assert!(
        error.contains("broken.toml:3") && error.contains("layers"),
        "{error}"
    );
    h.get_by_label("This file could not be opened");
    assert_eq!(
        *h.state().experiment(),
        before,
        "the open experiment is untouched"
    );
    h.get_by_label("OK").click();
    h.run_steps(3);
    assert!(h.state().load_error().is_none());
}

#[test]
fn save_then_open_gives_the_same_experiment_and_unsaved_edits_are_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), TINY);
    h.run_steps(2);
    h.get_by_label("heads").set_value_accesskit(8.0);
    h.run_steps(2);
    assert!(h.state().is_dirty());
    let path = dir.path().join("saved.toml");
    assert!(h.state_mut().save_to(&path));
    h.run_steps(2);
    assert!(!h.state().is_dirty());
    let saved = h.state().experiment().clone();
    assert_eq!(Experiment::load(&path).expect("valid file"), saved);

    // Open an example, then the saved file again: same experiment.
    h.state_mut().open_example("block_boundaries.toml");
    h.run_steps(2);
    assert_eq!(h.state().experiment().name, "block boundaries");
    h.state_mut().open_path(&path);
    h.run_steps(2);
    assert_eq!(*h.state().experiment(), saved);

    // An edit, then opening another file asks first; Cancel keeps the edit.
    h.get_by_label("heads").set_value_accesskit(2.0);
    h.run_steps(2);
    h.state_mut().open_example("dense_vs_local.toml");
    h.run_steps(2);
    h.get_by_label("Discard unsaved changes?");
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    assert_eq!(h.state().experiment().base.model.heads, 2);
    h.state_mut().open_example("dense_vs_local.toml");
    h.run_steps(2);
    h.get_by_label("Discard changes").click();
    h.run_steps(2);
    assert_eq!(h.state().experiment().name, "dense vs local");
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), TINY);
    h.run_steps(2);
    h.get_by_label("heads").set_value_accesskit(8.0);
    h.run_steps(2);
    let persisted = h.state().persisted();
    let again = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| App::with_state(cc.egui_ctx.clone(), persisted.clone()));
    assert_eq!(again.state().experiment(), h.state().experiment());
    assert!(
        again.state().is_dirty(),
        "unsaved edits are still flagged after a restart"
    );
}

#[test]
fn first_launch_opens_a_shipped_example_and_previews_its_masks() {
    let mut h = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(|cc| App::with_state(cc.egui_ctx.clone(), PersistedState::default()));
    h.run_steps(3);
    assert_eq!(h.state().experiment().name, "dense vs local");
    // The mask preview is the first tab shown: every run's masks and what its layers
    // reach. Dense and local w=16 (2 x 16 = 32) reach distance 24; local w=4 (8) does not.
    assert_eq!(h.query_all_by_label("all layers").count(), 3);
    assert_eq!(h.query_all_by_label_contains("within reach").count(), 2);
    assert_eq!(h.query_all_by_label_contains("is out of reach").count(), 1);
}

#[test]
fn past_runs_reopen_without_retraining() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut h = harness(dir.path(), TINY);
        h.run_steps(2);
        h.get_by_label("Run").click();
        step_until(&mut h, |app| {
            app.runs().views.len() == 2 && !app.runs().any_active()
        });
    }
    let mut h = harness(dir.path(), TINY);
    step_until(&mut h, |_| true);
    assert!(h.state().runs().views.is_empty());
    let opens: Vec<_> = h.get_all_by_label("Open").collect();
    assert_eq!(opens.len(), 2);
    opens[0].click();
    step_until(&mut h, |app| !app.runs().views.is_empty());
    let runs = &h.state().runs().views;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Finished);
    assert_eq!(runs[0].train.len(), 12);
    assert_eq!(runs[0].snapshots.len(), 4);
}

#[test]
fn the_cost_view_measures_the_experiments_patterns_and_caches_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cost-cache.json");
    let state = PersistedState {
        experiment_toml: TINY.to_string(),
        runs_root: dir.path().join("runs"),
        cost_max_len: 256,
        cost_cache: Some(cache.clone()),
        ..PersistedState::default()
    };
    let build = |state: PersistedState| {
        Harness::builder()
            .with_size(egui::vec2(1400.0, 900.0))
            .build_eframe(move |cc| App::with_state(cc.egui_ctx.clone(), state.clone()))
    };
    let mut h = build(state.clone());
    h.run_steps(2);
    h.get_by_label("Cost").click();
    h.run_steps(2);
    h.get_by_label("Nothing measured yet for these patterns: press Measure.");
    h.get_by_label("Measure").click();
    h.run_steps(1);
    assert!(h.state().cost_running(), "the sweep runs in the background");
    step_until(&mut h, |app| !app.cost_running());
    // One row per pattern of the experiment (dense, local w=1), measured at n = 256.
    h.get_by_label("n = 256");
    let cells: Vec<String> = h
        .query_all_by_label_contains(" ms")
        .filter_map(|n| {
            let node = n.accesskit_node();
            node.label().or(node.value())
        })
        .filter(|l| !l.starts_with("frame"))
        .collect();
    assert_eq!(
        cells.len(),
        2,
        "a time for dense and for local at n = 256: {cells:?}"
    );
    assert!(
        cells.iter().any(|c| c.ends_with("x)")),
        "local's speed-up over dense: {cells:?}"
    );
    let cached = std::fs::read_to_string(&cache).expect("cache written");
    assert!(cached.contains("/256"), "{cached}");

    // A new window reads the cache: nothing to measure again.
    let mut h = build(state);
    h.run_steps(2);
    h.get_by_label("Cost").click();
    h.run_steps(2);
    assert!(
        h.query_by_label("Nothing measured yet for these patterns: press Measure.")
            .is_none()
    );
    h.get_by_label("n = 256");
}

/// Hundreds of runs queued from the window all train: the window hands them to the
/// trainer as it has room and never blocks (it used to wait on a full command channel
/// while the trainer waited for the window to take its events).
#[test]
fn hundreds_of_runs_from_the_window_all_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut toml = String::from(
        "name = \"many\"\n[task]\nseq_len = 8\nvocab = 4\ndistance = 2\n[model]\nlayers = 1\n\
         heads = 1\nd_model = 4\nd_ff = 4\n[train]\nsteps = 1\nbatch = 1\neval_batches = 1\n\
         backend = \"cpu\"\n",
    );
    for i in 0..150 {
        toml.push_str(&format!("[[runs]]\nname = \"r{i}\"\n"));
    }
    let mut h = harness(dir.path(), &toml);
    h.run_steps(2);
    h.get_by_label("Run").click();
    step_until(&mut h, |app| {
        app.runs().views.len() == 150 && !app.runs().any_active()
    });
    assert!(
        h.state()
            .runs()
            .views
            .iter()
            .all(|r| r.status == RunStatus::Finished),
        "every run finished"
    );
}

/// Values the validator accepts but the widgets' drag ranges do not reach are shown
/// as loaded, not clamped: opening a file never changes it or marks it edited.
#[test]
fn loaded_values_are_never_clamped_by_the_widgets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = TINY
        .replace("vocab = 8", "vocab = 5000")
        .replace("eval_batches = 1", "eval_batches = 2000");
    let mut h = harness(dir.path(), &toml);
    h.run_steps(5);
    let e = h.state().experiment();
    assert_eq!(e.base.task.vocab, 5000);
    assert_eq!(e.base.train.eval_batches, 2000);
    assert!(!h.state().is_dirty(), "nothing was edited");
}

/// Stop a long run, then Resume it from the records list: it continues from its
/// checkpoint, its curve going on from the same step without a seam.
#[test]
fn a_stopped_run_resumes_from_the_records_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = TINY
        .replace("steps = 12", "steps = 100000\ncheckpoint_every = 0")
        .replace(
            "[[runs]]\nname = \"local w=1\"\nmodel.attention = { kind = \"local\", window = 1 }\n",
            "",
        );
    let mut h = harness(dir.path(), &long);
    h.run_steps(2);
    h.get_by_label("Run").click();
    step_until(&mut h, |app| {
        app.runs()
            .views
            .first()
            .is_some_and(|v| v.steps_done() >= 3)
    });
    h.key_press(egui::Key::Escape);
    step_until(&mut h, |app| !app.runs().any_active());
    let stopped_at = h.state().runs().views[0].steps_done();
    // The live view holds the record; clear it so the record can be resumed.
    h.get_by_label("Clear finished").click();
    step_until(&mut h, |app| app.runs().views.is_empty());
    h.get_by_label("Resume").click();
    step_until(&mut h, |app| {
        app.runs()
            .views
            .first()
            .is_some_and(|v| v.steps_done() >= stopped_at + 3)
    });
    h.key_press(egui::Key::Escape);
    step_until(&mut h, |app| !app.runs().any_active());
    let run = &h.state().runs().views[0];
    assert_eq!(run.status, RunStatus::Stopped);
    let steps: Vec<usize> = run.train.iter().map(|m| m.step).collect();
    assert_eq!(
        steps,
        (1..=run.steps_done()).collect::<Vec<_>>(),
        "one curve: every step once, continuing from {stopped_at}"
    );
    assert!(run.steps_done() > stopped_at);
}

/// Seed replicates are drawn as one curve per group: the legend names the group and
/// its seed count.
#[test]
fn seed_replicates_are_grouped_in_the_curves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = TINY
        .replace("steps = 12", "steps = 4\nseeds = [1, 2]")
        .replace(
            "[[runs]]\nname = \"local w=1\"\nmodel.attention = { kind = \"local\", window = 1 }\n",
            "",
        );
    let mut h = harness(dir.path(), &toml);
    h.run_steps(2);
    h.get_by_label("Run").click();
    step_until(&mut h, |app| {
        app.runs().views.len() == 2 && !app.runs().any_active()
    });
    let groups: Vec<&str> = h
        .state()
        .runs()
        .views
        .iter()
        .map(|v| v.group.as_str())
        .collect();
    assert_eq!(groups, ["dense", "dense"]);
    h.get_by_label("Curves").click();
    h.run_steps(3);
    assert!(h.query_all_by_label_contains("dense (2 seeds)").count() >= 1);
}

/// Export from the window writes the figures and a bundle; opening the bundle's
/// experiment lists its records, which reopen without retraining.
#[test]
fn export_writes_a_bundle_that_reopens_without_retraining() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), TINY);
    h.run_steps(2);
    h.get_by_label("Run").click();
    step_until(&mut h, |app| {
        app.runs().views.len() == 2 && !app.runs().any_active()
    });
    let bundle = dir.path().join("bundle");
    h.state_mut().export_to(&bundle);
    step_until(&mut h, |_| true);
    assert!(bundle.join("experiment.toml").is_file());
    assert!(bundle.join("figures").join("summary.csv").is_file());
    let records = attnlab::records::list_records(&bundle.join("records"));
    assert_eq!(records.len(), 2, "both records copied");
    let (notice, error) = h.state().notice().expect("a notice");
    assert!(!error && notice.contains("Exported"), "{notice}");

    // Someone else opens the bundle: its records are listed and open.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let mut h = harness(elsewhere.path(), TINY);
    step_until(&mut h, |_| true);
    h.state_mut().open_path(&bundle.join("experiment.toml"));
    step_until(&mut h, |_| true);
    let opens: Vec<_> = h.get_all_by_label("Open").collect();
    assert_eq!(opens.len(), 2, "the bundle's records are listed");
    opens[0].click();
    step_until(&mut h, |app| !app.runs().views.is_empty());
    assert_eq!(h.state().runs().views[0].train.len(), 12);
}

/// The Devices pane: a server added by its address is checked off the UI thread and
/// remembered; with "Train queued runs on these servers" on, the runs train there and
/// the runs panel says where.
#[test]
fn runs_train_on_a_server_added_in_the_devices_pane() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_attnlab"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--device",
            "cpu",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("attnlab serve");
    let mut stdout = std::io::BufReader::new(server.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("address");
    let address = line
        .trim()
        .trim_start_matches("attnlab serve: listening on ")
        .to_string();
    let mut h = harness(dir.path(), TINY);
    h.run_steps(2);
    h.get_by_label("Devices").click();
    h.run_steps(2);
    h.get_by_label("add").focus();
    h.run_steps(1);
    h.get_by_label("add").type_text("127.0.0.1:1");
    h.run_steps(2);
    assert_eq!(
        h.query_all_by_label_contains("is not a server address")
            .count(),
        1,
        "an address without ws:// is refused with the reason"
    );
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.key_press(egui::Key::Backspace);
    h.run_steps(1);
    h.get_by_label("add").type_text(&address);
    h.run_steps(2);
    h.get_by_label("Add").click();
    h.run_steps(2);
    assert_eq!(h.state().persisted().servers, vec![address.clone()]);
    step_until(&mut h, |app| {
        app.server_state(&address).is_some_and(|s| s != "checking")
    });
    assert_eq!(
        h.state().server_state(&address).as_deref(),
        Some("reachable")
    );
    h.get_by_label("Train queued runs on these servers (one run per server at a time)")
        .click();
    h.run_steps(2);
    h.get_by_label("Run").click();
    h.run_steps(2);
    step_until(&mut h, |app| !app.runs().any_active());
    for run in &h.state().runs().views {
        assert_eq!(
            run.status,
            RunStatus::Finished,
            "{}: {:?}",
            run.name,
            run.message()
        );
        let backend = run.backend.as_ref().expect("started");
        assert_eq!(
            (backend.backend.as_str(), backend.adapter.as_str()),
            ("remote", address.as_str())
        );
    }
    // Ignored: the server may have exited.
    let _ = server.kill();
    let _ = server.wait();
}
