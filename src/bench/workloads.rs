//! The workloads themselves (run inside one process).

use std::time::{Duration, Instant};

use burn::optim::AdamConfig;
use burn::tensor::{Device, Distribution, Tensor};
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::attention::{AttentionPattern, PatternError, SparseLayout};
use crate::config::{BackendChoice, ConfigErrors, Experiment, RunPlan};
use crate::device::{BackendError, select_backend};
use crate::model::{
    KernelKind, Mixing, ReadbackError, SelfAttentionConfig, SparseMode, TransformerConfig,
};
use crate::trainer::{Event, Placement, StartRun, StepOptions, Trainer, train_step};

/// Why a benchmark configuration could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The pattern name is not one of [`crate::attention::PATTERN_KINDS`].
    #[error("unknown pattern `{0}`; one of {kinds:?}", kinds = crate::attention::PATTERN_KINDS)]
    UnknownPattern(String),
    /// The pattern's parameters do not fit the sequence length.
    #[error("{pattern} at n = {seq}: {error}")]
    Pattern {
        /// The pattern's label.
        pattern: String,
        /// The sequence length.
        seq: usize,
        /// What is wrong.
        error: PatternError,
    },
    /// The workload's run does not validate (e.g. a length the task refuses).
    #[error("the workload is not a valid run: {0}")]
    Plan(#[from] ConfigErrors),
    /// No device for the backend.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A result could not be read back from the device.
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    /// The trainer thread could not be started or ended a run with an error.
    #[error("through the trainer: {0}")]
    Trainer(String),
}

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
    /// One token-mixer layer (linear attention, Based, gated convolution, SSM),
    /// forward + backward, in W2's shape.
    Mixers,
}

/// The mixers the `mixers` workload times, with its parameters: Based with a window
/// of 64 (as the local pattern), the SSM with 16 states.
pub fn bench_mixer(name: &str) -> Option<crate::config::Mixer> {
    use crate::config::Mixer;
    Some(match name {
        "linear" => Mixer::Linear,
        "based" => Mixer::Based {
            feature_dim: 16,
            window: 64,
        },
        "conv" => Mixer::Conv { short: true },
        "ssm" => Mixer::Ssm { state: 16 },
        _ => return None,
    })
}

/// Times one token mixer layer, causal, d_model 128, 4 heads, batch 4, forward +
/// backward (W2's shape, another mixer in attention's place).
pub(super) fn mixer_layer(
    mixer: &crate::config::Mixer,
    seq: usize,
    device: &Device,
    warmup: usize,
    steps: usize,
) -> Result<Vec<Duration>, BenchError> {
    device.seed(1);
    let train_device = device.clone().autodiff();
    let layer = crate::model::TokenMixer::new(mixer, 128, 4, seq, true, &train_device)
        .ok_or_else(|| BenchError::UnknownPattern(mixer.name().into()))?;
    Ok(time_layer(seq, device, warmup, steps, |x| layer.mixed(x)))
}

/// Times `layer`'s forward and backward on a fresh random input `[4, seq, 128]` per
/// step (W2's shape): `warmup` untimed steps, then `steps` timed ones.
fn time_layer(
    seq: usize,
    device: &Device,
    warmup: usize,
    steps: usize,
    layer: impl Fn(Tensor<3>) -> Tensor<3>,
) -> Vec<Duration> {
    let train_device = device.clone().autodiff();
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let x = Tensor::<3>::random([4, seq, 128], Distribution::Normal(0.0, 1.0), &train_device)
            .require_grad();
        let t0 = Instant::now();
        let out = layer(x.clone());
        let grads = out.powi_scalar(2).mean().backward();
        // The gradient is computed by `backward`; reading it back is what is timed.
        let _ = x.grad(&grads);
        // Ignored: a failed sync shows as a faster step, not as a wrong result.
        let _ = device.sync();
        if step >= warmup {
            times.push(t0.elapsed());
        }
    }
    times
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
    /// `fused` (the CPU backend's tile kernel), `dense`, `block_sparse` or
    /// `masked_dense` (the reference: n^2 for any pattern).
    pub kernel: String,
    /// The fused kernels' instruction set (`avx512`, `avx2`, `baseline`), when fused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isa: Option<String>,
    /// For `trainer_overhead`: median ms per bare step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bare_step_ms: Option<f64>,
    /// For `trainer_overhead`: extra time per step through the trainer, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_pct: Option<f64>,
}

/// A pattern name with the reference workloads' parameters (docs/performance.md, "Reference
/// workloads": window 64, block 64, ...).
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
        // The local window written as an expression: what a mask of one's own costs.
        "custom" => AttentionPattern::Custom {
            mask: "abs(q - k) <= 64".into(),
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
        Workload::Mixers => vec!["linear", "based", "conv", "ssm"],
    }
}

