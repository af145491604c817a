//! Custom patterns: a mask written as an expression over `q`, `k` and `n`
//! ([`super::expr`]), evaluated per (query, key) when a mask is built for a length.
//!
//! Nothing guarantees that a written mask lets a query see itself, so each length is
//! checked instead: every query must see some key (an empty softmax row has no
//! value), and no pair the model evaluates may divide by zero.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use super::expr::{Expr, ExprError};

/// The mask a new custom pattern starts from: a local window plus two global keys.
pub const DEFAULT_MASK: &str = "abs(q - k) <= 8 || k < 2";

/// Longest sequence a custom mask is checked or tiled at (twice the longest
/// `task.seq_len`): a check reads every pair, so a mistyped length must not hang it.
pub const MAX_SCANNED: usize = 1 << 14;

/// The most work one check of a mask at one length may cost: pairs evaluated times
/// the expression's size (about a second at worst). A mask that would need more is
/// refused with the cost, never scanned for minutes.
pub const MAX_CHECK_WORK: u64 = 1 << 28;

/// Why a custom mask is refused at one length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MaskFault {
    /// The expression does not parse or mixes integers and conditions.
    #[error(transparent)]
    Expr(#[from] ExprError),
    /// Evaluating a pair divides by zero.
    #[error("divides by zero at query {query}, key {key} (length {n})")]
    DivisionByZero {
        /// Query position.
        query: usize,
        /// Key position.
        key: usize,
        /// Sequence length.
        n: usize,
    },
    /// The length is beyond [`MAX_SCANNED`].
    #[error("length {n} is beyond the {max} positions a custom mask is checked at", max = MAX_SCANNED)]
    TooLong {
        /// Sequence length.
        n: usize,
    },
    /// Checking it would cost more than [`MAX_CHECK_WORK`].
    #[error(
        "checking it at length {n} would cost about {work} operations ({why}), more than the {max} a check may spend; {fix}",
        max = MAX_CHECK_WORK,
        why = if *.divides { "it may divide by zero, so every pair must be evaluated" } else { "its queries find their keys only far from themselves" },
        fix = if *.divides { "write each divisor so it cannot be 0 (e.g. `q / (k + 1)`), or check a shorter length" } else { "simplify it, or check a shorter length" }
    )]
    TooCostly {
        /// Sequence length.
        n: usize,
        /// Operations the check would take (or took before it stopped).
        work: u64,
        /// Whether it may divide by zero (then every pair is evaluated).
        divides: bool,
    },
    /// A query sees no key: its softmax row would be empty.
    #[error("query {query} sees no key at length {n}{}", causal_note(.causal_only))]
    NoKey {
        /// The first such query.
        query: usize,
        /// Sequence length.
        n: usize,
        /// Whether it sees keys only after itself, which a causal model hides.
        causal_only: bool,
    },
}

fn causal_note(causal_only: &bool) -> &'static str {
    if *causal_only {
        " (it sees only later keys, which model.causal hides)"
    } else {
        ""
    }
}

/// Whether query `i` sees key `j` at length `n`, causality apart. The text is parsed
/// once per call (once per mask); nothing is visible when it does not parse, and a
/// pair that divides by zero is hidden ([`check`] refuses both).
pub fn rule(mask: &str, n: usize) -> Box<dyn Fn(usize, usize) -> bool> {
    match Expr::parse(mask) {
        Ok(expr) => Box::new(move |i, j| expr.eval(i, j, n) == Ok(true)),
        Err(_) => Box::new(|_, _| false),
    }
}

/// Refuses `mask` at length `n`: a parse or type error (with its column), a pair
/// that divides by zero, or a query that sees no key. `causal`: the model's, or
/// `None` to refuse only what is wrong either way (a pair after its query may then
/// divide by zero: a causal model never evaluates it).
///
/// Evaluates up to `n * n` pairs, once: results are cached, as the preview checks
/// the settings every frame.
pub fn check(mask: &str, n: usize, causal: Option<bool>) -> Result<(), MaskFault> {
    let key = (mask.to_string(), n, causal);
    if let Some(known) = checked().get(&key) {
        return known.clone();
    }
    let result = Expr::parse(mask).map_err(MaskFault::from).and_then(|expr| {
        if n > MAX_SCANNED {
            return Err(MaskFault::TooLong { n });
        }
        scan(&expr, n, causal)
    });
    let mut cache = checked();
    if cache.len() >= CACHED {
        cache.clear();
    }
    cache.insert(key, result.clone());
    result
}

