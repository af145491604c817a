//! The parser of mask expressions ([`super::expr`]): text to a typed tree, or the
//! byte offset of the first problem and what is wrong there.
//!
//! Tokens are read with `winnow` on a located input (its offsets give the column);
//! the precedence levels (C's order) are climbed by hand, which keeps each message
//! specific ("expected an operand after `||`", "`abs` needs an integer"). Types are
//! checked while parsing: integers and conditions never mix.

use winnow::Parser;
use winnow::ascii::{digit1, multispace0};
use winnow::error::ParserError;
use winnow::stream::{LocatingSlice, Location, Stream};
use winnow::token::{literal, take_while};

/// Deepest nesting of parentheses, calls and prefix operators (bounds the parser's
/// recursion on hostile input).
const MAX_DEPTH: usize = 64;

/// The names an expression may use, as error messages list them.
const NAMES: &str =
    "q (query position), k (key position), n (sequence length), abs(x), min(a, b) and max(a, b)";

/// A parsed expression; conditions evaluate to 0 or 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Node {
    Num(i64),
    Query,
    Key,
    Len,
    Neg(Box<Node>),
    Not(Box<Node>),
    Abs(Box<Node>),
    Bin(Op, Box<Node>, Box<Node>),
}

/// A binary operator (`min` and `max` included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Mul,
    Div,
    Rem,
    Add,
    Sub,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Min,
    Max,
}

/// Binary operators by precedence, loosest first (C's order); longer spellings come
/// first so that `<=` is not read as `<`.
const LEVELS: [&[(&str, Op)]; 6] = [
    &[("||", Op::Or)],
    &[("&&", Op::And)],
    &[("==", Op::Eq), ("!=", Op::Ne)],
    &[("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)],
    &[("+", Op::Add), ("-", Op::Sub)],
    &[("*", Op::Mul), ("/", Op::Div), ("%", Op::Rem)],
];

/// What a subexpression yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Int,
    Bool,
}

impl Ty {
    fn describe(self) -> &'static str {
        match self {
            Ty::Int => "an integer",
            Ty::Bool => "a condition (true or false)",
        }
    }
}

/// A parsed subexpression, its type and the byte offset where it starts.
struct Typed {
    node: Node,
    ty: Ty,
    at: usize,
}

type Input<'a> = LocatingSlice<&'a str>;

/// A parse failure at a byte offset: winnow's error type for this parser.
#[derive(Debug)]
pub(super) struct Syntax {
    /// Byte offset in the text.
    pub(super) at: usize,
    /// What is wrong there.
    pub(super) message: String,
}

impl Syntax {
    fn new(at: usize, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
        }
    }
}

impl<'a> ParserError<Input<'a>> for Syntax {
    type Inner = Self;

    fn from_input(input: &Input<'a>) -> Self {
        Self::new(input.current_token_start(), "unexpected text")
    }

    fn into_inner(self) -> Result<Self::Inner, Self> {
        Ok(self)
    }
}

type PResult<T> = Result<T, Syntax>;

fn space(input: &mut Input<'_>) {
    // Never fails: zero spaces are fine.
    let _: PResult<&str> = multispace0(input);
}

/// The next token, for messages: a name or number, one character, or the end.
fn found(input: &Input<'_>) -> String {
    let rest = input.peek_finish();
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match rest.chars().next() {
        None => "the end".into(),
        Some(_) if !word.is_empty() => format!("`{word}`"),
        Some(c) => format!("`{c}`"),
    }
}

/// Parses `text`: one condition, then nothing.
pub(super) fn parse(text: &str) -> Result<Node, Syntax> {
    let input = &mut LocatingSlice::new(text);
    let expr = level(input, 0, 0)?;
    space(input);
    if let Some(c) = input.peek_token() {
        let message = match c {
            ')' => "this `)` closes no `(`".to_string(),
            '=' => "`=` is not an operator: write `==` to compare".into(),
            '|' => "write `||` for \"or\"".into(),
            '&' => "write `&&` for \"and\"".into(),
            _ => format!(
                "expected an operator (* / % + - < <= > >= == != && ||) or the end, found {}",
                found(input)
            ),
        };
        return Err(Syntax::new(input.current_token_start(), message));
    }
    if expr.ty != Ty::Bool {
        return Err(Syntax::new(
            expr.at,
            "the mask must be a condition, true where the query sees the key (e.g. \
             `abs(q - k) <= 8`), but this is an integer",
        ));
    }
    Ok(expr.node)
}

