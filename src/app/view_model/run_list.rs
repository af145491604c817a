//! Every run the window knows ([`RunViews`], in the order they were added) and the
//! replicates of one group among them. Plain data, no egui.

use super::run_views::RunView;
use crate::trainer::{Event, RunId};

/// The runs of `group` among `runs` (seed replicates of one run and sweep point).
pub fn group_members<'a>(runs: &[(usize, &'a RunView)], group: &str) -> Vec<&'a RunView> {
    runs.iter()
        .map(|(_, r)| *r)
        .filter(|r| r.group == group)
        .collect()
}

/// Every run the window knows, in the order they were added.
#[derive(Debug, Default)]
pub struct RunViews {
    /// The runs.
    pub views: Vec<RunView>,
    next_id: RunId,
}

impl RunViews {
    /// A fresh id for a new run.
    pub fn next_id(&mut self) -> RunId {
        self.next_id += 1;
        self.next_id
    }

    /// Adds a run.
    pub fn push(&mut self, view: RunView) {
        self.views.push(view);
    }

    /// The run with `id`.
    pub fn get(&self, id: RunId) -> Option<&RunView> {
        self.views.iter().find(|v| v.id == id)
    }

    /// Applies one trainer event; events of unknown runs are ignored.
    pub fn apply(&mut self, event: Event) {
        let id = event.run_id();
        if let Some(view) = self.views.iter_mut().find(|v| v.id == id) {
            view.apply(event);
        }
    }

    /// Whether any run is queued or training.
    pub fn any_active(&self) -> bool {
        self.views.iter().any(|v| !v.status.is_terminal())
    }

    /// Whether a record folder is already open.
    pub fn has_record(&self, dir: &std::path::Path) -> bool {
        self.views
            .iter()
            .any(|v| v.record_dir.as_deref() == Some(dir))
    }

    /// Removes every run that is not queued or training.
    pub fn clear_finished(&mut self) {
        self.views.retain(|v| !v.status.is_terminal());
    }
}
