//! Compiles expressions into one DAG in which every distinct sub-expression is a single node (hash
//! consing over the typed tree), then evaluates it over one symbol's columns, freeing each
//! intermediate column once its last consumer has run. Each node also carries the numpy dtype Qlib
//! would give it, which [`Precision::QlibF32`] uses to round where Qlib stores float32.

use std::borrow::Cow;
// Keys are small (node ids, names): Fx hashing, not SipHash, which was a tenth of compiling Alpha158.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::ops::{self, Dtype, Kind, OpDef};
use super::rolling::{self, Fit};
use super::{EvalError, Expr, FieldSource, Param, Precision, Span, Window};

/// Expressions compiled together: each distinct sub-expression (e.g. `Ref($close,1)` across all of
/// Alpha158) is one node, computed once per evaluation.
#[derive(Debug, Clone)]
pub struct Plan {
    nodes: Vec<Node>,
    outputs: Vec<usize>,
    /// How many times each node is read (by other nodes and as an output).
    reads: Vec<usize>,
    /// The dtype Qlib would store each node's values in.
    types: Vec<Ty>,
    /// Groups of rolling nodes computed together in one pass (see [`batches`]).
    batches: Vec<Vec<usize>>,
    /// Each node's group in `batches`, if it has one.
    batch_of: Vec<Option<usize>>,
    /// `(operand, window)` of each `Rsquare` whose blanking std a `Std` batch computes first: that
    /// batch keeps a copy of the column for it (see [`std_reuse`]).
    std_reuse: HashSet<(usize, Window)>,
}

/// The `(operand, window)` pairs where a `Std` batch runs before a `Rsquare` of the same operand and
/// window, which needs exactly that std (`rolling::rsquare` blanks flat windows by it).
fn std_reuse(nodes: &[Node], batches: &[Vec<usize>]) -> HashSet<(usize, Window)> {
    let mut stds = HashSet::default();
    let mut reuse = HashSet::default();
    for group in batches {
        for &id in group {
            match &nodes[id] {
                Node::Call { op, args, param: Param::Window(w) } if op.name == "Std" => {
                    stds.insert((args[0], *w));
                }
                Node::Call { op, args, param: Param::Window(w) }
                    if op.name == "Rsquare" && stds.contains(&(args[0], *w)) =>
                {
                    reuse.insert((args[0], *w));
                }
                _ => {}
            }
        }
    }
    reuse
}

/// Rolling nodes that one pass over their shared operands computes together: `Mean`, `Sum`, `Std`,
/// `Var`, `Max`, `Min`, `IdxMax`, `IdxMin`, `Corr` or `Cov` of the same operands over several fixed
/// windows, any `Slope`/`Rsquare`/`Resi` of one operand (one regression pass per window serves all
/// three), and `Quantile`s and `Rank`s of one operand and window.
fn batches(nodes: &[Node]) -> (Vec<Vec<usize>>, Vec<Option<usize>>) {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<(&str, &[usize], Option<Window>), usize> = HashMap::default();
    for (id, node) in nodes.iter().enumerate() {
        let Node::Call { op, args, param } = node else { continue };
        let key = match (op.name, param) {
            (
                "Mean" | "Sum" | "Std" | "Var" | "Max" | "Min" | "IdxMax" | "IdxMin" | "Corr" | "Cov",
                Param::Window(Window::Last(_)),
            ) => (op.name, &args[..], None),
            ("Slope" | "Rsquare" | "Resi", Param::Window(_)) => ("Regression", &args[..], None),
            // Ranks and quantiles of one window share its sorted values.
            ("Quantile", Param::Quantile(w, _)) | ("Rank", Param::Window(w)) => ("Sorted", &args[..], Some(*w)),
            _ => continue,
        };
        let g = *by_key.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(id);
    }
    groups.retain(|g| g.len() > 1);
    let mut batch_of = vec![None; nodes.len()];
    for (g, members) in groups.iter().enumerate() {
        for &id in members {
            batch_of[id] = Some(g);
        }
    }
    (groups, batch_of)
}