/// The W1 model as a validated run plan: vocab 64, d_model 128, 4 heads, d_ff 512,
/// `layers` layers (2 in W1), batch 16, Adam lr 1e-3, recall at distance seq / 4.
pub fn w1_plan(
    pattern: &AttentionPattern,
    seq: usize,
    layers: usize,
    backend: BackendChoice,
    steps: usize,
) -> Result<RunPlan, ConfigErrors> {
    let mut settings = crate::config::Settings::default();
    settings.task.seq_len = seq;
    settings.task.vocab = 64;
    settings.task.distance = (seq / 4).max(1);
    settings.model.layers = layers;
    settings.model.heads = 4;
    settings.model.d_model = 128;
    settings.model.d_ff = 512;
    settings.model.attention = pattern.clone();
    settings.train.batch = 16;
    settings.train.lr = 1e-3;
    settings.train.steps = steps;
    settings.train.backend = backend.into();
    let mut experiment = Experiment::single("bench", settings);
    if let Some(run) = experiment.runs.first_mut() {
        run.name = pattern.label();
    }
    let mut plans = experiment.plan()?;
    plans.pop().ok_or_else(|| {
        ConfigErrors::from(crate::config::ConfigError::new(
            "runs",
            "no run was planned",
        ))
    })
}

fn mean_ms(times: &[Duration]) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    times.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / times.len() as f64
}

pub(super) fn median_ms(mut times: Vec<Duration>) -> f64 {
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

/// Times the bare W1 loop (the trainer's own [`train_step`], no events, no record);
/// returns per-step durations of the timed steps.
fn w1_bare(
    plan: &RunPlan,
    device: &Device,
    mode: SparseMode,
    warmup: usize,
    steps: usize,
) -> Result<Vec<Duration>, BenchError> {
    let settings = plan.settings();
    device.seed(settings.train.seed);
    let train_device = device.clone().autodiff();
    let mixing = Mixing::for_plan(plan, &train_device, mode);
    let mut model = TransformerConfig::from_plan(plan).init(&train_device);
    let mut optim = AdamConfig::new().init();
    let mut rng = StdRng::seed_from_u64(1);
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let batch = settings.task.batch(settings.train.batch, &mut rng);
        let t0 = Instant::now();
        let (next, _) = train_step(
            model,
            &mut optim,
            &batch,
            &mixing,
            StepOptions::plain(settings.train.lr),
            &train_device,
        )?;
        model = next;
        // Ignored: a failed sync shows as a faster step, not as a wrong result.
        let _ = device.sync();
        if step >= warmup {
            times.push(t0.elapsed());
        }
    }
    Ok(times)
}

/// Times W2: forward + backward of one self-attention layer (the transformer's own
/// [`crate::model::SelfAttention`]), d_model 128, 4 heads, batch 4.
pub(super) fn w2(
    pattern: &AttentionPattern,
    seq: usize,
    device: &Device,
    mode: SparseMode,
    warmup: usize,
    steps: usize,
) -> Result<Vec<Duration>, BenchError> {
    device.seed(1);
    let train_device = device.clone().autodiff();
    let plan = w1_plan(pattern, seq, 1, BackendChoice::Cpu, 1)?;
    let mixing = Mixing::for_plan(&plan, &train_device, mode);
    let layer = SelfAttentionConfig::new(128, 4).init(&train_device);
    Ok(time_layer(seq, device, warmup, steps, |x| {
        layer.forward(x, &mixing, 0)
    }))
}

/// Times W1 through the trainer thread (every event consumed, a run record written);
/// returns per-step wall times measured between consecutive `Step` events.
fn w1_trainer(plan: &RunPlan, warmup: usize, steps: usize) -> Result<Vec<Duration>, BenchError> {
    let dir = std::env::temp_dir().join(format!("attnlab-bench-{}", std::process::id()));
    let trainer = Trainer::spawn(Placement::local(1), Box::new(|| {}))
        .map_err(|e| BenchError::Trainer(e.to_string()))?;
    let plan = plan.revise(|s| s.train.steps = warmup + steps)?;
    trainer
        .start(StartRun::new(1, plan, Some(dir.clone())))
        .map_err(|e| BenchError::Trainer(e.to_string()))?;
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
                    result = Err(BenchError::Trainer(message));
                }
                break;
            }
            _ => {}
        }
    }
    // Ignored: a temporary folder left behind is harmless.
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| times)
}

/// The pattern the benchmark names `attn` (with the reference workloads'
/// parameters), checked at length `seq`.
fn checked_pattern(attn: &str, seq: usize) -> Result<AttentionPattern, BenchError> {
    let pattern = default_pattern(attn).ok_or_else(|| BenchError::UnknownPattern(attn.into()))?;
    pattern.check(seq).map_err(|error| BenchError::Pattern {
        pattern: pattern.label(),
        seq,
        error,
    })?;
    Ok(pattern)
}

/// One configuration as the workloads run it: `pattern` at length `seq` on
/// `backend`'s `device`, its kernels chosen by `mode`; `warmup` untimed steps, then
/// `steps` timed ones.
struct Setup<'a> {
    pattern: &'a AttentionPattern,
    /// The name asked for (a mixer's, in the mixers workload).
    attn: &'a str,
    seq: usize,
    backend: BackendChoice,
    device: &'a Device,
    mode: SparseMode,
    warmup: usize,
    steps: usize,
}

