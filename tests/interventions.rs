//! Head interventions (`attnlab::model::Interventions`): on a transformer whose weights
//! are written by hand so that one head copies the recall task's source, ablating
//! that head gives chance and ablating the other changes nothing; capturing alone
//! changes nothing; patching every head with clean outputs restores the clean answers
//! and patching none leaves the corrupted ones; the fused CPU kernel and burn's
//! composed ops agree under random interventions (property test).

use attnlab::config::RunPlan;
use attnlab::device::CpuBackend;
use attnlab::model::tokens_tensor;
use attnlab::model::{
    HeadEdit, HeadRef, Interventions, Mixing, SequenceModel, SparseMode, Transformer,
    TransformerConfig, accuracy, head_columns, masked_cross_entropy, scalar,
};
use attnlab::tasks::Batch;
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};

mod common;
use common::bin::{attnlab, json_lines, text};
use common::experiments::first_plan;
use common::files::copy_folder;

const V: usize = 8;
const N: usize = 16;
const D: usize = 2 * V + N;
const DISTANCE: usize = 4;

fn plan(attention: &str) -> RunPlan {
    let text = format!(
        "name = \"t\"\n[task]\nkind = \"recall\"\nseq_len = {N}\nvocab = {V}\ndistance = {DISTANCE}\n\
         [model]\nlayers = 1\nheads = 2\nd_model = {D}\nd_ff = 4\nattention = {attention}\n\
         [train]\nbatch = 16\nbackend = \"cpu\"\n"
    );
    first_plan(&text)
}

/// Writes every parameter by its path; what `weight` does not name is zero (layer
/// norms' gains one).
struct Handmade {
    path: Vec<String>,
    device: Device,
}

impl Handmade {
    /// The value of parameter `path` at `index` (row-major in its shape).
    fn value(path: &str, shape: &[usize], index: usize) -> f32 {
        let (row, col) = (
            index / shape.last().copied().unwrap_or(1),
            index % shape.last().copied().unwrap_or(1),
        );
        match path {
            // Residual stream: tokens in 0..V, positions in V..V+N, the answer in V+N..D.
            "tokens.weight" => (col == row) as u8 as f32,
            "positions.weight" => (col == V + row) as u8 as f32,
            // Head 0 (columns 0..16 of q, 32..48 of k, 64..80 of v): query t looks
            // for key t - DISTANCE by position and reads its token. Head 1 (16..32,
            // 48..64, 80..96): some nonzero output the projection never reads.
            "blocks.0.attention.qkv.weight" => {
                let p = row.wrapping_sub(V);
                if (V..V + N).contains(&row) && p >= DISTANCE && col == p - DISTANCE {
                    5.0
                } else if ((V..V + N).contains(&row) && col == 32 + p)
                    || (row < V && col == 64 + row)
                {
                    1.0
                } else if (16..32).contains(&col)
                    || (48..64).contains(&col)
                    || (80..96).contains(&col)
                {
                    ((row * 7 + col * 3) % 5) as f32 * 0.1 - 0.2
                } else {
                    0.0
                }
            }
            // Head 0's token values go to the answer dims; head 1's rows are zero.
            "blocks.0.attention.proj.weight" => (row < V && col == V + N + row) as u8 as f32,
            "head.weight" => (row >= V + N && row - (V + N) == col) as u8 as f32 * 5.0,
            p if p.ends_with("gamma") => 1.0,
            _ => 0.0,
        }
    }
}

impl ModuleMapper for Handmade {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const R: usize>(&mut self, param: Param<Tensor<R>>) -> Param<Tensor<R>> {
        let path = self.path.join(".");
        let device = self.device.clone();
        param.map(|t| {
            let shape = t.dims();
            let count: usize = shape.iter().product();
            let values: Vec<f32> = (0..count)
                .map(|i| Handmade::value(&path, &shape, i))
                .collect();
            Tensor::from_data(TensorData::new(values, shape), &device)
        })
    }
}

fn handmade(plan: &RunPlan, device: &Device) -> Transformer {
    let model = TransformerConfig::from_plan(plan).init(device);
    model.map(&mut Handmade {
        path: Vec::new(),
        device: device.clone(),
    })
}

fn eval_batch(plan: &RunPlan, seed: u64) -> Batch {
    let s = plan.settings();
    s.task
        .eval_batch(s.train.batch, &mut StdRng::seed_from_u64(seed))
}

