//! `attnlab patch`: activation patching of a recorded model's heads, how much of the
//! clean answer's logit lead each set of heads restores in the corrupted run. One
//! JSON line per record, step and set of heads; a damaged record is reported and the
//! others done (exit 1 if any failed).

use std::process::ExitCode;

use super::head_args::{Common, names, progress, record_name};
use crate::inspect::patch;

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
