//! The training features the published references need, each a registry field that
//! defaults to the old behaviour: `model.dropout`, attention-only blocks
//! (`model.d_ff = 0`), AdamW's `train.weight_decay`, `train.warmup` with
//! `train.schedule`, `train.grad_clip` and a fixed training set (`train.examples`).
//! Each changes what it should and nothing else; a resumed run with all of them on
//! trains as the uninterrupted one. (`lr_at`, the finite set's epochs and dropout's
//! masks have unit tests next to their code.)

use std::time::Instant;

use attnlab::config::{Experiment, RunPlan, Settings, parameter_count};
use attnlab::device::CpuBackend;
use attnlab::model::tokens_tensor;
use attnlab::model::{
    Mixing, SequenceModel, SparseMode, StepDropout, Transformer, TransformerConfig,
    masked_cross_entropy, scalar,
};
use attnlab::records::{RunRecord, RunStatus};
use attnlab::tasks::{Batch, IGNORE};
use attnlab::trainer::{
    Command, Event, StartRun, StepOptions, clip_grad_norm, grad_norm, optimizer, train_step,
};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use rand::{SeedableRng, rngs::StdRng};

mod common;
// A tiny recall run (seq 16, vocab 8, d_model 16, one layer); `model` and `train`
// lines override those tables' fields.
use common::experiments::tiny_plan as plan;
use common::float::{close, values};
use common::train::{
    DEADLINE, collect, local_trainer, losses, next, one_at_a_time, start, train_all,
};

/// The values of every float parameter whose path is `path` (`tokens.weight`).
struct Read {
    path: Vec<String>,
    want: &'static str,
    found: Vec<f32>,
    paths: Vec<String>,
}

impl ModuleVisitor for Read {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        if path == self.want {
            self.found = values(param.val());
        }
        self.paths.push(path);
    }
}

fn read(model: &Transformer, want: &'static str) -> (Vec<f32>, Vec<String>) {
    let mut r = Read {
        path: Vec::new(),
        want,
        found: Vec::new(),
        paths: Vec::new(),
    };
    model.visit(&mut r);
    (r.found, r.paths)
}

/// A recall batch (distance 4) that uses only tokens 0..4 of the vocabulary of 8.
fn low_token_batch(seed: u64) -> Batch {
    let (batch, n) = (4, 16);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tokens = Vec::with_capacity(batch * n);
    for _ in 0..batch * n {
        tokens.push(rand::RngExt::random_range(&mut rng, 0..4i64));
    }
    let mut targets = vec![IGNORE; batch * n];
    let mut distances = vec![0u32; batch * n];
    for b in 0..batch {
        for t in 4..n {
            targets[b * n + t] = tokens[b * n + t - 4];
            distances[b * n + t] = 4;
        }
    }
    Batch {
        batch,
        seq_len: n,
        tokens,
        targets,
        distances,
    }
}

/// A model on the autodiff device, its training kernels, and the settings.
fn model_of(plan: &RunPlan) -> (Transformer, Mixing, Device) {
    let inner = CpuBackend::device();
    inner.seed(plan.settings().train.seed);
    let device = inner.autodiff();
    let model = TransformerConfig::from_plan(plan).init(&device);
    let kernels = Mixing::for_plan(plan, &device, SparseMode::WherePaysOff);
    (model, kernels, device)
}

#[test]
fn fields_left_at_their_defaults_are_not_written() {
    // Files and checkpoints written before these fields existed compare equal to
    // today's defaults (a resume compares the checkpoint's settings as TOML).
    let text = toml::to_string(&Settings::default()).expect("serialises");
    for key in ["dropout", "warmup", "schedule", "grad_clip", "examples"] {
        assert!(!text.contains(key), "{key} written at its default:\n{text}");
    }
    let p = plan(
        "dropout = 0.1\n",
        "warmup = 5\nschedule = \"cosine\"\ngrad_clip = 1.0\nexamples = 64\n",
    );
    let s = p.settings();
    assert_eq!(s.model.dropout, 0.1);
    assert_eq!(s.train.warmup, 5);
    assert_eq!(s.train.schedule.name(), "cosine");
    assert_eq!(s.train.grad_clip, 1.0);
    assert_eq!(s.train.examples, 64);
    let bad = Experiment::from_toml("name = \"x\"\n[train]\nschedule = \"exponential\"\n");
    assert!(bad.is_err(), "an unknown schedule is refused");
}

