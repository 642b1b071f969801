//! Text → syntax tree → typed [`Expr`]. The grammar is the Python subset Qlib evaluates, with Python's
//! precedence: comparisons bind loosest, then `|`, `&`, `+ -`, `* /`, unary `-`, `**`. Typing resolves
//! operator names in the registry and checks each operand and literal parameter.

use super::ops::{self, Kind, OpDef};
use super::{Call, Expr, Param, ParseError, Span, Window};

/// Deepest nesting of parentheses, calls and signs; bounds the parser's recursion.
const MAX_NESTING: usize = 64;
/// Tallest expression tree (long `a + b + …` chains grow it too); bounds later recursive passes.
const MAX_DEPTH: usize = 256;

/// Names borrow the expression text: a set of 158 expressions parses per request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    Num { value: f64, int: bool },
    Field(&'a str),
    Ident(&'a str),
    LParen,
    RParen,
    Comma,
    Sym(&'static str),
    End,
}

struct Token<'a> {
    tok: Tok<'a>,
    start: usize,
    end: usize,
}

/// Two-character symbols first so `**` is not read as `*`.
const SYMBOLS: [&str; 13] = ["**", ">=", "<=", "==", "!=", "+", "-", "*", "/", ">", "<", "&", "|"];

/// Infix symbol → registry name.
fn infix_op(sym: &str) -> &'static str {
    match sym {
        "+" => "Add",
        "-" => "Sub",
        "*" => "Mul",
        "/" => "Div",
        "**" => "Power",
        ">" => "Gt",
        ">=" => "Ge",
        "<" => "Lt",
        "<=" => "Le",
        "==" => "Eq",
        "!=" => "Ne",
        "&" => "And",
        _ => "Or",
    }
}

fn error(text: &str, byte: usize, expected: impl Into<String>, found: impl Into<String>) -> ParseError {
    let column = text.get(..byte).map_or(byte, |s| s.chars().count()) + 1;
    ParseError { column, expected: expected.into(), found: found.into() }
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn tokenize(text: &str) -> Result<Vec<Token<'_>>, ParseError> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let Some(c) = rest.chars().next() else { break };
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let mut j = i;
            let mut int = true;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            if b.get(j) == Some(&b'.') {
                int = false;
                j += 1;
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
            }
            if matches!(b.get(j), Some(b'e' | b'E')) {
                int = false;
                j += 1;
                if matches!(b.get(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                let digits = j;
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                if j == digits {
                    return Err(error(text, j, "exponent digits", describe_at(text, j)));
                }
            }
            let lit = &text[i..j];
            let value = lit.parse::<f64>().map_err(|_| error(text, i, "a number", format!("`{lit}`")))?;
            i = j;
            Tok::Num { value, int }
        } else if c == '$' {
            if rest.starts_with("$$") {
                return Err(error(
                    text,
                    i,
                    "a field such as `$close` (point-in-time `$$` fields are not supported)",
                    "`$$`",
                ));
            }
            let len = rest[1..].find(|c: char| !is_name_char(c)).unwrap_or(rest.len() - 1);
            if len == 0 {
                return Err(error(text, i + 1, "a field name after `$`", describe_at(text, i + 1)));
            }
            i += 1 + len;
            Tok::Field(&rest[1..1 + len])
        } else if c == '_' || c.is_alphabetic() {
            let name = &rest[..rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len())];
            i += name.len();
            Tok::Ident(name)
        } else if c == '(' || c == ')' || c == ',' {
            i += 1;
            match c {
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                _ => Tok::Comma,
            }
        } else if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            i += sym.len();
            Tok::Sym(sym)
        } else {
            return Err(error(text, i, "an operand, an operator or a parenthesis", format!("`{c}`")));
        };
        out.push(Token { tok, start, end: i });
    }
    out.push(Token { tok: Tok::End, start: text.len(), end: text.len() });
    Ok(out)
}

/// How the character at `byte` reads in an error message.
fn describe_at(text: &str, byte: usize) -> String {
    text.get(byte..)
        .and_then(|s| s.chars().next())
        .map_or_else(|| "end of expression".to_string(), |c| format!("`{c}`"))
}