fn scores(model: &Transformer, kernels: &Mixing, batch: &Batch) -> (f64, f64) {
    let device = CpuBackend::device();
    let logits = model.forward(tokens_tensor(batch, &device), kernels);
    let loss = scalar(masked_cross_entropy(logits.clone(), &batch.targets), "loss").expect("loss");
    (loss, accuracy(logits, &batch.targets).expect("accuracy"))
}

const HEAD0: HeadRef = HeadRef { layer: 0, head: 0 };
const HEAD1: HeadRef = HeadRef { layer: 0, head: 1 };

#[test]
fn ablating_the_copying_head_gives_chance_and_the_other_changes_nothing() {
    let device = CpuBackend::device();
    for mode in [SparseMode::WherePaysOff, SparseMode::Composed] {
        let plan = plan("\"dense\"");
        let model = handmade(&plan, &device);
        let kernels = Mixing::for_plan(&plan, &device, mode);
        let batch = eval_batch(&plan, 1);
        let (clean_loss, clean_acc) = scores(&model, &kernels, &batch);
        assert_eq!(clean_acc, 1.0, "{mode:?}: the handmade head solves recall");
        let (loss, acc) = scores(
            &model,
            &kernels.with_interventions(Interventions::zero(&[HEAD0])),
            &batch,
        );
        assert!(
            acc < 0.3,
            "{mode:?}: without its copying head, chance (1/8): {acc}"
        );
        assert!(
            (loss - (V as f64).ln()).abs() < 1e-3,
            "{mode:?}: uniform: {loss}"
        );
        let (loss1, acc1) = scores(
            &model,
            &kernels.with_interventions(Interventions::zero(&[HEAD1])),
            &batch,
        );
        assert_eq!(acc1, clean_acc, "{mode:?}");
        assert!(
            (loss1 - clean_loss).abs() < 1e-6,
            "{mode:?}: {loss1} vs {clean_loss}"
        );
    }
}

#[test]
fn capturing_alone_changes_nothing_and_patching_restores_exactly() {
    let device = CpuBackend::device();
    let plan = plan("\"dense\"");
    let settings = plan.settings();
    // A trained-looking model is not needed: random weights, exact identities.
    device.seed(7);
    let model = TransformerConfig::from_plan(&plan).init(&device);
    let kernels = Mixing::for_plan(&plan, &device, SparseMode::WherePaysOff);
    let pair = settings
        .task
        .patch_pair(settings.train.batch, &mut StdRng::seed_from_u64(3))
        .expect("recall has pairs");
    let clean_tokens = tokens_tensor(&pair.clean, &device);
    let corrupted_tokens = tokens_tensor(&pair.corrupted, &device);
    let plain = model.forward(clean_tokens.clone(), &kernels);
    let (capture, captured) = Interventions::capturing();
    let clean = model.forward(clean_tokens, &kernels.with_interventions(capture));
    assert_eq!(
        plain.to_data().try_to_vec::<f32>().expect("f32"),
        clean.to_data().try_to_vec::<f32>().expect("f32"),
        "capturing edits nothing"
    );
    let corrupted = model.forward(corrupted_tokens.clone(), &kernels);
    let none = model.forward(
        corrupted_tokens.clone(),
        &kernels.with_interventions(Interventions::none()),
    );
    assert_eq!(
        corrupted.to_data().try_to_vec::<f32>().expect("f32"),
        none.to_data().try_to_vec::<f32>().expect("f32"),
        "patching no head leaves the corrupted logits"
    );
    let out = captured.layer(0).expect("layer 0 captured");
    let mut every = Interventions::none();
    for head in [HEAD0, HEAD1] {
        every.set(head, HeadEdit::Replace(head_columns(&out, 2, head.head)));
    }
    let patched = model.forward(corrupted_tokens, &kernels.with_interventions(every));
    let rows = |t: &Tensor<3>| t.to_data().try_to_vec::<f32>().expect("f32");
    let (clean, patched, corrupted) = (rows(&clean), rows(&patched), rows(&corrupted));
    let mut moved = 0.0f32;
    for &p in &pair.positions {
        for v in 0..V {
            let i = p * V + v;
            assert!(
                (clean[i] - patched[i]).abs() <= 1e-5,
                "position {p}, token {v}: clean {} patched {}",
                clean[i],
                patched[i]
            );
            moved = moved.max((clean[i] - corrupted[i]).abs());
        }
    }
    assert!(moved > 1e-3, "the corruption changed the scored logits");
}

