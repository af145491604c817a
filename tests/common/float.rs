//! Float comparisons: a computation against its reference, element by element, and
//! losses that must agree to rounding.

use burn::tensor::Tensor;

/// A tensor's values, row-major.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32")
}

/// How far a value may be from its reference `y`: `abs + rel * |y|`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f32,
    pub rel: f32,
}

impl Tolerance {
    /// The fused kernel (and the fused element-wise ops) against burn's.
    pub const FUSED: Self = Self {
        abs: 1e-4,
        rel: 1e-3,
    };
    /// The block-sparse computation (partial softmaxes merged by log-sum-exp) against
    /// the masked-dense reference.
    pub const BLOCK_SPARSE: Self = Self {
        abs: 2e-4,
        rel: 2e-3,
    };

    /// Whether `x` is within the tolerance of the reference `y`.
    pub fn allows(self, x: f32, y: f32) -> bool {
        (x - y).abs() <= self.abs + self.rel * y.abs()
    }
}

/// Asserts that `got` equals `reference` element by element within `tolerance`;
/// `what` names the comparison.
pub fn assert_close(got: &[f32], reference: &[f32], tolerance: Tolerance, what: &str) {
    assert_eq!(got.len(), reference.len(), "{what}: lengths");
    for (i, (x, y)) in got.iter().zip(reference).enumerate() {
        assert!(
            tolerance.allows(*x, *y),
            "{what}[{i}]: {x} vs reference {y}"
        );
    }
}

/// Whether `a` is within `abs + rel * |b|` of `b`.
pub fn within(a: f64, b: f64, abs: f64, rel: f64) -> bool {
    (a - b).abs() <= abs + rel * b.abs()
}

/// Whether `b` equals `a` to 1e-5 of `a` (of 1 where `|a| < 1`): the same
/// computation done in another order.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(1.0)
}
