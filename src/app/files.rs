//! Native file dialogs (rfd) on a helper thread, so the window never freezes while
//! one is open. Results come back through a channel polled each frame and go
//! through the same `open_path` / `save_to` code the tests call directly.

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender, bounded};

/// What a dialog is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileRequest {
    /// Open an experiment file.
    Open,
    /// Save the experiment under a new name (suggested file name).
    SaveAs(String),
    /// Choose the folder for run records.
    RunsFolder,
    /// Choose the folder to export figures and a bundle to.
    ExportFolder,
}

/// What the user chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChoice {
    /// The request it answers.
    pub request: FileRequest,
    /// The path, or `None` when cancelled or when no dialog could be shown.
    pub path: Option<PathBuf>,
}

/// Runs at most one dialog at a time.
pub struct Dialogs {
    tx: Sender<FileChoice>,
    rx: Receiver<FileChoice>,
    open: bool,
}

impl Default for Dialogs {
    fn default() -> Self {
        let (tx, rx) = bounded(4);
        Self {
            tx,
            rx,
            open: false,
        }
    }
}

impl Dialogs {
    /// Whether a dialog is showing.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Shows a dialog for `request`; `wake` is called when the user is done.
    pub fn request(
        &mut self,
        request: FileRequest,
        start_dir: Option<PathBuf>,
        wake: impl Fn() + Send + 'static,
    ) {
        if self.open {
            return;
        }
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("attnlab-file-dialog".into())
            .spawn(move || {
                let mut dialog = rfd::FileDialog::new();
                if let Some(dir) = start_dir.filter(|d| d.is_dir()) {
                    dialog = dialog.set_directory(dir);
                }
                let path = match &request {
                    FileRequest::Open => dialog
                        .add_filter("attnlab experiment", &["toml"])
                        .set_title("Open experiment")
                        .pick_file(),
                    FileRequest::SaveAs(name) => dialog
                        .add_filter("attnlab experiment", &["toml"])
                        .set_title("Save experiment as")
                        .set_file_name(name.clone())
                        .save_file(),
                    FileRequest::RunsFolder => {
                        dialog.set_title("Folder for run records").pick_folder()
                    }
                    FileRequest::ExportFolder => dialog
                        .set_title("Export figures and a bundle to")
                        .pick_folder(),
                };
                // Ignored: if the window is gone nobody waits for the answer.
                let _ = tx.send(FileChoice { request, path });
                wake();
            });
        self.open = spawned.is_ok();
    }

    /// The user's choice, once the dialog has closed.
    pub fn poll(&mut self) -> Option<FileChoice> {
        let choice = self.rx.try_recv().ok()?;
        self.open = false;
        Some(choice)
    }
}