/// Side of the tiles [`tiles`] reads a mask in.
pub const TILE: usize = 8;

/// Which `TILE x TILE` tiles of `mask` at length `n` (causality apart) hold a visible
/// pair, row-major, `ceil(n / TILE)` tiles per side (at least one): what a block
/// layout is read from. Cached, as every validation of the settings estimates the
/// run's cost again. Empty (nothing known) beyond [`MAX_SCANNED`] positions, and
/// where a mask that may divide by zero would cost more than [`MAX_CHECK_WORK`].
pub fn tiles(mask: &str, n: usize) -> Arc<Vec<bool>> {
    if n > MAX_SCANNED {
        return Arc::new(Vec::new());
    }
    let key = (mask.to_string(), n);
    if let Some(known) = tiled().get(&key) {
        return Arc::clone(known);
    }
    let side = n.div_ceil(TILE).max(1);
    let mut on = vec![false; side * side];
    // A mask that may divide is read pair by pair: nothing is known when that costs
    // more than a check may spend (the check refuses it).
    let costly = |expr: &Expr| {
        expr.may_divide(n)
            && (n as u64)
                .saturating_mul(n as u64)
                .saturating_mul(expr.size())
                > MAX_CHECK_WORK
    };
    if Expr::parse(mask).is_ok_and(|expr| costly(&expr)) {
        return Arc::new(Vec::new());
    }
    if let Ok(expr) = Expr::parse(mask)
        && n > 0
    {
        let mut boxes = Boxes {
            expr: &expr,
            n,
            side,
            divides: expr.may_divide(n),
            on: &mut on,
        };
        boxes.fill(0..side, 0..side);
    }
    let on = Arc::new(on);
    let mut cache = tiled();
    if cache.len() >= CACHED {
        cache.clear();
    }
    cache.insert(key, Arc::clone(&on));
    on
}

/// Marks the tiles of a mask that hold a visible pair, box by box: a box of tiles
/// the expression's bounds ([`Expr::over`]) show all hidden is skipped and one all
/// visible marked, without evaluating a pair; others are halved down to single
/// tiles, whose pairs are evaluated until one is visible. A banded mask costs
/// O(n * band) pairs instead of O(n^2).
struct Boxes<'a> {
    expr: &'a Expr,
    n: usize,
    side: usize,
    /// Whether the expression may divide by zero at `n`: then bounds tell nothing
    /// and every tile is read pair by pair.
    divides: bool,
    on: &'a mut [bool],
}

impl Boxes<'_> {
    /// Tiles `rows x cols` (query tiles, key tiles).
    fn fill(&mut self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) {
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        let span = |tiles: &std::ops::Range<usize>| {
            (
                tiles.start * TILE,
                (tiles.end * TILE).min(self.n).max(1) - 1,
            )
        };
        let told = if self.divides {
            None
        } else {
            self.expr.over_undivided(span(&rows), span(&cols), self.n)
        };
        match told {
            Some(false) => {}
            Some(true) => {
                for r in rows {
                    for c in cols.clone() {
                        self.on[r * self.side + c] = true;
                    }
                }
            }
            None if rows.len() == 1 && cols.len() == 1 => {
                let ((q0, q1), (k0, k1)) = (span(&rows), span(&cols));
                // `span` keeps both within `0..n`.
                let seen =
                    (q0..=q1).any(|q| (k0..=k1).any(|k| self.expr.eval(q, k, self.n) == Ok(true)));
                self.on[rows.start * self.side + cols.start] = seen;
            }
            None if rows.len() >= cols.len() => {
                let mid = rows.start + rows.len() / 2;
                self.fill(rows.start..mid, cols.clone());
                self.fill(mid..rows.end, cols);
            }
            None => {
                let mid = cols.start + cols.len() / 2;
                self.fill(rows.clone(), cols.start..mid);
                self.fill(rows, mid..cols.end);
            }
        }
    }
}

