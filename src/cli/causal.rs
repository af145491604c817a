//! `attnlab ablate` and `attnlab patch`: which heads a recorded model needs. Each
//! prints one JSON line per record, step and intervention; a damaged record is
//! reported and the others done (exit 1 if any failed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::each_record;
use crate::attention::{HeadStats, Stat, spearman};
use crate::config::{BackendChoice, FieldSetting};
use crate::model::HeadRef;
use crate::trainer::{
    AblationMode, CausalError, LoadedRun, ablate, checkpoint_steps, patch, probe_statistics,
};

/// Which heads to intervene on, and how they group.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct HeadChoice {
    /// These heads together, as LAYER.HEAD from 1.1, e.g. `--heads 1.2,2.1`.
    #[arg(long, value_delimiter = ',', value_parser = parse_head)]
    pub heads: Vec<HeadRef>,
    /// Each head on its own (the default).
    #[arg(long)]
    pub each_head: bool,
    /// The heads of each layer together.
    #[arg(long)]
    pub each_layer: bool,
    /// Every head at once.
    #[arg(long)]
    pub all_heads: bool,
}

impl HeadChoice {
    /// The sets of heads to intervene on, for a model of `layers` x `heads`.
    pub fn sets(&self, layers: usize, heads: usize) -> Vec<Vec<HeadRef>> {
        let all = |layer: usize| (0..heads).map(move |head| HeadRef { layer, head });
        if !self.heads.is_empty() {
            vec![self.heads.clone()]
        } else if self.each_layer {
            (0..layers).map(|l| all(l).collect()).collect()
        } else if self.all_heads {
            vec![(0..layers).flat_map(all).collect()]
        } else {
            (0..layers).flat_map(all).map(|h| vec![h]).collect()
        }
    }
}

/// `L.H` (from 1) as a [`HeadRef`] (from 0).
pub fn parse_head(text: &str) -> Result<HeadRef, String> {
    let bad = || format!("{text:?} is not LAYER.HEAD counting from 1, e.g. 2.1");
    let (layer, head) = text.trim().split_once('.').ok_or_else(bad)?;
    let number = |s: &str| s.parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(bad);
    Ok(HeadRef {
        layer: number(layer)? - 1,
        head: number(head)? - 1,
    })
}

/// Which saved weights of each record to test.
#[derive(Debug, clap::Args)]
pub struct StepChoice {
    /// The weights at this step (a kept checkpoint, see train.keep_checkpoints, or
    /// the latest); default the latest.
    #[arg(long, conflicts_with = "every_checkpoint")]
    pub step: Option<usize>,
    /// Every kept checkpoint and the latest, in step order.
    #[arg(long)]
    pub every_checkpoint: bool,
}

impl StepChoice {
    fn steps(&self, dir: &Path) -> Result<Vec<Option<usize>>, CausalError> {
        if self.every_checkpoint {
            Ok(checkpoint_steps(dir)?.into_iter().map(Some).collect())
        } else {
            Ok(vec![self.step])
        }
    }
}

/// The options both commands share.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Record folders, or folders of records (every record under them).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub records: Vec<PathBuf>,
    #[command(flatten)]
    pub heads: HeadChoice,
    #[command(flatten)]
    pub step: StepChoice,
    /// Batches evaluated (each the run's `train.batch` examples).
    #[arg(long, default_value_t = 8)]
    pub batches: usize,
    /// Seed of the examples (the same for every intervention of a call).
    #[arg(long, default_value_t = 12345)]
    pub seed: u64,
    /// Evaluate under other attention patterns, without retraining, e.g.
    /// `--set 'model.attention={ kind = "local", window = 4 }'`.
    #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = FieldSetting::parse)]
    pub set: Vec<FieldSetting>,
    /// auto, cpu or wgpu.
    #[arg(long, value_enum, default_value_t = BackendChoice::Cpu)]
    pub backend: BackendChoice,
}

impl Common {
    /// Runs `each` on every record and step, each isolated: a failure or panic is
    /// reported naming the record, and the rest go on. Exit 1 if any failed.
    fn for_each(
        &self,
        command: &str,
        mut each: impl FnMut(&LoadedRun, &[Vec<HeadRef>]) -> Result<(), CausalError>,
    ) -> anyhow::Result<ExitCode> {
        Ok(each_record(command, &self.records, |folder| {
            let mut one = || {
                for step in self.step.steps(folder)? {
                    let mut run = LoadedRun::load(folder, step, self.backend)?;
                    run.swap_patterns(&self.set)?;
                    let (layers, heads) = run.shape();
                    each(&run, &self.heads.sets(layers, heads))?;
                }
                Ok::<(), CausalError>(())
            };
            one().map_err(|e| e.to_string())
        }))
    }
}

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

/// `heads` as the JSON lines name them: `["1.2", "2.1"]`.
fn names(heads: &[HeadRef]) -> Vec<String> {
    heads.iter().map(ToString::to_string).collect()
}

fn record_name(run: &LoadedRun) -> Option<String> {
    run.dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

fn progress(command: &str, run: &LoadedRun) -> impl FnMut(usize, usize) {
    let (name, step, command) = (run.name.clone(), run.step, command.to_string());
    move |done, total| {
        if total > 1 {
            eprint!("\rattnlab {command}: {name} at step {step}: {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    }
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
    ablations: &[crate::trainer::Ablation],
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

/// `attnlab patch` options.
#[derive(Debug, clap::Args)]
pub struct PatchArgs {
    #[command(flatten)]
    pub common: Common,
}

impl PatchArgs {
    /// Prints one JSON line per record, step and set of heads.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let common = &self.common;
        common.for_each("patch", |run, sets| {
            let (base, patched) = patch(
                run,
                sets,
                common.seed,
                common.batches,
                &mut progress("patch", run),
            )?;
            for p in patched {
                let line = serde_json::json!({
                    "run": run.name,
                    "record": record_name(run),
                    "step": run.step,
                    "intervention": format!("patch:{}", names(&p.heads).join(",")),
                    "heads": names(&p.heads),
                    "recovered": p.recovered,
                    "logit_diff": p.logit_diff,
                    "clean_logit_diff": base.clean,
                    "corrupted_logit_diff": base.corrupted,
                    "examples": base.examples,
                });
                println!("{line}");
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_named_from_one() {
        assert_eq!(parse_head("2.1"), Ok(HeadRef { layer: 1, head: 0 }));
        assert!(parse_head("0.1").is_err());
        assert!(parse_head("2").is_err());
        assert!(parse_head("a.b").is_err());
    }

    #[test]
    fn the_sets_cover_what_was_asked() {
        let choice = |heads: Vec<HeadRef>, each_layer, all_heads| HeadChoice {
            heads,
            each_head: false,
            each_layer,
            all_heads,
        };
        assert_eq!(choice(vec![], false, false).sets(2, 3).len(), 6);
        let layers = choice(vec![], true, false).sets(2, 3);
        assert_eq!(layers.len(), 2);
        assert!(layers[1].iter().all(|h| h.layer == 1));
        assert_eq!(choice(vec![], false, true).sets(2, 3)[0].len(), 6);
        let one = HeadRef { layer: 0, head: 2 };
        assert_eq!(choice(vec![one], false, false).sets(2, 3), vec![vec![one]]);
    }
}
