//! Past runs: opening a record as a run view and resuming a stopped or interrupted
//! run from its checkpoint, both read on helper threads (`background`).

use std::path::Path;

use super::background::Loaded;
use super::pane::Pane;
use super::view_model::run_views::Source;
use super::workbench::App;
use super::workbench::PendingFigure;
use crate::records::RunStatus;
use crate::trainer::StartRun;

impl App {
    /// Opens a past run from its record folder (read on a helper thread; the run
    /// appears when it has been read, or a notice says what is wrong with it).
    pub fn open_record(&mut self, dir: &Path) {
        self.read_record(dir, false);
    }

    /// Continues a stopped or interrupted run from its record's checkpoint: its
    /// curves come back and go on from the checkpoint's step.
    pub fn resume_record(&mut self, dir: &Path) {
        self.read_record(dir, true);
    }

    /// Exports every recorded run of the window (figures, numbers and a bundle) to
    /// `to`, on a helper thread; a notice says how it went.
    pub fn export_to(&mut self, to: &Path) {
        let dirs: Vec<std::path::PathBuf> = self
            .runs
            .views
            .iter()
            .filter(|v| v.status.is_terminal())
            .filter_map(|v| v.record_dir.clone())
            .collect();
        if dirs.is_empty() {
            self.notify_error("Nothing to export yet: no finished run with a record is open.");
            return;
        }
        let text = match self.editor.experiment.to_toml() {
            Ok(text) => text,
            Err(e) => {
                self.notify_error(format!("Cannot export the experiment: {e}"));
                return;
            }
        };
        let ctx = self.ctx.clone();
        self.background
            .export(dirs, text, to.to_path_buf(), move || ctx.request_repaint());
        self.notify(format!("Exporting to {}...", to.display()));
    }

    /// Asks for the pane in front, as drawn (legend, run names, step), to be saved
    /// at the remembered scale to `<records folder>/figures/<pane>-<time>.png`; the
    /// frame draws it off screen once the panes are laid out (`save_pending_figure`).
    pub fn save_pane_png(&mut self) {
        let Some(rect) = self.central_rect else {
            return;
        };
        let pane = self
            .tree
            .active_tiles()
            .iter()
            .find_map(|id| self.tree.tiles.get_pane(id).copied())
            .unwrap_or(Pane::Curves);
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        let path = self.state.runs_root.join("figures").join(format!(
            "{}-{stamp}.png",
            crate::records::slug(pane.title())
        ));
        self.pending_figure = Some(PendingFigure { pane, rect, path });
    }

    /// Draws the requested pane off screen at the chosen scale and hands its pixels to
    /// a helper thread to encode and write. Without the wgpu renderer, the screen's
    /// pixels are saved instead (scale 1).
    pub(super) fn save_pending_figure(
        &mut self,
        render_state: Option<&eframe::egui_wgpu::RenderState>,
    ) {
        let Some(request) = self.pending_figure.take() else {
            return;
        };
        let Some(render_state) = render_state else {
            let ctx = self.ctx.clone();
            self.background.save_png(&ctx, request.rect, request.path);
            return;
        };
        let scale = self.state.png_scale.clamp(1.0, 4.0);
        let style = self.ctx.global_style();
        // The figure's own context has its own textures.
        let textures = std::mem::take(&mut self.textures);
        let caption = format!(
            "attnlab  ·  {}  ·  {}",
            self.editor.experiment.name,
            request.pane.title()
        );
        let drawn = super::figure::render(render_state, style, request.rect.size(), scale, |ui| {
            ui.label(egui::RichText::new(&caption).small().weak());
            super::tiles::pane_ui(ui, self, request.pane);
        });
        self.textures = textures;
        match drawn {
            Ok(figure) => {
                let ctx = self.ctx.clone();
                self.background
                    .write_png(figure, request.path, move || ctx.request_repaint());
            }
            Err(e) => self.notify_error(format!("Cannot save the pane as PNG: {e}")),
        }
    }

    fn read_record(&mut self, dir: &Path, resume: bool) {
        if self.runs.has_record(dir) || self.background.is_opening(dir) {
            return;
        }
        let id = self.runs.next_id();
        let ctx = self.ctx.clone();
        self.background
            .open(id, dir.to_path_buf(), resume, move || ctx.request_repaint());
    }

    /// Applies what the helper threads read.
    pub(super) fn apply_loaded(&mut self) {
        for loaded in self.background.poll() {
            match loaded {
                Loaded::Records { root, records } => {
                    if root == self.state.runs_root {
                        self.records = records;
                    }
                }
                Loaded::Exported { to, result } => match result {
                    Ok(1) => self.notify(format!("Saved {}", to.display())),
                    Ok(files) => self.notify(format!(
                        "Exported {files} files to {} (figures/, experiment.toml, records/)",
                        to.display()
                    )),
                    Err(e) => self.notify_error(format!("Export to {} failed: {e}", to.display())),
                },
                Loaded::Record { dir, view, resume } => match (view, resume) {
                    (Ok(view), None) => {
                        self.selected = Some(view.id);
                        self.runs.push(*view);
                    }
                    (Ok(mut view), Some(Ok(plan))) => {
                        if !self.ensure_trainer() {
                            continue;
                        }
                        let id = view.id;
                        view.source = Source::Live;
                        view.status = RunStatus::Queued;
                        self.selected = Some(id);
                        self.runs.push(*view);
                        self.to_start.push_back(StartRun::resume(id, *plan, dir));
                        self.feed_trainer();
                        self.show_pane(Pane::Curves);
                    }
                    (Ok(_), Some(Err(e))) => self.notify_error(format!(
                        "Cannot resume {}: its config.toml is not valid: {e}",
                        dir.display()
                    )),
                    (Err(e), _) => self.notify_error(format!(
                        "Could not open the run record {}: {e}",
                        dir.display()
                    )),
                },
            }
        }
    }
}
