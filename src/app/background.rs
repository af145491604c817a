//! Reading past runs off the UI thread: listing the records folder and opening a
//! record run on helper threads ("attnlab-records"), answered over a channel that the
//! frame polls. A slow disk, a huge `attention.bin` or a damaged record never freezes
//! the window.

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::view_model::run_views::RunView;
use crate::config::RunPlan;
use crate::records::{RunRecord, list_records, write_atomically};
use crate::trainer::RunId;

/// What a helper thread read.
pub enum Loaded {
    /// The records under `root`, newest first.
    Records {
        /// The folder listed.
        root: PathBuf,
        /// Its readable records.
        records: Vec<RunRecord>,
    },
    /// One record opened as a run view, or why it could not be.
    Record {
        /// The record's folder.
        dir: PathBuf,
        /// The view, or the problem with the record.
        view: Result<Box<RunView>, String>,
        /// When opened to be resumed: its validated `config.toml`, or the problem.
        resume: Option<Result<Box<RunPlan>, String>>,
    },
    /// An export finished: the files written, or why not.
    Exported {
        /// The folder.
        to: PathBuf,
        /// Files written, or the problem.
        result: Result<usize, String>,
    },
}

/// Reads on helper threads; at most one answer per request.
pub struct Background {
    tx: Sender<Loaded>,
    rx: Receiver<Loaded>,
    in_flight: usize,
    /// Record folders being opened (so a second click does not open one twice).
    opening: Vec<PathBuf>,
}

impl Default for Background {
    fn default() -> Self {
        // Each helper sends one answer and the frame drains them all: a helper
        // finding the channel full just waits for the next frame.
        let (tx, rx) = bounded(64);
        Self {
            tx,
            rx,
            in_flight: 0,
            opening: Vec::new(),
        }
    }
}

impl Background {
    /// Whether anything is being read.
    pub fn is_busy(&self) -> bool {
        self.in_flight > 0
    }

    /// Whether `dir` is being opened.
    pub fn is_opening(&self, dir: &std::path::Path) -> bool {
        self.opening.iter().any(|d| d == dir)
    }

    /// Lists the records under `root`.
    pub fn list(&mut self, root: PathBuf, wake: impl Fn() + Send + 'static) {
        let tx = self.tx.clone();
        self.spawn(wake, move || {
            let records = list_records(&root);
            // Ignored: if the window is gone nobody waits for the list.
            let _ = tx.send(Loaded::Records { root, records });
        });
    }

    /// Opens the record in `dir` as run `id` (and, to `resume` it, reads its plan).
    pub fn open(
        &mut self,
        id: RunId,
        dir: PathBuf,
        resume: bool,
        wake: impl Fn() + Send + 'static,
    ) {
        self.opening.push(dir.clone());
        let tx = self.tx.clone();
        self.spawn(wake, move || {
            let view = RunRecord::open(&dir)
                .and_then(|record| RunView::from_record(id, &record))
                .map(Box::new)
                .map_err(|e| e.to_string());
            // The run its summary names (a config.toml may hold several).
            let resume = resume.then(|| {
                RunRecord::open(&dir)
                    .map_err(|e| e.to_string())
                    .and_then(|record| record.resume_plan().map_err(|e| e.to_string()))
                    .map(Box::new)
            });
            // Ignored: if the window is gone nobody waits for the record.
            let _ = tx.send(Loaded::Record { dir, view, resume });
        });
    }

    /// Exports the records in `dirs` to `to` (figures, numbers, and a bundle:
    /// `experiment.toml` plus a copy of every record under `records/`).
    pub fn export(
        &mut self,
        dirs: Vec<PathBuf>,
        experiment_toml: String,
        to: PathBuf,
        wake: impl Fn() + Send + 'static,
    ) {
        let tx = self.tx.clone();
        self.spawn(wake, move || {
            let result = export_bundle(&dirs, &experiment_toml, &to);
            // Ignored: if the window is gone nobody waits for the export.
            let _ = tx.send(Loaded::Exported { to, result });
        });
    }

