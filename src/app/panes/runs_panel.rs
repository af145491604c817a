//! The runs panel: live runs with status, progress, steps/s, ETA and Stop; past runs
//! from the records folder, filtered by a few words, to reopen one at a time or all
//! at once without retraining.

use egui::{ProgressBar, RichText, Ui};

use crate::app::commands::UiCommand;
use crate::app::view_model::run_views::{RunView, Source};
use crate::app::widgets::{ERROR_COLOR, duration_text, run_color};
use crate::records::{RunRecord, RunStatus};
use crate::trainer::RunId;

/// What the user asked for in the panel.
#[derive(Clone, Debug, PartialEq)]
pub enum RunsAction {
    /// Show this run in the attention view.
    Select(RunId),
    /// Stop one run.
    Stop(RunId),
    /// Open a past run.
    OpenRecord(std::path::PathBuf),
    /// Continue a stopped or interrupted run from its checkpoint.
    Resume(std::path::PathBuf),
    /// Re-read the records folder.
    Refresh,
    /// Choose another records folder.
    ChooseFolder,
    /// Forget finished runs (their records stay on disk).
    ClearFinished,
}

/// Live and opened runs.
pub fn runs_ui(
    ui: &mut Ui,
    runs: &[RunView],
    selected: Option<RunId>,
    actions: &mut Vec<RunsAction>,
) {
    if runs.is_empty() {
        ui.label(format!(
            "No runs yet. Press Run ({}) to train the experiment.",
            UiCommand::RunAll
                .shortcut_text(ui.ctx())
                .unwrap_or_default()
        ));
        return;
    }
    ui.horizontal(|ui| {
        ui.label(RichText::new("Runs").strong());
        if ui.button("Clear finished").clicked() {
            actions.push(RunsAction::ClearFinished);
        }
    });
    egui::Grid::new("runs-grid")
        .striped(true)
        .spacing([10.0, 4.0])
        .show(ui, |ui| {
            for (i, run) in runs.iter().enumerate() {
                run_row_ui(ui, i, run, selected == Some(run.id), actions);
            }
        });
}

/// One run's row of the grid (its colour index `i`): name, status, progress, speed,
/// ETA, accuracy and Stop (or where it came from), and a failed run's message below.
fn run_row_ui(
    ui: &mut Ui,
    i: usize,
    run: &RunView,
    is_selected: bool,
    actions: &mut Vec<RunsAction>,
) {
    let name = RichText::new(run.label()).color(run_color(i));
    if ui
        .selectable_label(is_selected, name)
        .on_hover_text("Show this run's attention")
        .clicked()
    {
        actions.push(RunsAction::Select(run.id));
    }
    ui.label(status_text(run));
    ui.add(
        ProgressBar::new(run.progress())
            .desired_width(140.0)
            .text(format!("{}/{}", run.steps_done(), run.planned_steps())),
    );
    ui.label(
        run.steps_per_sec()
            .map_or("-".into(), |s| format!("{s:.1} steps/s")),
    );
    ui.label(
        run.eta_secs()
            .map_or(String::new(), |s| format!("ETA {}", duration_text(s))),
    );
    ui.label(
        run.final_accuracy()
            .map_or("-".into(), |a| format!("acc {a:.3}")),
    );
    if !run.status.is_terminal() {
        if ui
            .button("Stop")
            .on_hover_text("Stop this run (Esc stops all)")
            .clicked()
        {
            actions.push(RunsAction::Stop(run.id));
        }
    } else {
        ui.label(RichText::new(origin_text(run)).small());
    }
    ui.end_row();
    if let Some(message) = run
        .message()
        .filter(|_| matches!(run.status, RunStatus::Failed | RunStatus::Diverged))
    {
        ui.label("");
        ui.label(RichText::new(message).color(ERROR_COLOR).small());
        ui.end_row();
    }
}

/// A run's status as the grid words it (paused, or the remote server it runs on),
/// in the error colour when it failed or diverged.
fn status_text(run: &RunView) -> RichText {
    // Where it trains: a remote server's address is worth seeing.
    let remote = run
        .backend
        .as_ref()
        .filter(|b| b.backend == "remote")
        .map(|b| b.adapter.as_str());
    let status = match (run.status, run.paused, remote) {
        (RunStatus::Running, true, _) => "paused".to_string(),
        (RunStatus::Running, false, Some(server)) => format!("running on {server}"),
        (s, _, _) => s.name().to_string(),
    };
    match run.status {
        RunStatus::Failed | RunStatus::Diverged => RichText::new(status).color(ERROR_COLOR),
        _ => RichText::new(status),
    }
}

/// Where a finished run came from: the backend (or remote server) it trained on, or
/// its record.
fn origin_text(run: &RunView) -> String {
    match &run.source {
        Source::Live => run.backend.as_ref().map_or(String::new(), |b| {
            if b.backend == "remote" {
                format!("remote {}", b.adapter)
            } else {
                b.backend.clone()
            }
        }),
        Source::Record(_) => "record".into(),
    }
}

/// The records folder and the past runs in it.
pub fn records_ui(
    ui: &mut Ui,
    root: &std::path::Path,
    records: &[RunRecord],
    open: &[bool],
    actions: &mut Vec<RunsAction>,
) {
    records_header_ui(ui, root, actions);
    if records.is_empty() {
        ui.label(RichText::new("No run records here yet.").small());
        return;
    }
    let filter_id = ui.make_persistent_id("records-filter");
    let mut filter: String = ui.data_mut(|d| d.get_temp(filter_id)).unwrap_or_default();
    let words = filter_words(&filter);
    let shown: Vec<usize> = (0..records.len())
        .filter(|&i| record_matches(&records[i], &words))
        .collect();
    ui.horizontal(|ui| filter_row_ui(ui, &mut filter, records, &shown, open, actions));
    ui.data_mut(|d| d.insert_temp(filter_id, filter));
    egui::ScrollArea::vertical()
        .id_salt("records")
        .max_height(160.0)
        .show(ui, |ui| {
            egui::Grid::new("records-grid")
                .striped(true)
                .spacing([10.0, 2.0])
                .show(ui, |ui| {
                    for &i in &shown {
                        let is_open = open.get(i).copied().unwrap_or(false);
                        record_row_ui(ui, &records[i], is_open, actions);
                    }
                });
        });
}

