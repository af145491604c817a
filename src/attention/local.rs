//! Local-window patterns: `local` and `dilated`.

/// `|i - j| <= window`.
pub fn local(i: usize, j: usize, window: usize) -> bool {
    i.abs_diff(j) <= window
}

/// `j = i + k * dilation` for some `|k| <= window`.
pub fn dilated(i: usize, j: usize, window: usize, dilation: usize) -> bool {
    let d = i.abs_diff(j);
    d.is_multiple_of(dilation) && d / dilation <= window
}
