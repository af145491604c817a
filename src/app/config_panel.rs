//! The experiment editor: task, model, attention pattern(s) and training settings of
//! the base configuration or of one run, with errors marked at the field.

use egui::{ComboBox, RichText, TextEdit, Ui};
use toml::Value;

use super::widgets::{ERROR_COLOR, error_ui, f64_ui, field_error, usize_ui};
use crate::attention::{AttentionPattern, PATTERN_KINDS};
use crate::config::{BackendChoice, ConfigErrors, Experiment, ModelKind, Run, Settings, TaskKind};

/// What the editor is editing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The base tables: a change goes to every run that does not override the field.
    Base,
    /// One run's full settings.
    Run(usize),
}

/// The experiment being edited and its validation.
#[derive(Clone, Debug)]
pub struct Editor {
    /// The experiment.
    pub experiment: Experiment,
    /// Base or one run.
    pub target: Target,
    /// Every problem, refreshed after each change.
    pub errors: ConfigErrors,
}

impl Editor {
    /// Opens an experiment for editing.
    pub fn new(experiment: Experiment) -> Self {
        let mut editor = Self {
            experiment,
            target: Target::Base,
            errors: ConfigErrors(Vec::new()),
        };
        editor.validate();
        editor
    }

    /// Re-checks the experiment.
    pub fn validate(&mut self) {
        self.errors = match self.experiment.plan() {
            Ok(_) => ConfigErrors(Vec::new()),
            Err(e) => e,
        };
    }

    /// Whether every run is valid (Run is enabled).
    pub fn is_valid(&self) -> bool {
        self.errors.0.is_empty()
    }

    /// The settings the editor shows.
    pub fn settings(&self) -> &Settings {
        match self.target {
            Target::Run(i) if i < self.experiment.runs.len() => &self.experiment.runs[i].settings,
            _ => &self.experiment.base,
        }
    }

    fn prefix(&self) -> String {
        match self.target {
            Target::Base => String::new(),
            Target::Run(i) => format!("runs[{i}]."),
        }
    }

    /// Duplicates the run being edited (or the last run) and edits the copy.
    pub fn duplicate_run(&mut self) {
        let source = match self.target {
            Target::Run(i) if i < self.experiment.runs.len() => self.experiment.runs[i].clone(),
            _ => self.experiment.runs.last().cloned().unwrap_or_else(|| Run {
                name: "run".into(),
                settings: self.experiment.base.clone(),
            }),
        };
        let mut name = format!("{} copy", source.name);
        let mut k = 2;
        while self.experiment.runs.iter().any(|r| r.name == name) {
            name = format!("{} copy {k}", source.name);
            k += 1;
        }
        self.experiment.runs.push(Run {
            name,
            settings: source.settings,
        });
        self.target = Target::Run(self.experiment.runs.len() - 1);
        self.validate();
    }

    /// Removes run `i` (an experiment keeps at least one).
    pub fn remove_run(&mut self, i: usize) {
        if self.experiment.runs.len() > 1 && i < self.experiment.runs.len() {
            self.experiment.runs.remove(i);
            self.target = Target::Base;
            self.validate();
        }
    }
}

/// Copies each base field that changed from `old` to `new` into every run that had the
/// old value (so runs keep their own overrides).
fn propagate(old: &Settings, new: &Settings, runs: &mut [Run]) {
    let (Ok(Value::Table(old)), Ok(Value::Table(new))) =
        (Value::try_from(old), Value::try_from(new))
    else {
        return;
    };
    for run in runs {
        let Ok(Value::Table(mut value)) = Value::try_from(&run.settings) else {
            continue;
        };
        for (section, new_fields) in &new {
            let (Some(Value::Table(old_fields)), Value::Table(new_fields)) =
                (old.get(section), new_fields)
            else {
                continue;
            };
            let Some(Value::Table(run_fields)) = value.get_mut(section) else {
                continue;
            };
            let keys: std::collections::BTreeSet<&String> =
                old_fields.keys().chain(new_fields.keys()).collect();
            for key in keys {
                let (before, after) = (old_fields.get(key), new_fields.get(key));
                if before != after && run_fields.get(key) == before {
                    match after {
                        Some(v) => {
                            run_fields.insert(key.clone(), v.clone());
                        }
                        None => {
                            run_fields.remove(key);
                        }
                    }
                }
            }
        }
        if let Ok(settings) = Value::Table(value).try_into() {
            run.settings = settings;
        }
    }
}