/// Untyped syntax, with byte spans for error messages.
enum Syn<'a> {
    Num { value: f64, int: bool },
    Field(&'a str),
    Call { name: &'a str, args: Vec<Node<'a>> },
    Neg(Box<Node<'a>>),
    Infix { op: &'static str, lhs: Box<Node<'a>>, rhs: Box<Node<'a>> },
}

struct Node<'a> {
    syn: Syn<'a>,
    start: usize,
    end: usize,
    /// Height of the tree under this node; bounded so later recursive passes cannot overflow.
    depth: usize,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token<'a> {
        let last = self.toks.len().saturating_sub(1);
        &self.toks[self.pos.min(last)]
    }

    fn bump(&mut self) -> usize {
        let start = self.peek().start;
        self.pos += 1;
        start
    }

    fn found(&self) -> String {
        let t = self.peek();
        match t.tok {
            Tok::End => "end of expression".to_string(),
            _ => format!("`{}`", &self.text[t.start..t.end]),
        }
    }

    fn fail<T>(&self, expected: &str) -> Result<T, ParseError> {
        Err(error(self.text, self.peek().start, expected, self.found()))
    }

    fn peek_sym(&self, syms: &[&str]) -> Option<&'static str> {
        match self.peek().tok {
            Tok::Sym(s) if syms.contains(&s) => Some(s),
            _ => None,
        }
    }

    /// Rejects trees deeper than [`MAX_DEPTH`], so later recursive passes cannot overflow the stack.
    fn check_depth(&self, start: usize, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(error(
                self.text,
                start,
                format!("an expression tree at most {MAX_DEPTH} levels deep"),
                "a deeper one",
            ));
        }
        Ok(())
    }

    fn infix(&self, op: &'static str, lhs: Node<'a>, rhs: Node<'a>) -> Result<Node<'a>, ParseError> {
        let (start, end) = (lhs.start, rhs.end);
        let depth = 1 + lhs.depth.max(rhs.depth);
        self.check_depth(start, depth)?;
        Ok(Node { syn: Syn::Infix { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, start, end, depth })
    }

    /// Left-associative level: `next (sym next)*`.
    fn left_assoc(
        &mut self,
        syms: &[&str],
        next: fn(&mut Self) -> Result<Node<'a>, ParseError>,
    ) -> Result<Node<'a>, ParseError> {
        let mut lhs = next(self)?;
        while let Some(sym) = self.peek_sym(syms) {
            self.bump();
            let rhs = next(self)?;
            lhs = self.infix(infix_op(sym), lhs, rhs)?;
        }
        Ok(lhs)
    }

    /// Runs a recursive step, bounding the parser's own recursion on hostile input.
    fn descend(&mut self, step: fn(&mut Self) -> Result<Node<'a>, ParseError>) -> Result<Node<'a>, ParseError> {
        if self.depth >= MAX_NESTING {
            return self.fail(&format!("at most {MAX_NESTING} levels of nesting"));
        }
        self.depth += 1;
        let node = step(self);
        self.depth -= 1;
        node
    }

    fn expr(&mut self) -> Result<Node<'a>, ParseError> {
        self.descend(Self::comparison)
    }

    fn comparison(&mut self) -> Result<Node<'a>, ParseError> {
        const CMP: [&str; 6] = [">", ">=", "<", "<=", "==", "!="];
        let lhs = self.bit_or()?;
        let Some(sym) = self.peek_sym(&CMP) else { return Ok(lhs) };
        self.bump();
        let rhs = self.bit_or()?;
        if self.peek_sym(&CMP).is_some() {
            // Python would chain `a < b < c` into `(a < b) and (b < c)`, which Qlib silently mis-evaluates.
            return self.fail("parentheses around each comparison (chained comparisons are not supported)");
        }
        self.infix(infix_op(sym), lhs, rhs)
    }

    fn bit_or(&mut self) -> Result<Node<'a>, ParseError> {
        self.left_assoc(&["|"], Self::bit_and)
    }

    fn bit_and(&mut self) -> Result<Node<'a>, ParseError> {
        self.left_assoc(&["&"], Self::arith)
    }

    fn arith(&mut self) -> Result<Node<'a>, ParseError> {
        self.left_assoc(&["+", "-"], Self::term)
    }

    fn term(&mut self) -> Result<Node<'a>, ParseError> {
        self.left_assoc(&["*", "/"], Self::unary)
    }

    fn unary(&mut self) -> Result<Node<'a>, ParseError> {
        match self.peek_sym(&["-", "+"]) {
            Some(sym) => {
                let start = self.bump();
                let arg = self.descend(Self::unary)?;
                if sym == "+" {
                    return Ok(Node { start, ..arg });
                }
                let (end, depth) = (arg.end, arg.depth + 1);
                self.check_depth(start, depth)?;
                Ok(Node { syn: Syn::Neg(Box::new(arg)), start, end, depth })
            }
            None => self.power(),
        }
    }

    fn power(&mut self) -> Result<Node<'a>, ParseError> {
        let base = self.primary()?;
        if self.peek_sym(&["**"]).is_some() {
            self.bump();
            // Python: the exponent may carry its own sign and binds to the right.
            let exp = self.descend(Self::unary)?;
            return self.infix("Power", base, exp);
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Node<'a>, ParseError> {
        let t = self.peek();
        let (start, end) = (t.start, t.end);
        match t.tok {
            Tok::Num { value, int } => {
                self.bump();
                Ok(Node { syn: Syn::Num { value, int }, start, end, depth: 1 })
            }
            Tok::Field(name) => {
                self.bump();
                Ok(Node { syn: Syn::Field(name), start, end, depth: 1 })
            }
            Tok::Ident(name) => {
                self.bump();
                if self.peek().tok != Tok::LParen {
                    return self.fail(&format!("`(` after operator `{name}`"));
                }
                self.bump();
                let mut args = Vec::new();
                if self.peek().tok != Tok::RParen {
                    loop {
                        args.push(self.expr()?);
                        match self.peek().tok {
                            Tok::Comma => {
                                self.bump();
                            }
                            Tok::RParen => break,
                            _ => return self.fail(&format!("`,` or `)` in the arguments of `{name}`")),
                        }
                    }
                }
                let end = self.peek().end;
                self.bump();
                let depth = 1 + args.iter().map(|a| a.depth).max().unwrap_or(0);
                self.check_depth(start, depth)?;
                Ok(Node { syn: Syn::Call { name, args }, start, end, depth })
            }
            Tok::LParen => {
                self.bump();
                let inner = self.expr()?;
                if self.peek().tok != Tok::RParen {
                    return self.fail("`)`");
                }
                let end = self.peek().end;
                self.bump();
                Ok(Node { start, end, ..inner })
            }
            _ => self.fail("an operand: a number, a `$field`, an operator call or `(`"),
        }
    }
}

