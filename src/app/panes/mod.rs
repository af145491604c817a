//! What the window draws, one file per pane, each with a `*_ui` function that draws
//! from (and edits) the state it is given: the tabs of [`Pane::ALL`] (`curves` with its
//! `curve_lines`, `attention`, `compare` with its `difference` maps, `sweep`, `preview`, `cost`,
//! `heads` with its `receptive` field, `distance`, `length` with its `length_probe`
//! (scores against the evaluation length, the probe at a longer length), `devices`, `interventions` with its
//! `intervention_grids` and `ablated_attention`) and the side panels
//! (`config_panel` with its `pattern_editor`, `runs_panel`). A pane's own choices
//! (which step, which axis) live with it; the numbers it draws come from
//! `view_model`, which has no egui.
//!
//! [`Pane::ALL`]: crate::app::Pane::ALL

pub mod ablated_attention;
pub mod attention;
pub mod compare;
pub mod config_extras;
pub mod config_panel;
pub mod config_target;
pub mod cost;
pub mod curve_lines;
pub mod curves;
pub mod devices;
pub mod difference;
pub mod distance;
pub mod heads;
pub mod intervention_grids;
pub mod interventions;
pub mod length;
pub mod length_probe;
pub mod pattern_editor;
pub mod preview;
pub mod receptive;
pub mod runs_panel;
pub mod sweep;
