//! What every fused CPU kernel shares: the run-time choice of instruction set, a
//! multiply-add that is one FMA where the variant has it, and a branch-free `exp`
//! that vectorises. Kernels are written once, generic over `const FMA: bool`, and
//! compiled per variant with [`variants!`] (the binary runs on any x86-64 machine;
//! the variant is picked at run time).
//!
//! As in BurntSushi/memchr's `arch::x86_64::avx2`: a variant's `#[target_feature]`
//! code is only called through a `Runnable`, which only [`Isa::available`] vouches
//! for, so the one `unsafe` call per dispatch rests on a check made in this module.
//! Each public kernel reads the variant once per call, on the calling thread;
//! [`with_isa`] forces one there, so tests run every variant the
//! machine has against the reference, not only the one the host picks.

use std::cell::Cell;

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
    /// Every variant, widest first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Baseline];

    /// Its name in the bench's JSON (`"avx512"`, `"avx2"`, `"baseline"`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Baseline => "baseline",
        }
    }

    /// Whether this CPU has every instruction set the variant is compiled for
    /// (detected at run time; the baseline always).
    pub fn available(self) -> bool {
        match self {
            Isa::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Isa::Avx2.available() && std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
        }
    }
}

/// A variant this CPU runs. Only this module makes one: [`Runnable::new`], after
/// [`Isa::available`], or the baseline, which runs everywhere. So [`dispatch!`] may
/// call the variant's `#[target_feature]` code for any `Runnable` it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Runnable(Isa);

impl Runnable {
    /// `isa`, when this CPU runs it.
    fn new(isa: Isa) -> Option<Self> {
        isa.available().then_some(Self(isa))
    }

    /// The variant.
    pub(crate) fn isa(self) -> Isa {
        self.0
    }

    /// Whether the gemm micro-kernel uses its larger blocks (32 vector registers).
    pub(crate) fn wide(self) -> bool {
        self.0 == Isa::Avx512
    }
}

/// The best variant this CPU runs (`ATTNLAB_ISA=baseline|avx2` caps it, to measure);
/// detected once.
fn detected() -> Runnable {
    static BEST: std::sync::OnceLock<Runnable> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        let widest = match std::env::var("ATTNLAB_ISA").unwrap_or_default().as_str() {
            "baseline" => Isa::Baseline,
            "avx2" => Isa::Avx2,
            _ => Isa::Avx512,
        };
        Isa::ALL
            .into_iter()
            .skip_while(|&isa| isa != widest)
            .find_map(Runnable::new)
            .unwrap_or(Runnable(Isa::Baseline)) // runs everywhere
    })
}

thread_local! {
    /// The variant [`with_isa`] forces on this thread, if any.
    static FORCED: Cell<Option<Runnable>> = const { Cell::new(None) };
}

/// The variant a fused kernel called on this thread runs: the one [`with_isa`]
/// forces, else the best this CPU has. Kernels read it once per call, at their entry.
pub(crate) fn current() -> Runnable {
    FORCED.with(Cell::get).unwrap_or_else(detected)
}

/// The variant the fused kernels run on this thread (see [`with_isa`]); without one
/// forced, the best this CPU has (`ATTNLAB_ISA=baseline|avx2` caps it, to measure).
pub fn isa() -> Isa {
    current().isa()
}

/// Runs `f` with every fused kernel it calls on this thread compiled for `isa`, or
/// returns `None` when this CPU lacks `isa` (`f` is not run). For tests, which check
/// each variant against the reference in turn: the kernels read the variant once per
/// call on the calling thread, so other threads keep theirs, and the previous one is
/// restored when `f` returns or panics. `ATTNLAB_ISA` does not apply here.
#[doc(hidden)]
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> Option<R> {
    /// Puts the previous choice back, also on panic.
    struct Restore(Option<Runnable>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|forced| forced.set(self.0));
        }
    }
    let runnable = Runnable::new(isa)?;
    let _restore = Restore(FORCED.with(|forced| forced.replace(Some(runnable))));
    Some(f())
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
/// `#[target_feature]` fns that [`dispatch!`] calls for a [`Runnable`] (x86-64 only).
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

/// Calls the variant of a kernel that `runnable` (a [`Runnable`], usually from
/// [`current`]) names: `dispatch!(runnable; generic, avx512, avx2, (args))`.
macro_rules! dispatch {
    ($runnable:expr; $generic:ident, $avx512:ident, $avx2:ident, ($($arg:expr),*)) => {{
        let runnable: $crate::model::fused::simd::Runnable = $runnable;
        match runnable.isa() {
            // SAFETY: a `Runnable` is only made for a variant whose instruction sets
            // this CPU has (`Runnable::new` checks `Isa::available`), and `$avx512` is
            // compiled for exactly AVX-512F, AVX2 and FMA (`variants!`).
            #[cfg(target_arch = "x86_64")]
            $crate::model::fused::simd::Isa::Avx512 => unsafe { $avx512($($arg),*) },
            // SAFETY: as above, for AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            $crate::model::fused::simd::Isa::Avx2 => unsafe { $avx2($($arg),*) },
            _ => $generic::<false>($($arg),*),
        }
    }};
}

pub(crate) use {dispatch, variants};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_isa_forces_a_variant_on_this_thread_only_and_restores_it() {
        let best = detected().isa();
        assert_eq!(isa(), best);
        let inside = with_isa(Isa::Baseline, || {
            let other = std::thread::spawn(isa).join().expect("thread");
            (isa(), other)
        });
        assert_eq!(inside, Some((Isa::Baseline, best)));
        assert_eq!(isa(), best, "restored");
        let panicked = std::panic::catch_unwind(|| with_isa(Isa::Baseline, || panic!("inside")));
        assert!(panicked.is_err());
        assert_eq!(isa(), best, "restored after a panic");
        for variant in Isa::ALL {
            let forced = with_isa(variant, isa);
            assert_eq!(forced.is_some(), variant.available(), "{variant:?}");
            assert!(forced.is_none_or(|v| v == variant));
        }
    }

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