/// numpy dtype of a node's values in Qlib.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    F32,
    F64,
    Bool,
    /// A Python number: takes the dtype of the array it meets.
    Scalar,
}

/// numpy's promotion of operand dtypes (NEP 50: Python numbers do not widen float32 arrays).
fn promote(tys: &[Ty]) -> Ty {
    if tys.contains(&Ty::F64) {
        Ty::F64
    } else if tys.contains(&Ty::F32) {
        Ty::F32
    } else if tys.iter().all(|&t| t == Ty::Scalar) {
        Ty::Scalar
    } else {
        Ty::F64
    }
}

fn result_ty(op: &OpDef, args: &[Ty]) -> Ty {
    match op.dtype {
        Dtype::Float32 => Ty::F32,
        Dtype::Float64 => Ty::F64,
        Dtype::Bool => Ty::Bool,
        // `If` promotes its two value operands, not the condition.
        Dtype::Promote if matches!(op.kind, Kind::Ternary(_)) => promote(args.get(1..).unwrap_or_default()),
        Dtype::Promote => promote(args),
    }
}

/// Rounds to the nearest float32, as numpy stores a float32 result.
fn to_f32(v: f64) -> f64 {
    f64::from(v as f32)
}

#[derive(Debug, Clone)]
enum Node {
    Field(String),
    Const(f64),
    Call { op: &'static OpDef, args: Vec<usize>, param: Param },
}

/// Structural identity of a node; floats by bit pattern.
#[derive(Hash, PartialEq, Eq)]
enum Key {
    Field(String),
    Const(u64),
    Call(&'static str, Vec<usize>, ParamKey),
}

#[derive(Hash, PartialEq, Eq)]
enum ParamKey {
    None,
    Lag(i64),
    Window(Window),
    Quantile(Window, u64),
    Rows(usize),
    Alpha(u64),
}

impl From<Param> for ParamKey {
    fn from(p: Param) -> Self {
        match p {
            Param::None => ParamKey::None,
            Param::Lag(n) => ParamKey::Lag(n),
            Param::Window(w) => ParamKey::Window(w),
            Param::Quantile(w, q) => ParamKey::Quantile(w, q.to_bits()),
            Param::Span(Span::Rows(n)) => ParamKey::Rows(n),
            Param::Span(Span::Alpha(a)) => ParamKey::Alpha(a.to_bits()),
        }
    }
}

impl Plan {
    /// Compiles `exprs`; evaluation returns one column per expression, in this order.
    pub fn new<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Self {
        let mut plan = Plan {
            nodes: Vec::new(),
            outputs: Vec::new(),
            reads: Vec::new(),
            types: Vec::new(),
            batches: Vec::new(),
            batch_of: Vec::new(),
            std_reuse: HashSet::default(),
        };
        let mut seen = HashMap::default();
        for e in exprs {
            let id = plan.intern(&mut seen, e);
            plan.outputs.push(id);
            plan.reads[id] += 1;
        }
        (plan.batches, plan.batch_of) = batches(&plan.nodes);
        plan.std_reuse = std_reuse(&plan.nodes, &plan.batches);
        plan
    }

    /// Adds `e` bottom-up (children get lower ids, so id order is an evaluation order).
    fn intern(&mut self, seen: &mut HashMap<Key, usize>, e: &Expr) -> usize {
        let (key, node) = match e {
            Expr::Field(name) => (Key::Field(name.clone()), Node::Field(name.clone())),
            Expr::Const(v) => (Key::Const(v.to_bits()), Node::Const(*v)),
            Expr::Call(call) => {
                let args: Vec<usize> = call.args.iter().map(|a| self.intern(seen, a)).collect();
                let key = Key::Call(call.op.name, args.clone(), call.param.into());
                (key, Node::Call { op: call.op, args, param: call.param })
            }
        };
        if let Some(&id) = seen.get(&key) {
            return id;
        }
        let ty = match &node {
            Node::Field(_) => Ty::F32,
            Node::Const(_) => Ty::Scalar,
            Node::Call { op, args, .. } => {
                for &a in args {
                    self.reads[a] += 1;
                }
                result_ty(op, &args.iter().map(|&a| self.types[a]).collect::<Vec<_>>())
            }
        };
        let id = self.nodes.len();
        self.nodes.push(node);
        self.reads.push(0);
        self.types.push(ty);
        seen.insert(key, id);
        id
    }