/// "Past runs", the folder, and the buttons to change or re-read it.
fn records_header_ui(ui: &mut Ui, root: &std::path::Path, actions: &mut Vec<RunsAction>) {
    ui.horizontal(|ui| {
        ui.label(RichText::new("Past runs").strong());
        ui.label(
            RichText::new(root.display().to_string())
                .monospace()
                .small(),
        );
        if ui.button("Change folder...").clicked() {
            actions.push(RunsAction::ChooseFolder);
        }
        if ui.button("Refresh").clicked() {
            actions.push(RunsAction::Refresh);
        }
    });
}

/// The filter's text field, "Open N" for the `shown` (filtered) records not open
/// yet, and how many of all are listed.
fn filter_row_ui(
    ui: &mut Ui,
    filter: &mut String,
    records: &[RunRecord],
    shown: &[usize],
    open: &[bool],
    actions: &mut Vec<RunsAction>,
) {
    ui.add(
        egui::TextEdit::singleline(filter)
            .desired_width(180.0)
            .hint_text("filter: run, experiment or folder"),
    );
    let closed: Vec<&RunRecord> = shown
        .iter()
        .filter(|&&i| !open.get(i).copied().unwrap_or(false))
        .map(|&i| &records[i])
        .collect();
    let opening = closed.len().min(MAX_OPEN_AT_ONCE);
    if ui
        .add_enabled(opening > 0, egui::Button::new(format!("Open {opening}")))
        .on_hover_text(format!(
            "Open the past runs listed (filtered) that are not open yet, at most {MAX_OPEN_AT_ONCE} per click: to compare a whole experiment side by side"
        ))
        .clicked()
    {
        for record in closed.into_iter().take(MAX_OPEN_AT_ONCE) {
            actions.push(RunsAction::OpenRecord(record.dir.clone()));
        }
    }
    if shown.len() < records.len() {
        ui.label(RichText::new(format!("{} of {}", shown.len(), records.len())).small());
    }
}

/// One past run's row: folder, name (and what it was forked from), status, steps,
/// accuracy, Open and Resume.
fn record_row_ui(ui: &mut Ui, record: &RunRecord, is_open: bool, actions: &mut Vec<RunsAction>) {
    let s = &record.summary;
    let id = record
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    ui.label(RichText::new(id).monospace().small());
    match &s.forked_from {
        Some(origin) => ui
            .label(format!("{} (fork @ {})", s.name, origin.step))
            .on_hover_text(crate::app::view_model::fork::fork_text(origin)),
        None => ui.label(&s.name),
    };
    ui.label(s.status.name());
    ui.label(format!("{} steps", s.steps));
    ui.label(
        s.final_accuracy
            .map_or("-".into(), |a| format!("acc {a:.3}")),
    );
    if ui
        .add_enabled(!is_open, egui::Button::new("Open"))
        .on_hover_text("View and compare this run without retraining")
        .clicked()
    {
        actions.push(RunsAction::OpenRecord(record.dir.clone()));
    }
    if record.resumable() {
        let step = record.checkpoint_step.unwrap_or(0);
        if ui
            .add_enabled(!is_open, egui::Button::new("Resume"))
            .on_hover_text(format!(
                "Continue training from the checkpoint at step {step} of {}",
                s.planned_steps
            ))
            .clicked()
        {
            actions.push(RunsAction::Resume(record.dir.clone()));
        }
    } else {
        ui.label("");
    }
    ui.end_row();
}

/// Past runs one "Open N" click opens at most (each is read on a helper thread).
const MAX_OPEN_AT_ONCE: usize = 32;

/// The words of a filter, lower case.
fn filter_words(filter: &str) -> Vec<String> {
    filter.split_whitespace().map(str::to_lowercase).collect()
}

/// Whether `record` is listed under a filter of `words` ([`filter_words`]): every
/// word is part of the run's name, its experiment's or its folder's (case apart).
fn record_matches(record: &RunRecord, words: &[String]) -> bool {
    if words.is_empty() {
        return true;
    }
    let s = &record.summary;
    let folder = record
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let text = format!("{} {} {folder}", s.name, s.experiment).to_lowercase();
    words.iter().all(|word| text.contains(word.as_str()))
}

#[cfg(test)]
mod tests {
    use super::{filter_words, record_matches};
    use crate::records::{RunRecord, RunStatus, RunSummary};

    #[test]
    fn a_filter_keeps_records_with_every_word() {
        let record = RunRecord {
            dir: "runs/20261203-224021-length-generalisation-rope-dense".into(),
            summary: RunSummary::unstarted(
                "length generalisation",
                "rope dense",
                600,
                RunStatus::Finished,
            ),
            checkpoint_step: None,
        };
        assert!(record_matches(&record, &filter_words("")));
        assert!(record_matches(&record, &filter_words("ROPE")));
        assert!(record_matches(&record, &filter_words("length rope")));
        assert!(record_matches(&record, &filter_words("20261203-2240")));
        assert!(!record_matches(&record, &filter_words("rope local")));
        assert!(!record_matches(&record, &filter_words("alibi")));
    }
}