/// The whole editor. Returns whether the experiment changed.
pub fn editor_ui(ui: &mut Ui, editor: &mut Editor) -> bool {
    let mut changed = false;
    let l = ui.label("Experiment name");
    changed |= ui
        .add(TextEdit::singleline(&mut editor.experiment.name).desired_width(f32::INFINITY))
        .labelled_by(l.id)
        .changed();
    error_ui(ui, field_error(&editor.errors, "name"));

    ui.separator();
    changed |= target_ui(ui, editor);
    ui.separator();

    let prefix = editor.prefix();
    let before = editor.settings().clone();
    let mut settings = before.clone();
    let errors = editor.errors.clone();
    let err = |field: &str| field_error(&errors, &format!("{prefix}{field}")).map(str::to_owned);

    egui::CollapsingHeader::new("Task")
        .default_open(true)
        .show(ui, |ui| task_ui(ui, &mut settings, &err));
    egui::CollapsingHeader::new("Model")
        .default_open(true)
        .show(ui, |ui| model_ui(ui, &mut settings, &err));
    egui::CollapsingHeader::new("Training")
        .default_open(true)
        .show(ui, |ui| train_ui(ui, &mut settings, &err));

    if settings != before {
        match editor.target {
            Target::Run(i) if i < editor.experiment.runs.len() => {
                editor.experiment.runs[i].settings = settings
            }
            _ => {
                propagate(&before, &settings, &mut editor.experiment.runs);
                editor.experiment.base = settings;
            }
        }
        changed = true;
    }
    if changed {
        editor.validate();
    }

    if !editor.errors.0.is_empty() {
        ui.separator();
        ui.label(
            RichText::new(format!(
                "{} problem(s) to fix before running:",
                editor.errors.0.len()
            ))
            .color(ERROR_COLOR),
        );
        for e in &editor.errors.0 {
            ui.label(RichText::new(e.to_string()).color(ERROR_COLOR).small());
        }
    }
    changed
}

/// Which settings are edited, and the run list (add, duplicate, remove, rename).
fn target_ui(ui: &mut Ui, editor: &mut Editor) -> bool {
    let mut changed = false;
    let names: Vec<String> = editor
        .experiment
        .runs
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let selected = match editor.target {
        Target::Base => "all runs (base)".to_string(),
        Target::Run(i) => names.get(i).cloned().unwrap_or_default(),
    };
    ComboBox::from_label("Editing")
        .selected_text(selected)
        .width(180.0)
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut editor.target, Target::Base, "all runs (base)");
            for (i, name) in names.iter().enumerate() {
                ui.selectable_value(&mut editor.target, Target::Run(i), name);
            }
        });
    ui.horizontal(|ui| {
        if ui
            .button("Duplicate run")
            .on_hover_text("Add a copy of this run to vary it")
            .clicked()
        {
            editor.duplicate_run();
            changed = true;
        }
        if let Target::Run(i) = editor.target {
            let can_remove = editor.experiment.runs.len() > 1;
            if ui
                .add_enabled(can_remove, egui::Button::new("Remove run"))
                .on_disabled_hover_text("An experiment needs at least one run")
                .clicked()
            {
                editor.remove_run(i);
                changed = true;
            }
        }
    });
    if let Target::Run(i) = editor.target
        && let Some(run) = editor.experiment.runs.get_mut(i)
    {
        let l = ui.label("Run name");
        changed |= ui
            .add(TextEdit::singleline(&mut run.name))
            .labelled_by(l.id)
            .changed();
        error_ui(ui, field_error(&editor.errors, &format!("runs[{i}].name")));
    } else {
        ui.label(
            RichText::new(format!(
                "{} run(s). Changes here apply to every run that does not set the field itself.",
                names.len()
            ))
            .small(),
        );
    }
    changed
}

