//! Every command of the window, with its label, keyboard shortcut and hover text in
//! one place: menus, shortcuts and the status line's hints are all drawn from here
//! (rerun's `UICommand`).

use egui::{Key, KeyboardShortcut, Modifiers, Ui};

use super::pane::Pane;

/// Something the user can ask the window to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UiCommand {
    /// Open an experiment file (native dialog).
    Open,
    /// Save to the known file, or ask where.
    Save,
    /// Save to a new file.
    SaveAs,
    /// Export the runs' figures, numbers and a bundle to a folder.
    Export,
    /// Save the pane in front as a PNG.
    SavePanePng,
    /// Close the window.
    Quit,
    /// Train every run of the experiment.
    RunAll,
    /// Stop every queued and running run.
    StopAll,
    /// Pause the running run after its current step.
    Pause,
    /// Continue the paused run (un-pause; Resume in the runs list continues a
    /// stopped run from its checkpoint).
    Continue,
    /// Start a new run from the shown run's weights at the Attention scrubber's step,
    /// with the editor's values for the fields that may change mid-run (a dialog
    /// says what changes first).
    Fork,
    /// Choose the folder run records go to.
    RecordsFolder,
    /// Forget finished runs (their records stay on disk).
    ClearFinished,
    /// Bring a pane to the front.
    Show(Pane),
}

impl UiCommand {
    /// The File menu.
    pub const FILE: [UiCommand; 5] = [
        UiCommand::Open,
        UiCommand::Save,
        UiCommand::SaveAs,
        UiCommand::Export,
        UiCommand::SavePanePng,
    ];
    /// The Runs menu.
    pub const RUNS: [UiCommand; 7] = [
        UiCommand::RunAll,
        UiCommand::StopAll,
        UiCommand::Pause,
        UiCommand::Continue,
        UiCommand::Fork,
        UiCommand::RecordsFolder,
        UiCommand::ClearFinished,
    ];

    /// Every command with a shortcut, more modifiers first (so Ctrl+Shift+S is seen
    /// before Ctrl+S would match it).
    pub fn with_shortcuts() -> Vec<UiCommand> {
        let mut all: Vec<UiCommand> = Self::FILE
            .into_iter()
            .chain([UiCommand::Quit])
            .chain(Self::RUNS)
            .chain(Pane::ALL.map(UiCommand::Show))
            .filter(|c| c.shortcut().is_some())
            .collect();
        all.sort_by_key(|c| {
            std::cmp::Reverse(c.shortcut().map_or(0, |s| {
                [s.modifiers.command, s.modifiers.shift, s.modifiers.alt]
                    .iter()
                    .filter(|&&m| m)
                    .count()
            }))
        });
        all
    }

