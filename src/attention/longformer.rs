//! Longformer (Beltagy et al., 2020): a sliding window plus global tokens.

/// `|i - j| <= window`, or either position among the first `global` (global tokens
/// see every position and are seen by every position).
pub fn allows(i: usize, j: usize, window: usize, global: usize) -> bool {
    i.abs_diff(j) <= window || i < global || j < global
}
