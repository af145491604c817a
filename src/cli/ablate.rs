//! `attnlab ablate`: how much a recorded model's accuracy drops with chosen heads
//! zeroed or mean-replaced. Prints one JSON line per record, step and set of heads
//! (a damaged record is reported and the others done; exit 1 if any failed), and on
//! stderr how the drops rank against each head's dependency mass on the probe.

use std::process::ExitCode;

use super::head_args::{Common, names, progress, record_name};
use crate::attention::{HeadStats, Stat, spearman};
use crate::inspect::{Ablation, AblationMode, LoadedRun, ablate, probe_statistics};
use crate::model::HeadRef;

/// `attnlab ablate` options.
#[derive(Debug, clap::Args)]
pub struct AblateArgs {
    #[command(flatten)]
    pub common: Common,
    /// What replaces an ablated head's output: zeros, or its per-position mean over a
    /// reference batch.
    #[arg(long, value_enum, default_value_t = AblationMode::Zero)]
    pub mode: AblationMode,
}

impl AblateArgs {
    /// Prints one JSON line per record, step and set of heads.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let common = &self.common;
        common.for_each("ablate", |run, sets| {
            let (clean, ablations) = ablate(
                run,
                sets,
                self.mode,
                common.seed,
                common.batches,
                &mut progress("ablate", run),
            )?;
            let stats = probe_statistics(run)?;
            let stat_of = |heads: &[HeadRef]| match heads {
                [h] => stats.get(h.layer).and_then(|l| l.get(h.head)).copied(),
                _ => None,
            };
            tell_correlation(run, &ablations, clean.accuracy, &stat_of);
            for a in ablations {
                let buckets: serde_json::Map<String, serde_json::Value> = a
                    .scores
                    .by_distance
                    .bucketed(1)
                    .iter()
                    .map(|c| (c.distance.to_string(), serde_json::json!(c.accuracy())))
                    .collect();
                let line = serde_json::json!({
                    "run": run.name,
                    "record": record_name(run),
                    "step": run.step,
                    "intervention": format!("{}:{}", mode_name(self.mode), names(&a.heads).join(",")),
                    "mode": self.mode,
                    "heads": names(&a.heads),
                    "loss": a.scores.loss,
                    "accuracy": a.scores.accuracy,
                    "clean_loss": clean.loss,
                    "clean_accuracy": clean.accuracy,
                    "accuracy_by_distance": buckets,
                    "probe_stats": stat_of(&a.heads).map(|s| stats_json(&s)),
                });
                println!("{line}");
            }
            Ok(())
        })
    }
}

/// A head's statistics on the probe, by their CSV names (`dependency_mass`...).
fn stats_json(s: &HeadStats) -> serde_json::Value {
    Stat::ALL
        .iter()
        .filter_map(|stat| {
            Some((
                stat.name().replace(' ', "_"),
                serde_json::json!(stat.of(s)?),
            ))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Says on stderr how the single-head ablation drops rank against each head's
/// dependency mass on the probe (Spearman), where both are defined.
fn tell_correlation(
    run: &LoadedRun,
    ablations: &[Ablation],
    clean_accuracy: f64,
    stat_of: &dyn Fn(&[HeadRef]) -> Option<HeadStats>,
) {
    let (drops, mass): (Vec<f64>, Vec<f64>) = ablations
        .iter()
        .filter_map(|a| {
            let mass = stat_of(&a.heads)?.dependency_mass?;
            Some((clean_accuracy - a.scores.accuracy, mass))
        })
        .unzip();
    if let Some(r) = spearman(&drops, &mass) {
        eprintln!(
            "{} at step {}: Spearman rank correlation of the accuracy drop with dependency mass over {} heads: {r:.3}",
            run.name,
            run.step,
            drops.len()
        );
    }
}

fn mode_name(mode: AblationMode) -> &'static str {
    match mode {
        AblationMode::Zero => "zero",
        AblationMode::Mean => "mean",
    }
}
