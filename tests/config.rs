//! Experiment files: defaults, round trips, every shipped file, and clear errors for
//! bad files.

use std::path::PathBuf;

use attnlab::config::{
    AttentionPattern, BackendChoice, BackendSetting, Experiment, ModelKind, RunSpec, Settings,
    TaskKind,
};
use proptest::prelude::*;

mod common;
use common::attention::any_pattern;
use common::experiments::seeded_sweep;

fn experiments_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments")
}

fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(experiments_dir())
        .expect("experiments/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The single error of a file that should fail, as text.
fn error_of(text: &str) -> String {
    match Experiment::from_toml(text).and_then(|e| e.plan().map(|_| e)) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_shipped_experiment_validates() {
    let files = shipped();
    assert!(
        files.len() >= 6,
        "ship several experiments, found {}",
        files.len()
    );
    for path in files {
        let experiment =
            Experiment::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let plans = experiment
            .plan()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!plans.is_empty());
        assert!(
            !experiment.description.is_empty(),
            "{} should say what it shows",
            path.display()
        );
    }
}

#[test]
fn shipped_files_round_trip() {
    for path in shipped() {
        let experiment = Experiment::load(&path).expect("valid");
        let text = experiment.to_toml().expect("writes");
        let again = Experiment::from_toml(&text)
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
        assert_eq!(experiment, again, "{}", path.display());
    }
}

#[test]
fn omitted_fields_take_defaults_and_runs_override_fields() {
    let e = Experiment::from_toml(
        r#"
name = "x"
[task]
distance = 10
[[runs]]
name = "a"
[[runs]]
name = "b"
model.attention = { kind = "local", window = 3 }
train.steps = 7
"#,
    )
    .expect("valid");
    assert_eq!(e.runs.len(), 2);
    let a = &e.run_settings(0).expect("resolves");
    assert_eq!(a.task.kind, TaskKind::Recall);
    assert_eq!(a.task.seq_len, 128);
    assert_eq!(a.task.distance, 10);
    assert_eq!(a.model.kind, ModelKind::Transformer);
    assert_eq!((a.model.layers, a.model.heads, a.model.d_model), (2, 4, 64));
    assert_eq!(a.model.attention, AttentionPattern::Dense);
    assert_eq!(a.train.steps, 1500);
    let b = &e.run_settings(1).expect("resolves");
    assert_eq!(b.model.attention, AttentionPattern::Local { window: 3 });
    assert_eq!(b.train.steps, 7);
    assert_eq!(
        b.task.distance, 10,
        "a run keeps the base fields it does not override"
    );
    assert_eq!(b.train.lr, a.train.lr);
    e.plan().expect("valid plan");
}

#[test]
fn a_pattern_name_alone_takes_its_default_parameters() {
    let e = Experiment::from_toml("name = \"x\"\n[model]\nattention = \"local\"\n").expect("valid");
    assert_eq!(
        e.base.model.attention,
        AttentionPattern::Local { window: 8 }
    );
    assert_eq!(e.runs.len(), 1, "a file without [[runs]] is one run");
}

#[test]
fn unknown_field_is_named_with_a_suggestion() {
    let msg = error_of("name = \"x\"\n[model]\nlayer = 2\n");
    assert!(msg.contains("unknown field `layer`"), "{msg}");
    assert!(
        msg.contains("(did you mean `layers`?)"),
        "should suggest `layers`: {msg}"
    );
    assert!(msg.contains("line 3"), "should give the line: {msg}");

    let msg = error_of(
        "name = \"x\"\n[[runs]]\nname = \"a\"\nmodel.attention = { kind = \"local\", widnow = 4 }\n",
    );
    assert!(msg.contains("`widnow`"), "{msg}");
    assert!(msg.contains("(did you mean `window`?)"), "{msg}");
    assert!(msg.contains("runs[0]"), "{msg}");

    let msg = error_of("name = \"x\"\n[model]\nattention = \"lokal\"\n");
    assert!(msg.contains("`lokal`"), "{msg}");
    assert!(msg.contains("(did you mean `local`?)"), "{msg}");
}

#[test]
fn wrong_type_names_field_and_line() {
    let msg = error_of("name = \"x\"\n[train]\nsteps = \"many\"\n");
    assert!(msg.contains("train.steps"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
}

#[test]
fn invalid_combinations_name_field_value_and_rule() {
    let msg = error_of("name = \"x\"\n[model]\nheads = 3\nd_model = 64\n");
    assert!(
        msg.contains("model.heads") && msg.contains('3') && msg.contains("divide"),
        "{msg}"
    );

    let msg = error_of("name = \"x\"\n[task]\nseq_len = 32\ndistance = 32\n");
    assert!(msg.contains("task.distance") && msg.contains("32"), "{msg}");

    let msg = error_of("name = \"x\"\n[model]\nattention = { kind = \"local\", window = 0 }\n");
    assert!(
        msg.contains("window") && msg.contains("at least 1"),
        "{msg}"
    );

    let msg = error_of(
        "name = \"x\"\n[task]\nseq_len = 60\ndistance = 8\n[model]\nattention = { kind = \"block\", size = 16 }\n",
    );
    assert!(
        msg.contains("size") && msg.contains("16") && msg.contains("divide"),
        "{msg}"
    );

    let msg =
        error_of("name = \"x\"\n[model]\nlayers = 3\nlayer_attention = [\"dense\", \"dense\"]\n");
    assert!(msg.contains("layer_attention"), "{msg}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = Experiment::from_toml(
        "name = \"x\"\n[[runs]]\nname = \"a\"\nmodel.heads = 3\n[[runs]]\nname = \"b\"\ntrain.batch = 0\n",
    )
    .expect("parses");
    let errors = e.plan().expect_err("two bad runs");
    assert!(
        errors.for_field("runs[0].model.heads").is_some(),
        "{errors}"
    );
    assert!(
        errors.for_field("runs[1].train.batch").is_some(),
        "{errors}"
    );
}

#[test]
fn empty_and_non_toml_files_are_clear_errors() {
    let msg = error_of("");
    assert!(msg.contains("empty"), "{msg}");
    let msg = error_of("   \n\n");
    assert!(msg.contains("empty"), "{msg}");
    let msg = error_of("this is not toml {");
    assert!(msg.contains("line 1"), "{msg}");
    let msg = error_of("[task]\nseq_len = 64\n");
    assert!(msg.contains("name"), "a missing name is named: {msg}");
}

#[test]
fn duplicate_run_names_are_rejected() {
    let msg = error_of("name = \"x\"\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"a\"\n");
    assert!(
        msg.contains("runs[1].name") && msg.contains("unique"),
        "{msg}"
    );
}

#[test]
fn loading_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "name = \"x\"\n[model]\nlayerz = 2\n").expect("write");
    let msg = Experiment::load(&path).expect_err("bad").to_string();
    assert!(msg.contains("bad.toml:3"), "{msg}");
    let missing = Experiment::load(&dir.path().join("missing.toml"))
        .expect_err("missing")
        .to_string();
    assert!(
        missing.contains("missing.toml") && missing.contains("cannot read"),
        "{missing}"
    );
}

/// A run that sets a field to the base's current value keeps it when the base
/// changes, also after saving and reopening the file.
#[test]
fn a_run_that_sets_the_base_value_keeps_it_when_the_base_is_edited() {
    let mut e = Experiment::from_toml(
        "name = \"x\"\n[task]\ndistance = 10\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\ntask.distance = 10\n",
    )
    .expect("valid");
    e.base.task.distance = 20;
    assert_eq!(
        e.run_settings(0).expect("a").task.distance,
        20,
        "a inherits"
    );
    assert_eq!(e.run_settings(1).expect("b").task.distance, 10, "b sets it");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.toml");
    std::fs::write(&path, e.to_toml().expect("writes")).expect("save");
    let mut reopened = Experiment::load(&path).expect("reopens");
    assert_eq!(reopened, e);
    reopened.base.task.distance = 30;
    assert_eq!(reopened.run_settings(0).expect("a").task.distance, 30);
    assert_eq!(reopened.run_settings(1).expect("b").task.distance, 10);
    assert_eq!(reopened.runs[1].overridden_fields(), ["task.distance"]);
}

fn settings_strategy() -> impl Strategy<Value = Settings> {
    (
        (
            prop::sample::select(TaskKind::ALL.to_vec()),
            0usize..10_000,
            0usize..100_000,
            0usize..5000,
            0usize..100,
        ),
        (
            prop::bool::ANY,
            1usize..6,
            0usize..9,
            0usize..600,
            any_pattern(),
            prop::collection::vec(any_pattern(), 0..4),
        ),
        (
            0usize..100_000,
            0usize..5000,
            prop::num::f64::NORMAL | prop::num::f64::POSITIVE,
            0u64..=(i64::MAX as u64),
            prop_oneof![
                prop::sample::select(BackendChoice::ALL.to_vec()).prop_map(BackendSetting::from),
                Just(BackendSetting::remote(vec![
                    "ws://127.0.0.1:3000".into(),
                    "ws://gpu-box:3001".into()
                ])),
                Just(BackendSetting::Remote {
                    remote: attnlab::config::RemoteAddresses::One("ws://h:1".into())
                }),
            ],
        ),
    )
        .prop_map(|(t, m, r)| {
            let mut s = Settings::default();
            (
                s.task.kind,
                s.task.seq_len,
                s.task.vocab,
                s.task.distance,
                s.task.pairs,
            ) = t;
            s.model.kind = if m.0 {
                ModelKind::Lstm
            } else {
                ModelKind::Transformer
            };
            (s.model.layers, s.model.heads, s.model.d_model) = (m.1, m.2, m.3);
            s.model.attention = m.4;
            s.model.layer_attention = m.5;
            (
                s.train.steps,
                s.train.batch,
                s.train.lr,
                s.train.seed,
                s.train.backend,
            ) = r;
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the window can hold, valid or not: save then reopen gives the
    /// identical experiment, base and every run's own fields.
    #[test]
    fn save_then_reopen_gives_the_identical_experiment(
        base in settings_strategy(),
        runs in prop::collection::vec(settings_strategy(), 0..4),
        name in "[a-zA-Z0-9 _=.-]{1,30}",
    ) {
        let mut e = Experiment::single(&name, base.clone());
        e.runs.clear();
        for (i, settings) in runs.iter().enumerate() {
            let mut run = RunSpec::new(format!("run {i}"));
            run.record_changes(&base, settings);
            e.runs.push(run);
        }
        if e.runs.is_empty() {
            e.runs.push(RunSpec::new(name.clone()));
        }
        let text = e.to_toml().expect("every generated value fits TOML");
        let back = Experiment::from_toml(&text).expect("reopens");
        prop_assert_eq!(&back, &e, "{}", text);
        for (i, settings) in runs.iter().enumerate() {
            prop_assert_eq!(&back.run_settings(i).expect("resolves"), settings);
        }
    }
}

/// `[sweep]` x `train.seeds`: every run at every point, once per seed, named and
/// grouped; a bad value is reported at its sweep entry, with its line.
#[test]
fn sweeps_and_seeds_expand_into_named_grouped_runs() {
    let text = seeded_sweep("4, 8, 12", "");
    let e = Experiment::from_toml(&text).expect("parses");
    let plans = e.plan().expect("valid");
    assert_eq!(plans.len(), 2 * 3 * 2);
    assert_eq!(plans[0].name(), "dense distance=4 seed=1");
    assert_eq!(plans[0].group(), "dense distance=4");
    assert_eq!(plans[1].name(), "dense distance=4 seed=2");
    assert_eq!(plans[1].settings().train.seed, 2);
    assert_eq!(plans[11].name(), "local distance=12 seed=2");
    assert_eq!(plans[11].settings().task.distance, 12);
    // Round trip keeps the sweep and the seeds.
    let again = Experiment::from_toml(&e.to_toml().expect("writes")).expect("reopens");
    assert_eq!(again, e);
    // A value out of range is named at the sweep entry, with the point.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text.replace("[4, 8, 12]", "[4, 40]")).expect("write");
    let errors = Experiment::load_and_plan(&path)
        .map(|_| ())
        .expect_err("40 >= seq_len");
    let e = errors
        .for_field("sweep.task.distance")
        .expect("at the sweep entry");
    assert!(e.message.contains("distance=40"), "{}", e.message);
    assert_eq!(e.line, Some(7));
}

/// Expanding the sweep writes plain runs that plan to exactly what the sweep did.
#[test]
fn an_expanded_sweep_plans_the_same_runs() {
    let text = seeded_sweep("4, 8", "");
    let mut e = Experiment::from_toml(&text).expect("parses");
    let before = e.plan().expect("valid");
    e.expand_sweep();
    assert!(e.sweep.is_empty());
    assert_eq!(e.runs.len(), 8);
    let after = e.plan().expect("valid");
    let view = |plans: &[attnlab::config::RunPlan]| -> Vec<(String, Settings)> {
        plans
            .iter()
            .map(|p| {
                let mut s = p.settings().clone();
                s.train.seeds.clear();
                (p.name().to_string(), s)
            })
            .collect()
    };
    assert_eq!(view(&after), view(&before));
    // And it saves and reopens as plain runs.
    let again = Experiment::from_toml(&e.to_toml().expect("writes")).expect("reopens");
    assert_eq!(again, e);
}

// ---------------------------------------------------------------------------------
// The field registry: one declaration per field.

use attnlab::config::fields::{self, Access};

/// The keys serde knows for one table, read from its own unknown-field message
/// (``unknown field `zz`, expected one of `kind`, `seq_len`, ...``): the struct's
/// fields as the file format sees them, whatever the registry says.
fn serde_keys(section: &str) -> Vec<String> {
    let text = format!("name = \"x\"\n[{section}]\nzz_not_a_field = 1\n");
    let message = match Experiment::from_toml(&text) {
        Ok(_) => panic!("an unknown field must be refused"),
        Err(e) => e.to_string(),
    };
    let (_, expected) = message
        .split_once("expected")
        .expect("serde lists the fields");
    let expected = expected.split(" (did you mean").next().unwrap_or(expected);
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_settings_field_is_in_the_registry_and_nothing_else() {
    for section in fields::Section::ALL {
        let mut from_serde = serde_keys(section.name());
        let mut from_registry: Vec<String> = fields::in_section(section)
            .map(|f| f.key().to_string())
            .collect();
        from_serde.sort();
        from_registry.sort();
        assert_eq!(from_serde, from_registry, "[{}]", section.name());
    }
}

#[test]
fn every_registry_field_round_trips_through_a_file() {
    for field in fields::FIELDS {
        let mut settings = Settings::default();
        // A value other than the default, inside the field's bounds.
        match field.access {
            Access::Int { get, set, min, max } => {
                let v = if get(&settings) == max {
                    min
                } else {
                    max.min(get(&settings) + 1).max(min)
                };
                set(&mut settings, v);
            }
            Access::Float {
                get, set, min, max, ..
            } => {
                let v = if get(&settings) == max {
                    (min + max) / 2.0
                } else {
                    max
                };
                set(&mut settings, v);
            }
            Access::Bool { get, set } => {
                let v = !get(&settings);
                set(&mut settings, v);
            }
            Access::Choice { names, get, set } => {
                let other = names()
                    .into_iter()
                    .find(|n| *n != get(&settings))
                    .expect("two names");
                set(&mut settings, other);
            }
            Access::Structured => continue,
        }
        assert_ne!(
            settings,
            Settings::default(),
            "{}: the setter changed nothing",
            field.path
        );
        let text = Experiment::single("round trip", settings.clone())
            .to_toml()
            .expect("serialises");
        let back = Experiment::from_toml(&text).expect("parses").base;
        assert_eq!(
            field.value_text(&back),
            field.value_text(&settings),
            "{}:\n{text}",
            field.path
        );
        assert_eq!(back, settings, "{}", field.path);
    }
}

#[test]
fn the_docs_field_table_is_the_registry() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/experiments.md");
    let doc = std::fs::read_to_string(&path).expect("docs/experiments.md");
    let (begin, end) = ("<!-- fields:begin -->\n", "<!-- fields:end -->");
    let start = doc
        .find(begin)
        .expect("docs/experiments.md has the field table's begin marker")
        + begin.len();
    let stop = doc[start..]
        .find(end)
        .expect("docs/experiments.md has the end marker")
        + start;
    let expected = fields::markdown_table();
    if std::env::var_os("ATTNLAB_UPDATE_DOCS").is_some()
        || std::env::var_os("ATTNLAB_UPDATE_README").is_some()
    {
        let updated = format!("{}{expected}{}", &doc[..start], &doc[stop..]);
        std::fs::write(path, updated).expect("docs/experiments.md written");
        return;
    }
    assert_eq!(
        &doc[start..stop],
        expected,
        "docs/experiments.md's field table differs from the registry: rerun with ATTNLAB_UPDATE_DOCS=1"
    );
}

#[test]
fn sweeps_and_bounds_read_the_registry() {
    let msg = error_of("name = \"x\"\n[sweep]\ntask.distanse = [1, 2]\n");
    assert!(msg.contains("did you mean `task.distance`"), "{msg}");
    let msg = error_of("name = \"x\"\n[sweep]\ntrain.seeds = [[1], [2]]\n");
    assert!(msg.contains("cannot be swept"), "{msg}");
    let msg = error_of("name = \"x\"\n[task]\nseq_len = 9000\n");
    assert!(
        msg.contains("task.seq_len") && msg.contains("8192"),
        "{msg}"
    );
}

/// A grid's size and every run's own `train.seeds` count toward the run limit before
/// any point is built (issue 35, case 5): a `[sweep]` of 1000 x 1000 x 1000 values is
/// refused from its size (before, every point was built first: 11.7 GB resident when
/// it was stopped), and so is one run with 20,000 seeds of its own (before, it went
/// past the limit of 10,000 runs).
#[test]
fn sweeps_and_seeds_count_toward_the_run_limit_before_anything_is_built() {
    let values = |from: usize| {
        (from..from + 1000)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let base = "name = \"big\"\n[task]\nseq_len = 64\nvocab = 16\ndistance = 8\n\
                [model]\nlayers = 1\nheads = 1\nd_model = 8\nd_ff = 8\n[train]\nsteps = 1\n";
    let grid = format!(
        "{base}[sweep]\ntask.distance = [{}]\ntrain.steps = [{}]\ntrain.seed = [{}]\n[[runs]]\nname = \"a\"\n",
        values(1),
        values(1),
        values(0)
    );
    let seeds = format!(
        "{base}[[runs]]\nname = \"a\"\ntrain.seeds = [{}]\n",
        (0..20_000)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (text, expanded) in [(grid, "1000000000 runs"), (seeds, "20000 runs")] {
        let experiment = Experiment::from_toml(&text).expect("parses");
        let errors = experiment.plan_within(None).expect_err("too many runs");
        let shown = errors.to_string();
        assert!(shown.contains(&format!("expands to {expanded}")), "{shown}");
        assert!(shown.contains("at most 10000"), "{shown}");
    }
}