/// Parses and types expression text.
pub(super) fn parse(text: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(text)?;
    let mut p = Parser { text, toks, pos: 0, depth: 0 };
    let root = p.expr()?;
    if p.peek().tok != Tok::End {
        return p.fail("an operator or the end of the expression");
    }
    Typer { text }.expr(&root)
}

/// Resolves operators in the registry and checks operands and literal parameters.
struct Typer<'a> {
    text: &'a str,
}

impl Typer<'_> {
    fn err<T>(&self, node: &Node, expected: impl Into<String>) -> Result<T, ParseError> {
        let found = format!("`{}`", self.text.get(node.start..node.end).unwrap_or_default());
        Err(error(self.text, node.start, expected, found))
    }

    fn expr(&self, node: &Node) -> Result<Expr, ParseError> {
        match &node.syn {
            Syn::Num { value, .. } => Ok(Expr::Const(*value)),
            Syn::Field(name) => Ok(Expr::Field(name.to_lowercase())),
            Syn::Neg(arg) => match self.expr(arg)? {
                Expr::Const(v) => Ok(Expr::Const(-v)),
                e => Ok(apply(self.builtin(node, "Neg")?, vec![e], Param::None)),
            },
            Syn::Infix { op, lhs, rhs } => {
                let args = vec![self.expr(lhs)?, self.expr(rhs)?];
                Ok(apply(self.builtin(node, op)?, args, Param::None))
            }
            Syn::Call { name, args } => {
                let Some(op) = ops::lookup(name) else {
                    let known: Vec<&str> = ops::OPERATORS.iter().map(|o| o.name).collect();
                    return Err(error(
                        self.text,
                        node.start,
                        format!("an operator ({})", known.join(", ")),
                        format!("`{name}`"),
                    ));
                };
                self.call(node, op, args)
            }
        }
    }

    /// A registry entry the grammar itself produces (infix and unary minus); the unit tests check
    /// that the table has them all.
    fn builtin(&self, node: &Node, name: &str) -> Result<&'static OpDef, ParseError> {
        match ops::lookup(name) {
            Some(op) => Ok(op),
            None => self.err(node, format!("an expression without `{name}` (not in the operator registry)")),
        }
    }

    fn call(&self, node: &Node, op: &'static OpDef, args: &[Node]) -> Result<Expr, ParseError> {
        let shape = match op.kind {
            Kind::Unary(_) => "(x)",
            Kind::Binary(_) => "(x, y)",
            Kind::Ternary(_) => "(condition, x, y)",
            Kind::Lag(_) => "(x, N)",
            Kind::Rolling(_) | Kind::Smoothing(_) => "(x, N)",
            Kind::RollingQuantile(_) => "(x, N, q)",
            Kind::Pair(_) => "(x, y, N)",
        };
        let arity = shape.matches(',').count() + 1;
        if args.len() != arity {
            return self.err(node, format!("{arity} argument(s): {}{shape}", op.name));
        }
        let ex = |i: usize| self.expr(&args[i]);
        let (operands, param) = match op.kind {
            Kind::Unary(_) => (vec![ex(0)?], Param::None),
            Kind::Binary(_) => (vec![ex(0)?, ex(1)?], Param::None),
            Kind::Ternary(_) => (vec![ex(0)?, ex(1)?, ex(2)?], Param::None),
            Kind::Lag(_) => match int_literal(&args[1]) {
                Some(n) => (vec![ex(0)?], Param::Lag(n)),
                None => return self.err(&args[1], format!("an integer lag as argument 2 of {}", op.name)),
            },
            Kind::Rolling(_) => (vec![ex(0)?], Param::Window(self.window(op, &args[1], 2)?)),
            Kind::RollingQuantile(_) => {
                let w = self.window(op, &args[1], 2)?;
                match num_literal(&args[2]) {
                    Some(q) if (0.0..=1.0).contains(&q) => (vec![ex(0)?], Param::Quantile(w, q)),
                    _ => return self.err(&args[2], format!("a probability in [0, 1] as argument 3 of {}", op.name)),
                }
            }
            Kind::Pair(_) => (vec![ex(0)?, ex(1)?], Param::Window(self.window(op, &args[2], 3)?)),
            Kind::Smoothing(_) => {
                let span = match (int_literal(&args[1]), num_literal(&args[1])) {
                    (Some(n), _) if n >= 1 => usize::try_from(n).ok().map(Span::Rows),
                    (None, Some(a)) if a > 0.0 && a < 1.0 => Some(Span::Alpha(a)),
                    _ => None,
                };
                match span {
                    Some(s) => (vec![ex(0)?], Param::Span(s)),
                    None => {
                        let want = format!(
                            "a span (integer ≥ 1) or a smoothing factor in (0, 1) as argument 2 of {}",
                            op.name
                        );
                        return self.err(&args[1], want);
                    }
                }
            }
        };
        Ok(apply(op, operands, param))
    }

    fn window(&self, op: &OpDef, node: &Node, at: usize) -> Result<Window, ParseError> {
        match int_literal(node).map(usize::try_from) {
            Some(Ok(0)) => Ok(Window::Expanding),
            Some(Ok(n)) => Ok(Window::Last(n)),
            _ => self.err(node, format!("a window (integer ≥ 0, 0 = expanding) as argument {at} of {}", op.name)),
        }
    }
}

