//! The workloads themselves (run inside one process).

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::attention::AttentionPattern;
use crate::config::{BackendChoice, Experiment, RunPlan};
use crate::model::{
    LayerMasks, SequenceModel, Transformer, layer_masks_with, masked_cross_entropy, sparse_pays_off,
};
use crate::trainer::{Event, StartRun, Trainer, select_backend};

/// Alternations of bare loop and trainer in the overhead workload.
const OVERHEAD_ROUNDS: usize = 2;

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// A training step of the W1 transformer.
    W1,
    /// One attention layer, forward + backward.
    W2,
    /// W1 through the trainer thread vs the bare loop.
    Overhead,
}

/// One JSON line of output.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Always `attnlab`.
    #[serde(rename = "impl")]
    pub implementation: String,
    /// `cpu` or `wgpu`.
    pub backend: String,
    /// `train_step`, `attention_layer` or `trainer_overhead`.
    pub workload: String,
    /// Pattern name as in experiment files.
    pub attn: String,
    /// The pattern with its parameters.
    pub pattern: String,
    /// Sequence length.
    pub seq: usize,
    /// Batch size.
    pub batch: usize,
    /// Median milliseconds per step.
    pub step_ms: f64,
    /// Tokens processed per second (batch * seq / step time).
    pub tokens_per_s: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mb: f64,
    /// Peak bytes allocated during the configuration beyond what was live before, MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_alloc_mb: Option<f64>,
    /// Timed steps.
    pub steps: usize,
    /// Attended (query, key) pairs per head: the pattern's true cost.
    pub attended_pairs: usize,
    /// (query, key) pairs the kernel computes per head (padding included).
    pub computed_pairs: usize,
    /// `dense`, `block_sparse` or `masked_dense` (the reference: n^2 for any pattern).
    pub kernel: String,
    /// For `trainer_overhead`: median ms per bare step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bare_step_ms: Option<f64>,
    /// For `trainer_overhead`: extra time per step through the trainer, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_pct: Option<f64>,
}

/// A pattern name with the BENCHMARK.md parameters (window 64, block 64, ...).
pub fn default_pattern(name: &str) -> Option<AttentionPattern> {
    Some(match name {
        "dense" => AttentionPattern::Dense,
        "local" => AttentionPattern::Local { window: 64 },
        "dilated" => AttentionPattern::Dilated {
            window: 32,
            dilation: 2,
        },
        "strided" => AttentionPattern::Strided { stride: 64 },
        "fixed" => AttentionPattern::Fixed {
            block: 64,
            summary: 8,
        },
        "block" => AttentionPattern::Block { size: 64 },
        "longformer" => AttentionPattern::Longformer {
            window: 64,
            global: 4,
        },
        "bigbird" => AttentionPattern::BigBird {
            block: 64,
            window_blocks: 3,
            global_blocks: 2,
            random_blocks: 3,
        },
        _ => return None,
    })
}

/// The default patterns of a workload.
pub fn bench_patterns(workload: Workload) -> Vec<&'static str> {
    match workload {
        Workload::W1 | Workload::Overhead => vec!["dense", "local", "block"],
        Workload::W2 => vec![
            "dense",
            "local",
            "block",
            "strided",
            "longformer",
            "bigbird",
        ],
    }
}

/// The W1 model as a run plan: vocab 64, d_model 128, 4 heads, d_ff 512, 2 layers,
/// batch 16, Adam lr 1e-3, recall at distance seq / 4.
pub fn w1_plan(
    pattern: &AttentionPattern,
    seq: usize,
    backend: BackendChoice,
    steps: usize,
) -> RunPlan {
    let mut experiment = Experiment::single("bench", Default::default());
    let s = &mut experiment.runs[0].settings;
    s.task.seq_len = seq;
    s.task.vocab = 64;
    s.task.distance = (seq / 4).max(1);
    s.model.layers = 2;
    s.model.heads = 4;
    s.model.d_model = 128;
    s.model.d_ff = 512;
    s.model.attention = pattern.clone();
    s.train.batch = 16;
    s.train.lr = 1e-3;
    s.train.steps = steps;
    s.train.backend = backend;
    RunPlan {
        experiment: "bench".into(),
        name: pattern.label(),
        settings: experiment.runs[0].settings.clone(),
    }
}

fn mean_ms(times: &[Duration]) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    times.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / times.len() as f64
}

