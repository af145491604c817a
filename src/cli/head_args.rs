//! What `attnlab ablate` and `attnlab patch` share: which records, steps and heads to
//! intervene on, how each record is isolated, and how a line names its heads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::each_record;
use crate::config::{BackendChoice, FieldSetting};
use crate::inspect::{InspectError, LoadedRun, checkpoint_steps};
use crate::model::HeadRef;

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
    fn steps(&self, dir: &Path) -> Result<Vec<Option<usize>>, InspectError> {
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
    /// Batches evaluated (each the run's `train.batch` examples; at most 100,000).
    #[arg(long, default_value_t = 8, value_parser = super::batches_arg())]
    pub batches: usize,
    /// Let the run's text task read this file (or the files under this folder)
    /// although it lies outside the record's folder and this machine did not allow it
    /// when the run trained (a record from elsewhere; repeatable).
    #[arg(long = "allow-file", value_name = "PATH")]
    pub allow_files: Vec<PathBuf>,
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
    pub(super) fn for_each(
        &self,
        command: &str,
        mut each: impl FnMut(&LoadedRun, &[Vec<HeadRef>]) -> Result<(), InspectError>,
    ) -> anyhow::Result<ExitCode> {
        Ok(each_record(command, &self.records, |folder| {
            let mut one = || {
                for step in self.step.steps(folder)? {
                    let mut run = LoadedRun::load(folder, step, self.backend, &self.allow_files)?;
                    run.swap_patterns(&self.set)?;
                    let (layers, heads) = run.shape();
                    each(&run, &self.heads.sets(layers, heads))?;
                }
                Ok::<(), InspectError>(())
            };
            one().map_err(|e| e.to_string())
        }))
    }
}

/// `heads` as the JSON lines name them: `["1.2", "2.1"]`.
pub(super) fn names(heads: &[HeadRef]) -> Vec<String> {
    heads.iter().map(ToString::to_string).collect()
}

pub(super) fn record_name(run: &LoadedRun) -> Option<String> {
    run.dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
}

pub(super) fn progress(command: &str, run: &LoadedRun) -> impl FnMut(usize, usize) {
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