/// Builds a call, folding element-wise operators whose operands are all constants (as Python would).
fn apply(op: &'static OpDef, args: Vec<Expr>, param: Param) -> Expr {
    let consts: Option<Vec<f64>> = args.iter().map(|a| if let Expr::Const(v) = a { Some(*v) } else { None }).collect();
    match (op.kind, consts.as_deref()) {
        (Kind::Unary(f), Some(&[a])) => Expr::Const(f(a)),
        (Kind::Binary(f), Some(&[a, b])) => Expr::Const(f(a, b)),
        (Kind::Ternary(f), Some(&[c, a, b])) => Expr::Const(f(c, a, b)),
        _ => Expr::Call(Box::new(Call { op, args, param })),
    }
}

/// An integer literal, possibly signed: `5`, `-2`.
fn int_literal(node: &Node) -> Option<i64> {
    match &node.syn {
        Syn::Num { value, int: true } if value.abs() < 9.0e15 => Some(*value as i64),
        Syn::Neg(inner) => int_literal(inner).map(|v| -v),
        _ => None,
    }
}

/// Any numeric literal, possibly signed.
fn num_literal(node: &Node) -> Option<f64> {
    match &node.syn {
        Syn::Num { value, .. } => Some(*value),
        Syn::Neg(inner) => num_literal(inner).map(|v| -v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        parse(s).unwrap().to_string()
    }

    #[test]
    fn infix_names_are_registered() {
        for s in SYMBOLS {
            assert!(ops::lookup(infix_op(s)).is_some(), "{s}");
        }
        assert!(ops::lookup("Neg").is_some());
    }

    #[test]
    fn precedence_follows_python() {
        assert_eq!(canon("1 + $a * 2"), "Add(1,Mul($a,2))");
        assert_eq!(canon("$a - $b - $c"), "Sub(Sub($a,$b),$c)");
        assert_eq!(canon("$a > $b + 1"), "Gt($a,Add($b,1))");
        assert_eq!(canon("($a > 1) & ($b < 2) | $c"), "Or(And(Gt($a,1),Lt($b,2)),$c)");
        assert_eq!(canon("-$a ** 2"), "Neg(Power($a,2))");
        assert_eq!(canon("$a ** -1"), "Power($a,-1)");
        assert_eq!(canon("2*3 + $x"), "Add(6,$x)");
        assert_eq!(canon("Ref($close, -2)/Ref($close, -1) - 1"), "Sub(Div(Ref($close,-2),Ref($close,-1)),1)");
        assert_eq!(canon("($high-Greater($open, $close))/$open"), "Div(Sub($high,Greater($open,$close)),$open)");
        assert_eq!(canon("Mean($close, 0)"), "Mean($close,0)");
        assert_eq!(canon("EMA($close, 0.5) + EMA($close, 12)"), "Add(EMA($close,0.5),EMA($close,12))");
        assert_eq!(canon(".5e1 + 5."), "10");
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = parse("Mean($close, 5").unwrap_err();
        assert_eq!((e.column, e.found.as_str()), (15, "end of expression"));
        assert!(e.expected.contains("`,` or `)`"), "{e}");

        let e = parse("Mean($close, 2.5)").unwrap_err();
        assert_eq!(e.column, 14);
        assert!(e.expected.contains("window"), "{e}");

        let e = parse("Foo($close)").unwrap_err();
        assert_eq!((e.column, e.found.as_str()), (1, "`Foo`"));

        let e = parse("Corr($close, 5)").unwrap_err();
        assert!(e.expected.starts_with("3 argument(s): Corr(x, y, N)"), "{e}");

        let e = parse("$close $open").unwrap_err();
        assert_eq!((e.column, e.found.as_str()), (8, "`$open`"));

        let e = parse("$a < $b < $c").unwrap_err();
        assert!(e.expected.contains("chained"), "{e}");

        assert_eq!(parse("Quantile($c, 5, 1.5)").unwrap_err().column, 17);
        assert_eq!(parse("$close # 1").unwrap_err().found, "`#`");
        assert_eq!(parse("1e+").unwrap_err().expected, "exponent digits");
        assert_eq!(parse("$").unwrap_err().column, 2);
        assert!(parse("Ref($close)").is_err());
        assert!(parse("Abs").is_err());
        assert!(parse("").is_err());
        assert!(parse("EMA($close, 1.5)").is_err());
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(parse("\"é\"").unwrap_err().column, 1);
        assert_eq!(parse("$é + ?").unwrap_err().column, 6);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}$a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).unwrap_err().expected.contains("nesting"));
        let minus = format!("{}$a", "-".repeat(10_000));
        assert!(parse(&minus).is_err());
        let power = format!("$a{}", "**$a".repeat(10_000));
        assert!(parse(&power).is_err());
        let chain = format!("$a{}", "+$a".repeat(10_000));
        assert!(parse(&chain).unwrap_err().expected.contains("levels deep"));
        let calls = format!("{}$a{}", "Abs(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&calls).is_err());
        // The tallest accepted trees survive every recursive pass (typing, display, planning, drop).
        for text in [format!("$a{}", "+$a".repeat(250)), format!("{}$a{}", "Abs(".repeat(60), ")".repeat(60))] {
            let e = parse(&text).unwrap();
            assert!(!e.to_string().is_empty());
            assert!(super::super::Plan::new([&e]).node_count() > 1);
        }
    }
}
