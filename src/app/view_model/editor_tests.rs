//! Unit tests of the experiment editor (`editor.rs`).

use super::*;

fn editor(text: &str) -> Editor {
    Editor::new(Experiment::from_toml(text).expect("valid"))
}

#[test]
fn base_changes_reach_runs_that_do_not_set_the_field() {
    let mut e =
        editor("name = \"x\"\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\ntask.seq_len = 64\n");
    let mut new = e.settings().clone();
    new.task.seq_len = 256;
    new.train.steps = 9;
    assert!(e.apply(new));
    assert_eq!(e.run_settings(0).map(|s| s.task.seq_len), Some(256));
    assert_eq!(
        e.run_settings(1).map(|s| s.task.seq_len),
        Some(64),
        "b sets seq_len"
    );
    assert!((0..2).all(|i| e.run_settings(i).map(|s| s.train.steps) == Some(9)));
}

#[test]
fn a_run_edit_becomes_its_own_field_and_reset_drops_it() {
    let mut e = editor("name = \"x\"\n[[runs]]\nname = \"a\"\n");
    e.target = Target::Run(0);
    let mut new = e.settings().clone();
    new.model.heads = 2;
    e.apply(new);
    assert_eq!(e.experiment.runs[0].overridden_fields(), ["model.heads"]);
    e.reset_run(0);
    assert!(!e.experiment.runs[0].has_overrides());
    assert_eq!(e.run_settings(0).map(|s| s.model.heads), Some(4));
}

/// A text experiment reading `file`, small enough to plan quickly.
fn text_experiment(file: &str) -> Experiment {
    Experiment::from_toml(&format!(
        "name = \"t\"\n[task]\nkind = \"text\"\nfile = {file:?}\nseq_len = 16\nvocab = 32\n\
         [model]\nlayers = 1\nheads = 2\nd_model = 16\nd_ff = 32\ncausal = true\n\
         [train]\nsteps = 2\nbatch = 4\neval_every = 2\neval_batches = 1\nbackend = \"cpu\"\n"
    ))
    .expect("valid")
}

#[test]
fn a_text_file_outside_the_folder_is_refused_until_the_user_allows_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let secret = root.path().join("secret.txt");
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    std::fs::write(&secret, &text).expect("write");
    let folder = root.path().join("exp");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(folder.join("corpus.txt"), &text).expect("write");
    let real = secret.canonicalize().expect("real path");

    let mut e = Editor::in_folder(text_experiment("../secret.txt"), Some(folder.clone()));
    assert!(!e.is_valid());
    assert!(e.plans().is_empty(), "nothing to run");
    assert!(
        e.errors
            .0
            .iter()
            .any(|x| x.field == "task.file" && x.message.contains("lies outside")),
        "{}",
        e.errors
    );
    assert_eq!(e.outside_files(), [(real.clone(), false)]);

    e.set_allowed(&secret, true);
    assert!(e.is_valid(), "{}", e.errors);
    assert_eq!(e.plans().len(), 1);
    assert_eq!(
        e.outside_files(),
        [(real.clone(), true)],
        "still shown, ticked"
    );
    assert_eq!(e.allowed_files(), std::slice::from_ref(&real));

    // Kept for the next experiment of the session; unticked, refused again.
    let mut next = Editor::in_folder_allowing(
        text_experiment("../secret.txt"),
        Some(folder.clone()),
        e.allowed_files().to_vec(),
    );
    assert!(next.is_valid(), "{}", next.errors);
    next.set_allowed(&secret, false);
    assert!(!next.is_valid());
    assert_eq!(next.outside_files(), [(real.clone(), false)]);

    // An experiment not read from a file is confined to the working folder.
    let absolute = secret.display().to_string();
    assert!(!Editor::new(text_experiment(&absolute)).is_valid());

    // A file in the experiment's folder needs nothing.
    let inside = Editor::in_folder(text_experiment("corpus.txt"), Some(folder));
    assert!(inside.is_valid(), "{}", inside.errors);
    assert!(inside.outside_files().is_empty());
}

#[test]
fn duplicate_gets_a_unique_name_and_becomes_the_target() {
    let mut e = editor("name = \"x\"\n[[runs]]\nname = \"a\"\n");
    e.duplicate_run();
    e.duplicate_run();
    let names: Vec<_> = e.experiment.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "a copy", "a copy copy"]);
    assert_eq!(e.target, Target::Run(2));
    assert!(e.is_valid());
}

#[test]
fn evaluation_lengths_are_typed_as_a_list() {
    use super::{format_lengths, parse_lengths};
    assert_eq!(parse_lengths("128, 256 512"), Ok(vec![128, 256, 512]));
    assert_eq!(parse_lengths("[128,256]"), Ok(vec![128, 256]));
    assert_eq!(parse_lengths("  "), Ok(vec![]));
    let e = parse_lengths("128, 2x6").expect_err("not a number");
    assert!(e.contains("\"2x6\""), "{e}");
    assert!(parse_lengths("-5").is_err());
    assert_eq!(format_lengths(&[128, 256]), "128, 256");
    assert_eq!(
        parse_lengths(&format_lengths(&[64, 4096])),
        Ok(vec![64, 4096])
    );
}