impl Setup<'_> {
    /// The kernel the layer really uses, as the trainer builds it, and the (query,
    /// key) pairs it computes per head.
    fn layer_kernel(&self) -> Result<(KernelKind, usize), BenchError> {
        let (pattern, seq) = (self.pattern, self.seq);
        let probe_plan = w1_plan(pattern, seq, 1, self.backend, 1)?;
        let probe_mixing = Mixing::for_plan(&probe_plan, self.device, self.mode);
        let kind = probe_mixing
            .layers()
            .first()
            .map_or(KernelKind::Dense, |k| k.kind);
        let computed_pairs = match kind {
            KernelKind::BlockSparse => {
                SparseLayout::of(pattern, seq, 1).map_or(seq * seq, |l| l.computed_pairs())
            }
            KernelKind::Fused => probe_mixing
                .fused_plan(0)
                .map_or(seq * seq, |p| p.computed_pairs()),
            KernelKind::Dense | KernelKind::MaskedDense => seq * seq,
        };
        Ok((kind, computed_pairs))
    }

    /// Times `workload`: its name in the output, its batch, its ms per step (the
    /// median of the timed steps; for the overhead workload, the mean through the
    /// trainer), and (overhead) the bare loop's mean ms per step.
    fn measure(
        &self,
        workload: Workload,
    ) -> Result<(&'static str, usize, f64, Option<f64>), BenchError> {
        let (device, mode, warmup, steps) = (self.device, self.mode, self.warmup, self.steps);
        Ok(match workload {
            Workload::W1 => {
                let plan = w1_plan(self.pattern, self.seq, 2, self.backend, steps)?;
                let times = w1_bare(&plan, device, mode, warmup, steps)?;
                ("train_step", 16, median_ms(times), None)
            }
            Workload::W2 => {
                let times = w2(self.pattern, self.seq, device, mode, warmup, steps)?;
                ("attention_layer", 4, median_ms(times), None)
            }
            Workload::Overhead => {
                let (bare, through) = self.overhead()?;
                ("trainer_overhead", 16, through, Some(bare))
            }
            Workload::Mixers => {
                let mixer = bench_mixer(self.attn)
                    .ok_or_else(|| BenchError::UnknownPattern(self.attn.into()))?;
                let times = mixer_layer(&mixer, self.seq, device, warmup, steps)?;
                ("mixer_layer", 4, median_ms(times), None)
            }
        })
    }

    /// The overhead workload: the mean ms per step of the bare W1 loop and of W1
    /// through the trainer, in that order.
    fn overhead(&self) -> Result<(f64, f64), BenchError> {
        let (device, mode, warmup, steps) = (self.device, self.mode, self.warmup, self.steps);
        // More instrumentation than an experiment's default: metrics every step, a
        // snapshot every 10 steps (default 50), evaluation only at the end (its
        // forward passes are work, not overhead). Means, not medians, so the
        // snapshot steps count.
        let plan = w1_plan(self.pattern, self.seq, 2, self.backend, steps)?.revise(|s| {
            s.train.snapshot_every = 10;
            s.train.eval_every = 0;
            s.train.eval_batches = 1;
        })?;
        // Alternate the two (bare, trainer, bare, trainer) so that drift in the
        // machine's speed falls on both alike.
        let (mut bare, mut through) = (Vec::new(), Vec::new());
        for _ in 0..OVERHEAD_ROUNDS {
            bare.extend(w1_bare(&plan, device, mode, warmup, steps)?);
            through.extend(w1_trainer(&plan, warmup, steps)?);
        }
        Ok((mean_ms(&bare), mean_ms(&through)))
    }
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
) -> Result<BenchResult, BenchError> {
    let pattern = if workload == Workload::Mixers {
        bench_mixer(attn).ok_or_else(|| BenchError::UnknownPattern(attn.into()))?;
        // A mixer layer links every earlier position.
        AttentionPattern::Dense
    } else {
        checked_pattern(attn, seq)?
    };
    let (device, info) = select_backend(backend)?;
    let mode = if sparse {
        SparseMode::WherePaysOff
    } else {
        SparseMode::Off
    };
    let setup = Setup {
        pattern: &pattern,
        attn,
        seq,
        backend,
        device: &device,
        mode,
        warmup,
        steps,
    };
    let attended_pairs = pattern.mask(seq, false, 1).attended_pairs();
    let (kind, computed_pairs) = setup.layer_kernel()?;
    let kernel = match workload {
        Workload::Mixers if attn == "ssm" && crate::model::fused::supported(&device) => {
            "fused_scan"
        }
        Workload::Mixers => "composed",
        _ => kind.name(),
    };
    let alloc_before = crate::memory::reset_peak();
    let (workload_name, batch, step_ms, bare) = setup.measure(workload)?;
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
        peak_alloc_mb: crate::memory::is_counting().then(|| {
            crate::memory::peak_bytes().saturating_sub(alloc_before) as f64 / (1024.0 * 1024.0)
        }),
        steps,
        attended_pairs,
        computed_pairs,
        kernel: kernel.into(),
        isa: (kind == KernelKind::Fused).then(|| crate::model::fused::simd::isa().name().into()),
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
