//! Figures and numbers out of run records, for papers and for numpy: metrics and
//! summaries as CSV, loss and accuracy curves as SVG (vector), the attention grid of
//! a snapshot as PNG and its weights as `.npy`, every snapshot's head statistics and
//! the accuracy by distance as CSV. Headless: `attnlab export RUN_DIR...
//! --to DIR` needs no window.

mod colormap;
mod files;
mod png;
mod stats;

pub use colormap::{colormap_rgb, diverging_rgb, sqrt_scaled};
pub use files::{
    ExportError, Exported, curves_svg, export_each, export_records, metrics_csv, npy_f32,
    summary_csv,
};
pub use png::{MAX_PNG_PIXELS, MAX_PNG_SIDE, PngError, attention_png, color_image_png};
pub use stats::{head_stats_csv, snapshot_stats};
