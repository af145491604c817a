//! The workbench driven as a user would, through egui_kittest: widgets found by their
//! labels, the real `App`, the real trainer thread on the CPU backend.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use attnlab::app::{App, PersistedState};
use attnlab::config::Experiment;
use attnlab::records::RunStatus;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

mod common;
use common::bin::Server;
use common::experiments::{DENSE, LOCAL_W1, Tiny, many, prose, text_experiment};

static TINY: LazyLock<String> = LazyLock::new(|| {
    Tiny {
        name: "tiny",
        steps: 12,
        eval_every: 4,
        snapshot_every: 4,
        runs: &[DENSE, LOCAL_W1],
    }
    .toml()
});

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
    let mut h = harness(dir.path(), &TINY);
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
    let mut h = harness(dir.path(), &TINY);
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
    let mut h = harness(dir.path(), &TINY);
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

/// A text experiment whose corpus lies outside its folder opens, refused: Run is
/// disabled, the error names the file, and a checkbox allows that file for this
/// session; ticked, Run trains on it. A restart forgets the allowance.
#[test]
fn a_corpus_outside_the_folder_runs_only_once_its_checkbox_allows_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, prose()).expect("write");
    let folder = dir.path().join("exp");
    std::fs::create_dir(&folder).expect("mkdir");
    let path = folder.join("t.toml");
    std::fs::write(&path, text_experiment("../secret.txt", 32, 2)).expect("write");
    let mut h = harness(dir.path(), &TINY);
    h.run_steps(2);
    h.state_mut().open_path(&path);
    h.run_steps(3);
    assert_eq!(h.state().load_error(), None, "it opens, to be allowed");
    assert_eq!(h.state().experiment().name, "t");
    assert!(is_disabled(&h, "Run"));
    assert!(
        h.query_all_by_label_contains("lies outside the experiment's folder")
            .count()
            >= 1
    );
    // Ctrl+Enter trains nothing while refused.
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::CTRL,
        egui::Key::Enter,
    );
    h.run_steps(2);
    assert!(h.state().runs().views.is_empty());

    let real = secret.canonicalize().expect("real path");
    let allow = format!("Allow reading {} (this session only)", real.display());
    h.get_by_label(&allow).click_accesskit();
    h.run_steps(3);
    assert!(!is_disabled(&h, "Run"));
    assert_eq!(h.query_all_by_label_contains("lies outside").count(), 0);
    assert!(!h.state().is_dirty(), "allowing a file is no edit");
    h.get_by_label("Run").click_accesskit();
    h.run_steps(2);
    step_until(&mut h, |app| !app.runs().any_active());
    let runs = &h.state().runs().views;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].status,
        RunStatus::Finished,
        "{:?}",
        runs[0].message()
    );

    let persisted = h.state().persisted();
    let mut again = Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .build_eframe(move |cc| App::with_state(cc.egui_ctx.clone(), persisted.clone()));
    again.run_steps(2);
    assert!(
        is_disabled(&again, "Run"),
        "the allowance lasts one session"
    );
    again.get_by_label(&allow);
}

#[test]
fn save_then_open_gives_the_same_experiment_and_unsaved_edits_are_confirmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), &TINY);
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
    let mut h = harness(dir.path(), &TINY);
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
        let mut h = harness(dir.path(), &TINY);
        h.run_steps(2);
        h.get_by_label("Run").click();
        step_until(&mut h, |app| {
            app.runs().views.len() == 2 && !app.runs().any_active()
        });
    }
    let mut h = harness(dir.path(), &TINY);
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
    let mut h = harness(dir.path(), &many(150));
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
    let mut h = harness(dir.path(), &TINY);
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
    let mut h = harness(elsewhere.path(), &TINY);
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
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), "server");
    let address = server.address.clone();
    let mut h = harness(dir.path(), &TINY);
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
}

