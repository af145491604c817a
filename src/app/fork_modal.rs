//! The fork dialog: the parent, the saved step the child starts from, what it takes
//! from the editor and what is ignored, then Fork or Cancel (Esc cancels).

use egui::{RichText, Ui};

use super::view_model::fork::{Change, ForkProposal};
use super::view_model::fork_jobs::ForkDialog;
use super::widgets::ERROR_COLOR;
use super::workbench::App;

/// What the user chose in the dialog this frame.
enum Choice {
    Fork,
    Cancel,
}

/// Draws the fork dialog, if open, and carries out the choice.
pub fn fork_modal_ui(ui: &mut Ui, app: &mut App) {
    let Some(dialog) = &app.fork.dialog else {
        return;
    };
    let root = app.state.runs_root.display().to_string();
    let modal = egui::Modal::new(egui::Id::unique("fork-dialog")).show(ui.ctx(), |ui| {
        ui.set_max_width(620.0);
        ui.heading("Fork from here");
        let ready = match dialog {
            ForkDialog::Reading { dir, wanted } => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!(
                        "Reading {} (the scrubber is at step {wanted})...",
                        dir.display()
                    ));
                });
                false
            }
            ForkDialog::Ready(proposal) => {
                proposal_ui(ui, proposal, &root);
                proposal.blocker().is_none()
            }
        };
        ui.separator();
        ui.horizontal(|ui| {
            let fork = ui
                .add_enabled(ready, egui::Button::new(RichText::new("Fork").strong()))
                .on_hover_text("Make the child's record and train it from the fork step");
            if fork.clicked() {
                return Some(Choice::Fork);
            }
            if ui.button("Cancel").clicked() {
                return Some(Choice::Cancel);
            }
            None
        })
        .inner
    });
    let close = modal.should_close();
    let choice = modal.inner.or(close.then_some(Choice::Cancel));
    match choice {
        Some(Choice::Fork) => app.confirm_fork(),
        Some(Choice::Cancel) => app.cancel_fork(),
        None => {}
    }
}

/// The proposal in words.
fn proposal_ui(ui: &mut Ui, p: &ForkProposal, root: &str) {
    let source = &p.source;
    ui.label(format!(
        "Parent: run \"{}\", record {}",
        source.name, source.record
    ));
    let saved: Vec<String> = source.saved.iter().map(usize::to_string).collect();
    let saved = if saved.is_empty() {
        "none".to_string()
    } else {
        saved.join(", ")
    };
    if let Some(step) = p.step {
        let which = if step == p.wanted {
            "the scrubber's step".to_string()
        } else {
            format!(
                "the saved step nearest below the scrubber's step {}",
                p.wanted
            )
        };
        ui.label(
            RichText::new(format!("Starts from the weights of step {step} ({which}).")).strong(),
        );
        if p.fresh_optimiser() {
            ui.label(format!(
                "Step {step} is not the parent's latest checkpoint{}: the child starts with a fresh optimiser (Adam's moments are kept for the latest checkpoint only).",
                source.latest.map_or(String::new(), |l| format!(" ({l})"))
            ));
        } else {
            ui.label(format!(
                "Step {step} is the parent's latest checkpoint: the child goes on with its optimiser state."
            ));
        }
    }
    ui.label(
        RichText::new(format!(
            "Steps with saved weights: {saved}. train.keep_checkpoints (\"all\" or a number) keeps more steps than the latest checkpoint."
        ))
        .small(),
    );
    ui.add_space(4.0);
    ui.label(format!(
        "Settings: the parent's, but for the fields that may change mid-run: those take the values of {}.",
        p.editor_source
    ));
    changes_ui(
        ui,
        "Changes:",
        &p.changes,
        "none: the child goes on with the parent's settings",
    );
    if !p.ignored.is_empty() {
        changes_ui(
            ui,
            "Ignored (may not change mid-run; the parent's values stay):",
            &p.ignored,
            "",
        );
    }
    if let Ok(plan) = &p.plan {
        ui.label(
            RichText::new(format!(
                "The child trains to step {} as run \"{}\", recorded under {root}; Curves draws it from the fork point and Compare lists it beside its parent.",
                plan.settings().train.steps,
                plan.name()
            ))
            .small(),
        );
    }
    if let Some(why) = p.blocker() {
        ui.label(RichText::new(why).color(ERROR_COLOR));
    }
}

/// A titled list of changes, `path: parent -> editor`, or `none` when empty.
fn changes_ui(ui: &mut Ui, title: &str, changes: &[Change], none: &str) {
    if changes.is_empty() {
        ui.label(format!("{title} {none}"));
        return;
    }
    ui.label(title);
    egui::Grid::new(("fork-changes", title))
        .striped(true)
        .spacing([12.0, 2.0])
        .show(ui, |ui| {
            for c in changes {
                ui.label(RichText::new(&c.path).monospace());
                ui.label(RichText::new(format!("{} -> {}", c.parent, c.editor)).monospace());
                ui.end_row();
            }
        });
}