fn patterns() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("\"dense\""),
        Just("{ kind = \"local\", window = 3 }"),
        Just("{ kind = \"block\", size = 4 }"),
        Just("{ kind = \"dilated\", window = 2, dilation = 2 }"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Zero and replacement edits on random heads give the same logits through the
    /// fused kernel and through burn's composed ops.
    #[test]
    fn fused_and_composed_agree_under_interventions(
        attention in patterns(),
        zeroed in proptest::collection::vec(0usize..2, 0..2),
        replaced in 0usize..3,
        seed in 0u64..100,
    ) {
        let device = CpuBackend::device();
        let plan = plan(attention);
        device.seed(seed);
        let model = TransformerConfig::from_plan(&plan).init(&device);
        let batch = eval_batch(&plan, seed);
        let mut edits = Interventions::none();
        for head in zeroed {
            edits.set(HeadRef { layer: 0, head }, HeadEdit::Zero);
        }
        if replaced < 2 {
            let values = Tensor::<3>::from_data(
                TensorData::new(
                    (0..N * D / 2).map(|i| (i % 7) as f32 * 0.3 - 1.0).collect::<Vec<f32>>(),
                    [1, N, D / 2],
                ),
                &device,
            );
            edits.set(HeadRef { layer: 0, head: replaced }, HeadEdit::Replace(values));
        }
        let logits = |mode: SparseMode| {
            let kernels = Mixing::for_plan(&plan, &device, mode)
                .with_interventions(edits.clone());
            model
                .forward(tokens_tensor(&batch, &device), &kernels)
                .to_data()
                .try_to_vec::<f32>()
                .expect("f32")
        };
        let (fused, composed) = (logits(SparseMode::WherePaysOff), logits(SparseMode::Composed));
        for (a, b) in fused.iter().zip(&composed) {
            prop_assert!((a - b).abs() <= 1e-4 + 1e-4 * b.abs(), "{a} vs {b}");
        }
    }
}