/// The Interventions pane: a tiny run that keeps every checkpoint's weights is measured
/// off the UI thread when Measure is pressed (every head ablated alone and patched
/// alone at the scrubber's step), and a clicked head is measured at every saved step.
#[test]
fn the_interventions_pane_measures_each_head_off_the_ui_thread() {
    let toml = TINY
        .replace(
            "steps = 12",
            "steps = 6\ncheckpoint_every = 2\nkeep_checkpoints = \"all\"",
        )
        .replace(
            "[[runs]]\nname = \"local w=1\"\nmodel.attention = { kind = \"local\", window = 1 }\n",
            "",
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), &toml);
    h.run_steps(2);
    h.get_by_label("Run").click();
    h.run_steps(2);
    step_until(&mut h, |app| !app.runs().any_active());
    h.get_by_label("Interventions").click();
    // The record's saved steps are listed on a helper thread.
    let started = Instant::now();
    while h.query_by_label("Measure").is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.get_by_label_contains("Weights of step 6 (the scrubber's step). Saved: 2, 4, 6;");
    h.get_by_label("Not measured at this step with this mode and batch count: press Measure.");
    h.run_steps(5);
    assert!(
        !h.state().interventions_running(),
        "nothing is measured until Measure is pressed"
    );

    h.get_by_label("Measure").click();
    h.run_steps(1);
    assert!(
        h.state().interventions_running(),
        "measured off the UI thread"
    );
    step_until(&mut h, |app| !app.interventions_running());
    h.get_by_label("accuracy drop under ablation");
    h.get_by_label("patching recovery");
    assert_eq!(
        h.query_all_by_label_contains(" drop: ").count(),
        4,
        "2 x 2 heads"
    );
    assert_eq!(h.query_all_by_label_contains(" recovery: ").count(), 4);
    h.get_by_label_contains("Spearman rank correlation between dependency mass");
    let record = h.state().runs().views[0]
        .record_dir
        .clone()
        .expect("a record");
    let grid = h.state().interventions().grid(&record, 6).expect("cached");
    assert_eq!(grid.ablated.len(), 4);
    assert_eq!(
        grid.recovery.as_ref().map(Vec::len),
        Ok(4),
        "recall has a patch pair"
    );

    // Another pane and back: the grid is cached, nothing is measured again.
    h.get_by_label("Heads").click();
    h.run_steps(2);
    h.get_by_label("Interventions").click();
    h.run_steps(2);
    assert!(!h.state().interventions_running());
    h.get_by_label("accuracy drop under ablation");

    // A clicked head: its drop at every saved step, measured in the background too.
    h.query_all_by_label_contains("1.2 drop: ")
        .next()
        .expect("head 1.2's cell")
        .click();
    h.run_steps(1);
    step_until(&mut h, |app| !app.interventions_running());
    h.get_by_label("Head 1.2 (layer 1, head 2) over training");
    let head = attnlab::model::HeadRef { layer: 0, head: 1 };
    let steps: Vec<usize> = h
        .state()
        .interventions()
        .curve(&record, head)
        .iter()
        .map(|p| p.step)
        .collect();
    assert_eq!(steps, [2, 4, 6]);
}

/// Fork from here: a run whose every checkpoint is kept, forked at the scrubber's step
/// 4 with the editor's lr changed, goes on as a child whose record names its parent
/// and step and holds the new lr; its curve continues the parent's from step 4.
#[test]
fn a_run_forks_at_the_scrubbers_step_with_the_editors_lr() {
    let toml = TINY
        .replace(
            "steps = 12",
            "steps = 6\ncheckpoint_every = 2\nkeep_checkpoints = \"all\"",
        )
        .replace("snapshot_every = 4", "snapshot_every = 2")
        .replace(
            "[[runs]]\nname = \"local w=1\"\nmodel.attention = { kind = \"local\", window = 1 }\n",
            "",
        );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(dir.path(), &toml);
    h.run_steps(2);
    h.get_by_label("Run").click();
    h.run_steps(2);
    step_until(&mut h, |app| !app.runs().any_active());
    let parent = h.state().runs().views[0]
        .record_dir
        .clone()
        .expect("a record");

    // The editor's run of the parent's name gets another lr, a field that may change
    // mid-run.
    let edited = dir.path().join("edited.toml");
    std::fs::write(&edited, toml.replace("[train]\n", "[train]\nlr = 0.003\n")).expect("write");
    h.state_mut().open_path(&edited);
    h.state_mut().scrub_to_step(4);
    h.state_mut()
        .run_command(attnlab::app::UiCommand::Show(attnlab::app::Pane::Attention));
    h.run_steps(2);
    h.get_by_label("Fork from here...").click();
    let failed = |app: &App| {
        app.notice()
            .is_some_and(|(text, error)| error && text.starts_with("Cannot"))
    };
    step_until(&mut h, |app| app.is_fork_dialog_open() || failed(app));
    assert!(h.state().is_fork_dialog_open(), "{:?}", h.state().notice());
    h.get_by_label("Starts from the weights of step 4 (the scrubber's step).");
    h.get_by_label_contains("the child starts with a fresh optimiser");
    h.get_by_label("train.lr");
    assert!(!is_disabled(&h, "Fork"));
    h.get_by_label("Fork").click();
    step_until(&mut h, |app| {
        (app.runs().views.len() == 2 && !app.runs().any_active()) || failed(app)
    });
    assert!(!failed(h.state()), "{:?}", h.state().notice());

    let child = h.state().runs().views[1].clone();
    assert_eq!(child.status, RunStatus::Finished);
    let origin = child.forked_from.clone().expect("names its parent");
    assert_eq!(origin.step, 4);
    assert_eq!(
        std::path::Path::new(&origin.record),
        parent.file_name().expect("a folder name")
    );
    let steps: Vec<usize> = child.train.iter().map(|m| m.step).collect();
    assert_eq!(
        steps,
        [1, 2, 3, 4, 5, 6],
        "the parent's steps, then its own"
    );
    let child_dir = child.record_dir.expect("a record");
    let record = attnlab::records::RunRecord::open(&child_dir).expect("opens");
    assert_eq!(record.summary.forked_from.map(|o| o.step), Some(4));
    let config = std::fs::read_to_string(child_dir.join("config.toml")).expect("config");
    assert!(config.contains("lr = 0.003"), "{config}");

    h.get_by_label("Compare").click();
    h.run_steps(2);
    assert!(h.query_all_by_label("dense (fork @ 4)").count() > 0);
}
