//! Mask expressions, the `mask` of a custom attention pattern such as
//! `abs(q - k) <= 8 || k < 2`: integers `q` (query position), `k` (key position) and
//! `n` (sequence length); `* / %`, `+ -`, comparisons, `&& || !`, `abs`, `min` and
//! `max`, with C's precedence.
//!
//! The text is parsed once into a typed tree, then evaluated per (query, key) only
//! when a mask is built for a length: the kernels see the mask, never the text.
//! The parser is `expr_parser` (winnow); every error carries the column where it
//! is. Integers are `i64` and wrap instead of overflowing; `/` and `%` are
//! Euclidean (the remainder is never negative, so `(q - k) % 4 == 0` holds on both
//! sides of the diagonal).

use super::expr_parser::{self, Node, Op};

/// Longest expression accepted, in characters.
pub const MAX_CHARS: usize = 1000;

/// Why a mask expression is not valid, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ExprError {
    /// 1-based character column in the expression.
    pub column: usize,
    /// What is wrong there and what would be valid.
    pub message: String,
}

/// A division or remainder by zero while evaluating one (query, key) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("division or remainder by zero")]
pub struct DivisionByZero;

/// A parsed mask expression: a condition on `q`, `k` and `n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr(Node);

impl Expr {
    /// Parses and type-checks `text`: the whole expression must be a condition.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        if text.chars().count() > MAX_CHARS {
            return Err(ExprError {
                column: MAX_CHARS + 1,
                message: format!("the expression is longer than {MAX_CHARS} characters"),
            });
        }
        if text.trim().is_empty() {
            return Err(ExprError {
                column: 1,
                message: "the mask is empty: write a condition such as `abs(q - k) <= 8`".into(),
            });
        }
        expr_parser::parse(text).map(Self).map_err(|e| ExprError {
            column: text.get(..e.at).map_or(1, |s| s.chars().count() + 1),
            message: e.message,
        })
    }

    /// Whether evaluating it at length `n` may divide by zero: it holds a `/` or `%`
    /// whose divisor's bounds over every pair include 0 (or cannot be told). When
    /// not, every pair evaluates, and a check for keys may stop at the first one seen.
    pub fn may_divide(&self, n: usize) -> bool {
        let last = n.saturating_sub(1) as i128;
        let all = [(0, last), (0, last), (n as i128, n as i128)];
        self.0.may_divide(&all)
    }

    /// What the expression says over every pair with `q` in `qs` and `k` in `ks`
    /// (inclusive ranges) at length `n`, by interval arithmetic on the tree:
    /// `Some(true)` when every pair sees, `Some(false)` when none does, `None` when
    /// it varies or cannot be told (the bounds are safe, not tight: `None` may hide a
    /// box that is all one way). An expression that may divide is never told.
    pub fn over(&self, qs: (usize, usize), ks: (usize, usize), n: usize) -> Option<bool> {
        if self.may_divide(n) {
            return None;
        }
        self.over_undivided(qs, ks, n)
    }

    /// [`Expr::over`] for an expression the caller knows cannot divide by zero at `n`
    /// (`!self.may_divide(n)`, checked once for many boxes).
    pub fn over_undivided(&self, qs: (usize, usize), ks: (usize, usize), n: usize) -> Option<bool> {
        let wide = |(a, b): (usize, usize)| (a as i128, b as i128);
        let (lo, hi) = self
            .0
            .bounds(&[wide(qs), wide(ks), (n as i128, n as i128)])?;
        truth((lo, hi))
    }

    /// Its operations and leaves: what evaluating one pair costs, at most.
    pub fn size(&self) -> u64 {
        self.0.size()
    }

    /// Whether query `q` sees key `k` at sequence length `n`.
    pub fn eval(&self, q: usize, k: usize, n: usize) -> Result<bool, DivisionByZero> {
        let vars = [q, k, n].map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        Ok(self.0.eval(&vars)? != 0)
    }
}

/// Whether every value in `[lo, hi]` is true (non-zero), every one false, or neither.
fn truth((lo, hi): (i128, i128)) -> Option<bool> {
    if lo == 0 && hi == 0 {
        Some(false)
    } else if lo > 0 || hi < 0 {
        Some(true)
    } else {
        None
    }
}

/// `[lo, hi]` of a condition whose truth is `t`.
fn of_truth(t: Option<bool>) -> (i128, i128) {
    match t {
        Some(true) => (1, 1),
        Some(false) => (0, 0),
        None => (0, 1),
    }
}

