//! The token mixers that replace attention (`model.mixer`): each one's parallel form
//! against its recurrent form, causality (a later token never changes an earlier
//! output, exactly), the materialised mixing matrix times the values against the
//! layer's output, gradients of the SSM's two forms against each other, and a tiny
//! seeded run of every mixer and a hybrid through the binary, recorded with its
//! mixing matrices.

use attnlab::config::Mixer;
use attnlab::device::CpuBackend;
use attnlab::model::{TokenMixer, elu_feature, linear_recurrent, taylor_recurrent};
use burn::tensor::{Bool, Distribution, Tensor};

mod common;
use common::bin::{attnlab_no_color as attnlab, text};
use common::experiments::tiny_recall;
use common::float::{Tolerance, assert_close, values};

const TIGHT: Tolerance = Tolerance {
    abs: 1e-5,
    rel: 1e-4,
};

const D_MODEL: usize = 16;
const HEADS: usize = 4;
const N: usize = 12;

fn every_mixer() -> Vec<Mixer> {
    vec![
        Mixer::Linear,
        Mixer::Based {
            feature_dim: 4,
            window: 3,
        },
        Mixer::Conv { short: false },
        Mixer::Conv { short: true },
        Mixer::Ssm { state: 4 },
    ]
}

fn build(mixer: &Mixer, causal: bool, seed: u64) -> (TokenMixer, Tensor<3>) {
    let device = CpuBackend::device();
    device.seed(seed);
    let m = TokenMixer::new(mixer, D_MODEL, HEADS, N, causal, &device).expect("a mixer");
    let x = Tensor::<3>::random([2, N, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
    (m, x)
}

/// `[batch, heads, seq, head_dim]` → `[batch, seq, d_model]`.
fn merge(out: Tensor<4>) -> Tensor<3> {
    let [batch, heads, seq, head_dim] = out.dims();
    out.swap_dims(1, 2).reshape([batch, seq, heads * head_dim])
}

/// The mixing matrix times the values, as the layer's pre-projection output.
fn product(m: &TokenMixer, x: Tensor<3>) -> Tensor<3> {
    let (matrix, v) = m.raw_mixing(x);
    let out = matrix.matmul(v);
    match m {
        TokenMixer::Linear(_) | TokenMixer::Based(_) => merge(out),
        TokenMixer::Conv(_) | TokenMixer::Ssm(_) => out.squeeze_dim::<3>(3).swap_dims(1, 2),
    }
}

#[test]
fn the_mixing_matrix_times_the_values_is_the_output() {
    for mixer in every_mixer() {
        for causal in [true, false] {
            let (m, x) = build(&mixer, causal, 7);
            assert_close(
                &values(product(&m, x.clone())),
                &values(m.mixed(x)),
                TIGHT,
                &format!("{mixer:?} causal {causal}"),
            );
        }
    }
}

#[test]
fn a_later_token_never_changes_an_earlier_output() {
    for mixer in every_mixer() {
        let (m, x) = build(&mixer, true, 3);
        let device = x.device();
        let changed = x.clone().slice_assign(
            [0..2, N - 1..N, 0..D_MODEL],
            Tensor::random([2, 1, D_MODEL], Distribution::Normal(5.0, 1.0), &device),
        );
        let before = values(m.mixed(x).slice([0..2, 0..N - 1, 0..D_MODEL]));
        let after = values(m.mixed(changed.clone()).slice([0..2, 0..N - 1, 0..D_MODEL]));
        assert_eq!(before, after, "{mixer:?}: an earlier output moved");
        let last = values(m.mixed(changed).slice([0..2, N - 1..N, 0..D_MODEL]));
        assert!(last.iter().all(|v| v.is_finite()), "{mixer:?}");
    }
}

#[test]
fn linear_attention_s_parallel_form_is_its_recurrent_form() {
    let (m, x) = build(&Mixer::Linear, true, 11);
    let TokenMixer::Linear(linear) = &m else {
        unreachable!()
    };
    let [q, k, v] = linear.qkv(x.clone());
    let recurrent = merge(linear_recurrent(elu_feature(q), elu_feature(k), v));
    assert_close(&values(recurrent), &values(m.mixed(x)), TIGHT, "linear");
}

#[test]
fn the_taylor_feature_map_is_based_s_kernel_in_recurrent_form() {
    let mixer = Mixer::Based {
        feature_dim: 4,
        window: 3,
    };
    let (m, x) = build(&mixer, true, 5);
    let TokenMixer::Based(based) = &m else {
        unreachable!()
    };
    let (fq, fk) = based.feature_qk(x.clone());
    let (_, v) = m.raw_mixing(x);
    // The parallel form: 1 + s + s^2/2 with s = q.k / sqrt(f), causal, normalised.
    let s = fq.clone().matmul(fk.clone().swap_dims(2, 3)) / 2.0;
    let scores = s.clone().powf_scalar(2.0) / 2.0 + s + 1.0;
    let above = Tensor::<2, Bool>::tril_mask([N, N], 0, &scores.device()).unsqueeze::<4>();
    let scores = scores.mask_fill(above, 0.0);
    let parallel = (scores.clone() / (scores.sum_dim(3) + 1e-6)).matmul(v.clone());
    let recurrent = taylor_recurrent(fq, fk, v);
    assert_close(&values(recurrent), &values(parallel), TIGHT, "Taylor");
}

/// The convolution against a direct loop over taps: `y[t, c] = g[t, c] * sum_k
/// h[c, k] u[t - k, c]`, the short filter convolved in first.
#[test]
fn the_gated_convolution_is_its_direct_convolution() {
    for short in [false, true] {
        let (m, x) = build(&Mixer::Conv { short }, true, 9);
        let TokenMixer::Conv(conv) = &m else {
            unreachable!()
        };
        let (u, g) = conv.inputs(x.clone());
        let (long, short_taps) = conv.filters();
        let (u, g, long) = (values(u), values(g), values(long));
        let short_taps = short_taps.map(values);
        let taps = long.len() / D_MODEL;
        let at = |b: usize, t: usize, c: usize| (b * N + t) * D_MODEL + c;
        let mut want = vec![0f32; 2 * N * D_MODEL];
        for b in 0..2 {
            for c in 0..D_MODEL {
                // The short convolution first.
                let first: Vec<f32> = (0..N)
                    .map(|t| match &short_taps {
                        Some(s) => (0..3.min(t + 1))
                            .map(|k| s[c * 3 + k] * u[at(b, t - k, c)])
                            .sum(),
                        None => u[at(b, t, c)],
                    })
                    .collect();
                for t in 0..N {
                    let y: f32 = (0..=t.min(taps - 1))
                        .map(|k| long[c * taps + k] * first[t - k])
                        .sum();
                    want[at(b, t, c)] = y * g[at(b, t, c)];
                }
            }
        }
        assert_close(
            &values(m.mixed(x)),
            &want,
            TIGHT,
            &format!("conv short {short}"),
        );
    }
}

/// The SSM's scan (token by token) and its materialised matrix give the same output
/// and the same gradients with respect to the input.
#[test]
fn the_ssm_s_scan_and_its_matrix_agree_in_value_and_gradient() {
    let device = CpuBackend::device().autodiff();
    device.seed(13);
    let m = TokenMixer::new(&Mixer::Ssm { state: 4 }, D_MODEL, HEADS, N, true, &device)
        .expect("an SSM");
    let x0 = Tensor::<3>::random([2, N, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
    let weight = Tensor::<3>::random([2, N, D_MODEL], Distribution::Normal(0.0, 1.0), &device);
    let run = |through_matrix: bool| {
        let x = x0.clone().detach().require_grad();
        let y = if through_matrix {
            product(&m, x.clone())
        } else {
            m.mixed(x.clone())
        };
        let grads = (y.clone() * weight.clone()).sum().backward();
        (values(y), values(x.grad(&grads).expect("gradient")))
    };
    let (y_scan, g_scan) = run(false);
    let (y_matrix, g_matrix) = run(true);
    assert_close(&y_matrix, &y_scan, TIGHT, "SSM output");
    assert_close(
        &g_matrix,
        &g_scan,
        Tolerance {
            abs: 1e-4,
            rel: 1e-3,
        },
        "SSM gradient",
    );
}

/// Rows of what the panes show sum to 1 (or 0 before any key), no value negative.
#[test]
fn the_panes_get_non_negative_rows_that_sum_to_one() {
    for mixer in every_mixer() {
        let (m, x) = build(&mixer, true, 17);
        let shown = m.mixing_matrices(x, HEADS);
        assert_eq!(shown.dims(), [2, HEADS, N, N], "{mixer:?}");
        let rows = values(shown.clone().sum_dim(3));
        assert!(
            rows.iter()
                .all(|r| (r - 1.0).abs() < 1e-3 || r.abs() < 1e-6),
            "{mixer:?}: {rows:?}"
        );
        assert!(values(shown).iter().all(|v| *v >= 0.0), "{mixer:?}");
    }
}

/// Every mixer, and a hybrid (SSM below, attention on top), trains a few seeded steps
/// through the binary: records finish, their losses are finite, and the attention
/// snapshots hold each layer's mixing matrices.
#[test]
fn every_mixer_trains_and_records_its_mixing_matrices() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = tiny_recall(
        "mixers",
        16,
        "causal = true\n",
        "steps = 4\neval_every = 2\nsnapshot_every = 2\n",
    );
    for (name, mixer) in [
        ("linear", "{ kind = \"linear\" }"),
        ("based", "{ kind = \"based\", feature_dim = 4, window = 4 }"),
        ("conv", "{ kind = \"conv\", short = true }"),
        ("ssm", "{ kind = \"ssm\", state = 8 }"),
    ] {
        file.push_str(&format!(
            "[[runs]]\nname = \"{name}\"\nmodel.mixer = {mixer}\n"
        ));
    }
    file.push_str(
        "[[runs]]\nname = \"hybrid\"\nmodel.layers = 2\nmodel.layer_mixers = [{ kind = \"ssm\" }, { kind = \"attention\" }]\n",
    );
    std::fs::write(dir.path().join("m.toml"), file).expect("write");
    let out = attnlab(&["run", "m.toml", "--out", "runs", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let records = attnlab::records::list_records(&dir.path().join("runs"));
    assert_eq!(records.len(), 5);
    for r in &records {
        let s = &r.summary;
        assert_eq!(
            s.status,
            attnlab::records::RunStatus::Finished,
            "{}: {:?}",
            s.name,
            s.message
        );
        let record = attnlab::records::RunRecord::open(&r.dir).expect("record");
        let (header, snapshots) = record.snapshots().expect("reads").expect("snapshots");
        assert_eq!(header.heads, 2, "{}", s.name);
        let last = snapshots.last().expect("a snapshot");
        assert!(
            last.weights.iter().all(|w| w.is_finite() && *w >= 0.0),
            "{}",
            s.name
        );
        assert!(
            s.kernels
                .iter()
                .any(|k| k.kernel != "dense" || s.name == "hybrid"),
            "{:?}",
            s.kernels
        );
    }
}

/// The fused CPU scan against burn's composed scan: the same outputs and the same
/// gradients of Δ, x, B, C and A, on shapes with several sequences and states.
#[test]
fn the_fused_scan_equals_the_composed_scan_in_value_and_gradient() {
    use attnlab::model::fused::selective_scan;
    let device = CpuBackend::device().autodiff();
    device.seed(21);
    let (batch, n, d, state) = (3, 9, 5, 4);
    let normal = |shape: [usize; 3], mean: f64, sd: f64| {
        Tensor::<3>::random(shape, Distribution::Normal(mean, sd), &device)
    };
    let delta0 = normal([batch, n, d], 0.0, 1.0).abs() * 0.3;
    let x0 = normal([batch, n, d], 0.0, 1.0);
    let b0 = normal([batch, n, state], 0.0, 1.0);
    let c0 = normal([batch, n, state], 0.0, 1.0);
    let a0 = Tensor::<2>::random([d, state], Distribution::Uniform(-2.0, -0.1), &device);
    let weight = normal([batch, n, d], 0.0, 1.0);
    let run = |fused: bool| {
        let p =
            [delta0.clone(), x0.clone(), b0.clone(), c0.clone()].map(|t| t.detach().require_grad());
        let a = a0.clone().detach().require_grad();
        let y = if fused {
            selective_scan(&p[0], &p[1], &p[2], &p[3], &a)
                .expect("the fused scan applies on the CPU")
        } else {
            composed_scan(&p[0], &p[1], &p[2], &p[3], &a)
        };
        let grads = (y.clone() * weight.clone()).sum().backward();
        let mut out = vec![values(y)];
        out.extend(p.iter().map(|t| values(t.grad(&grads).expect("gradient"))));
        out.push(values(a.grad(&grads).expect("gradient")));
        out
    };
    let (fused, composed) = (run(true), run(false));
    for (i, name) in ["y", "Δ", "x", "B", "C", "A"].iter().enumerate() {
        assert_close(
            &fused[i],
            &composed[i],
            Tolerance {
                abs: 1e-4,
                rel: 1e-3,
            },
            name,
        );
    }
}

/// The scan in plain burn ops, token by token.
fn composed_scan(
    delta: &Tensor<3>,
    x: &Tensor<3>,
    b: &Tensor<3>,
    c: &Tensor<3>,
    a: &Tensor<2>,
) -> Tensor<3> {
    let [batch, n, d] = x.dims();
    let state = a.dims()[1];
    let mut h = Tensor::<3>::zeros([batch, d, state], &x.device());
    let mut ys = Vec::new();
    for t in 0..n {
        let dt = delta
            .clone()
            .slice([0..batch, t..t + 1, 0..d])
            .reshape([batch, d, 1]);
        let xt = x
            .clone()
            .slice([0..batch, t..t + 1, 0..d])
            .reshape([batch, d, 1]);
        let bt = b.clone().slice([0..batch, t..t + 1, 0..state]);
        let ct = c.clone().slice([0..batch, t..t + 1, 0..state]);
        let decay = (dt.clone() * a.clone().unsqueeze::<3>()).exp();
        h = decay * h + dt * xt * bt;
        ys.push((h.clone() * ct).sum_dim(2).reshape([batch, 1, d]));
    }
    Tensor::cat(ys, 1)
}

/// The fused prefix-sum linear attention against the parallel form (normalised
/// `phi(q) phi(k)^T`, masked causal) in value and in the gradients of q, k and v.
#[test]
fn the_fused_prefix_sums_equal_the_parallel_form_in_value_and_gradient() {
    use attnlab::model::fused::prefix_attention;
    let device = CpuBackend::device().autodiff();
    device.seed(23);
    let (batch, heads, n, f, e) = (2, 3, 11, 5, 4);
    let positive = |shape: [usize; 4]| {
        elu_feature(Tensor::<4>::random(
            shape,
            Distribution::Normal(0.0, 1.0),
            &device,
        ))
    };
    let (q0, k0) = (
        positive([batch, heads, n, f]),
        positive([batch, heads, n, f]),
    );
    let v0 = Tensor::<4>::random(
        [batch, heads, n, e],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let weight = Tensor::<4>::random(
        [batch, heads, n, e],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let run = |fused: bool| {
        let [q, k, v] = [q0.clone(), k0.clone(), v0.clone()].map(|t| t.detach().require_grad());
        let out = if fused {
            prefix_attention(&q, &k, &v).expect("the fused op applies on the CPU")
        } else {
            let scores = q.clone().matmul(k.clone().swap_dims(2, 3));
            let above = Tensor::<2, Bool>::tril_mask([n, n], 0, &device).unsqueeze::<4>();
            let scores = scores.mask_fill(above, 0.0);
            (scores.clone() / (scores.sum_dim(3) + 1e-6)).matmul(v.clone())
        };
        let grads = (out.clone() * weight.clone()).sum().backward();
        let mut all = vec![values(out)];
        all.extend([&q, &k, &v].map(|t| values(t.grad(&grads).expect("gradient"))));
        all
    };
    let (fused, parallel) = (run(true), run(false));
    for (i, name) in ["o", "q", "k", "v"].iter().enumerate() {
        assert_close(
            &fused[i],
            &parallel[i],
            Tolerance {
                abs: 1e-4,
                rel: 1e-3,
            },
            name,
        );
    }
}

/// The fused causal convolution against burn's ops (a sum of shifted copies), in value
/// and in the gradients of the input and the taps; filters shorter and longer than
/// the sequence.
#[test]
fn the_fused_convolution_equals_shifted_sums_in_value_and_gradient() {
    use attnlab::model::fused::causal_conv;
    let device = CpuBackend::device().autodiff();
    device.seed(29);
    for taps in [3, 9, 14] {
        let (batch, n, d) = (2, 9, 5);
        let u0 = Tensor::<3>::random([batch, n, d], Distribution::Normal(0.0, 1.0), &device);
        let h0 = Tensor::<2>::random([d, taps], Distribution::Normal(0.0, 1.0), &device);
        let weight = Tensor::<3>::random([batch, n, d], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let (u, h) = (
                u0.clone().detach().require_grad(),
                h0.clone().detach().require_grad(),
            );
            let y = if fused {
                causal_conv(&u, &h).expect("the fused op applies on the CPU")
            } else {
                let mut y = Tensor::<3>::zeros([batch, n, d], &device);
                for k in 0..taps.min(n) {
                    let shifted = Tensor::cat(
                        vec![
                            Tensor::zeros([batch, k, d], &device),
                            u.clone().slice([0..batch, 0..n - k, 0..d]),
                        ],
                        1,
                    );
                    y = y + shifted * h.clone().slice([0..d, k..k + 1]).reshape([1, 1, d]);
                }
                y
            };
            let grads = (y.clone() * weight.clone()).sum().backward();
            let gh = h
                .grad(&grads)
                .map(values)
                .unwrap_or_else(|| vec![0.0; d * taps]);
            vec![values(y), values(u.grad(&grads).expect("gradient")), gh]
        };
        let (fused, composed) = (run(true), run(false));
        for (i, name) in ["y", "u", "taps"].iter().enumerate() {
            assert_close(
                &fused[i],
                &composed[i],
                Tolerance {
                    abs: 1e-4,
                    rel: 1e-3,
                },
                &format!("{name}, {taps} taps"),
            );
        }
    }
}