    /// Number of distinct nodes (fields, constants and operator applications).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The distinct `$fields` the plan reads, in first-use order.
    pub fn fields(&self) -> Vec<&str> {
        self.nodes.iter().filter_map(|n| if let Node::Field(f) = n { Some(f.as_str()) } else { None }).collect()
    }

    /// The columns of a batch's members, in order, from their shared operands.
    /// `kept` holds the std columns that one batch keeps for a later one (see [`std_reuse`]).
    fn run_batch(
        &self,
        members: &[usize],
        operands: &[Cow<'_, [f64]>],
        kept: &mut HashMap<(usize, Window), Vec<f64>>,
    ) -> Vec<Vec<f64>> {
        let operand = match self.nodes.get(members[0]) {
            Some(Node::Call { args, .. }) => args.first().copied().unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        let params: Vec<(&str, Param)> = members
            .iter()
            .filter_map(
                |&m| if let Node::Call { op, param, .. } = &self.nodes[m] { Some((op.name, *param)) } else { None },
            )
            .collect();
        let windows: Vec<Window> =
            params.iter().map(|(_, p)| if let Param::Window(w) = p { *w } else { Window::Expanding }).collect();
        match (params.first(), operands) {
            (Some(("Mean", _)), [x]) => rolling::means(x, &windows, true),
            (Some(("Sum", _)), [x]) => rolling::means(x, &windows, false),
            (Some(("Std", _)), [x]) => {
                let cols = rolling::stds(x, &windows);
                for (w, col) in windows.iter().zip(&cols) {
                    if self.std_reuse.contains(&(operand, *w)) {
                        kept.insert((operand, *w), copy(col));
                    }
                }
                cols
            }
            (Some(("Var", _)), [x]) => rolling::vars(x, &windows),
            (Some(("Max", _)), [x]) => rolling::extremes(x, &windows, true),
            (Some(("Min", _)), [x]) => rolling::extremes(x, &windows, false),
            (Some(("IdxMax", _)), [x]) => rolling::arg_extremes(x, &windows, true),
            (Some(("IdxMin", _)), [x]) => rolling::arg_extremes(x, &windows, false),
            (Some(("Corr", _)), [x, y]) => rolling::pair_stats(x, y, &windows, true),
            (Some(("Cov", _)), [x, y]) => rolling::pair_stats(x, y, &windows, false),
            (Some(("Slope" | "Rsquare" | "Resi", _)), [x]) => {
                let fits: Vec<(Fit, Window)> = params
                    .iter()
                    .zip(&windows)
                    .map(|((name, _), &w)| match *name {
                        "Slope" => (Fit::Slope, w),
                        "Rsquare" => (Fit::Rsquare, w),
                        _ => (Fit::Resi, w),
                    })
                    .collect();
                let known: Vec<Option<Vec<f64>>> = fits
                    .iter()
                    .map(|&(fit, w)| if fit == Fit::Rsquare { kept.remove(&(operand, w)) } else { None })
                    .collect();
                rolling::regressions(x, &fits, known)
            }
            (Some(("Quantile" | "Rank", Param::Quantile(w, _) | Param::Window(w))), [x]) => {
                let stats: Vec<Option<f64>> =
                    params.iter().map(|(_, p)| if let Param::Quantile(_, q) = p { Some(*q) } else { None }).collect();
                rolling::sorted_stats(x, *w, &stats)
            }
            // `batches` forms no other group.
            _ => members.iter().map(|_| vec![f64::NAN; operands.first().map_or(0, |x| x.len())]).collect(),
        }
    }

    /// Evaluates every output over one symbol's columns.
    pub fn evaluate(&self, src: &dyn FieldSource, precision: Precision) -> Result<Vec<Vec<f64>>, EvalError> {
        let rows = src.rows();
        let qlib = precision == Precision::QlibF32;
        let mut left = self.reads.clone();
        let mut vals: Vec<Option<Value<'_>>> = Vec::with_capacity(self.nodes.len());
        // Columns computed ahead by a batch, waiting for their node's turn.
        let mut ready: Vec<Option<Vec<f64>>> = vec![None; self.nodes.len()];
        let mut kept = HashMap::default();
        for (id, node) in self.nodes.iter().enumerate() {
            let v = match node {
                Node::Field(name) => {
                    let col = src.field(name).ok_or_else(|| EvalError::MissingField(name.clone()))?;
                    if col.len() != rows {
                        return Err(EvalError::RowMismatch { field: name.clone(), len: col.len(), rows });
                    }
                    if qlib && col.iter().any(|&v| to_f32(v) != v && !v.is_nan()) {
                        Value::Owned(map(col, to_f32))
                    } else {
                        Value::Col(col)
                    }
                }
                Node::Const(c) => Value::Scalar(*c),
                Node::Call { op, args, param } => {
                    let f32_result = qlib && self.types[id] == Ty::F32;
                    let operands: Vec<&Value<'_>> = args.iter().filter_map(|&a| vals[a].as_ref()).collect();
                    let mut v = match (ready[id].take(), self.batch_of[id], op.kind, op.numpy_f32, &operands[..]) {
                        (Some(col), ..) => Value::Owned(col),
                        (None, Some(b), ..) => {
                            let members = &self.batches[b];
                            let series: Vec<_> = operands.iter().map(|x| x.series(rows)).collect();
                            let mut own = Vec::new();
                            for (m, col) in members.iter().zip(self.run_batch(members, &series, &mut kept)) {
                                if *m == id { own = col } else { ready[*m] = Some(col) }
                            }
                            Value::Owned(own)
                        }
                        // numpy's own float32 loop where it differs from the rounded f64 result.
                        (None, _, Kind::Unary(_), Some(f), [x]) if f32_result => {
                            let mut out = rolling::column(rows);
                            out.extend((0..rows).map(|i| f64::from(f(x.at(i) as f32))));
                            Value::Owned(out)
                        }
                        _ => compute(op, *param, &operands, rows),
                    };
                    if f32_result {
                        v.round_f32();
                    }
                    for &a in args {
                        left[a] -= 1;
                        if left[a] == 0
                            && let Some(v) = vals[a].take()
                        {
                            v.recycle();
                        }
                    }
                    v
                }
            };
            vals.push(Some(v));
        }
        let mut out = Vec::with_capacity(self.outputs.len());
        for &o in &self.outputs {
            left[o] -= 1;
            let col = if left[o] == 0 {
                vals[o].take().map(|v| v.into_column(rows))
            } else {
                vals[o].as_ref().map(|v| v.to_column(rows))
            };
            let mut col = col.unwrap_or_else(|| rolling::filled(rows, f64::NAN));
            if qlib {
                // Qlib casts every expression's result with `astype(np.float32)`.
                col.iter_mut().for_each(|v| *v = to_f32(*v));
            }
            out.push(col);
        }
        Ok(out)
    }
}

/// A node's value: a constant, a borrowed input column or a computed column.
#[derive(Clone)]
enum Value<'a> {
    Scalar(f64),
    Col(&'a [f64]),
    Owned(Vec<f64>),
}

impl Value<'_> {
    /// The values of a series operand; `None` for a constant.
    fn column(&self) -> Option<&[f64]> {
        match self {
            Value::Scalar(_) => None,
            Value::Col(c) => Some(c),
            Value::Owned(c) => Some(c),
        }
    }

    /// Row `i`, broadcasting constants.
    fn at(&self, i: usize) -> f64 {
        match self {
            Value::Scalar(s) => *s,
            Value::Col(c) => c[i],
            Value::Owned(c) => c[i],
        }
    }

    fn series(&self, rows: usize) -> Cow<'_, [f64]> {
        match self {
            Value::Scalar(s) => Cow::Owned(vec![*s; rows]),
            Value::Col(c) => Cow::Borrowed(c),
            Value::Owned(c) => Cow::Borrowed(c),
        }
    }