fn median_ms(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times
        .get(times.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Peak resident memory of this process (VmHWM), MiB; 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Times the bare W1 loop; returns per-step durations of the timed steps.
fn w1_bare(
    plan: &RunPlan,
    device: &Device,
    sparse: bool,
    warmup: usize,
    steps: usize,
) -> Vec<Duration> {
    device.seed(plan.settings.train.seed);
    let train_device = device.clone().autodiff();
    let task = &plan.settings.task;
    let batch = plan.settings.train.batch;
    let masks = layer_masks_with(plan, &train_device, sparse);
    let mut model = Transformer::new(plan, &train_device);
    let mut optim = AdamConfig::new().init();
    let mut rng = StdRng::seed_from_u64(1);
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let data = task.batch(batch, &mut rng);
        let t0 = Instant::now();
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(data.tokens, [batch, task.seq_len]),
            &train_device,
        );
        let logits = model.forward(tokens, &masks);
        let loss = masked_cross_entropy(logits, &data.targets);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(plan.settings.train.lr, model, grads);
        let _ = device.sync();
        if step >= warmup {
            times.push(t0.elapsed());
        }
    }
    times
}

/// One multi-head attention layer: fused qkv projection, attention, output projection.
#[derive(Module, Debug)]
struct AttentionLayer {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl AttentionLayer {
    fn forward(&self, x: Tensor<3>, masks: &LayerMasks) -> Tensor<3> {
        let [batch, seq, d] = x.dims();
        let head_dim = d / self.heads;
        let qkv = self.qkv.forward(x);
        let split = |part: usize| {
            qkv.clone()
                .slice([0..batch, 0..seq, part * d..(part + 1) * d])
                .reshape([batch, seq, self.heads, head_dim])
                .swap_dims(1, 2)
        };
        let out = masks.attend(0, split(0), split(1), split(2));
        self.proj
            .forward(out.swap_dims(1, 2).reshape([batch, seq, d]))
    }
}

/// Times W2: forward + backward of one attention layer, d_model 128, 4 heads, batch 4.
fn w2(
    pattern: &AttentionPattern,
    seq: usize,
    device: &Device,
    sparse: bool,
    warmup: usize,
    steps: usize,
) -> Vec<Duration> {
    device.seed(1);
    let train_device = device.clone().autodiff();
    let mut plan = w1_plan(pattern, seq, BackendChoice::Cpu, 1);
    plan.settings.model.layers = 1;
    let masks = layer_masks_with(&plan, &train_device, sparse);
    let layer = AttentionLayer {
        qkv: LinearConfig::new(128, 384).init(&train_device),
        proj: LinearConfig::new(128, 128).init(&train_device),
        heads: 4,
    };
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let x = Tensor::<3>::random([4, seq, 128], Distribution::Normal(0.0, 1.0), &train_device)
            .require_grad();
        let t0 = Instant::now();
        let out = layer.forward(x.clone(), &masks);
        let grads = out.powi_scalar(2).mean().backward();
        let _ = x.grad(&grads);
        let _ = device.sync();
        if step >= warmup {
            times.push(t0.elapsed());
        }
    }
    times
}

