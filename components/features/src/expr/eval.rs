//! Compiles expressions into one DAG in which every distinct sub-expression is a single node (hash
//! consing over the typed tree), then evaluates it over one symbol's columns, freeing each
//! intermediate column once its last consumer has run. Each node also carries the numpy dtype Qlib
//! would give it, which [`Precision::QlibF32`] uses to round where Qlib stores float32.

use std::borrow::Cow;
use std::collections::HashMap;

use super::ops::{Dtype, Kind, OpDef};
use super::rolling;
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
}

/// Rolling nodes that one pass over their shared operand computes together: `Mean`, `Sum`, `Std`
/// or `Var` of one operand over several fixed windows, and `Quantile`s of one operand and window.
fn batches(nodes: &[Node]) -> (Vec<Vec<usize>>, Vec<Option<usize>>) {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<(&str, usize, Option<Window>), usize> = HashMap::new();
    for (id, node) in nodes.iter().enumerate() {
        let Node::Call { op, args, param } = node else { continue };
        let key = match (op.name, &args[..], param) {
            ("Mean" | "Sum" | "Std" | "Var", [x], Param::Window(Window::Last(_))) => (op.name, *x, None),
            ("Quantile", [x], Param::Quantile(w, _)) => (op.name, *x, Some(*w)),
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
        };
        let mut seen = HashMap::new();
        for e in exprs {
            let id = plan.intern(&mut seen, e);
            plan.outputs.push(id);
            plan.reads[id] += 1;
        }
        (plan.batches, plan.batch_of) = batches(&plan.nodes);
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

    /// The columns of a batch's members, in order, from their shared operand `x`.
    fn run_batch(&self, members: &[usize], x: &[f64]) -> Vec<Vec<f64>> {
        let params: Vec<(&str, Param)> = members
            .iter()
            .filter_map(
                |&m| if let Node::Call { op, param, .. } = &self.nodes[m] { Some((op.name, *param)) } else { None },
            )
            .collect();
        let windows: Vec<Window> =
            params.iter().map(|(_, p)| if let Param::Window(w) = p { *w } else { Window::Expanding }).collect();
        match params.first() {
            Some(("Mean", _)) => rolling::means(x, &windows, true),
            Some(("Sum", _)) => rolling::means(x, &windows, false),
            Some(("Std", _)) => rolling::stds(x, &windows),
            Some(("Var", _)) => rolling::vars(x, &windows),
            Some(("Quantile", Param::Quantile(w, _))) => {
                let qs: Vec<f64> =
                    params.iter().map(|(_, p)| if let Param::Quantile(_, q) = p { *q } else { 0.0 }).collect();
                rolling::quantiles(x, *w, &qs)
            }
            // `batches` forms no other group.
            _ => members.iter().map(|_| vec![f64::NAN; x.len()]).collect(),
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
        for (id, node) in self.nodes.iter().enumerate() {
            let v = match node {
                Node::Field(name) => {
                    let col = src.field(name).ok_or_else(|| EvalError::MissingField(name.clone()))?;
                    if col.len() != rows {
                        return Err(EvalError::RowMismatch { field: name.clone(), len: col.len(), rows });
                    }
                    if qlib && col.iter().any(|&v| to_f32(v) != v && !v.is_nan()) {
                        Value::Owned(col.iter().map(|&v| to_f32(v)).collect())
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
                        (None, Some(b), _, _, [x]) => {
                            let members = &self.batches[b];
                            let mut own = Vec::new();
                            for (m, col) in members.iter().zip(self.run_batch(members, &x.series(rows))) {
                                if *m == id { own = col } else { ready[*m] = Some(col) }
                            }
                            Value::Owned(own)
                        }
                        // numpy's own float32 loop where it differs from the rounded f64 result.
                        (None, _, Kind::Unary(_), Some(f), [x]) if f32_result => {
                            Value::Owned((0..rows).map(|i| f64::from(f(x.at(i) as f32))).collect())
                        }
                        _ => compute(op, *param, &operands, rows),
                    };
                    if f32_result {
                        v.round_f32();
                    }
                    for &a in args {
                        left[a] -= 1;
                        if left[a] == 0 {
                            vals[a] = None;
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
            let v = if left[o] == 0 { vals[o].take() } else { vals[o].clone() };
            let mut col = v.map_or_else(|| vec![f64::NAN; rows], |v| v.into_column(rows));
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
            Value::Col(c) => *self = Value::Owned(c.iter().map(|&v| to_f32(v)).collect()),
            Value::Owned(c) => c.iter_mut().for_each(|v| *v = to_f32(*v)),
        }
    }

    fn into_column(self, rows: usize) -> Vec<f64> {
        match self {
            Value::Scalar(s) => vec![s; rows],
            Value::Col(c) => c.to_vec(),
            Value::Owned(c) => c,
        }
    }
}

/// An element-wise binary operator over two operands, one loop per shape (series or constant).
fn binary(x: &Value<'_>, y: &Value<'_>, f: impl Fn(f64, f64) -> f64) -> Value<'static> {
    match (x.column(), y.column()) {
        (Some(a), Some(b)) => Value::Owned(a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()),
        (Some(a), None) => {
            let q = y.at(0);
            Value::Owned(a.iter().map(|&a| f(a, q)).collect())
        }
        (None, Some(b)) => {
            let p = x.at(0);
            Value::Owned(b.iter().map(|&b| f(p, b)).collect())
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
            Some(c) => Value::Owned(c.iter().map(|&v| f(v)).collect()),
            None => Value::Scalar(f(x.at(0))),
        },
        (Kind::Binary(f), [x, y]) => match op.name {
            // Arithmetic inlined so the loops vectorise; the same operation as the registry's entry.
            "Add" => binary(x, y, |a, b| a + b),
            "Sub" => binary(x, y, |a, b| a - b),
            "Mul" => binary(x, y, |a, b| a * b),
            "Div" => binary(x, y, |a, b| a / b),
            _ => binary(x, y, f),
        },
        (Kind::Ternary(f), [c, x, y]) => Value::Owned((0..rows).map(|i| f(c.at(i), x.at(i), y.at(i))).collect()),
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