/// Entries each cache keeps; beyond, it starts again.
const CACHED: usize = 64;

type Checked = HashMap<(String, usize, Option<bool>), Result<(), MaskFault>>;
type Tiled = HashMap<(String, usize), Arc<Vec<bool>>>;

static CHECKED: LazyLock<Mutex<Checked>> = LazyLock::new(|| Mutex::new(HashMap::new()));
static TILED: LazyLock<Mutex<Tiled>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn checked() -> MutexGuard<'static, Checked> {
    CHECKED.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tiled() -> MutexGuard<'static, Tiled> {
    TILED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every pair the model may evaluate, row by row: the first fault, if any. An
/// expression without `/` or `%` cannot fault on a pair, so each query's keys are
/// read outward from the diagonal only until one is seen (most masks see a key at or
/// next to the query: O(n) instead of O(n^2), which keeps validation at long lengths
/// quick).
fn scan(expr: &Expr, n: usize, causal: Option<bool>) -> Result<(), MaskFault> {
    if !expr.may_divide(n) {
        return scan_for_keys(expr, n, causal);
    }
    // Every pair is evaluated: refused up front when that costs too much.
    let pairs = (n as u64).saturating_mul(n as u64);
    let work = pairs.saturating_mul(expr.size());
    if work > MAX_CHECK_WORK {
        return Err(MaskFault::TooCostly {
            n,
            work,
            divides: true,
        });
    }
    for query in 0..n {
        let (mut earlier, mut later) = (false, false);
        for key in 0..n {
            let after = key > query;
            if after && causal == Some(true) {
                break;
            }
            match expr.eval(query, key, n) {
                Ok(seen) if after => later |= seen,
                Ok(seen) => earlier |= seen,
                // Hidden from a causal model, refused for a non-causal one.
                Err(_) if after && causal.is_none() => {}
                Err(_) => return Err(MaskFault::DivisionByZero { query, key, n }),
            }
        }
        if !earlier && !later {
            let causal_only = causal == Some(true)
                && (query + 1..n).any(|key| expr.eval(query, key, n) == Ok(true));
            return Err(MaskFault::NoKey {
                query,
                n,
                causal_only,
            });
        }
    }
    Ok(())
}

