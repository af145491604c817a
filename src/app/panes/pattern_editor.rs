//! One attention pattern in the editor: its kind and its own parameters, each marked
//! with its error (a custom mask's with its column).

use egui::{ComboBox, TextEdit, Ui};

use crate::app::widgets::{error_ui, usize_ui};
use crate::attention::{AttentionPattern, Expr, PATTERN_KINDS};

/// What a custom mask may say, shown on hover.
const MASK_HELP: &str = "A condition over q (query position), k (key position) and n (sequence length), true where the query sees the key: integers, + - * / % (Euclidean), < <= > >= == !=, && || !, abs(x), min(a, b), max(a, b), parentheses. E.g. abs(q - k) <= 8 || k < 2";

/// One pattern: kind and its own parameters.
pub fn pattern_ui(
    ui: &mut Ui,
    label: &str,
    p: &mut AttentionPattern,
    field: &str,
    err: &dyn Fn(&str) -> Option<String>,
) {
    ui.push_id(field, |ui| {
        ComboBox::from_label(format!("{label} pattern"))
            .selected_text(p.kind())
            .show_ui(ui, |ui| {
                for kind in PATTERN_KINDS {
                    if ui.selectable_label(p.kind() == kind, kind).clicked()
                        && p.kind() != kind
                        && let Some(new) = AttentionPattern::from_kind(kind)
                    {
                        *p = new;
                    }
                }
            });
        ui.indent(field, |ui| {
            let e = |param: &str| err(&format!("{field}.{param}"));
            match p {
                AttentionPattern::Dense => {}
                AttentionPattern::Local { window } => {
                    usize_ui(ui, "window", window, 8192, e("window").as_deref());
                }
                AttentionPattern::Dilated { window, dilation } => {
                    usize_ui(ui, "window", window, 8192, e("window").as_deref());
                    usize_ui(ui, "dilation", dilation, 8192, e("dilation").as_deref());
                }
                AttentionPattern::Strided { stride } => {
                    usize_ui(ui, "stride", stride, 8192, e("stride").as_deref());
                }
                AttentionPattern::Fixed { block, summary } => {
                    usize_ui(ui, "block", block, 8192, e("block").as_deref());
                    usize_ui(ui, "summary", summary, 8192, e("summary").as_deref());
                }
                AttentionPattern::Block { size } => {
                    usize_ui(ui, "size", size, 8192, e("size").as_deref());
                }
                AttentionPattern::Longformer { window, global } => {
                    usize_ui(ui, "window", window, 8192, e("window").as_deref());
                    usize_ui(ui, "global", global, 8192, e("global").as_deref());
                }
                AttentionPattern::BigBird {
                    block,
                    window_blocks,
                    global_blocks,
                    random_blocks,
                } => {
                    usize_ui(ui, "block", block, 8192, e("block").as_deref());
                    usize_ui(
                        ui,
                        "window_blocks",
                        window_blocks,
                        255,
                        e("window_blocks").as_deref(),
                    );
                    usize_ui(
                        ui,
                        "global_blocks",
                        global_blocks,
                        255,
                        e("global_blocks").as_deref(),
                    );
                    usize_ui(
                        ui,
                        "random_blocks",
                        random_blocks,
                        255,
                        e("random_blocks").as_deref(),
                    );
                }
                AttentionPattern::Custom { mask } => mask_ui(ui, mask, e("mask")),
            }
        });
    });
}

/// A custom pattern's mask expression, and under it the validator's error (or, before
/// the validator has seen the text, the parse error), which names the column.
fn mask_ui(ui: &mut Ui, mask: &mut String, error: Option<String>) {
    ui.horizontal(|ui| {
        let l = ui.label("mask");
        ui.add(
            TextEdit::singleline(mask)
                .code_editor()
                .desired_width(280.0),
        )
        .labelled_by(l.id)
        .on_hover_text(MASK_HELP);
    });
    let error = error.or_else(|| Expr::parse(mask).err().map(|e| e.to_string()));
    error_ui(ui, error.as_deref());
}