impl Node {
    /// Bounds of the value over boxes of `vars` = (q, k, n) ranges; `None` when they
    /// leave `i64` (where evaluation wraps) or divide. Conditions give 0, 1 or both.
    fn bounds(&self, vars: &[(i128, i128); 3]) -> Option<(i128, i128)> {
        let (lo, hi) = match self {
            Node::Num(v) => (i128::from(*v), i128::from(*v)),
            Node::Query => vars[0],
            Node::Key => vars[1],
            Node::Len => vars[2],
            Node::Neg(a) => {
                let (lo, hi) = a.bounds(vars)?;
                (-hi, -lo)
            }
            Node::Not(a) => of_truth(truth(a.bounds(vars)?).map(|t| !t)),
            Node::Abs(a) => match a.bounds(vars)? {
                (lo, hi) if lo >= 0 => (lo, hi),
                (lo, hi) if hi <= 0 => (-hi, -lo),
                (lo, hi) => (0, hi.max(-lo)),
            },
            Node::Bin(Op::And, a, b) => match truth(a.bounds(vars)?) {
                Some(false) => (0, 0),
                ta => match (ta, truth(b.bounds(vars)?)) {
                    (_, Some(false)) => (0, 0),
                    (Some(true), Some(true)) => (1, 1),
                    _ => (0, 1),
                },
            },
            Node::Bin(Op::Or, a, b) => match truth(a.bounds(vars)?) {
                Some(true) => (1, 1),
                ta => match (ta, truth(b.bounds(vars)?)) {
                    (_, Some(true)) => (1, 1),
                    (Some(false), Some(false)) => (0, 0),
                    _ => (0, 1),
                },
            },
            Node::Bin(op, a, b) => {
                let ((al, ah), (bl, bh)) = (a.bounds(vars)?, b.bounds(vars)?);
                let cmp = |always: bool, never: bool| match (always, never) {
                    (true, _) => (1, 1),
                    (_, true) => (0, 0),
                    _ => (0, 1),
                };
                match op {
                    Op::Add => (al + bl, ah + bh),
                    Op::Sub => (al - bh, ah - bl),
                    Op::Mul => {
                        let p = [al * bl, al * bh, ah * bl, ah * bh];
                        (p.into_iter().min()?, p.into_iter().max()?)
                    }
                    Op::Min => (al.min(bl), ah.min(bh)),
                    Op::Max => (al.max(bl), ah.max(bh)),
                    Op::Lt => cmp(ah < bl, al >= bh),
                    Op::Le => cmp(ah <= bl, al > bh),
                    Op::Gt => cmp(al > bh, ah <= bl),
                    Op::Ge => cmp(al >= bh, ah < bl),
                    Op::Eq => cmp(al == ah && bl == bh && al == bl, ah < bl || bh < al),
                    Op::Ne => cmp(ah < bl || bh < al, al == ah && bl == bh && al == bl),
                    // Only divisors that exclude 0 reach here (`may_divide`).
                    Op::Div if bl > 0 || bh < 0 => {
                        // Monotone in each operand on a one-signed divisor: the
                        // extremes lie at the corners.
                        let p =
                            [(al, bl), (al, bh), (ah, bl), (ah, bh)].map(|(x, y)| x.div_euclid(y));
                        (p.into_iter().min()?, p.into_iter().max()?)
                    }
                    // A box narrower than a constant divisor whose ends do not
                    // wrap: the remainders run from one end's to the other's.
                    Op::Rem
                        if bl == bh
                            && bl != 0
                            && ah - al < bl.abs()
                            && al.rem_euclid(bl) <= ah.rem_euclid(bl) =>
                    {
                        (al.rem_euclid(bl), ah.rem_euclid(bl))
                    }
                    Op::Rem if bl > 0 || bh < 0 => (0, bl.abs().max(bh.abs()) - 1),
                    Op::Div | Op::Rem | Op::And | Op::Or => return None,
                }
            }
        };
        let fits = |v: i128| i64::try_from(v).is_ok();
        (fits(lo) && fits(hi)).then_some((lo, hi))
    }

    /// Whether a `/` or `%` in it may meet a zero divisor over the `vars` box. Each
    /// node is checked once, and a divisor's bounds are read only once no division
    /// below it may divide (then [`Node::bounds`] holds for it): nested divisions cost
    /// depth x size, never twice per level.
    fn may_divide(&self, vars: &[(i128, i128); 3]) -> bool {
        match self {
            Node::Num(_) | Node::Query | Node::Key | Node::Len => false,
            Node::Neg(a) | Node::Not(a) | Node::Abs(a) => a.may_divide(vars),
            Node::Bin(op, a, b) => {
                a.may_divide(vars)
                    || b.may_divide(vars)
                    || (matches!(op, Op::Div | Op::Rem)
                        && b.bounds(vars).is_none_or(|(lo, hi)| lo <= 0 && hi >= 0))
            }
        }
    }