    fn round_f32(&mut self) {
        match self {
            Value::Scalar(s) => *s = to_f32(*s),
            Value::Col(c) => *self = Value::Owned(map(c, to_f32)),
            Value::Owned(c) => c.iter_mut().for_each(|v| *v = to_f32(*v)),
        }
    }

    fn into_column(self, rows: usize) -> Vec<f64> {
        match self {
            Value::Owned(c) => c,
            v => v.to_column(rows),
        }
    }

    /// A copy of the values as a column, broadcasting constants.
    fn to_column(&self, rows: usize) -> Vec<f64> {
        match self {
            Value::Scalar(s) => rolling::filled(rows, *s),
            Value::Col(c) => copy(c),
            Value::Owned(c) => copy(c),
        }
    }

    /// Hands a computed column back for reuse.
    fn recycle(self) {
        if let Value::Owned(c) = self {
            rolling::recycle(c);
        }
    }
}

/// A copy of `x` in a recycled column.
fn copy(x: &[f64]) -> Vec<f64> {
    let mut out = rolling::column(x.len());
    out.extend_from_slice(x);
    out
}

/// `f` of every value of `x`, in a recycled column.
fn map(x: &[f64], f: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut out = rolling::column(x.len());
    out.extend(x.iter().map(|&v| f(v)));
    out
}

/// An element-wise binary operator over two operands, one loop per shape (series or constant).
fn binary(x: &Value<'_>, y: &Value<'_>, f: impl Fn(f64, f64) -> f64) -> Value<'static> {
    // Most of Alpha158's outputs end in a division by `$close`: 4-wide AVX divisions where the CPU
    // has them take a third of the element-wise time off (the same IEEE results).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        return unsafe { binary_avx(x, y, f) };
    }
    binary_loops(x, y, f)
}