/// [`scan`] for an expression that cannot fault: the first query that sees no key.
fn scan_for_keys(expr: &Expr, n: usize, causal: Option<bool>) -> Result<(), MaskFault> {
    // Each evaluation is counted: a mask whose queries see keys only far away (or
    // none) stops at the bound instead of reading n^2 pairs.
    let size = expr.size();
    let work = std::cell::Cell::new(0u64);
    let sees = |query: usize, key: usize| {
        work.set(work.get().saturating_add(size));
        expr.eval(query, key, n) == Ok(true)
    };
    for query in 0..n {
        if work.get() > MAX_CHECK_WORK {
            return Err(MaskFault::TooCostly {
                n,
                work: work.get(),
                divides: false,
            });
        }
        let ahead = query + 1..if causal == Some(true) { query + 1 } else { n };
        if (0..=query).rev().chain(ahead).any(|key| sees(query, key)) {
            continue;
        }
        let causal_only = causal == Some(true) && (query + 1..n).any(|key| sees(query, key));
        return Err(MaskFault::NoKey {
            query,
            n,
            causal_only,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mask_is_valid_causal_or_not() {
        for causal in [None, Some(false), Some(true)] {
            for n in [1, 2, 7, 64] {
                assert_eq!(check(DEFAULT_MASK, n, causal), Ok(()));
            }
        }
    }

    #[test]
    fn a_query_without_keys_is_named() {
        let fault = check("k > q + 100", 16, None).expect_err("no query sees a key");
        assert_eq!(
            fault,
            MaskFault::NoKey {
                query: 0,
                n: 16,
                causal_only: false
            }
        );
        // Only the last key: fine without causality, not with it.
        assert_eq!(check("k == n - 1", 8, Some(false)), Ok(()));
        assert_eq!(check("k == n - 1", 8, None), Ok(()));
        let fault = check("k == n - 1", 8, Some(true)).expect_err("query 0");
        assert_eq!(
            fault,
            MaskFault::NoKey {
                query: 0,
                n: 8,
                causal_only: true
            }
        );
        assert!(fault.to_string().contains("query 0 sees no key"), "{fault}");
        // A later query: rows before it are fine.
        let fault = check("q < 5 && abs(q - k) <= 1", 8, None).expect_err("query 5");
        assert!(
            matches!(fault, MaskFault::NoKey { query: 5, .. }),
            "{fault}"
        );
    }

    #[test]
    fn the_quick_scan_finds_what_the_full_scan_finds() {
        // `|| q / (k - k + 1) < 0` adds a division that never faults and is never
        // true, but whose divisor's bounds include 0: the same mask, read by the full
        // scan instead of the outward one.
        let masks = [
            "abs(q - k) <= 2",
            "k < 2",
            "k > q + 3",
            "k == n - 1",
            "q < 5 && abs(q - k) <= 1",
            "k >= q && k <= q + 1",
            "(q + k) % 3 == 0",
            "k <= q && q - k < 8 || k % 64 == 0",
            "(k - q) % 10 == 9 || (q * 2) % -12 == 4",
            "min(q, k) == 0 || max(q, k) == n - 1",
            "q != k",
            "k == q - 4",
        ];
        for mask in masks {
            let full = format!("({mask}) || q / (k - k + 1) < 0");
            assert!(Expr::parse(&full).expect("parses").may_divide(4));
            for n in [1, 2, 5, 9, 16] {
                for causal in [None, Some(false), Some(true)] {
                    assert_eq!(
                        check(mask, n, causal),
                        check(&full, n, causal),
                        "{mask} at n = {n}, causal {causal:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn tiles_read_by_bounds_equal_tiles_read_pair_by_pair() {
        let masks = [
            "abs(q - k) <= 8 || k < 2",
            "abs(q - k) <= 3",
            "k <= q && q - k < 20",
            "(q / 8 == k / 8)",
            "k == n - 1 || q == 0",
            "min(q, k) * 3 > max(q, k) - 5 && !(q == k)",
            "q - k == 17 || k - q == 9",
            "k > q + 1000",
            "-q + 2 * k >= 40 && abs(q - k) < n / 4",
            "(q + k) % 3 == 0",
            "q % (k + 1) == 0 && k < 20",
            "q / (k + 1) >= 2 || (k - q) / 5 == 3",
            "(q - k) / -3 == 2 || q % -7 == k % 5",
        ];
        for mask in masks {
            for n in [1usize, 5, 8, 9, 63, 64, 130] {
                let side = n.div_ceil(TILE).max(1);
                let mut brute = vec![false; side * side];
                let visible = rule(mask, n);
                for q in 0..n {
                    for k in 0..n {
                        brute[(q / TILE) * side + k / TILE] |= visible(q, k);
                    }
                }
                assert_eq!(*tiles(mask, n), brute, "{mask} at n = {n}");
            }
        }
    }

    #[test]
    fn bounds_tell_boxes_apart_only_when_sure() {
        let e = Expr::parse("abs(q - k) <= 8").expect("parses");
        assert_eq!(e.over((0, 7), (100, 120), 128), Some(false));
        assert_eq!(e.over((10, 12), (9, 13), 128), Some(true));
        assert_eq!(e.over((0, 20), (0, 20), 128), None);
        let d = Expr::parse("q / 2 == k").expect("parses");
        assert_eq!(
            d.over((0, 1), (5, 7), 8),
            Some(false),
            "a constant divisor is told"
        );
        assert_eq!(d.over((4, 5), (2, 2), 8), Some(true));
        let z = Expr::parse("q / k == 1").expect("parses");
        assert_eq!(
            z.over((4, 4), (4, 4), 8),
            None,
            "k may be 0 elsewhere: never told"
        );
        assert!(z.may_divide(8) && !d.may_divide(8));
        assert!(
            !Expr::parse("q % (k + 1) == 0")
                .expect("parses")
                .may_divide(8)
        );
    }

    #[test]
    fn nested_divisions_are_checked_once_per_level() {
        // Checked twice per level, 50 levels would be 2^50 visits: this would not end.
        let depth = 50;
        let mask = format!("{}q{} >= 0", "q / (1 + ".repeat(depth), ")".repeat(depth));
        let e = Expr::parse(&mask).expect("parses");
        assert!(!e.may_divide(64), "every divisor is at least 1");
        assert_eq!(e.over((0, 63), (0, 63), 64), Some(true));
        let zero = format!("{}k{} >= 0", "q / (".repeat(depth), ")".repeat(depth));
        assert!(Expr::parse(&zero).expect("parses").may_divide(64));
    }

    #[test]
    fn division_by_zero_is_refused_where_the_model_evaluates_it() {
        let mask = "k == q || k > q && q / (k - 3) > 100";
        assert_eq!(
            check(mask, 8, Some(false)),
            Err(MaskFault::DivisionByZero {
                query: 0,
                key: 3,
                n: 8
            })
        );
        // Pairs after their query are never evaluated by a causal model.
        assert_eq!(check(mask, 8, None), Ok(()));
        assert_eq!(check(mask, 8, Some(true)), Ok(()));
        assert_eq!(
            check("k == q || k / (q - 3) > 100", 8, Some(true)),
            Err(MaskFault::DivisionByZero {
                query: 3,
                key: 0,
                n: 8
            })
        );
    }

    #[test]
    fn tiles_mark_the_blocks_holding_visible_pairs() {
        // n = 20: tiles of 8, 8 and 4 positions.
        let on = tiles("q / 8 == k / 8 || k == 19", 20);
        let want = [
            true, false, true, //
            false, true, true, //
            false, false, true,
        ];
        assert_eq!(on.as_slice(), want.as_slice());
        assert_eq!(tiles("k > n", 5).as_slice(), [false].as_slice());
        assert_eq!(tiles("k < 2", 0).as_slice(), [false].as_slice());
        assert!(tiles("k < 2", MAX_SCANNED + 1).is_empty());
        assert_eq!(
            check("k < 2", usize::MAX, None),
            Err(MaskFault::TooLong { n: usize::MAX })
        );
    }

    #[test]
    fn a_parse_error_keeps_its_column_and_hides_everything() {
        let fault = check("abs(q - k) <= 8 ||", 8, None).expect_err("broken");
        assert!(fault.to_string().starts_with("column 17: "), "{fault}");
        let rule = rule("abs(q - k) <= 8 ||", 8);
        assert!((0..8).all(|i| (0..8).all(|j| !rule(i, j))));
    }

    #[test]
    fn checks_are_bounded_in_work_at_any_length() {
        // May divide (k can be 0): every pair would be read; refused from its cost.
        let divides = check("q / k >= 0", MAX_SCANNED, None).expect_err("too costly");
        assert!(
            matches!(divides, MaskFault::TooCostly { divides: true, .. }),
            "{divides}"
        );
        assert!(divides.to_string().contains("k + 1"), "{divides}");
        assert!(tiles("q / k >= 0", MAX_SCANNED).is_empty());
        // The same mask at a short length is still read pair by pair, and refused
        // where it divides.
        assert!(matches!(
            check("q / k >= 0", 64, None),
            Err(MaskFault::DivisionByZero { key: 0, .. })
        ));
        // Keys found only at the far end: the count stops the scan.
        let far = check("k == n - 1", MAX_SCANNED, Some(false)).expect_err("too costly");
        assert!(
            matches!(far, MaskFault::TooCostly { divides: false, .. }),
            "{far}"
        );
        // A local window is found next to each query: checked in full.
        assert_eq!(check(DEFAULT_MASK, MAX_SCANNED, Some(true)), Ok(()));
    }
}
