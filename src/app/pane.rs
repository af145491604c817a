//! The panes of the main area, listed once: the tabs, the View menu and the
//! `Ctrl+1..9` shortcuts (the first nine panes) all come from [`Pane::ALL`].

use serde::{Deserialize, Serialize};

/// A tab of the main area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pane {
    /// Loss and accuracy curves.
    Curves,
    /// Layers x heads heatmaps of the selected run.
    Attention,
    /// Runs side by side.
    Compare,
    /// The pattern's masks and receptive field.
    Preview,
    /// Time and memory per step against sequence length.
    Cost,
    /// Final metrics over the axes of a sweep.
    Sweep,
    /// Per-head statistics over training, and the receptive field through the layers.
    Heads,
    /// Accuracy against the distance of each answer's dependency.
    Distance,
    /// Accuracy and loss against the evaluation length, and the probe's attention at
    /// a longer length.
    Length,
    /// Where runs train: this machine and remote servers.
    Devices,
    /// Which heads a run needs: each ablated and patched, at a saved step.
    Interventions,
}

impl Pane {
    /// Every pane, in tab order.
    pub const ALL: [Pane; 11] = [
        Pane::Curves,
        Pane::Attention,
        Pane::Compare,
        Pane::Sweep,
        Pane::Preview,
        Pane::Cost,
        Pane::Heads,
        Pane::Distance,
        Pane::Length,
        Pane::Devices,
        Pane::Interventions,
    ];

    /// The tab's title.
    pub fn title(self) -> &'static str {
        match self {
            Pane::Curves => "Curves",
            Pane::Attention => "Attention",
            Pane::Compare => "Compare",
            Pane::Preview => "Mask preview",
            Pane::Cost => "Cost",
            Pane::Sweep => "Sweep",
            Pane::Heads => "Heads",
            Pane::Distance => "Distance",
            Pane::Length => "Length",
            Pane::Devices => "Devices",
            Pane::Interventions => "Interventions",
        }
    }

    /// What the pane shows (hover text of its View menu entry).
    pub fn description(self) -> &'static str {
        match self {
            Pane::Curves => "Training and held-out loss and accuracy of every run",
            Pane::Attention => "Every layer's and head's attention map of the selected run",
            Pane::Compare => "Runs side by side at the same step",
            Pane::Preview => "Each layer's mask and what the stack of layers can link",
            Pane::Cost => "Time and memory of one attention layer as sequences grow",
            Pane::Sweep => "Final accuracy over two axes of the sweep, mean over seeds",
            Pane::Heads => {
                "What each head does over training (distance, entropy, dependency, induction...) and a query's receptive field through the layers"
            }
            Pane::Distance => {
                "Accuracy against how far back each answer lies, with each run's structural reach"
            }
            Pane::Length => {
                "Held-out accuracy and loss at each evaluation length (train.eval_lengths) against the training length, with seed bands and solved fractions, and what the heads do on a probe at a longer length"
            }
            Pane::Devices => "This machine's CPU and GPU, and remote servers runs can train on",
            Pane::Interventions => {
                "Which heads the selected run needs: each head ablated alone (accuracy drop) and patched alone (recovery) at a saved step, beside the Heads pane's statistic, and a head's ablation over training"
            }
        }
    }
}