/// Times W1 through the trainer thread (every event consumed, a run record written);
/// returns per-step wall times measured between consecutive `Step` events.
fn w1_trainer(plan: &RunPlan, warmup: usize, steps: usize) -> Result<Vec<Duration>, String> {
    let dir = std::env::temp_dir().join(format!("attnlab-bench-{}", std::process::id()));
    let trainer = Trainer::spawn(Box::new(|| {})).map_err(|e| e.to_string())?;
    let mut plan = plan.clone();
    plan.settings.train.steps = warmup + steps;
    trainer
        .start(StartRun::new(1, plan, Some(dir.clone())))
        .map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut last: Option<Instant> = None;
    let mut result = Ok(());
    while let Ok(event) = trainer.events().recv() {
        match event {
            Event::Step { metrics, .. } => {
                let now = Instant::now();
                if let Some(prev) = last
                    && metrics.step > warmup
                {
                    times.push(now - prev);
                }
                last = Some(now);
            }
            Event::Finished { summary, .. } => {
                if let Some(message) = summary.message {
                    result = Err(message);
                }
                break;
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| times)
}

/// One point of the cost view: an attention layer's step at one length.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CostPoint {
    /// The pattern's label (`local w=64`).
    pub pattern: String,
    /// Sequence length.
    pub seq: usize,
    /// Median ms per forward + backward step (batch 4, d_model 128, 4 heads).
    pub step_ms: f64,
    /// Peak bytes allocated during the step beyond what was live before, MiB
    /// (`None` where the counting allocator is not installed).
    pub peak_mb: Option<f64>,
    /// Pairs the pattern attends (per head).
    pub attended_pairs: usize,
    /// Pairs the kernel computes (per head).
    pub computed_pairs: usize,
}

/// Measures one attention layer (W2's shape) for `pattern` at `seq` in this process:
/// the time per step and, with the counting allocator, the peak memory of the step.
pub fn measure_layer(
    pattern: &AttentionPattern,
    seq: usize,
    backend: BackendChoice,
    warmup: usize,
    steps: usize,
) -> Result<CostPoint, String> {
    pattern
        .check(seq)
        .map_err(|(p, v, why)| format!("{} at n = {seq}: {p} = {v} {why}", pattern.label()))?;
    let (device, _) = select_backend(backend)?;
    let before = super::alloc::reset_peak();
    let times = w2(pattern, seq, &device, true, warmup, steps.max(1));
    let peak = super::alloc::peak_bytes().saturating_sub(before);
    let computed_pairs = crate::attention::SparseLayout::of(pattern, seq, 1)
        .map_or(seq * seq, |l| l.computed_pairs());
    Ok(CostPoint {
        pattern: pattern.label(),
        seq,
        step_ms: median_ms(times),
        peak_mb: super::alloc::is_counting().then(|| peak as f64 / (1024.0 * 1024.0)),
        attended_pairs: pattern.mask(seq, false, 1).attended_pairs(),
        computed_pairs,
    })
}

/// Measured step times: every timed step (reported as the median), or a mean.
enum Timing {
    Steps(Vec<Duration>),
    Mean(f64),
}

/// Runs one configuration in this process.
pub fn run_one(
    workload: Workload,
    attn: &str,
    seq: usize,
    backend: BackendChoice,
    sparse: bool,
    warmup: usize,
    steps: usize,
) -> Result<BenchResult, String> {
    let pattern = default_pattern(attn).ok_or_else(|| format!("unknown pattern `{attn}`"))?;
    pattern
        .check(seq)
        .map_err(|(p, v, why)| format!("{attn} at seq {seq}: {p} = {v} {why}"))?;
    let (device, info) = select_backend(backend)?;
    let attended_pairs = pattern.mask(seq, false, 1).attended_pairs();
    let computed_pairs = match (sparse, crate::attention::SparseLayout::of(&pattern, seq, 1)) {
        (true, Some(layout)) if sparse_pays_off(layout.computed_pairs(), seq) => {
            layout.computed_pairs()
        }
        _ => seq * seq,
    };
    let kernel = match (&pattern, sparse) {
        (AttentionPattern::Dense, _) => "dense",
        (_, true) if computed_pairs < seq * seq => "block_sparse",
        _ => "masked_dense",
    };
    let alloc_before = super::alloc::reset_peak();
    let (workload_name, batch, times, bare) = match workload {
        Workload::W1 => {
            let plan = w1_plan(&pattern, seq, backend, steps);
            (
                "train_step",
                16,
                Timing::Steps(w1_bare(&plan, &device, sparse, warmup, steps)),
                None,
            )
        }
        Workload::W2 => (
            "attention_layer",
            4,
            Timing::Steps(w2(&pattern, seq, &device, sparse, warmup, steps)),
            None,
        ),
        Workload::Overhead => {
            let mut plan = w1_plan(&pattern, seq, backend, steps);
            // More instrumentation than an experiment's default: metrics every step, a
            // snapshot every 10 steps (default 50), evaluation only at the end (its
            // forward passes are work, not overhead). Means, not medians, so the
            // snapshot steps count.
            plan.settings.train.snapshot_every = 10;
            plan.settings.train.eval_every = 0;
            plan.settings.train.eval_batches = 1;
            // Alternate the two (bare, trainer, bare, trainer) so that drift in the
            // machine's speed falls on both alike.
            let (mut bare, mut through) = (Vec::new(), Vec::new());
            for _ in 0..OVERHEAD_ROUNDS {
                bare.extend(w1_bare(&plan, &device, true, warmup, steps));
                through.extend(w1_trainer(&plan, warmup, steps)?);
            }
            let (bare, through) = (mean_ms(&bare), mean_ms(&through));
            ("trainer_overhead", 16, Timing::Mean(through), Some(bare))
        }
    };
    let step_ms = match times {
        Timing::Steps(times) => median_ms(times),
        Timing::Mean(mean) => mean,
    };
    Ok(BenchResult {
        implementation: "attnlab".into(),
        backend: info.backend,
        workload: workload_name.into(),
        attn: attn.into(),
        pattern: pattern.label(),
        seq,
        batch,
        step_ms,
        tokens_per_s: if step_ms > 0.0 {
            (batch * seq) as f64 / (step_ms / 1000.0)
        } else {
            0.0
        },
        peak_rss_mb: peak_rss_mb(),
        peak_alloc_mb: super::alloc::is_counting().then(|| {
            super::alloc::peak_bytes().saturating_sub(alloc_before) as f64 / (1024.0 * 1024.0)
        }),
        steps,
        attended_pairs,
        computed_pairs,
        kernel: kernel.into(),
        bare_step_ms: bare,
        overhead_pct: bare.map(|b| {
            if b > 0.0 {
                (step_ms - b) / b * 100.0
            } else {
                0.0
            }
        }),
    })
}