/// [`binary_loops`] compiled for AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn binary_avx(x: &Value<'_>, y: &Value<'_>, f: impl Fn(f64, f64) -> f64) -> Value<'static> {
    binary_loops(x, y, f)
}

#[inline(always)]
fn binary_loops(x: &Value<'_>, y: &Value<'_>, f: impl Fn(f64, f64) -> f64) -> Value<'static> {
    match (x.column(), y.column()) {
        (Some(a), Some(b)) => {
            let mut out = rolling::column(a.len());
            out.extend(a.iter().zip(b).map(|(&a, &b)| f(a, b)));
            Value::Owned(out)
        }
        (Some(a), None) => {
            let q = y.at(0);
            Value::Owned(map(a, |a| f(a, q)))
        }
        (None, Some(b)) => {
            let p = x.at(0);
            Value::Owned(map(b, |b| f(p, b)))
        }
        (None, None) => Value::Scalar(f(x.at(0), y.at(0))),
    }
}

/// Runs one operator. The typer guarantees operand count and parameter kind match the operator.
fn compute(op: &OpDef, param: Param, a: &[&Value<'_>], rows: usize) -> Value<'static> {
    let nan = || Value::Owned(vec![f64::NAN; rows]);
    let window = match param {
        Param::Window(w) | Param::Quantile(w, _) => w,
        _ => Window::Expanding,
    };
    match (op.kind, a) {
        (Kind::Unary(f), [x]) => match x.column() {
            Some(c) if op.name == "Abs" => Value::Owned(map(c, f64::abs)),
            Some(c) => Value::Owned(map(c, f)),
            None => Value::Scalar(f(x.at(0))),
        },
        (Kind::Binary(f), [x, y]) => match op.name {
            // Alpha158's element-wise operators inlined, so the loops vectorise instead of calling
            // through the registry's function pointer; the same operation as the registry's entry.
            "Add" => binary(x, y, |a, b| a + b),
            "Sub" => binary(x, y, |a, b| a - b),
            "Mul" => binary(x, y, |a, b| a * b),
            "Div" => binary(x, y, |a, b| a / b),
            "Greater" => binary(x, y, ops::greater),
            "Less" => binary(x, y, ops::less),
            "Gt" => binary(x, y, |a, b| ops::flag(a > b)),
            "Lt" => binary(x, y, |a, b| ops::flag(a < b)),
            _ => binary(x, y, f),
        },
        (Kind::Ternary(f), [c, x, y]) => {
            let mut out = rolling::column(rows);
            out.extend((0..rows).map(|i| f(c.at(i), x.at(i), y.at(i))));
            Value::Owned(out)
        }
        (Kind::Lag(f), [x]) => match param {
            Param::Lag(n) => Value::Owned(f(&x.series(rows), n)),
            _ => nan(),
        },
        (Kind::Rolling(f), [x]) => Value::Owned(f(&x.series(rows), window)),
        (Kind::RollingQuantile(f), [x]) => match param {
            Param::Quantile(w, q) => Value::Owned(f(&x.series(rows), w, q)),
            _ => nan(),
        },
        (Kind::Pair(f), [x, y]) => Value::Owned(f(&x.series(rows), &y.series(rows), window)),
        (Kind::Smoothing(f), [x]) => match param {
            Param::Span(s) => Value::Owned(f(&x.series(rows), s)),
            _ => nan(),
        },
        _ => nan(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse;

    struct Cols(Vec<(&'static str, Vec<f64>)>);

    impl FieldSource for Cols {
        fn rows(&self) -> usize {
            self.0.first().map_or(0, |c| c.1.len())
        }
        fn field(&self, name: &str) -> Option<&[f64]> {
            self.0.iter().find(|c| c.0 == name).map(|c| c.1.as_slice())
        }
    }

    #[test]
    fn shares_common_subexpressions() {
        let a = parse("Mean($close, 5)/$close").unwrap();
        let b = parse("Std($close, 5)/(Mean($close, 5)+1e-12)").unwrap();
        let c = parse("Mean($close,5) / $close").unwrap();
        let plan = Plan::new([&a, &b, &c]);
        // $close, Mean, Div, Std, 1e-12, Add, Div — the third expression adds nothing.
        assert_eq!(plan.node_count(), 7);
        assert_eq!(plan.fields(), vec!["close"]);
        let src = Cols(vec![("close", vec![1.0, 2.0, 3.0])]);
        let out = plan.evaluate(&src, Precision::F64).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], out[2]);
        assert_eq!(out[0], a.evaluate(&src, Precision::F64).unwrap());
        assert!((out[0][2] - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn constants_broadcast_and_rows_are_checked() {
        let src = Cols(vec![("close", vec![1.0, 2.0]), ("open", vec![1.0])]);
        assert_eq!(parse("1 + 2").unwrap().evaluate(&src, Precision::F64).unwrap(), vec![3.0, 3.0]);
        assert_eq!(parse("Sum(1, 2)").unwrap().evaluate(&src, Precision::F64).unwrap(), vec![1.0, 2.0]);
        let err = parse("$open").unwrap().evaluate(&src, Precision::F64).unwrap_err();
        assert_eq!(err, EvalError::RowMismatch { field: "open".into(), len: 1, rows: 2 });
        let empty = Cols(vec![("close", vec![])]);
        assert!(parse("Corr($close, $close, 5)").unwrap().evaluate(&empty, Precision::F64).unwrap().is_empty());
    }
}
