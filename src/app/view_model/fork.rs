//! "Fork from here", without egui: which saved step a fork starts from (the nearest
//! at or below the scrubber's), the child's settings (the parent's, with the editor's
//! values for the fields the registry lets change mid-run) and the changes in words,
//! and how a forked run is named in the panes (`dense (fork @ 4)`).
//!
//! The child takes the editor's values from the editor's run of the parent's name (a
//! seed replicate's plan, else the run it replicates), else from the editor's base
//! settings. Every other field stays the parent's: a difference there is listed as
//! ignored, never applied.

use std::borrow::Cow;
use std::path::PathBuf;

use super::editor::Editor;
use super::run_views::RunView;
use crate::config::fields::FIELDS;
use crate::config::{RunPlan, Settings, group_of};
use crate::records::ForkOrigin;

/// Keys never compared: a record holds one replicate, so its seed list says nothing.
const UNCOMPARED: [&str; 1] = ["train.seeds"];

/// What a helper thread read of the parent's record.
#[derive(Clone, Debug)]
pub struct ForkSource {
    /// The parent's record folder.
    pub dir: PathBuf,
    /// Its record id (the folder's name).
    pub record: String,
    /// The run's name.
    pub name: String,
    /// The plan that resumes it (`RunRecord::resume_plan`).
    pub plan: RunPlan,
    /// The steps with saved weights (`inspect::checkpoint_steps`), ascending.
    pub saved: Vec<usize>,
    /// The step of its latest checkpoint, the only one with the optimiser's state.
    pub latest: Option<usize>,
}

/// One setting that differs between the parent and the editor.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Its dotted path, `train.lr`.
    pub path: String,
    /// The parent's value, as TOML (`(none)` when absent).
    pub parent: String,
    /// The editor's value.
    pub editor: String,
}

/// The fork the dialog offers: the step, the child's plan and what changes.
#[derive(Clone, Debug)]
pub struct ForkProposal {
    /// The parent.
    pub source: ForkSource,
    /// The scrubber's step.
    pub wanted: usize,
    /// The saved step used: the nearest at or below `wanted`.
    pub step: Option<usize>,
    /// Where the editor's values come from, in words.
    pub editor_source: String,
    /// Fields the child takes from the editor.
    pub changes: Vec<Change>,
    /// Fields that differ but may not change mid-run: the parent's stay.
    pub ignored: Vec<Change>,
    /// The child's plan, or why the settings are not valid.
    pub plan: Result<RunPlan, String>,
}

impl ForkProposal {
    /// The fork of `source` at the saved step nearest at or below `wanted`, with
    /// `editor`'s values (from `editor_source`) for the fields that may change mid-run.
    pub fn new(
        source: ForkSource,
        wanted: usize,
        editor: &Settings,
        editor_source: String,
    ) -> Self {
        let step = saved_step(&source.saved, wanted);
        let (plan, changes, ignored) = match child_settings(source.plan.settings(), editor) {
            Ok((settings, changes, ignored)) => (
                source
                    .plan
                    .revise(|s| *s = settings)
                    .map_err(|e| e.to_string()),
                changes,
                ignored,
            ),
            Err(e) => (Err(e), Vec::new(), Vec::new()),
        };
        Self {
            source,
            wanted,
            step,
            editor_source,
            changes,
            ignored,
            plan,
        }
    }

    /// Whether the child starts with a fresh optimiser: its step is a kept model, not
    /// the parent's latest checkpoint (whose optimiser state is the only one kept).
    pub fn fresh_optimiser(&self) -> bool {
        self.step.is_some() && self.step != self.source.latest
    }

    /// Why Fork cannot go ahead, if it cannot.
    pub fn blocker(&self) -> Option<String> {
        let Some(step) = self.step else {
            return Some(match self.source.saved.first() {
                Some(first) => format!(
                    "No weights are saved at or before step {}: the first saved step is {first}.",
                    self.wanted
                ),
                None => {
                    "This run has no saved weights (it stopped before its first checkpoint).".into()
                }
            });
        };
        match &self.plan {
            Err(e) => Some(format!("The child's settings are not valid: {e}")),
            Ok(plan) if plan.settings().train.steps <= step => Some(format!(
                "Nothing is left to train: the child plans {} steps and starts at step {step}. Raise train.steps in the editor.",
                plan.settings().train.steps
            )),
            Ok(_) => None,
        }
    }