    /// Nodes in the tree.
    fn size(&self) -> u64 {
        match self {
            Node::Num(_) | Node::Query | Node::Key | Node::Len => 1,
            Node::Neg(a) | Node::Not(a) | Node::Abs(a) => 1 + a.size(),
            Node::Bin(_, a, b) => 1 + a.size() + b.size(),
        }
    }

    /// The value at `vars` = (q, k, n); conditions are 0 or 1 (the parser checked the
    /// types). `&&` and `||` evaluate their right side only when needed.
    fn eval(&self, vars: &[i64; 3]) -> Result<i64, DivisionByZero> {
        Ok(match self {
            Node::Num(v) => *v,
            Node::Query => vars[0],
            Node::Key => vars[1],
            Node::Len => vars[2],
            Node::Neg(a) => a.eval(vars)?.wrapping_neg(),
            Node::Not(a) => i64::from(a.eval(vars)? == 0),
            Node::Abs(a) => a.eval(vars)?.wrapping_abs(),
            Node::Bin(Op::And, a, b) => i64::from(a.eval(vars)? != 0 && b.eval(vars)? != 0),
            Node::Bin(Op::Or, a, b) => i64::from(a.eval(vars)? != 0 || b.eval(vars)? != 0),
            Node::Bin(op, a, b) => op.apply(a.eval(vars)?, b.eval(vars)?)?,
        })
    }
}

