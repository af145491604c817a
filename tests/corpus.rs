//! Malformed experiment files, from the corpus under `tests/corpus/` (made by
//! `scripts/make_corpus.py` from the shipped experiments) and from a fuzzer: every one
//! is answered with errors naming the file and, where the problem is in a field, the
//! field and its line, in the CLI's reader and in the window; nothing panics.

use std::path::{Path, PathBuf};

use attnlab::app::{App, PersistedState};
use attnlab::config::{ConfigError, Experiment};
use proptest::prelude::*;

mod common;
use common::experiments::{prose, text_experiment};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// A problem with the whole file rather than one field.
fn whole_file(e: &ConfigError) -> bool {
    ["empty", "folder", "regular file", "bytes", "UTF-8"]
        .iter()
        .any(|w| e.message.contains(w))
}

fn assert_answered(path: &Path, errors: &[ConfigError]) {
    assert!(!errors.is_empty(), "{}: no error", path.display());
    for e in errors {
        assert_eq!(
            e.file.as_deref(),
            Some(path.display().to_string().as_str()),
            "{e}"
        );
        assert!(
            e.line.is_some() || !e.field.is_empty() || whole_file(e),
            "{}: neither a line nor a field: {e}",
            path.display()
        );
    }
}

#[test]
fn the_corpus_is_large_and_every_file_is_refused_with_file_line_and_field() {
    let files = corpus();
    assert!(files.len() >= 200, "{} files", files.len());
    let mut with_line = 0;
    for path in &files {
        let started = std::time::Instant::now();
        let errors = Experiment::load_and_plan(path)
            .map(|_| ())
            .expect_err(&format!("{} is malformed", path.display()));
        assert_answered(path, &errors.0);
        with_line += usize::from(errors.0.iter().all(|e| e.line.is_some()));
        let took = started.elapsed();
        if took.as_secs_f64() > 0.5 {
            println!("{}: {took:?}", path.display());
        }
    }
    println!(
        "{} files, {with_line} with every error on a line",
        files.len()
    );
    assert!(
        with_line * 10 >= files.len() * 9,
        "{with_line} of {}",
        files.len()
    );
}

#[test]
fn the_window_answers_every_corpus_file_and_keeps_the_experiment_on_a_load_error() {
    let mut app = App::with_state(egui::Context::default(), PersistedState::default());
    let before = app.experiment().clone();
    for path in corpus() {
        app.open_path(&path);
        let refused = app.load_error().is_some();
        assert!(
            refused || !app.editor().is_valid(),
            "{}: opened as valid",
            path.display()
        );
        if refused {
            assert_eq!(app.experiment(), &before, "{}", path.display());
        } else {
            // It parsed: the window shows it with its fields marked; go back.
            app = App::with_state(egui::Context::default(), PersistedState::default());
        }
    }
}

#[test]
fn huge_files_and_devices_are_refused_before_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big.toml");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(50 << 20).expect("50 MB");
    let errors = Experiment::load(&big).expect_err("too large");
    assert!(errors.to_string().contains("bytes"), "{errors}");
    #[cfg(unix)]
    {
        let errors = Experiment::load(Path::new("/dev/zero")).expect_err("a device");
        assert!(errors.to_string().contains("regular file"), "{errors}");
    }
}

/// `/proc/self/pagemap` says 0 bytes (a "regular" file) and reads out hundreds of
/// gigabytes: as an experiment file (`attnlab validate /proc/self/pagemap`) and as a
/// text task's corpus it is refused at the bound on bytes actually read, quickly.
#[cfg(target_os = "linux")]
#[test]
fn proc_files_are_refused_quickly_as_experiments_and_corpora() {
    let pagemap = Path::new("/proc/self/pagemap");
    if std::fs::File::open(pagemap).is_err() {
        return; // no procfs here
    }
    let started = std::time::Instant::now();
    let errors = Experiment::load(pagemap).expect_err("refused");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(errors.to_string().contains("bytes"), "{errors}");
    assert_answered(pagemap, &errors.0);

    let task = attnlab::tasks::TaskConfig {
        kind: attnlab::tasks::TaskKind::Text,
        file: pagemap.display().to_string(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let error = task.check().expect_err("refused");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("bytes"), "{error}");
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Flip(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop::sample::select(vec![
        "=",
        "[",
        "]",
        "{",
        "}",
        "\"",
        "\n",
        "[[runs]]\n",
        "nan",
        "-1",
        "0",
        "1e400",
        "99999999999999999999",
        "kind",
        "window",
        "model.",
        "layers",
        "runs",
        ",",
        "#",
        "\u{0}",
        "é",
        "true",
        "'",
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), token).prop_map(|(a, t)| Edit::Insert(a, t.to_string())),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Edit::Insert(at, t) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, t.bytes());
            }
            Edit::Flip(at, b) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] ^= b;
                }
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Mutated shipped experiments: parsing and validation always answer, never panic,
    /// and every error says where (a line or a field) unless it is about the whole file.
    #[test]
    fn the_parser_and_validator_answer_every_mutant(
        file in prop::sample::select(attnlab::app::SHIPPED.to_vec()),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mutant.toml");
        std::fs::write(&path, apply(file.text, &edits)).expect("write");
        if let Err(errors) = Experiment::load_and_plan(&path) {
            assert_answered(&path, &errors.0);
        }
    }
}