    /// The child's plan and step, when Fork can go ahead.
    pub fn ready(&self) -> Option<(RunPlan, usize)> {
        if self.blocker().is_some() {
            return None;
        }
        Some((self.plan.as_ref().ok()?.clone(), self.step?))
    }
}

/// The nearest of `saved` at or below `wanted`.
pub fn saved_step(saved: &[usize], wanted: usize) -> Option<usize> {
    saved.iter().copied().filter(|&s| s <= wanted).max()
}

/// The settings the editor offers a fork of the run `name`, and where they come
/// from: the editor's plan of that name (a seed replicate or sweep point), else its
/// run of that name (or of the replicate's group), else its base settings.
pub fn editor_settings(editor: &Editor, name: &str) -> (Settings, String) {
    if let Some(plan) = editor.plans().iter().find(|p| p.name() == name) {
        return (
            plan.settings().clone(),
            format!("the editor's run \"{name}\""),
        );
    }
    let group = group_of(name);
    if let Some((run, settings)) = editor
        .resolved_runs()
        .into_iter()
        .find(|(run, _)| run == name || run == group)
    {
        return (settings, format!("the editor's run \"{run}\""));
    }
    (
        editor.experiment.base.clone(),
        "the editor's base settings (it has no run of this name)".into(),
    )
}

/// The parent's settings with the editor's values for the fields that may change
/// mid-run (and apply to the parent's task and model); with the changes made and
/// the differences ignored, both in the registry's order.
pub fn child_settings(
    parent: &Settings,
    editor: &Settings,
) -> Result<(Settings, Vec<Change>, Vec<Change>), String> {
    let table = |s: &Settings| toml::Table::try_from(s).map_err(|e| e.to_string());
    let (from, wanted) = (table(parent)?, table(editor)?);
    let mut child = from.clone();
    let (mut changes, mut ignored) = (Vec::new(), Vec::new());
    let sections = |t: &toml::Table| -> Vec<String> { t.keys().cloned().collect() };
    let mut names = sections(&from);
    names.extend(sections(&wanted));
    names.sort();
    names.dedup();
    for section in names {
        let in_section = |t: &toml::Table| {
            t.get(&section)
                .and_then(toml::Value::as_table)
                .cloned()
                .unwrap_or_default()
        };
        let (a, b) = (in_section(&from), in_section(&wanted));
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let path = format!("{section}.{key}");
            if a.get(key) == b.get(key) || UNCOMPARED.contains(&path.as_str()) {
                continue;
            }
            let field = FIELDS.iter().copied().find(|f| f.path == path);
            if field.is_some_and(|f| !(f.applies)(parent)) {
                continue;
            }
            let shown =
                |v: Option<&toml::Value>| v.map_or_else(|| "(none)".into(), |v| v.to_string());
            let change = Change {
                path,
                parent: shown(a.get(key)),
                editor: shown(b.get(key)),
            };
            if !field.is_some_and(|f| f.fork) {
                ignored.push(change);
                continue;
            }
            if let Some(toml::Value::Table(target)) = child.get_mut(&section) {
                match b.get(key) {
                    Some(v) => target.insert(key.clone(), v.clone()),
                    None => target.remove(key),
                };
            }
            changes.push(change);
        }
    }
    let order = |c: &Change| FIELDS.iter().position(|f| f.path == c.path);
    changes.sort_by_key(|c| (order(c).is_none(), order(c)));
    ignored.sort_by_key(|c| (order(c).is_none(), order(c)));
    let settings = toml::Value::Table(child)
        .try_into::<Settings>()
        .map_err(|e| e.to_string())?;
    Ok((settings, changes, ignored))
}