fn task_ui(ui: &mut Ui, s: &mut Settings, err: &dyn Fn(&str) -> Option<String>) {
    let t = &mut s.task;
    ComboBox::from_label("task kind")
        .selected_text(t.kind.name())
        .show_ui(ui, |ui| {
            for kind in TaskKind::ALL {
                ui.selectable_value(&mut t.kind, kind, kind.name());
            }
        });
    usize_ui(
        ui,
        "seq_len",
        &mut t.seq_len,
        8192,
        err("task.seq_len").as_deref(),
    );
    usize_ui(
        ui,
        "vocab",
        &mut t.vocab,
        4096,
        err("task.vocab").as_deref(),
    );
    match t.kind {
        TaskKind::Recall | TaskKind::Induction => {
            usize_ui(
                ui,
                "distance",
                &mut t.distance,
                8192,
                err("task.distance").as_deref(),
            );
        }
        TaskKind::Mqar => {
            usize_ui(
                ui,
                "pairs",
                &mut t.pairs,
                4096,
                err("task.pairs").as_deref(),
            );
        }
        TaskKind::SelectiveCopy => {
            usize_ui(
                ui,
                "tokens",
                &mut t.tokens,
                4096,
                err("task.tokens").as_deref(),
            );
        }
    }
    ui.label(RichText::new(format!("chance accuracy {:.3}", t.chance_accuracy())).small());
}

fn model_ui(ui: &mut Ui, s: &mut Settings, err: &dyn Fn(&str) -> Option<String>) {
    let m = &mut s.model;
    ComboBox::from_label("model kind")
        .selected_text(match m.kind {
            ModelKind::Transformer => "transformer",
            ModelKind::Lstm => "lstm",
        })
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut m.kind, ModelKind::Transformer, "transformer");
            ui.selectable_value(&mut m.kind, ModelKind::Lstm, "lstm");
        });
    usize_ui(
        ui,
        "layers",
        &mut m.layers,
        48,
        err("model.layers").as_deref(),
    );
    usize_ui(
        ui,
        "d_model",
        &mut m.d_model,
        4096,
        err("model.d_model").as_deref(),
    );
    if m.kind == ModelKind::Lstm {
        return;
    }
    usize_ui(ui, "heads", &mut m.heads, 64, err("model.heads").as_deref());
    usize_ui(ui, "d_ff", &mut m.d_ff, 16384, err("model.d_ff").as_deref());
    ui.checkbox(&mut m.causal, "causal");

    let mut per_layer = m.layer_attention.is_some();
    if ui
        .checkbox(&mut per_layer, "a pattern per layer")
        .on_hover_text("Give each layer its own pattern (e.g. local below, dense on top)")
        .changed()
    {
        m.layer_attention = per_layer.then(|| vec![m.attention.clone(); m.layers]);
    }
    match &mut m.layer_attention {
        None => pattern_ui(ui, "attention", &mut m.attention, "model.attention", err),
        Some(layers) => {
            if layers.len() != m.layers {
                layers.resize(m.layers, m.attention.clone());
            }
            for (l, p) in layers.iter_mut().enumerate() {
                pattern_ui(
                    ui,
                    &format!("layer {}", l + 1),
                    p,
                    &format!("model.layer_attention[{l}]"),
                    err,
                );
            }
        }
    }
}

