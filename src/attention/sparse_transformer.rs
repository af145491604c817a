//! The two factorised patterns of the Sparse Transformer (Child et al., 2019).

/// "Strided": `|i - j| < stride`, or `(i - j) mod stride == 0`.
pub fn strided(i: usize, j: usize, stride: usize) -> bool {
    let d = i.abs_diff(j);
    d < stride || d.is_multiple_of(stride)
}

/// "Fixed": `i` and `j` in the same block of `block` positions, or `j` among the last
/// `summary` positions of its own block (the summary cells every query can read).
pub fn fixed(i: usize, j: usize, block: usize, summary: usize) -> bool {
    i / block == j / block || j % block >= block - summary
}