    /// Saves the screen area `rect` (in points) of the next rendered frame as a PNG at
    /// `path`: what a pane shows, with its legend, run names and step.
    pub fn save_png(&mut self, ctx: &egui::Context, rect: egui::Rect, path: PathBuf) {
        let tx = self.tx.clone();
        let pixels_per_point = ctx.pixels_per_point();
        let repaint = ctx.clone();
        ctx.request_screenshot(move |image| {
            let region = image.region(&rect, Some(pixels_per_point));
            let result = write_png_file(
                region.size,
                region.pixels.iter().map(|c| c.to_array()),
                &path,
            );
            // Ignored: if the window is gone nobody waits for the file.
            let _ = tx.send(Loaded::Exported { to: path, result });
            repaint.request_repaint();
        });
        self.in_flight += 1;
    }

    /// Encodes a figure drawn off screen as PNG and writes it to `path`.
    pub fn write_png(
        &mut self,
        figure: super::figure::Figure,
        path: PathBuf,
        wake: impl Fn() + Send + 'static,
    ) {
        let tx = self.tx.clone();
        self.spawn(wake, move || {
            let result = write_png_file(
                figure.size,
                figure
                    .rgba
                    .chunks_exact(4)
                    .map(|p| [p[0], p[1], p[2], p[3]]),
                &path,
            );
            // Ignored: if the window is gone nobody waits for the file.
            let _ = tx.send(Loaded::Exported { to: path, result });
        });
    }

    fn spawn(&mut self, wake: impl Fn() + Send + 'static, work: impl FnOnce() + Send + 'static) {
        let spawned = std::thread::Builder::new()
            .name("attnlab-records".into())
            .spawn(move || {
                work();
                wake();
            });
        // A thread that cannot start leaves nothing in flight; the caller's list
        // simply stays as it was.
        if spawned.is_ok() {
            self.in_flight += 1;
        }
    }

    /// Everything read since the last call.
    pub fn poll(&mut self) -> Vec<Loaded> {
        let loaded: Vec<Loaded> = self.rx.try_iter().collect();
        self.in_flight = self.in_flight.saturating_sub(loaded.len());
        for l in &loaded {
            if let Loaded::Record { dir, .. } = l {
                self.opening.retain(|d| d != dir);
            }
        }
        loaded
    }
}

/// Encodes RGBA pixels as a PNG at `path` (its folder made if needed); `Ok(1)`: one
/// file written.
fn write_png_file(
    size: [usize; 2],
    pixels: impl Iterator<Item = [u8; 4]>,
    path: &std::path::Path,
) -> Result<usize, String> {
    let bytes = crate::export::color_image_png(size, pixels).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    write_atomically(path, &bytes).map_err(|e| e.to_string())?;
    Ok(1)
}

/// Figures and numbers of the records in `dirs`, the experiment as `experiment.toml`
/// and a copy of every record under `records/`: a folder someone else opens (the
/// experiment file; its records are listed) and scrubs without retraining.
fn export_bundle(
    dirs: &[PathBuf],
    experiment_toml: &str,
    to: &std::path::Path,
) -> Result<usize, String> {
    let records: Vec<RunRecord> = dirs
        .iter()
        .map(|d| RunRecord::open(d).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut written = crate::export::export_records(&records, &to.join("figures"))
        .map_err(|e| e.to_string())?
        .len();
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    write_atomically(&to.join("experiment.toml"), experiment_toml.as_bytes())
        .map_err(|e| format!("{}: {e}", to.display()))?;
    written += 1;
    for record in &records {
        let Some(name) = record.dir.file_name() else {
            continue;
        };
        written += copy_dir(&record.dir, &to.join("records").join(name))?;
    }
    Ok(written)
}

/// Copies the regular files of a record folder (and its `checkpoint/`).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<usize, String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut copied = 0;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copied += copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("{}: {e}", target.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}