/// One pattern: kind and its own parameters.
fn pattern_ui(
    ui: &mut Ui,
    label: &str,
    p: &mut AttentionPattern,
    field: &str,
    err: &dyn Fn(&str) -> Option<String>,
) {
    ui.push_id(field, |ui| {
        ComboBox::from_label(format!("{label} pattern"))
            .selected_text(p.kind())
            .show_ui(ui, |ui| {
                for kind in PATTERN_KINDS {
                    if ui.selectable_label(p.kind() == kind, kind).clicked()
                        && p.kind() != kind
                        && let Some(new) = AttentionPattern::from_kind(kind)
                    {
                        *p = new;
                    }
                }
            });
        ui.indent(field, |ui| {
            let e = |param: &str| err(&format!("{field}.{param}"));
            match p {
                AttentionPattern::Dense => {}
                AttentionPattern::Local { window } => {
                    usize_ui(ui, "window", window, 8192, e("window").as_deref());
                }
                AttentionPattern::Dilated { window, dilation } => {
                    usize_ui(ui, "window", window, 8192, e("window").as_deref());
                    usize_ui(ui, "dilation", dilation, 8192, e("dilation").as_deref());
                }
                AttentionPattern::Strided { stride } => {
                    usize_ui(ui, "stride", stride, 8192, e("stride").as_deref());
                }
                AttentionPattern::Fixed { block, summary } => {
                    usize_ui(ui, "block", block, 8192, e("block").as_deref());
                    usize_ui(ui, "summary", summary, 8192, e("summary").as_deref());
                }
                AttentionPattern::Block { size } => {
                    usize_ui(ui, "size", size, 8192, e("size").as_deref());
                }
                AttentionPattern::Longformer { window, global } => {
                    usize_ui(ui, "window", window, 8192, e("window").as_deref());
                    usize_ui(ui, "global", global, 8192, e("global").as_deref());
                }
                AttentionPattern::BigBird {
                    block,
                    window_blocks,
                    global_blocks,
                    random_blocks,
                } => {
                    usize_ui(ui, "block", block, 8192, e("block").as_deref());
                    usize_ui(
                        ui,
                        "window_blocks",
                        window_blocks,
                        255,
                        e("window_blocks").as_deref(),
                    );
                    usize_ui(
                        ui,
                        "global_blocks",
                        global_blocks,
                        255,
                        e("global_blocks").as_deref(),
                    );
                    usize_ui(
                        ui,
                        "random_blocks",
                        random_blocks,
                        255,
                        e("random_blocks").as_deref(),
                    );
                }
            }
        });
    });
}

fn train_ui(ui: &mut Ui, s: &mut Settings, err: &dyn Fn(&str) -> Option<String>) {
    let t = &mut s.train;
    usize_ui(
        ui,
        "steps",
        &mut t.steps,
        10_000_000,
        err("train.steps").as_deref(),
    );
    usize_ui(
        ui,
        "batch",
        &mut t.batch,
        4096,
        err("train.batch").as_deref(),
    );
    f64_ui(ui, "lr", &mut t.lr, err("train.lr").as_deref());
    let mut seed = t.seed as usize;
    if usize_ui(ui, "seed", &mut seed, usize::MAX, None).changed() {
        t.seed = seed as u64;
    }
    usize_ui(
        ui,
        "eval_every",
        &mut t.eval_every,
        10_000_000,
        err("train.eval_every").as_deref(),
    );
    usize_ui(
        ui,
        "eval_batches",
        &mut t.eval_batches,
        1000,
        err("train.eval_batches").as_deref(),
    );
    usize_ui(
        ui,
        "snapshot_every",
        &mut t.snapshot_every,
        10_000_000,
        err("train.snapshot_every").as_deref(),
    );
    ComboBox::from_label("backend")
        .selected_text(t.backend.name())
        .show_ui(ui, |ui| {
            for b in BackendChoice::ALL {
                ui.selectable_value(&mut t.backend, b, b.name());
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_changes_reach_runs_that_do_not_override_the_field() {
        let e = Experiment::from_toml(
            "name = \"x\"\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\ntask.seq_len = 64\n",
        )
        .expect("valid");
        let mut runs = e.runs.clone();
        let mut new = e.base.clone();
        new.task.seq_len = 256;
        new.train.steps = 9;
        propagate(&e.base, &new, &mut runs);
        assert_eq!(runs[0].settings.task.seq_len, 256);
        assert_eq!(runs[1].settings.task.seq_len, 64, "b overrides seq_len");
        assert!(runs.iter().all(|r| r.settings.train.steps == 9));
    }

    #[test]
    fn duplicate_gets_a_unique_name_and_becomes_the_target() {
        let mut editor = Editor::new(
            Experiment::from_toml("name = \"x\"\n[[runs]]\nname = \"a\"\n").expect("valid"),
        );
        editor.duplicate_run();
        editor.duplicate_run();
        let names: Vec<_> = editor
            .experiment
            .runs
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["a", "a copy", "a copy copy"]);
        assert_eq!(editor.target, Target::Run(2));
        assert!(editor.is_valid());
    }
}