/// A shared experiment must not read files from elsewhere (`../secret.txt`, or a link
/// in its folder that leads out): refused on `task.file`, naming the file and how to
/// allow it, unless the user allows it with `--allow-file`. The shipped corpus's
/// name stays allowed.
#[test]
fn a_corpus_outside_the_experiments_folder_is_refused_unless_allowed() {
    let root = tempfile::tempdir().expect("tempdir");
    let secret = root.path().join("secret.txt");
    std::fs::write(&secret, prose()).expect("write");
    let exp = root.path().join("exp");
    std::fs::create_dir(&exp).expect("mkdir");
    let path = exp.join("t.toml");
    std::fs::write(&path, text_experiment("../secret.txt", 32, 2)).expect("write");

    let errors = Experiment::load_and_plan_allowing(&path, &[]).expect_err("outside");
    assert_answered(&path, &errors.0);
    let shown = errors.to_string();
    assert!(
        shown.contains("task.file")
            && shown.contains("secret.txt")
            && shown.contains("--allow-file"),
        "{shown}"
    );
    assert!(
        Experiment::load(&path).is_err(),
        "the window's reader refuses it too"
    );
    let (_, plans) = Experiment::load_and_plan_allowing(&path, std::slice::from_ref(&secret))
        .unwrap_or_else(|e| panic!("allowed: {e}"));
    assert_eq!(plans.len(), 1);

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&secret, exp.join("link.txt")).expect("link");
        let linked = exp.join("linked.toml");
        std::fs::write(&linked, text_experiment("link.txt", 32, 2)).expect("write");
        let errors = Experiment::load_and_plan_allowing(&linked, &[]).expect_err("escapes");
        assert!(errors.to_string().contains("task.file"), "{errors}");
    }
    let shipped = exp.join("shipped.toml");
    let text = text_experiment(attnlab::tasks::SHIPPED_NAME, 128, 2);
    std::fs::write(&shipped, text).expect("write");
    if let Err(errors) = Experiment::load_and_plan_allowing(&shipped, &[]) {
        assert!(!errors.to_string().contains("outside"), "{errors}");
    }

    // The command line: refused, then validated and trained with --allow-file.
    let attnlab = |args: &[&str]| common::bin::attnlab(args, root.path());
    let out = attnlab(&["validate", "exp/t.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("task.file") && said.contains("secret.txt"),
        "{said}"
    );
    let out = attnlab(&["validate", "exp/t.toml", "--allow-file", "secret.txt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = attnlab(&["run", "exp/t.toml", "--out", "runs", "-q"]);
    assert!(!out.status.success());
    assert!(!root.path().join("runs").exists(), "nothing trained");
    let out = attnlab(&[
        "run",
        "exp/t.toml",
        "--out",
        "runs",
        "-q",
        "--allow-file",
        "secret.txt",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A record reads its text file again only where this machine allowed it when the
/// run trained: `eval` of a fresh record works; once its `config.toml` names a file
/// outside the record (`~/.ssh/id_rsa` in an attack), `eval`, `ablate`, `--resume` and
/// `--fork` refuse it before it is read, naming `task.file` and `--allow-file`, and the
/// file's text appears nowhere; `--allow-file` lets it through. Another machine (a
/// different key) trusts none of the record's allowance.
#[test]
fn a_record_reads_only_the_text_file_this_machine_allowed_it() {
    use common::bin::{attnlab_env, text};
    let root = tempfile::tempdir().expect("tempdir");
    let exp = root.path().join("exp");
    std::fs::create_dir(&exp).expect("mkdir");
    std::fs::write(exp.join("corpus.txt"), prose()).expect("write");
    std::fs::write(exp.join("t.toml"), text_experiment("corpus.txt", 32, 2)).expect("write");
    let secret = root.path().join("secret.txt");
    std::fs::write(&secret, "hush hush zebra quartz ".repeat(40)).expect("write");
    let run = |args: &[&str]| common::bin::attnlab(args, root.path());
    let out = run(&["run", "exp/t.toml", "--out", "runs", "-q"]);
    assert!(out.status.success(), "{}", text(&out));
    let records = attnlab::records::list_records(&root.path().join("runs"));
    let record = records[0].dir.clone();
    let record_arg = record.display().to_string();
    assert!(record.join("allowance.json").is_file());
    let out = run(&["eval", &record_arg]);
    assert!(
        out.status.success(),
        "allowed when it trained: {}",
        text(&out)
    );

    let config_path = record.join("config.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let corpus = exp.join("corpus.txt").canonicalize().expect("corpus");
    let corpus = corpus.display().to_string();
    assert!(config.contains(&corpus), "{config}");
    let secret_path = secret.canonicalize().expect("secret").display().to_string();
    std::fs::write(&config_path, config.replace(&corpus, &secret_path)).expect("edit");
    let refused = |args: &[&str]| {
        let out = run(args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains("task.file")
                && said.contains("secret.txt")
                && said.contains("--allow-file"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("zebra"), "{args:?} showed the file: {said}");
    };
    refused(&["eval", &record_arg]);
    refused(&["ablate", &record_arg, "--heads", "1.1"]);
    refused(&["run", "--resume", &record_arg, "--steps", "4", "-q"]);
    refused(&[
        "run",
        "--fork",
        &record_arg,
        "--at",
        "2",
        "--steps",
        "4",
        "--out",
        "forks",
        "-q",
    ]);
    assert!(!root.path().join("forks").exists(), "nothing forked");
    let out = run(&["eval", &record_arg, "--allow-file", &secret_path]);
    assert!(out.status.success(), "allowed by the user: {}", text(&out));

    // Back to the file it trained on, read on another machine: its allowance is
    // signed with a key that machine does not have.
    std::fs::write(&config_path, config).expect("restore");
    let elsewhere = root.path().join("other-machine");
    let other = attnlab_env(
        &["eval", &record_arg],
        root.path(),
        &[("XDG_CONFIG_HOME", Some(&elsewhere.display().to_string()))],
    );
    assert_eq!(other.status.code(), Some(1), "{}", text(&other));
    assert!(text(&other).contains("task.file"), "{}", text(&other));
}