    /// The menu label.
    pub fn label(self) -> &'static str {
        match self {
            UiCommand::Open => "Open...",
            UiCommand::Save => "Save",
            UiCommand::SaveAs => "Save as...",
            UiCommand::Export => "Export figures and bundle...",
            UiCommand::SavePanePng => "Save pane as PNG",
            UiCommand::Quit => "Quit",
            UiCommand::RunAll => "Run all",
            UiCommand::StopAll => "Stop all",
            UiCommand::Pause => "Pause",
            UiCommand::Continue => "Continue",
            UiCommand::Fork => "Fork from here...",
            UiCommand::RecordsFolder => "Records folder...",
            UiCommand::ClearFinished => "Clear finished runs",
            UiCommand::Show(pane) => pane.title(),
        }
    }

    /// What it does, for hover text.
    pub fn hover_text(self) -> &'static str {
        match self {
            UiCommand::Open => "Open an experiment file",
            UiCommand::Save => "Save the experiment to its file (or choose one)",
            UiCommand::SaveAs => "Save the experiment to a new file",
            UiCommand::Export => {
                "Write every recorded run's metrics (CSV), curves (SVG), attention (PNG, .npy) and a bundle (the experiment and its records) that opens without retraining"
            }
            UiCommand::SavePanePng => {
                "Save the pane in front (curves, attention grid, compare, sweep, cost, length) as a PNG under the records folder's figures/"
            }
            UiCommand::Quit => "Close the window (running runs are stopped and recorded)",
            UiCommand::RunAll => "Train every run of the experiment",
            UiCommand::StopAll => "Stop every queued and running run",
            UiCommand::Pause => "Pause the running run after its current step",
            UiCommand::Continue => "Continue the paused run",
            UiCommand::Fork => {
                "Start a new run from the shown run's weights at the Attention scrubber's step (the saved step at or before it), with the editor's values for the fields that may change mid-run; a dialog lists the changes first"
            }
            UiCommand::RecordsFolder => "Choose the folder run records are written to",
            UiCommand::ClearFinished => {
                "Remove finished runs from the window (records stay on disk)"
            }
            UiCommand::Show(pane) => pane.description(),
        }
    }

    /// The keyboard shortcut, if any.
    pub fn shortcut(self) -> Option<KeyboardShortcut> {
        let cmd = |key| Some(KeyboardShortcut::new(Modifiers::COMMAND, key));
        match self {
            UiCommand::Open => cmd(Key::O),
            UiCommand::Save => cmd(Key::S),
            UiCommand::SaveAs => Some(KeyboardShortcut::new(
                Modifiers::COMMAND.plus(Modifiers::SHIFT),
                Key::S,
            )),
            UiCommand::Quit => cmd(Key::Q),
            UiCommand::Export => cmd(Key::E),
            UiCommand::SavePanePng => cmd(Key::P),
            UiCommand::RunAll => cmd(Key::Enter),
            UiCommand::StopAll => Some(KeyboardShortcut::new(Modifiers::NONE, Key::Escape)),
            UiCommand::Pause | UiCommand::Continue | UiCommand::Fork => None,
            UiCommand::RecordsFolder | UiCommand::ClearFinished => None,
            // Ctrl+1 for the first pane of `Pane::ALL`, Ctrl+2 for the second, ...
            UiCommand::Show(pane) => {
                const DIGITS: [Key; 9] = [
                    Key::Num1,
                    Key::Num2,
                    Key::Num3,
                    Key::Num4,
                    Key::Num5,
                    Key::Num6,
                    Key::Num7,
                    Key::Num8,
                    Key::Num9,
                ];
                let position = Pane::ALL.iter().position(|p| *p == pane)?;
                cmd(*DIGITS.get(position)?)
            }
        }
    }

    /// The shortcut as the platform writes it (`Ctrl+S`), if any.
    pub fn shortcut_text(self, ctx: &egui::Context) -> Option<String> {
        self.shortcut().map(|s| ctx.format_shortcut(&s))
    }

    /// Hover text with the shortcut, e.g. `Train every run of the experiment (Ctrl+Enter)`.
    pub fn tooltip(self, ctx: &egui::Context) -> String {
        match self.shortcut_text(ctx) {
            Some(keys) => format!("{} ({keys})", self.hover_text()),
            None => self.hover_text().to_string(),
        }
    }

    /// A menu entry: label, shortcut on the right, hover text. Returns whether it was
    /// clicked.
    pub fn menu_button_ui(self, ui: &mut Ui, enabled: bool) -> bool {
        let mut button = egui::Button::new(self.label());
        if let Some(keys) = self.shortcut_text(ui.ctx()) {
            button = button.shortcut_text(keys);
        }
        ui.add_enabled(enabled, button)
            .on_hover_text(self.hover_text())
            .clicked()
    }

    /// The commands whose shortcuts were pressed this frame (consumed, so text fields
    /// do not see them too). A bare key (Escape: stop all) is left alone while a menu,
    /// popup or modal dialog is open or a field has focus: there it closes the menu
    /// or dialog or leaves the field, and must not stop every run as well.
    pub fn consume_pressed(ui: &Ui) -> Vec<UiCommand> {
        let ctx = ui.ctx();
        let bare_keys_taken = egui::Popup::is_any_open(ctx)
            || ctx.memory(|m| m.focused().is_some() || m.top_modal_layer().is_some());
        let mut pressed = Vec::new();
        ui.input_mut(|i| {
            for command in Self::with_shortcuts() {
                if let Some(shortcut) = command.shortcut()
                    && !(bare_keys_taken && shortcut.modifiers.is_none())
                    && i.consume_shortcut(&shortcut)
                {
                    pressed.push(command);
                }
            }
        });
        pressed
    }

    /// One line of shortcut hints for the status line.
    pub fn hints(ctx: &egui::Context) -> String {
        [
            UiCommand::RunAll,
            UiCommand::StopAll,
            UiCommand::Save,
            UiCommand::Open,
        ]
        .iter()
        .filter_map(|c| {
            c.shortcut_text(ctx)
                .map(|k| format!("{k} {}", c.label().trim_end_matches("...").to_lowercase()))
        })
        .chain(
            // The first and the last pane with a shortcut (Ctrl+1..9).
            [Pane::ALL[0], Pane::ALL[Pane::ALL.len().min(9) - 1]]
                .map(|p| UiCommand::Show(p).shortcut_text(ctx))
                .into_iter()
                .collect::<Option<Vec<String>>>()
                .map(|keys| format!("{} panes", keys.join("..")))
                .into_iter()
                .chain(["drop a .toml to open".to_string()]),
        )
        .collect::<Vec<_>>()
        .join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_unique_and_longer_ones_come_first() {
        let all = UiCommand::with_shortcuts();
        let shortcuts: Vec<KeyboardShortcut> = all.iter().filter_map(|c| c.shortcut()).collect();
        for (i, a) in shortcuts.iter().enumerate() {
            assert!(!shortcuts[i + 1..].contains(a), "{a:?} is used twice");
        }
        let save_as = all.iter().position(|c| *c == UiCommand::SaveAs);
        let save = all.iter().position(|c| *c == UiCommand::Save);
        assert!(save_as < save, "Ctrl+Shift+S must be tried before Ctrl+S");
    }
}