/// Binary level `l` (0 = `||`): operands of the next level joined left to right;
/// past the last level, a prefixed operand.
fn level(input: &mut Input<'_>, l: usize, depth: usize) -> PResult<Typed> {
    let Some(ops) = LEVELS.get(l) else {
        return prefix(input, depth);
    };
    let mut left = level(input, l + 1, depth)?;
    loop {
        space(input);
        let at = input.current_token_start();
        let Some((text, op)) = operator(input, ops) else {
            return Ok(left);
        };
        let right = operand(input, l + 1, depth, text, at)?;
        left = join(op, text, left, right)?;
    }
}

/// One of `ops`, consumed; `None` (nothing consumed) when none is next.
fn operator(input: &mut Input<'_>, ops: &[(&'static str, Op)]) -> Option<(&'static str, Op)> {
    for &(text, op) in ops {
        let start = input.checkpoint();
        let matched: PResult<&str> = literal(text).parse_next(input);
        if matched.is_ok() {
            return Some((text, op));
        }
        input.reset(&start);
    }
    None
}

/// The operand of level `l` after the token `after` at byte `at`: an expression
/// that ends there is refused at that token.
fn operand(
    input: &mut Input<'_>,
    l: usize,
    depth: usize,
    after: &str,
    at: usize,
) -> PResult<Typed> {
    space(input);
    if input.eof_offset() == 0 {
        return Err(Syntax::new(
            at,
            format!("expected an operand after `{after}`"),
        ));
    }
    level(input, l, depth)
}

/// `t` must be of type `want` to be an operand of `what`.
fn expect(t: &Typed, want: Ty, what: &str) -> PResult<()> {
    if t.ty == want {
        return Ok(());
    }
    let hint = match want {
        Ty::Bool => " (compare it, e.g. `k < 2`)",
        Ty::Int => "",
    };
    Err(Syntax::new(
        t.at,
        format!(
            "`{what}` needs {}, but this is {}{hint}",
            want.describe(),
            t.ty.describe()
        ),
    ))
}

/// `left op right`, type-checked.
fn join(op: Op, text: &str, left: Typed, right: Typed) -> PResult<Typed> {
    let ty = match op {
        Op::And | Op::Or => {
            expect(&left, Ty::Bool, text)?;
            expect(&right, Ty::Bool, text)?;
            Ty::Bool
        }
        Op::Eq | Op::Ne => {
            if left.ty != right.ty {
                return Err(Syntax::new(
                    right.at,
                    format!(
                        "`{text}` compares two integers or two conditions, but this is {} and \
                         the left side is {}",
                        right.ty.describe(),
                        left.ty.describe()
                    ),
                ));
            }
            Ty::Bool
        }
        _ => {
            expect(&left, Ty::Int, text)?;
            expect(&right, Ty::Int, text)?;
            if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) {
                Ty::Bool
            } else {
                Ty::Int
            }
        }
    };
    Ok(Typed {
        node: Node::Bin(op, Box::new(left.node), Box::new(right.node)),
        ty,
        at: left.at,
    })
}

/// `-x`, `!c` or an atom.
fn prefix(input: &mut Input<'_>, depth: usize) -> PResult<Typed> {
    space(input);
    let at = input.current_token_start();
    if depth > MAX_DEPTH {
        return Err(Syntax::new(
            at,
            format!("the expression nests more than {MAX_DEPTH} levels deep"),
        ));
    }
    for (text, want) in [("-", Ty::Int), ("!", Ty::Bool)] {
        let start = input.checkpoint();
        let matched: PResult<&str> = literal(text).parse_next(input);
        if matched.is_err() {
            input.reset(&start);
            continue;
        }
        let inner = operand(input, LEVELS.len(), depth + 1, text, at)?;
        expect(&inner, want, text)?;
        let node = Box::new(inner.node);
        let node = match want {
            Ty::Int => Node::Neg(node),
            Ty::Bool => Node::Not(node),
        };
        return Ok(Typed { node, ty: want, at });
    }
    atom(input, depth)
}