impl Op {
    fn apply(self, x: i64, y: i64) -> Result<i64, DivisionByZero> {
        Ok(match self {
            Op::Add => x.wrapping_add(y),
            Op::Sub => x.wrapping_sub(y),
            Op::Mul => x.wrapping_mul(y),
            Op::Div | Op::Rem if y == 0 => return Err(DivisionByZero),
            Op::Div => x.wrapping_div_euclid(y),
            Op::Rem => x.wrapping_rem_euclid(y),
            Op::Lt => i64::from(x < y),
            Op::Le => i64::from(x <= y),
            Op::Gt => i64::from(x > y),
            Op::Ge => i64::from(x >= y),
            Op::Eq => i64::from(x == y),
            Op::Ne => i64::from(x != y),
            Op::And => i64::from(x != 0 && y != 0),
            Op::Or => i64::from(x != 0 || y != 0),
            Op::Min => x.min(y),
            Op::Max => x.max(y),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expression's value at (q, k, n).
    fn at(text: &str, q: usize, k: usize, n: usize) -> bool {
        Expr::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .eval(q, k, n)
            .expect("no division by zero")
    }

    /// The error of a broken expression: (column, message).
    fn error(text: &str) -> (usize, String) {
        let e = Expr::parse(text).expect_err(text);
        (e.column, e.message)
    }

    /// The value of an expression without q, k or n.
    fn constant(text: &str) -> bool {
        at(text, 0, 0, 1)
    }

    #[test]
    fn precedence_follows_c() {
        assert!(at("1 + 2 * 3 == 7", 0, 0, 1));
        assert!(at("(1 + 2) * 3 == 9", 0, 0, 1));
        assert!(at("q - k - 1 == 2", 5, 2, 8), "left to right");
        assert!(at("q / 2 * 2 == 4", 5, 0, 8), "left to right");
        assert!(at("-q + 3 == 1", 2, 0, 8));
        assert!(
            constant("1 == 1 || 1 == 2 && 1 == 2"),
            "&& binds tighter than ||"
        );
        assert!(!constant("(1 == 1 || 1 == 2) && 1 == 2"));
        assert!(
            at("q < 4 == k < 4", 1, 2, 8),
            "comparisons bind tighter than =="
        );
        assert!(!at("q < 4 == k < 4", 1, 6, 8));
        assert!(at("!(q < k)", 3, 2, 8));
        assert!(at("!!(q == k)", 3, 3, 8));
        assert!(at("q+k>=n", 4, 4, 8), "spaces are optional");
        assert!(at("  q  <=\tk ", 1, 1, 8));
    }

    #[test]
    fn functions_and_remainders() {
        assert!(at("abs(q - k) == 3", 2, 5, 8));
        assert!(at("min(q, k) == 2 && max(q, k) == 5", 2, 5, 8));
        assert!(at("max(abs(q - 10), min(k, 3)) == 8", 2, 7, 16));
        assert!(at("abs ( q - k ) <= 8 || k < 2", 40, 1, 64));
        assert!(!at("abs(q - k) <= 8 || k < 2", 40, 20, 64));
        // Euclidean: the remainder is never negative.
        assert!(at("(q - k) % 4 == 3", 0, 1, 8));
        assert!(at("(q - k) / 2 == -1", 0, 1, 8));
        assert!(constant("-7 / 2 == -4 && -7 % 2 == 1 && 7 % -2 == 1"));
        assert!(at("q % 3 == 2 && n - 1 == 7", 5, 0, 8));
        assert!(at("q / 8 == k / 8", 9, 15, 32));
        assert!(!at("q / 8 == k / 8", 7, 8, 32));
    }

    #[test]
    fn division_by_zero_is_reported_where_it_is_evaluated() {
        let e = Expr::parse("q / (k - 3) >= 0").expect("parses");
        assert_eq!(e.eval(1, 3, 8), Err(DivisionByZero));
        assert_eq!(e.eval(1, 4, 8), Ok(true));
        let e = Expr::parse("q % k == 0").expect("parses");
        assert_eq!(e.eval(4, 0, 8), Err(DivisionByZero));
        // The right side of && and || runs only when needed.
        let e = Expr::parse("k != 0 && q / k >= 1").expect("parses");
        assert_eq!(e.eval(4, 0, 8), Ok(false));
        let e = Expr::parse("k == 0 || q % k == 0").expect("parses");
        assert_eq!(e.eval(4, 0, 8), Ok(true));
    }

    #[test]
    fn huge_values_wrap_instead_of_panicking() {
        assert!(constant("9223372036854775807 + 1 < 0"));
        assert!(constant(
            "-9223372036854775807 - 1 == (0 - 9223372036854775807 - 1) / -1"
        ));
        assert!(constant("abs(-9223372036854775807 - 1) < 0"));
    }

    #[test]
    fn types_are_checked() {
        let (column, message) = error("q + (k < 2)");
        assert_eq!(column, 5, "{message}");
        assert!(message.contains("`+` needs an integer"), "{message}");
        let (column, message) = error("abs(q < k) < 3");
        assert_eq!(column, 5, "{message}");
        assert!(message.contains("`abs` needs an integer"), "{message}");
        let (column, message) = error("q + k");
        assert_eq!(column, 1);
        assert!(message.contains("must be a condition"), "{message}");
        assert_eq!(error("!q").0, 2);
        assert_eq!(error("-(q < k)").0, 2);
        assert_eq!(error("(q < k) < 2").0, 1);
        assert_eq!(error("q < k == 1").0, 10);
        assert_eq!(error("k < 2 && q").0, 10);
        assert_eq!(error("min(q, k < 1) > 0").0, 8);
    }

    #[test]
    fn errors_point_at_the_column() {
        let (column, message) = error("abs(q - k) <= 8 ||");
        assert_eq!(column, 17, "{message}");
        assert!(
            message.contains("expected an operand after `||`"),
            "{message}"
        );
        let (column, message) = error("x < 3");
        assert_eq!(column, 1);
        assert!(message.contains("unknown name `x`"), "{message}");
        assert!(
            message.contains("abs(x), min(a, b) and max(a, b)"),
            "{message}"
        );
        let (column, message) = error("q < abs2(k)");
        assert_eq!(column, 5);
        assert!(message.contains("`abs2`"), "{message}");
        assert_eq!(error("(q < k").0, 1, "the unclosed parenthesis");
        assert_eq!(error("q < k)").0, 6);
        assert_eq!(error("q = k").0, 3);
        assert_eq!(error("q <").0, 3);
        assert_eq!(error("q < * k").0, 5);
        assert_eq!(error("q < k &").0, 7);
        assert_eq!(error("abs(q, k) < 1").0, 6);
        assert_eq!(error("min(q) < 1").0, 6);
        assert_eq!(error("min(q,").0, 6);
        assert_eq!(error("abs < 1").0, 1);
        assert_eq!(error("q k").0, 3);
        assert_eq!(error("q < 99999999999999999999").0, 5);
        assert_eq!(error("").0, 1);
        assert_eq!(error("   ").0, 1);
        // Columns count characters, not bytes.
        assert_eq!(error("q ≤ k").0, 3);
        assert_eq!(error("q < k || é").0, 10);
        let deep = format!("{}q < k{}", "(".repeat(100), ")".repeat(100));
        assert!(error(&deep).1.contains("nests more than"));
        assert_eq!(error(&"q".repeat(MAX_CHARS + 1)).0, MAX_CHARS + 1);
    }
}
