//! Small labelled widgets shared by the panels. Every input carries an accessible
//! name (its label), which screen readers and the GUI tests use.

use egui::{Color32, DragValue, Response, RichText, Ui};

use crate::config::ConfigErrors;

/// Red, for errors.
pub const ERROR_COLOR: Color32 = Color32::from_rgb(230, 80, 70);

/// `label: [value]` for an integer, marked with `error` when there is one. Dragging
/// stays within `0..=max`, but a value loaded from a file is never changed behind the
/// user's back: one outside the range stays as it is and the validator marks it.
pub fn usize_ui(
    ui: &mut Ui,
    label: &str,
    value: &mut usize,
    max: usize,
    error: Option<&str>,
) -> Response {
    let response = ui
        .horizontal(|ui| {
            let l = ui.label(label);
            ui.add(
                DragValue::new(value)
                    .range(0..=max)
                    .clamp_existing_to_range(false)
                    .speed(0.2),
            )
            .labelled_by(l.id)
        })
        .inner;
    error_ui(ui, error);
    response
}

/// The error message of a field, in red, if any.
pub fn error_ui(ui: &mut Ui, error: Option<&str>) {
    if let Some(message) = error {
        ui.label(RichText::new(message).color(ERROR_COLOR).small());
    }
}

/// The message of the error at `field` (a dotted path), if any.
pub fn field_error<'a>(errors: &'a ConfigErrors, field: &str) -> Option<&'a str> {
    errors.for_field(field).map(|e| e.message.as_str())
}

/// A compact `mm:ss` / `h:mm:ss` duration.
pub fn duration_text(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// The colour of the `index`-th run in every plot and list.
pub fn run_color(index: usize) -> Color32 {
    const PALETTE: [Color32; 8] = [
        Color32::from_rgb(66, 133, 244),
        Color32::from_rgb(234, 67, 53),
        Color32::from_rgb(52, 168, 83),
        Color32::from_rgb(251, 188, 5),
        Color32::from_rgb(171, 71, 188),
        Color32::from_rgb(0, 172, 193),
        Color32::from_rgb(255, 112, 67),
        Color32::from_rgb(158, 157, 36),
    ];
    PALETTE[index % PALETTE.len()]
}

/// A table cell coloured by `t` in `0..=1` on the heatmaps' colour scale, its text
/// dark on bright colours and light on dark ones.
pub fn value_cell(ui: &mut Ui, t: f64, text: String, margin: f32) {
    let [r, g, b] = crate::export::colormap_rgb(t as f32);
    let ink = if t > 0.6 {
        Color32::BLACK
    } else {
        Color32::WHITE
    };
    egui::Frame::new()
        .fill(Color32::from_rgb(r, g, b))
        .inner_margin(margin)
        .show(ui, |ui| {
            ui.label(RichText::new(text).color(ink).monospace());
        });
}