/// AdamW's decoupled decay shrinks even parameters that get no gradient: the
/// embedding rows of tokens no batch contains shrink by `1 - lr x weight_decay` per
/// step, and stay exactly as they were without decay.
#[test]
fn weight_decay_shrinks_weights_that_get_no_gradient() {
    let _turn = one_at_a_time();
    let (lr, decay, steps) = (1e-2, 0.5, 5);
    let p = plan("", &format!("lr = {lr}\n"));
    let (initial, kernels, device) = model_of(&p);
    let (start_rows, _) = read(&initial, "tokens.weight");
    let d = 16;
    let unseen = |rows: &[f32]| rows[4 * d..].to_vec();
    for wd in [0.0, decay] {
        let settings = p.revise(|s| s.train.weight_decay = wd).expect("valid");
        let mut optim = optimizer(&settings.settings().train);
        let mut model = initial.clone();
        for step in 0..steps {
            let batch = low_token_batch(step as u64);
            (model, _) = train_step(
                model,
                &mut optim,
                &batch,
                &kernels,
                StepOptions::plain(lr),
                &device,
            )
            .expect("step");
        }
        let (rows, _) = read(&model, "tokens.weight");
        assert_ne!(rows[..4 * d], start_rows[..4 * d], "seen rows train");
        if wd == 0.0 {
            assert_eq!(unseen(&rows), unseen(&start_rows), "Adam leaves them alone");
        } else {
            let factor = (1.0 - lr * wd).powi(steps) as f32;
            for (now, was) in unseen(&rows).iter().zip(unseen(&start_rows)) {
                assert!(
                    (now - was * factor).abs() <= 1e-5 * was.abs().max(1e-3),
                    "{now} vs {was} x {factor}"
                );
            }
        }
    }
}

/// `train.warmup = 10` trains its first step at lr / 10: the loss after it is the one
/// of a run at that rate without warm-up, not the one at the full rate.
#[test]
fn warmups_first_step_uses_the_warmup_rate() {
    let _turn = one_at_a_time();
    let runs = train_all(vec![
        plan("", "lr = 1e-2\nwarmup = 10\nsteps = 3\n"),
        plan("", "lr = 1e-3\nsteps = 3\n"),
        plan("", "lr = 1e-2\nsteps = 3\n"),
    ]);
    let (warm, slow, fast) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(warm[0], fast[0], "same model and batch before any update");
    assert!(close(warm[1], slow[1]), "{} vs {}", warm[1], slow[1]);
    assert!(!close(warm[1], fast[1]), "{} vs {}", warm[1], fast[1]);
}

/// A decay schedule changes the steps after the warm-up, the constant one does not
/// change anything.
#[test]
fn schedules_change_the_rate_after_warmup() {
    let _turn = one_at_a_time();
    let runs = train_all(vec![
        plan("", "steps = 4\n"),
        plan("", "steps = 4\nschedule = \"constant\"\n"),
        plan("", "steps = 4\nschedule = \"linear\"\n"),
    ]);
    assert_eq!(runs[0], runs[1], "constant is the default");
    // Linear over 4 steps: step 1 trains at lr x 3/4; its loss is measured before.
    assert_eq!(
        runs[0][0], runs[2][0],
        "the same model and batch before any update"
    );
    assert_ne!(runs[0][1..], runs[2][1..], "the decayed steps differ");
}

/// `model.d_ff = 0`: blocks without feed-forward parameters (the count is the
/// budget's formula), and such a model trains.
#[test]
fn attention_only_blocks_have_no_mlp_parameters_and_train() {
    let _turn = one_at_a_time();
    let attn_only = plan("d_ff = 0\nlayers = 2\n", "");
    let with_mlp = plan("d_ff = 32\nlayers = 2\n", "");
    let (model, ..) = model_of(&attn_only);
    let (v, n, d, l) = (8u64, 16u64, 16u64, 2u64);
    let per_block = 2 * d + (3 * d * d + 3 * d) + (d * d + d);
    let formula = v * d + n * d + l * per_block + 2 * d + (d * v + v);
    assert_eq!(model.num_params() as u64, formula);
    assert_eq!(parameter_count(attn_only.settings()), formula);
    let (_, paths) = read(&model, "none");
    assert!(
        paths.iter().all(|p| !p.contains("ff")),
        "no feed-forward parameter: {paths:?}"
    );
    let (full, ..) = model_of(&with_mlp);
    assert_eq!(
        full.num_params() as u64,
        parameter_count(with_mlp.settings())
    );
    let f = 32;
    assert_eq!(
        full.num_params() as u64 - formula,
        l * (2 * d + (d * f + f) + (f * d + d))
    );
    // Trained on one fixed batch (a finite set of 4), the loss must fall.
    let tiny = attn_only
        .revise(|s| {
            s.train.steps = 20;
            s.train.lr = 1e-2;
            s.train.examples = 4;
        })
        .expect("valid");
    let runs = train_all(vec![tiny]);
    assert_eq!(runs[0].len(), 20);
    assert!(runs[0].iter().all(|l| l.is_finite()));
    assert!(runs[0][19] < runs[0][0], "it learns: {:?}", runs[0]);
}

