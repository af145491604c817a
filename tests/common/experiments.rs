//! The small experiment files the tests train and validate, and their plans.

use attnlab::config::{Experiment, RunPlan};

/// The run `dense`, as a `[[runs]]` table.
pub const DENSE: &str = "[[runs]]\nname = \"dense\"\n";
/// The run `local w=1`: local attention of window 1.
pub const LOCAL_W1: &str =
    "[[runs]]\nname = \"local w=1\"\nmodel.attention = { kind = \"local\", window = 1 }\n";
/// The run `dense seed 2`: dense attention, seed 2.
pub const DENSE_SEED_2: &str = "[[runs]]\nname = \"dense seed 2\"\ntrain.seed = 2\n";
/// The run `lstm`: an LSTM instead of a transformer.
pub const LSTM: &str = "[[runs]]\nname = \"lstm\"\nmodel.kind = \"lstm\"\n";

/// The tiny experiment the binary and the window train: recall at distance 4 in 16
/// tokens of a vocabulary of 8, two layers of two heads (d_model 16, d_ff 32), on the
/// CPU in batches of 4, evaluated on one batch; then its runs.
pub struct Tiny<'a> {
    pub name: &'a str,
    pub steps: usize,
    pub eval_every: usize,
    pub snapshot_every: usize,
    /// `[[runs]]` tables ([`DENSE`], [`LOCAL_W1`], ...); none: one run of the base.
    pub runs: &'a [&'a str],
}

impl Tiny<'_> {
    /// The experiment file.
    pub fn toml(&self) -> String {
        let Self {
            name,
            steps,
            eval_every,
            snapshot_every,
            runs,
        } = self;
        let mut text = format!(
            "\nname = \"{name}\"\n[task]\nseq_len = 16\nvocab = 8\ndistance = 4\n[model]\nlayers = 2\nheads = 2\nd_model = 16\nd_ff = 32\n[train]\nsteps = {steps}\nbatch = 4\neval_every = {eval_every}\neval_batches = 1\nsnapshot_every = {snapshot_every}\nbackend = \"cpu\"\n"
        );
        if !runs.is_empty() {
            text.push('\n');
            text.extend(runs.iter().copied());
        }
        text
    }
}

/// `runs` runs (`r0`, `r1`, ...) of one step of a one-head model on 8 tokens, on the
/// CPU: many runs that train in no time.
pub fn many(runs: usize) -> String {
    let mut text = String::from(
        "name = \"many\"\n[task]\nseq_len = 8\nvocab = 4\ndistance = 2\n[model]\nlayers = 1\n\
         heads = 1\nd_model = 4\nd_ff = 4\n[train]\nsteps = 1\nbatch = 1\neval_batches = 1\n\
         backend = \"cpu\"\n",
    );
    for i in 0..runs {
        text.push_str(&format!("[[runs]]\nname = \"r{i}\"\n"));
    }
    text
}

/// A text experiment reading `file` (relative to the experiment file) with a
/// vocabulary of `vocab`: one causal layer, `steps` CPU steps evaluated at the end.
pub fn text_experiment(file: &str, vocab: usize, steps: usize) -> String {
    format!(
        "name = \"t\"\n[task]\nkind = \"text\"\nfile = \"{file}\"\nseq_len = 16\nvocab = {vocab}\n[model]\nlayers = 1\nheads = 2\nd_model = 16\nd_ff = 32\ncausal = true\n[train]\nsteps = {steps}\nbatch = 4\neval_every = {steps}\neval_batches = 1\nbackend = \"cpu\"\n"
    )
}

/// A corpus for text experiments: 28 distinct characters, 1800 bytes.
pub fn prose() -> String {
    "the quick brown fox jumps over the lazy dog. ".repeat(40)
}

/// The `config.toml` of the run records the tests write by hand.
pub const RECORD_CONFIG: &str = "name = \"r\"\n[task]\nseq_len = 8\nvocab = 4\ndistance = 2\n[model]\nlayers = 1\nheads = 1\nd_model = 4\nd_ff = 4\n";

/// Runs `dense` and `local` (window 2) at seq_len 32, seeds 1 and 2, swept over
/// `task.distance = [distances]`; `train` lines are added to the `[train]` table.
pub fn seeded_sweep(distances: &str, train: &str) -> String {
    format!(
        "name = \"s\"\n[task]\nseq_len = 32\n[train]\nseeds = [1, 2]\n{train}[sweep]\ntask.distance = [{distances}]\n[[runs]]\nname = \"dense\"\n[[runs]]\nname = \"local\"\nmodel.attention = {{ kind = \"local\", window = 2 }}\n"
    )
}

/// The `[model]` table of [`tiny_recall`]: one layer of two heads, d_model 16, d_ff 32.
pub const TINY_MODEL: &str = "layers = 1\nheads = 2\nd_model = 16\nd_ff = 32\n";
/// The `[train]` table of [`tiny_recall`]: six CPU steps of batch 4, evaluated every 3
/// on one batch, attention snapshots every 3.
pub const TINY_TRAIN: &str = "steps = 6\nbatch = 4\neval_every = 3\neval_batches = 1\nsnapshot_every = 3\nbackend = \"cpu\"\n";

/// A one-run recall experiment `name` at `seq_len` (vocabulary 8, distance 4):
/// [`TINY_MODEL`] and [`TINY_TRAIN`], each line of `model` and `train` replacing that
/// field of the table or adding it. The `[train]` table comes last.
pub fn tiny_recall(name: &str, seq_len: usize, model: &str, train: &str) -> String {
    format!(
        "name = \"{name}\"\n[task]\nseq_len = {seq_len}\nvocab = 8\ndistance = 4\n[model]\n{}[train]\n{}",
        merged(TINY_MODEL, model),
        merged(TINY_TRAIN, train)
    )
}

/// The run of [`tiny_recall`] `t` at seq_len 16 with `model` and `train` lines.
pub fn tiny_plan(model: &str, train: &str) -> RunPlan {
    first_plan(&tiny_recall("t", 16, model, train))
}

/// `base`'s lines with each key of `extra` replaced by `extra`'s line (appended).
pub fn merged(base: &str, extra: &str) -> String {
    let mut out = base.to_string();
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        let key = line.split('=').next().unwrap_or_default().trim();
        out = out
            .lines()
            .filter(|l| l.split('=').next().unwrap_or_default().trim() != key)
            .map(|l| format!("{l}\n"))
            .collect();
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The first run of the experiment file `text`, which must be valid.
pub fn first_plan(text: &str) -> RunPlan {
    Experiment::from_toml(text)
        .expect("valid")
        .plan()
        .expect("plans")
        .remove(0)
}
