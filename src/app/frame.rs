//! One frame, in order: frame statistics, trainer events (within a time budget),
//! background answers (cost and intervention measurements, file dialogs), shortcuts
//! and dropped files, the window title, then the panels, the tabs and any modal.

use std::path::PathBuf;
use std::time::Duration;

use egui::Ui;

use super::commands::UiCommand;
use super::menu::menu_ui;
use super::modals::modals_ui;
use super::shell::{bottom_ui, side_ui, status_ui};
use super::tiles::tiles_ui;
use super::workbench::App;

/// Longest time spent applying trainer events in one frame; the rest wait for the next.
const EVENT_BUDGET: Duration = Duration::from_millis(8);

impl eframe::App for App {
    fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
        // eframe's CPU time of the previous frame (app + tessellation), for W4.
        if let Some(cpu) = frame.info().cpu_usage {
            let now = ui.input(|i| i.time);
            self.frame_stats.on_frame(now, cpu);
        }
        self.feed_trainer();
        self.drain_events(EVENT_BUDGET);
        self.apply_loaded();
        self.apply_forks();
        self.cost.poll();
        self.interventions.poll();
        if let Some(choice) = self.dialogs.poll() {
            self.on_choice(choice);
        }
        for command in UiCommand::consume_pressed(ui) {
            self.run_command(command);
        }
        self.open_dropped(ui);
        self.update_title(ui);

        egui::Panel::top("menu").show(ui, |ui| menu_ui(ui, self));
        egui::Panel::bottom("status").show(ui, |ui| status_ui(ui, self));
        egui::Panel::bottom("runs")
            .resizable(true)
            .default_size(210.0)
            .min_size(150.0)
            .show(ui, |ui| bottom_ui(ui, self));
        egui::Panel::left("editor")
            .resizable(true)
            .default_size(330.0)
            .show(ui, |ui| side_ui(ui, self));
        egui::CentralPanel::default().show(ui, |ui| tiles_ui(ui, self));
        modals_ui(ui, self);
        self.save_pending_figure(frame.wgpu_render_state());
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.persisted());
    }

    fn on_exit(&mut self) {
        if std::env::var_os("ATTNLAB_FRAME_STATS").is_some()
            && let Some((median, p95)) = self.frame_stats.percentiles_ms()
        {
            let (kept, frames, since) = self.frame_stats.counts();
            eprintln!(
                "attnlab: frame time over the last {kept} frames: median {median:.2} ms, \
                 p95 {p95:.2} ms; {frames} frames in {:.0} s",
                since.as_secs_f64()
            );
        }
        self.stop_all();
    }
}

impl App {
    /// Opens the first `.toml` dropped on the window.
    fn open_dropped(&mut self, ui: &Ui) {
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if let Some(path) = dropped
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "toml"))
        {
            self.open_path(&path);
        }
    }

    fn update_title(&mut self, ui: &Ui) {
        let title = format!(
            "attnlab - {}{}",
            self.editor.experiment.name,
            if self.state.dirty { " *" } else { "" }
        );
        if title != self.title {
            ui.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }
}