/// With `model.dropout = 0` a step is the step without dropout, bit for bit; above 0
/// the training forward pass drops units (another loss), evaluation of the same
/// weights does not, and the masks follow the seed and the step.
#[test]
fn dropout_changes_training_only() {
    let _turn = one_at_a_time();
    let p = plan("", "");
    let (initial, kernels, device) = model_of(&p);
    let batch = low_token_batch(1);

    // Dropout 0: StepOptions::for_step builds none; the same losses as plain steps.
    let zero = p.revise(|s| s.model.dropout = 0.0).expect("valid");
    let steps = |options: &dyn Fn(usize) -> StepOptions| -> Vec<f64> {
        let mut optim = optimizer(&p.settings().train);
        let mut model = initial.clone();
        (1..=3)
            .map(|step| {
                let (next, outcome) = train_step(
                    model.clone(),
                    &mut optim,
                    &batch,
                    &kernels,
                    options(step),
                    &device,
                )
                .expect("step");
                model = next;
                outcome.loss
            })
            .collect()
    };
    let lr = p.settings().train.lr;
    let plain = steps(&|_| StepOptions::plain(lr));
    assert_eq!(plain, steps(&|s| StepOptions::for_step(zero.settings(), s)));
    assert!(StepOptions::for_step(zero.settings(), 1).dropout.is_none());

    // Dropout 0.3: another training loss from the same weights and batch.
    let loss_of = |logits: Tensor<3>| {
        scalar(masked_cross_entropy(logits, &batch.targets), "loss").expect("loss")
    };
    let tokens = || tokens_tensor(&batch, &device);
    let undropped = loss_of(initial.forward(tokens(), &kernels));
    let dropped_with = |seed, step| {
        let mut d = StepDropout::new(0.3, seed, step).expect("dropout");
        loss_of(initial.forward_train(tokens(), &kernels, &mut d))
    };
    let dropped = dropped_with(1, 1);
    assert_ne!(dropped, undropped);
    assert_eq!(
        dropped,
        dropped_with(1, 1),
        "the same masks for the same step"
    );
    assert_ne!(dropped, dropped_with(1, 2), "other masks at another step");
    // Evaluation (the plain device, as the trainer evaluates) sees the weights as
    // they are.
    let inner = CpuBackend::device();
    let eval_kernels = Mixing::for_plan(&p, &inner, SparseMode::WherePaysOff);
    let evaluated = loss_of(
        initial
            .valid()
            .forward(tokens_tensor(&batch, &inner), &eval_kernels),
    );
    assert!(close(evaluated, undropped), "{evaluated} vs {undropped}");

    // Through the trainer: the same file without the field and with 0 give the same
    // losses; 0.3 changes the first step's loss (the same model and batch, dropped),
    // and is reproducible.
    let runs = train_all(vec![
        plan("", ""),
        plan("dropout = 0.0\n", ""),
        plan("dropout = 0.3\n", ""),
        plan("dropout = 0.3\n", ""),
    ]);
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0][0], runs[2][0]);
    assert_eq!(runs[2], runs[3], "dropout's masks follow the seed and step");
}

/// Global gradient-norm clipping scales every gradient together down to the
/// threshold, and leaves gradients under it as they are.
#[test]
fn grad_clip_bounds_the_global_norm() {
    let _turn = one_at_a_time();
    let p = plan("", "");
    let (model, kernels, device) = model_of(&p);
    let batch = low_token_batch(2);
    let grads = || {
        let logits = model.forward(tokens_tensor(&batch, &device), &kernels);
        let loss = masked_cross_entropy(logits, &batch.targets);
        GradientsParams::from_grads(loss.backward(), &model)
    };
    let norm_of = |g: &GradientsParams| {
        scalar(grad_norm(g, &model).expect("gradients"), "norm").expect("norm")
    };
    let before = norm_of(&grads());
    assert!(before > 0.0);
    let clipped = clip_grad_norm(grads(), &model, before / 4.0);
    assert!(
        (norm_of(&clipped) - before / 4.0).abs() <= 1e-4 * before,
        "{} vs {}",
        norm_of(&clipped),
        before / 4.0
    );
    let kept = clip_grad_norm(grads(), &model, before * 2.0);
    assert!((norm_of(&kept) - before).abs() <= 1e-5 * before);

    // Through the trainer: a tiny threshold changes the updates.
    let runs = train_all(vec![
        plan("", "steps = 3\n"),
        plan("", "steps = 3\ngrad_clip = 1e-4\n"),
    ]);
    assert_eq!(runs[0][0], runs[1][0]);
    assert_ne!(runs[0][1..], runs[1][1..]);
}

