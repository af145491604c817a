//! What every fused CPU kernel shares: the run-time choice of instruction set, a
//! multiply-add that is one FMA where the variant has it, and a branch-free `exp`
//! that vectorises. Kernels are written once, generic over `const FMA: bool`, and
//! compiled per variant with [`variants!`] (the binary runs on any x86-64 machine;
//! the variant is picked at run time).

/// Which compiled variant runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 512-bit vectors with FMA.
    Avx512,
    /// 256-bit vectors with FMA.
    Avx2,
    /// What the build target guarantees (SSE2 on x86-64).
    Baseline,
}

impl Isa {
    /// Its name in the bench's JSON (`"avx512"`, `"avx2"`, `"baseline"`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Baseline => "baseline",
        }
    }
}

/// The best variant this CPU runs (`ATTNLAB_ISA=baseline|avx2` caps it, to measure).
pub fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = std::env::var("ATTNLAB_ISA").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            let avx512 = avx2 && std::arch::is_x86_feature_detected!("avx512f");
            match cap.as_str() {
                "baseline" => Isa::Baseline,
                "avx2" if avx2 => Isa::Avx2,
                _ if avx512 => Isa::Avx512,
                _ if avx2 => Isa::Avx2,
                _ => Isa::Baseline,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cap;
            Isa::Baseline
        }
    })
}

/// `a * b + c`, one rounding where the variant has FMA.
#[inline(always)]
pub fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `exp(x)` for `x <= 0` (Cephes' polynomial, relative error ~2e-7), branch-free so
/// that a loop over it vectorises; `exp(-inf)` is exactly `0`, and results below
/// `exp(-87)` are `exp(-87)`.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients
pub fn exp_neg<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    const BIAS_BITS: f32 = 8_388_608.0; // 2^23
    let hidden = x == f32::NEG_INFINITY;
    let x = x.clamp(-87.0, 0.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = fmadd::<FMA>(k, -LN2_LO, fmadd::<FMA>(k, -LN2_HI, x));
    let mut p = 1.987_569_1e-4;
    p = fmadd::<FMA>(p, r, 1.398_199_9e-3);
    p = fmadd::<FMA>(p, r, 8.333_452e-3);
    p = fmadd::<FMA>(p, r, 4.166_579_6e-2);
    p = fmadd::<FMA>(p, r, 1.666_666_5e-1);
    p = fmadd::<FMA>(p, r, 5.000_000_1e-1);
    let y = fmadd::<FMA>(p * r, r, r) + 1.0;
    // 2^k from the bits of 2^23 + (k + 127), whose low mantissa bits are k + 127
    // (k is an integer in [-126, 0]): shifted into the exponent field. An `as i32`
    // conversion here would not vectorise (Rust's saturating cast goes lane by lane).
    let scale = f32::from_bits((k + (BIAS_BITS + 127.0)).to_bits() << 23);
    if hidden { 0.0 } else { y * scale }
}

/// `erf(x)` (Abramowitz and Stegun 7.1.26: absolute error below 1.5e-7, plus f32
/// rounding, under 6e-7 in all), branch-free.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the published coefficients
pub fn erf<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / fmadd::<FMA>(0.327_591_1, a, 1.0);
    let mut p = 1.061_405_4;
    p = fmadd::<FMA>(p, t, -1.453_152);
    p = fmadd::<FMA>(p, t, 1.421_413_8);
    p = fmadd::<FMA>(p, t, -0.284_496_74);
    p = fmadd::<FMA>(p, t, 0.254_829_6);
    let y = 1.0 - p * t * exp_neg::<FMA>(-a * a);
    y.copysign(x)
}

/// Compiles `$generic::<true>` twice, for AVX-512 and for AVX2 + FMA, as
/// `unsafe fn`s the caller picks with [`isa`] (x86-64 only).
macro_rules! variants {
    ($generic:ident, $avx512:ident, $avx2:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn $avx512($($arg: $ty),*) {
            $generic::<true>($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn $avx2($($arg: $ty),*) {
            $generic::<true>($($arg),*)
        }
    };
}

/// Calls the variant of a kernel [`isa`] picked: `dispatch!(generic, avx512, avx2, (args))`.
macro_rules! dispatch {
    ($generic:ident, $avx512:ident, $avx2:ident, ($($arg:expr),*)) => {
        match $crate::model::fused::simd::isa() {
            // SAFETY: `isa()` only picks a variant whose features this CPU has.
            #[cfg(target_arch = "x86_64")]
            $crate::model::fused::simd::Isa::Avx512 => unsafe { $avx512($($arg),*) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            $crate::model::fused::simd::Isa::Avx2 => unsafe { $avx2($($arg),*) },
            _ => $generic::<false>($($arg),*),
        }
    };
}

pub(crate) use {dispatch, variants};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_within_float_error() {
        for i in 0..2000 {
            let x = -(i as f32) * 0.043;
            let (a, b) = (exp_neg::<false>(x), x.exp());
            assert!((a - b).abs() <= 4e-7 * b + 1e-37, "exp({x}) = {a}, std {b}");
        }
        assert_eq!(exp_neg::<false>(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_neg::<false>(0.0), 1.0);
    }

    #[test]
    fn erf_matches_within_its_bound() {
        // erf from its Taylor series (exact enough for |x| <= 3 in f64).
        let series = |x: f64| {
            let (mut term, mut sum) = (x, x);
            for k in 1..80 {
                term *= -x * x / k as f64;
                sum += term / (2 * k + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        for i in -300..=300 {
            let x = i as f32 / 100.0;
            let (a, b) = (erf::<false>(x), series(f64::from(x)));
            assert!(
                (f64::from(a) - b).abs() < 6e-7, // 1.5e-7 from the formula, the rest f32 rounding near 0
                "erf({x}) = {a}, series {b}"
            );
        }
    }
}