/// Writes `toml` as `file` in `dir`, trains it with `attnlab run --out r` and returns
/// the records it wrote.
fn trained(dir: &std::path::Path, file: &str, toml: &str) -> Vec<attnlab::records::RunRecord> {
    std::fs::write(dir.join(file), toml).expect("write");
    let out = attnlab(&["run", file, "--out", "r", "--quiet"], dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    attnlab::records::list_records(&dir.join("r"))
}

/// `attnlab ablate` and `attnlab patch` on a recorded run: one line per head (and per
/// kept checkpoint), the fields the docs promise, clear refusals.
#[test]
fn ablate_and_patch_print_a_line_per_head_and_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let experiment = format!(
        "name = \"t\"\n[task]\nkind = \"recall\"\nseq_len = {N}\nvocab = {V}\ndistance = {DISTANCE}\n\
         [model]\nlayers = 2\nheads = 2\nd_model = 16\nd_ff = 16\n\
         [train]\nsteps = 6\nbatch = 4\neval_every = 3\neval_batches = 1\ncheckpoint_every = 2\n\
         keep_checkpoints = \"all\"\nbackend = \"cpu\"\n\n\
         [[runs]]\nname = \"attention\"\n[[runs]]\nname = \"lstm\"\nmodel.kind = \"lstm\"\n"
    );
    let records = trained(dir.path(), "t.toml", &experiment);
    let folder = |name: &str| {
        records
            .iter()
            .find(|r| r.summary.name == name)
            .map(|r| r.dir.to_string_lossy().into_owned())
            .expect("a record")
    };
    let (attention, lstm) = (folder("attention"), folder("lstm"));

    let out = attnlab(&["ablate", &attention, "--batches", "1"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "2 layers x 2 heads: {lines:?}");
    for key in [
        "run",
        "record",
        "step",
        "intervention",
        "loss",
        "accuracy",
        "clean_loss",
        "clean_accuracy",
        "accuracy_by_distance",
    ] {
        assert!(
            lines.iter().all(|l| l.get(key).is_some()),
            "{key}: {lines:?}"
        );
    }
    assert!(
        lines.iter().all(|l| l["step"] == 6),
        "the latest checkpoint: {lines:?}"
    );
    assert_eq!(lines[0]["heads"], serde_json::json!(["1.1"]));

    let out = attnlab(
        &[
            "ablate",
            &attention,
            "--every-checkpoint",
            "--all-heads",
            "--mode",
            "mean",
            "--batches",
            "1",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<_> = json_lines(&out).iter().map(|l| l["step"].clone()).collect();
    assert_eq!(
        steps,
        [2, 4, 6].map(serde_json::Value::from),
        "every kept step"
    );

    let out = attnlab(
        &["patch", &attention, "--each-layer", "--batches", "1"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.get("recovered").is_some() && l["examples"] == 4),
        "{lines:?}"
    );

    let out = attnlab(
        &[
            "ablate",
            &attention,
            "--batches",
            "1",
            "--set",
            "model.attention={ kind = \"local\", window = 1 }",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "a pattern swapped at evaluation: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (args, says) in [
        (
            vec!["ablate", attention.as_str(), "--heads", "3.1"],
            "head 3.1 does not exist",
        ),
        (vec!["ablate", attention.as_str(), "--step", "5"], "5"),
        (
            vec!["ablate", attention.as_str(), "--set", "train.lr=1"],
            "only the attention patterns",
        ),
        (
            vec!["patch", lstm.as_str()],
            "an LSTM has no attention heads",
        ),
    ] {
        let out = attnlab(&args, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// `step,split,loss,accuracy` of every row (the clock column differs between runs).
fn curve(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .expect("metrics.csv")
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(head, _)| head).to_string())
        .collect()
}

/// `attnlab run --fork`: at the latest step with nothing changed it continues exactly
/// as `run --resume` does; at a kept step it starts from those weights with a changed
/// learning rate, naming its parent; what may not change mid-run is refused.
#[test]
fn a_fork_continues_as_a_resume_and_names_its_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let experiment = format!(
        "name = \"f\"\n[task]\nkind = \"recall\"\nseq_len = {N}\nvocab = {V}\ndistance = {DISTANCE}\n\
         [model]\nlayers = 1\nheads = 2\nd_model = 16\nd_ff = 16\n\
         [train]\nsteps = 4\nbatch = 4\neval_every = 2\neval_batches = 1\nsnapshot_every = 2\n\
         checkpoint_every = 2\nkeep_checkpoints = \"all\"\nbackend = \"cpu\"\n"
    );
    let parent = trained(dir.path(), "f.toml", &experiment).remove(0).dir;
    let resumed = dir.path().join("resumed");
    copy_folder(&parent, &resumed);
    let out = attnlab(
        &[
            "run",
            "--resume",
            resumed.to_str().expect("utf-8"),
            "--steps",
            "8",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let parent_arg = parent.to_str().expect("utf-8");
    let out = attnlab(
        &[
            "run", "--fork", parent_arg, "--at", "4", "--steps", "8", "--out", "forks", "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = attnlab::records::list_records(&dir.path().join("forks")).remove(0);
    assert_eq!(
        curve(&child.dir),
        curve(&resumed),
        "a fork at the latest step is a resume"
    );
    let origin = child.summary.forked_from.clone().expect("names its parent");
    assert_eq!(origin.step, 4);
    assert_eq!(
        Some(origin.record.as_str()),
        parent.file_name().and_then(|n| n.to_str())
    );
    assert_eq!(child.summary.steps, 8);

    let out = attnlab(
        &[
            "run",
            "--fork",
            parent_arg,
            "--at",
            "2",
            "--set",
            "train.lr=0.01",
            "--out",
            "forks2",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = attnlab::records::list_records(&dir.path().join("forks2")).remove(0);
    assert_eq!(child.summary.forked_from.map(|o| o.step), Some(2));
    let (parent_curve, child_curve) = (curve(&parent), curve(&child.dir));
    let up_to_2 = |c: &[String]| -> Vec<String> {
        c.iter()
            .filter(|l| {
                l.split(',')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok())
                    .is_none_or(|s| s <= 2)
            })
            .cloned()
            .collect()
    };
    assert_eq!(
        up_to_2(&child_curve),
        up_to_2(&parent_curve),
        "the parent's curve up to the fork"
    );
    assert_ne!(child_curve, parent_curve, "then its own");

    for (args, says) in [
        (vec!["--at", "3"], "2, 4"),
        (
            vec!["--at", "2", "--set", "model.layers=2"],
            "model.layers cannot change",
        ),
    ] {
        let mut all = vec!["run", "--fork", parent_arg, "--out", "refused"];
        all.extend(args);
        let out = attnlab(&all, dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?}");
        assert!(stderr.contains(says), "{all:?}: {stderr}");
    }
}

/// What the Interventions pane's "Attention with heads ablated" draws
/// (`inspect::probe_attention`): zeroing a head of layer 1 leaves layer 1's attention
/// weights as they were (they are computed before the head's output is used) and
/// changes layer 2's, through the fused kernel and the composed ops alike.
#[test]
fn ablating_a_head_changes_the_attention_of_later_layers_only() {
    let device = CpuBackend::device();
    let text = format!(
        "name = \"t\"\n[task]\nkind = \"recall\"\nseq_len = {N}\nvocab = {V}\ndistance = {DISTANCE}\n\
         [model]\nlayers = 2\nheads = 2\nd_model = {D}\nd_ff = 4\nattention = \"dense\"\n\
         [train]\nbatch = 16\nbackend = \"cpu\"\n"
    );
    let two = first_plan(&text);
    device.seed(11);
    let model = TransformerConfig::from_plan(&two).init(&device);
    let batch = eval_batch(&two, 5);
    for mode in [SparseMode::WherePaysOff, SparseMode::Composed] {
        let kernels = Mixing::for_plan(&two, &device, mode);
        let weights = |kernels: &Mixing| -> Vec<Vec<f32>> {
            let (_, w) = model.forward_with_mixing(tokens_tensor(&batch, &device), kernels);
            w.into_iter()
                .map(|t| t.to_data().try_to_vec::<f32>().expect("f32"))
                .collect()
        };
        let clean = weights(&kernels);
        let ablated = weights(&kernels.with_interventions(Interventions::zero(&[HEAD0])));
        assert_eq!(clean.len(), 2, "{mode:?}: one set of weights per layer");
        assert_eq!(
            clean[0], ablated[0],
            "{mode:?}: layer 1 is computed as before"
        );
        let moved = clean[1]
            .iter()
            .zip(&ablated[1])
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            moved > 1e-6,
            "{mode:?}: layer 2 sees head 1.1 gone: {moved}"
        );
    }
}

/// `model.ablated_heads`: a head ablated for good is zero in training and evaluation
/// (ablating it again changes nothing, to the bit), a fork may set it, and a head the
/// model does not have is refused with the field named.
#[test]
fn heads_ablated_for_good_stay_ablated_and_a_fork_may_prune_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let experiment = format!(
        "name = \"p\"\n[task]\nkind = \"recall\"\nseq_len = {N}\nvocab = {V}\ndistance = {DISTANCE}\n\
         [model]\nlayers = 2\nheads = 2\nd_model = 16\nd_ff = 16\nablated_heads = [\"1.2\"]\n\
         [train]\nsteps = 4\nbatch = 4\neval_every = 2\neval_batches = 1\ncheckpoint_every = 2\nbackend = \"cpu\"\n"
    );
    let record = trained(dir.path(), "p.toml", &experiment).remove(0).dir;
    let record = record.to_str().expect("utf-8");
    let out = attnlab(
        &["ablate", record, "--heads", "1.2", "--batches", "1"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = &json_lines(&out)[0];
    assert_eq!(line["loss"], line["clean_loss"], "already zero: {line}");
    let out = attnlab(
        &["ablate", record, "--heads", "1.1", "--batches", "1"],
        dir.path(),
    );
    let line = &json_lines(&out)[0];
    assert_ne!(
        line["loss"], line["clean_loss"],
        "another head still counts: {line}"
    );

    let out = attnlab(
        &[
            "run",
            "--fork",
            record,
            "--at",
            "4",
            "--steps",
            "6",
            "--set",
            "model.ablated_heads=[\"1.2\", \"2.1\"]",
            "--out",
            "f",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "a fork may prune: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        experiment.replace("[\"1.2\"]", "[\"3.1\"]"),
    )
    .expect("write");
    let out = attnlab(&["validate", "bad.toml"], dir.path());
    let stderr = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("model.ablated_heads") && stderr.contains("\"3.1\""),
        "{stderr}"
    );
}