/// A finite training set through the trainer repeats its examples every epoch. At a
/// learning rate too small to move the model, each epoch of 8 examples in batches of
/// 4 has the same mean loss (every recall example has as many targets), though its
/// batches hold other examples; fresh data's pairs of steps differ.
#[test]
fn a_finite_set_repeats_its_examples_every_epoch() {
    let _turn = one_at_a_time();
    let runs = train_all(vec![
        plan(
            "",
            "steps = 8
lr = 1e-9
examples = 8
",
        ),
        plan(
            "",
            "steps = 8
lr = 1e-9
",
        ),
    ]);
    let epochs = |l: &[f64]| -> Vec<f64> { l.chunks(2).map(|c| (c[0] + c[1]) / 2.0).collect() };
    let (finite, fresh) = (epochs(&runs[0]), epochs(&runs[1]));
    assert_eq!(finite.len(), 4);
    for m in &finite[1..] {
        assert!(
            (m - finite[0]).abs() <= 1e-5,
            "each epoch is the same 8 examples: {finite:?} ({:?})",
            runs[0]
        );
    }
    assert!(
        (1..4).any(|e| (runs[0][2 * e] - runs[0][0]).abs() > 1e-4),
        "the epochs are shuffled: {:?}",
        runs[0]
    );
    assert!(
        fresh[1..].iter().any(|m| (m - fresh[0]).abs() > 1e-3),
        "fresh data: {fresh:?}"
    );
}

/// A run with every feature on (dropout, warm-up, cosine decay, clipping, decay and a
/// finite set), stopped and resumed, trains to the losses of the uninterrupted run:
/// the schedule, the masks and the data order follow the checkpoint's step.
#[test]
fn a_resumed_run_with_every_feature_matches_an_uninterrupted_one() {
    let _turn = one_at_a_time();
    let p = plan(
        "dropout = 0.2\n",
        "steps = 12\ncheckpoint_every = 0\nwarmup = 3\nschedule = \"cosine\"\ngrad_clip = 0.5\nweight_decay = 0.1\nexamples = 6\n",
    );
    let trainer = local_trainer(1);
    let whole = tempfile::tempdir().expect("tempdir");
    start(&trainer, 1, p.clone(), Some(whole.path()));
    let uninterrupted = losses(&collect(&trainer, 1), 1);
    assert_eq!(uninterrupted.len(), 12);

    let parts = tempfile::tempdir().expect("tempdir");
    start(&trainer, 2, p.clone(), Some(parts.path()));
    let deadline = Instant::now() + DEADLINE;
    let mut record_dir = None;
    let mut first = Vec::new();
    loop {
        let e = next(&trainer, deadline);
        let at_five = matches!(&e, Event::Step { metrics, .. } if metrics.step == 5);
        if let Event::Started { record_dir: d, .. } = &e {
            record_dir = d.clone();
        }
        first.push(e);
        if at_five {
            break;
        }
    }
    trainer.send(Command::Stop(2)).expect("alive");
    first.extend(collect(&trainer, 1));
    let stopped_at = losses(&first, 2).len();
    assert!(stopped_at < 12, "stopped before the end, at {stopped_at}");
    let dir = record_dir.expect("recorded");
    let record = RunRecord::open(&dir).expect("record");
    assert_eq!(record.summary.status, RunStatus::Stopped);

    trainer
        .start(StartRun::resume(3, p.clone(), dir))
        .expect("alive");
    let second = collect(&trainer, 1);
    let Some(Event::Finished { summary, .. }) = second.last() else {
        panic!("finished")
    };
    assert_eq!(summary.status, RunStatus::Finished, "{:?}", summary.message);
    let continued = losses(&second, 3);
    assert_eq!(continued.len(), 12 - stopped_at);
    for (i, loss) in continued.iter().enumerate() {
        let want = uninterrupted[stopped_at + i];
        assert!(
            close(*loss, want),
            "step {}: resumed {loss} vs uninterrupted {want}",
            stopped_at + i + 1
        );
    }
}