/// `fork of tiny-dense at 4`: where a forked run starts.
pub fn fork_text(origin: &ForkOrigin) -> String {
    format!("fork of {} at {}", origin.record, origin.step)
}

impl RunView {
    /// The run's name as the panes show it: a forked run's reads `dense (fork @ 4)`,
    /// so it is told apart from its parent of the same name.
    pub fn label(&self) -> Cow<'_, str> {
        match &self.forked_from {
            Some(origin) => Cow::Owned(format!("{} (fork @ {})", self.name, origin.step)),
            None => Cow::Borrowed(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Experiment;

    fn plan(settings: Settings) -> RunPlan {
        Experiment::single("e", settings)
            .plan()
            .expect("valid")
            .remove(0)
    }

    fn source(settings: Settings) -> ForkSource {
        ForkSource {
            dir: PathBuf::from("runs/e-e"),
            record: "e-e".into(),
            name: "e".into(),
            plan: plan(settings),
            saved: vec![2, 4, 6],
            latest: Some(6),
        }
    }

    #[test]
    fn the_saved_step_is_the_nearest_at_or_below() {
        assert_eq!(saved_step(&[2, 4, 6], 5), Some(4));
        assert_eq!(saved_step(&[2, 4, 6], 4), Some(4));
        assert_eq!(saved_step(&[2, 4, 6], 1), None);
        assert_eq!(saved_step(&[], 9), None);
    }

    #[test]
    fn only_fields_that_may_change_mid_run_are_taken() {
        let parent = Settings::default();
        let mut editor = parent.clone();
        editor.train.lr = parent.train.lr * 3.0;
        editor.model.d_model = parent.model.d_model * 2;
        editor.train.seeds = vec![1, 2];
        let (child, changes, ignored) = child_settings(&parent, &editor).expect("settings");
        assert_eq!(child.train.lr, editor.train.lr);
        assert_eq!(child.model.d_model, parent.model.d_model);
        let paths = |c: &[Change]| c.iter().map(|c| c.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&changes), ["train.lr"]);
        assert_eq!(paths(&ignored), ["model.d_model"]);
        let (same, none, _) = child_settings(&parent, &parent).expect("settings");
        assert_eq!(same, parent);
        assert!(none.is_empty());
    }

    #[test]
    fn a_fork_needs_a_saved_step_and_steps_left() {
        let mut settings = Settings::default();
        settings.train.steps = 6;
        let proposal = ForkProposal::new(source(settings.clone()), 5, &settings, "base".into());
        assert_eq!(proposal.step, Some(4));
        assert!(proposal.fresh_optimiser(), "4 is not the latest checkpoint");
        assert!(proposal.ready().is_some());
        let at_end = ForkProposal::new(source(settings.clone()), 6, &settings, "base".into());
        assert!(!at_end.fresh_optimiser());
        assert!(
            at_end
                .blocker()
                .is_some_and(|b| b.contains("Nothing is left"))
        );
        let early = ForkProposal::new(source(settings.clone()), 1, &settings, "base".into());
        assert!(
            early
                .blocker()
                .is_some_and(|b| b.contains("first saved step is 2"))
        );
    }

    #[test]
    fn a_forked_run_is_labelled_with_its_fork_step() {
        let mut view = RunView::live(1, &plan(Settings::default()));
        assert_eq!(view.label(), "e");
        let origin = ForkOrigin {
            record: "e-e".into(),
            step: 4,
        };
        assert_eq!(fork_text(&origin), "fork of e-e at 4");
        view.forked_from = Some(origin);
        assert_eq!(view.label(), "e (fork @ 4)");
    }

    #[test]
    fn an_invalid_child_is_refused_with_the_reason() {
        let mut settings = Settings::default();
        settings.train.steps = 6;
        let mut editor = settings.clone();
        editor.train.lr = -1.0;
        let proposal = ForkProposal::new(source(settings), 4, &editor, "base".into());
        assert!(proposal.blocker().is_some_and(|b| b.contains("not valid")));
    }
}