/// A number, a name, a call or a parenthesised expression.
fn atom(input: &mut Input<'_>, depth: usize) -> PResult<Typed> {
    let at = input.current_token_start();
    match input.peek_token() {
        Some('(') => {
            input.next_token();
            let inner = operand(input, 0, depth + 1, "(", at)?;
            close(input, at)?;
            Ok(Typed { at, ..inner })
        }
        Some(c) if c.is_ascii_digit() => {
            let digits = digit1::<_, Syntax>(input)?;
            let value = digits.parse::<i64>().map_err(|_| {
                Syntax::new(
                    at,
                    format!("{digits} is too large: numbers are at most {}", i64::MAX),
                )
            })?;
            Ok(Typed {
                node: Node::Num(value),
                ty: Ty::Int,
                at,
            })
        }
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            let name =
                take_while::<_, _, Syntax>(1.., |c: char| c.is_ascii_alphanumeric() || c == '_')
                    .parse_next(input)?;
            name_or_call(input, name, at, depth)
        }
        _ => Err(Syntax::new(
            at,
            format!(
                "expected an operand (a number, q, k, n, abs(..), min(..), max(..) or a \
                 parenthesis), found {}",
                found(input)
            ),
        )),
    }
}

/// The `)` of the `(` at byte `open`.
fn close(input: &mut Input<'_>, open: usize) -> PResult<()> {
    space(input);
    match input.peek_token() {
        Some(')') => {
            input.next_token();
            Ok(())
        }
        None => Err(Syntax::new(open, "this `(` is never closed")),
        Some(_) => Err(Syntax::new(
            input.current_token_start(),
            format!("expected an operator or `)`, found {}", found(input)),
        )),
    }
}

/// A variable, or a function's call after its name.
fn name_or_call(input: &mut Input<'_>, name: &str, at: usize, depth: usize) -> PResult<Typed> {
    let variable = match name {
        "q" => Some(Node::Query),
        "k" => Some(Node::Key),
        "n" => Some(Node::Len),
        _ => None,
    };
    if let Some(node) = variable {
        return Ok(Typed {
            node,
            ty: Ty::Int,
            at,
        });
    }
    let (arity, takes) = match name {
        "abs" => (1, "one argument: abs(x)"),
        "min" | "max" => (2, "two arguments: min(a, b), max(a, b)"),
        _ => {
            return Err(Syntax::new(
                at,
                format!("unknown name `{name}`: the names are {NAMES}"),
            ));
        }
    };
    space(input);
    let open = input.current_token_start();
    if input.peek_token() != Some('(') {
        return Err(Syntax::new(
            at,
            format!("`{name}` is a function, it takes {takes}"),
        ));
    }
    input.next_token();
    let (mut after, mut after_at) = ("(", open);
    let mut args = Vec::with_capacity(arity);
    loop {
        let arg = operand(input, 0, depth + 1, after, after_at)?;
        expect(&arg, Ty::Int, name)?;
        args.push(arg.node);
        space(input);
        let here = input.current_token_start();
        match input.peek_token() {
            Some(',') if args.len() < arity => {
                input.next_token();
                (after, after_at) = (",", here);
            }
            Some(')') if args.len() == arity => {
                input.next_token();
                break;
            }
            Some(',' | ')') => {
                return Err(Syntax::new(here, format!("`{name}` takes {takes}")));
            }
            None => return Err(Syntax::new(open, "this `(` is never closed")),
            Some(_) => {
                return Err(Syntax::new(
                    here,
                    format!("expected an operator, `,` or `)`, found {}", found(input)),
                ));
            }
        }
    }
    let mut args = args.into_iter().map(Box::new);
    let (Some(a), b) = (args.next(), args.next()) else {
        return Err(Syntax::new(at, format!("`{name}` takes {takes}")));
    };
    let node = match (name, b) {
        ("min", Some(b)) => Node::Bin(Op::Min, a, b),
        ("max", Some(b)) => Node::Bin(Op::Max, a, b),
        _ => Node::Abs(a),
    };
    Ok(Typed {
        node,
        ty: Ty::Int,
        at,
    })
}
