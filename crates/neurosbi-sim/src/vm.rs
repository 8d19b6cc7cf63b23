//! A register machine over lanes: the compiled form of a model.
//!
//! Expressions are lowered into a hash-consed DAG (common subexpressions shared across
//! integrator stages and across the step, threshold, reset and record programs), values
//! that depend only on parameters and constants are hoisted into a prologue run once per
//! block, cheap chains are fused (`a*b + c`, `a*k1 + k2`, operations with a constant
//! operand), and registers are reused by liveness. Every instruction then runs a plain
//! loop over [`LANES`] neurons, which LLVM vectorises; interpretation costs one dispatch
//! per instruction per 64 neurons.

use crate::divide;
use crate::fastmath;
use crate::ir::{Cmp, Ex, Func, Slot, clip};
use std::collections::HashMap;

/// Neurons per block: one register holds one value for each of them (64 was fastest in
/// the measurements of shared/design/PERFORMANCE.md).
pub const LANES: usize = 64;
/// One register: a value per lane.
pub type Lanes = [f64; LANES];

/// Index of a DAG node.
pub type NodeId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Un {
    Not,
    Fun(Func),
    PowI(i32),
    /// `x/(e^x - 1) = 1/exprel(x)`: what `a/exprel(x)` becomes, one division fewer.
    Efun,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Cmp(Cmp),
    And,
    Or,
    /// Poisson quantile of a uniform draw (left) for a mean (right).
    Poisson,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    /// A register with a fixed meaning (state, parameter, input, time, index, noise).
    Fixed(u32),
    /// A constant, by its bits.
    Const(u64),
    Un(Un, NodeId),
    Bin(Bin, NodeId, NodeId),
    Clip(NodeId, NodeId, NodeId),
    /// `if c != 0 { a } else { b }`
    Select(NodeId, NodeId, NodeId),
    /// Exponential Euler update of `x` with `dx/dt = A x + B` over `dt` (bits).
    ExpEuler(NodeId, NodeId, NodeId, u64),
}

/// Builds the shared DAG of a model's programs.
#[derive(Default)]
pub struct Builder {
    nodes: Vec<Node>,
    invariant: Vec<bool>,
    memo: HashMap<Node, NodeId>,
    /// Fixed registers whose values do not change during a run (parameters, index).
    invariant_fixed: Vec<bool>,
}

impl Builder {
    /// A builder for a frame with `n_fixed` fixed registers; `invariant_fixed[r]` says
    /// whether fixed register `r` is constant over a run.
    pub fn new(invariant_fixed: Vec<bool>) -> Self {
        Builder {
            invariant_fixed,
            ..Default::default()
        }
    }

    /// Number of fixed registers.
    pub fn n_fixed(&self) -> usize {
        self.invariant_fixed.len()
    }

    fn push(&mut self, n: Node) -> NodeId {
        if let Some(&id) = self.memo.get(&n) {
            return id;
        }
        let inv = match n {
            Node::Fixed(r) => self.invariant_fixed[r as usize],
            Node::Const(_) => true,
            Node::Un(_, a) => self.invariant[a as usize],
            Node::Bin(_, a, b) => self.invariant[a as usize] && self.invariant[b as usize],
            Node::Clip(a, b, c) | Node::Select(a, b, c) | Node::ExpEuler(a, b, c, _) => {
                self.invariant[a as usize]
                    && self.invariant[b as usize]
                    && self.invariant[c as usize]
            }
        };
        let id = self.nodes.len() as NodeId;
        self.nodes.push(n);
        self.invariant.push(inv);
        self.memo.insert(n, id);
        id
    }

    fn konst(&self, id: NodeId) -> Option<f64> {
        match self.nodes[id as usize] {
            Node::Const(b) => Some(f64::from_bits(b)),
            _ => None,
        }
    }

    /// Whether node `id` is the constant `v`.
    pub fn is_const(&self, id: NodeId, v: f64) -> bool {
        self.konst(id) == Some(v)
    }

    /// A fixed register.
    pub fn fixed(&mut self, r: u32) -> NodeId {
        self.push(Node::Fixed(r))
    }

    /// A constant.
    pub fn num(&mut self, v: f64) -> NodeId {
        // Canonical zero, so 0.0 and -0.0 products fold alike.
        let v = if v == 0.0 { 0.0 } else { v };
        self.push(Node::Const(v.to_bits()))
    }

    fn fold2(&mut self, op: Bin, a: NodeId, b: NodeId) -> NodeId {
        if let (Some(x), Some(y)) = (self.konst(a), self.konst(b)) {
            let v = bin_scalar(op, x, y);
            return self.num(v);
        }
        self.push(Node::Bin(op, a, b))
    }

    /// `a + b`. Constants go right and constant chains fold: `(x + k1) + k2 = x + (k1 + k2)`.
    pub fn add(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (a, b) = if self.konst(a).is_some() && self.konst(b).is_none() {
            (b, a)
        } else {
            (a, b)
        };
        if self.konst(b) == Some(0.0) {
            return a;
        }
        if let (Some(k), Node::Bin(Bin::Add, x, y)) = (self.konst(b), self.nodes[a as usize])
            && let Some(k2) = self.konst(y)
        {
            let c = self.num(k + k2);
            return self.fold2(Bin::Add, x, c);
        }
        self.fold2(Bin::Add, a, b)
    }
    /// `a - b`; subtracting a constant is adding its negative.
    pub fn sub(&mut self, a: NodeId, b: NodeId) -> NodeId {
        if let Some(k) = self.konst(b) {
            let c = self.num(-k);
            return self.add(a, c);
        }
        // k - x = x*(-1) + k (exact), so that later constant factors and offsets fold into
        // one multiply-add or into an exponential's affine argument.
        if self.konst(a).is_some() {
            let m = self.neg(b);
            return self.add(m, a);
        }
        self.fold2(Bin::Sub, a, b)
    }
    /// `a * b`. Constants go right and constant factors fold: `(x k1) k2 = x (k1 k2)`.
    pub fn mul(&mut self, a: NodeId, b: NodeId) -> NodeId {
        let (a, b) = if self.konst(a).is_some() && self.konst(b).is_none() {
            (b, a)
        } else {
            (a, b)
        };
        if self.konst(b) == Some(1.0) {
            return a;
        }
        if let Some(k) = self.konst(b) {
            match self.nodes[a as usize] {
                Node::Bin(Bin::Mul, x, y) if self.konst(y).is_some() => {
                    let c = self.num(k * self.konst(y).unwrap_or(1.0));
                    return self.fold2(Bin::Mul, x, c);
                }
                // (k1/x) k = (k1 k)/x: rate constants times a unit scale, one operation.
                Node::Bin(Bin::Div, n, x) if self.konst(n).is_some() => {
                    let c = self.num(k * self.konst(n).unwrap_or(1.0));
                    return self.fold2(Bin::Div, c, x);
                }
                // (x + k1) k = x k + k1 k: one fused multiply-add instead of two operations.
                Node::Bin(Bin::Add, x, y) if self.konst(y).is_some() => {
                    let kx = self.num(k);
                    let m = self.mul(x, kx);
                    let c = self.num(k * self.konst(y).unwrap_or(0.0));
                    return self.add(m, c);
                }
                _ => {}
            }
        }
        self.fold2(Bin::Mul, a, b)
    }
    /// `a / b`; dividing by a constant is multiplying by its reciprocal.
    pub fn div(&mut self, a: NodeId, b: NodeId) -> NodeId {
        if let Some(k) = self.konst(b) {
            let c = self.num(1.0 / k);
            return self.mul(a, c);
        }
        // Divisions cost as much as an exponential (shared/design/PERFORMANCE.md), and rate
        // functions are full of them. a/exprel(z) = a efun(z) saves exprel's own division.
        if let Node::Un(Un::Fun(Func::Exprel), z) = self.nodes[b as usize] {
            let e = self.un(Un::Efun, z);
            return self.mul(a, e);
        }
        // a/(k/y) = (a y)/k, e.g. (x_inf - x)/tau with tau = k/(...).
        if let Node::Bin(Bin::Div, n, y) = self.nodes[b as usize]
            && let Some(k) = self.konst(n)
        {
            let ay = self.mul(a, y);
            let c = self.num(1.0 / k);
            return self.mul(ay, c);
        }
        self.fold2(Bin::Div, a, b)
    }
    /// A one-argument operation.
    pub(crate) fn un(&mut self, op: Un, a: NodeId) -> NodeId {
        if let Some(x) = self.konst(a) {
            let v = un_scalar(op, x);
            return self.num(v);
        }
        self.push(Node::Un(op, a))
    }
    /// `-a`, as a multiplication by -1 so that it folds into constant factors.
    pub fn neg(&mut self, a: NodeId) -> NodeId {
        let m = self.num(-1.0);
        self.mul(a, m)
    }
    /// `f(a)`
    pub fn fun(&mut self, f: Func, a: NodeId) -> NodeId {
        self.un(Un::Fun(f), a)
    }
    /// `if c != 0 { a } else { b }`
    pub fn select(&mut self, c: NodeId, a: NodeId, b: NodeId) -> NodeId {
        if let Some(x) = self.konst(c) {
            return if x != 0.0 { a } else { b };
        }
        if a == b {
            return a;
        }
        self.push(Node::Select(c, a, b))
    }
    /// The exponential Euler update `x e^(A dt) + B (e^(A dt) - 1)/A` (`x + B dt` where
    /// A = 0) as one fused operation.
    pub fn exp_euler(&mut self, x: NodeId, a: NodeId, b: NodeId, dt: f64) -> NodeId {
        if let (Some(xv), Some(av), Some(bv)) = (self.konst(x), self.konst(a), self.konst(b)) {
            return self.num(exp_euler_scalar(xv, av, bv, dt));
        }
        self.push(Node::ExpEuler(x, a, b, dt.to_bits()))
    }

    /// Comparison giving 1.0 or 0.0.
    pub fn cmp(&mut self, c: Cmp, a: NodeId, b: NodeId) -> NodeId {
        self.fold2(Bin::Cmp(c), a, b)
    }

    /// Lowers an expression, mapping each slot to a node.
    pub fn lower(&mut self, e: &Ex, slot: &impl Fn(&mut Builder, Slot) -> NodeId) -> NodeId {
        match e {
            Ex::Num(v) => self.num(*v),
            Ex::Slot(s) => slot(self, *s),
            Ex::Add(a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                self.add(a, b)
            }
            Ex::Sub(a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                self.sub(a, b)
            }
            Ex::Mul(a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                self.mul(a, b)
            }
            Ex::Div(a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                self.div(a, b)
            }
            Ex::Neg(a) => {
                let a = self.lower(a, slot);
                self.neg(a)
            }
            Ex::Pow(a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                match self.konst(b) {
                    Some(k) if k == k.round() && k.abs() <= 8.0 => self.un(Un::PowI(k as i32), a),
                    Some(0.5) => self.fun(Func::Sqrt, a),
                    _ => self.fold2(Bin::Pow, a, b),
                }
            }
            Ex::Call(f, a) => {
                let a = self.lower(a, slot);
                self.fun(*f, a)
            }
            Ex::Clip(a, lo, hi) => {
                let (a, lo, hi) = (
                    self.lower(a, slot),
                    self.lower(lo, slot),
                    self.lower(hi, slot),
                );
                if let (Some(x), Some(l), Some(h)) = (self.konst(a), self.konst(lo), self.konst(hi))
                {
                    return self.num(clip(x, l, h));
                }
                self.push(Node::Clip(a, lo, hi))
            }
            Ex::Poisson(u, lambda) => {
                let (u, lambda) = (self.lower(u, slot), self.lower(lambda, slot));
                self.fold2(Bin::Poisson, u, lambda)
            }
            Ex::Cmp(c, a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                self.cmp(*c, a, b)
            }
            Ex::And(a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                self.fold2(Bin::And, a, b)
            }
            Ex::Or(a, b) => {
                let (a, b) = (self.lower(a, slot), self.lower(b, slot));
                self.fold2(Bin::Or, a, b)
            }
            Ex::Not(a) => {
                let a = self.lower(a, slot);
                self.un(Un::Not, a)
            }
        }
    }
}

/// Exponential Euler over one step; shared by the compiled and the native paths so both
/// give the same numbers.
#[inline(always)]
pub fn exp_euler_scalar(x: f64, a: f64, b: f64, dt: f64) -> f64 {
    let e = fastmath::exp(a * dt);
    let exact = x * e + b * ((e - 1.0) / a);
    let euler = x + b * dt;
    if a == 0.0 { euler } else { exact }
}

fn b2f(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn bin_scalar(op: Bin, x: f64, y: f64) -> f64 {
    match op {
        Bin::Add => x + y,
        Bin::Sub => x - y,
        Bin::Mul => x * y,
        Bin::Div => x / y,
        Bin::Pow => x.powf(y),
        Bin::Cmp(c) => b2f(c.eval(x, y)),
        Bin::And => b2f(x != 0.0 && y != 0.0),
        Bin::Or => b2f(x != 0.0 || y != 0.0),
        Bin::Poisson => crate::ir::poisson_quantile(x, y),
    }
}

fn un_scalar(op: Un, x: f64) -> f64 {
    match op {
        Un::Not => b2f(x == 0.0),
        Un::Fun(f) => f.eval(x),
        Un::PowI(n) => powi(x, n),
        Un::Efun => {
            if x == 0.0 {
                1.0
            } else {
                x / x.exp_m1()
            }
        }
    }
}

#[inline(always)]
fn powi(x: f64, n: i32) -> f64 {
    // Repeated multiplication (what `x**3` means in generated C); vectorises, unlike powi.
    let m = n.unsigned_abs();
    let mut r = 1.0;
    let mut k = 0;
    while k < m {
        r *= x;
        k += 1;
    }
    if n < 0 { 1.0 / r } else { r }
}

/// Register index.
type R = u32;

#[derive(Clone, Copy, Debug)]
enum Ins {
    Bin(Bin, R, R, R),
    /// `d = a op k`
    BinK(Bin, R, R, f64),
    /// `d = k op a`
    KBin(Bin, R, f64, R),
    /// `d = a*b + c`
    MulAdd(R, R, R, R),
    /// `d = a*k1 + k2`
    MulAddK(R, R, f64, f64),
    /// `d = a*k + c`
    MulKAdd(R, R, f64, R),
    /// `d = a*b + k`
    MulAddC(R, R, R, f64),
    Un(Un, R, R),
    Clip(R, R, R, R),
    Select(R, R, R, R),
    ExpEuler(R, R, R, R, f64),
    /// `d = exp(a*k[0] + k[1])*k[2] + k[3]`
    ExpAff(R, R, [f64; 4]),
    /// `d = k[4] / (exp(a*k[0] + k[1])*k[2] + k[3])`: sigmoid-shaped rates.
    ExpAffRecip(R, R, [f64; 5]),
    /// `d = efun(a*k1 + k2)`
    EfunAff(R, R, f64, f64),
    Splat(R, f64),
}

/// A compiled straight-line program over lanes.
#[derive(Clone, Debug, Default)]
pub struct Program {
    ins: Vec<Ins>,
    /// Registers holding the program's results, in the order requested.
    pub outputs: Vec<u32>,
    /// Divisions through the reciprocal sequence of [`divide`] (see [`divides_much`]).
    fast_div: bool,
}

/// Whether at least a quarter of a program's instructions divide: then the divider unit is
/// its bottleneck and [`divide`]'s reciprocal sequence (FMA ports) pays; with fewer, the
/// divider works beside the FMA-heavy exponentials for free, and the sequence only adds FMA
/// work. Measured: the pyloric step (185 of 459) 0.140 -> 0.100 s per simulation with it;
/// Hodgkin-Huxley model C (about one in ten) 10 % slower with it. Either way the quotients
/// are those of `/`.
fn divides_much(ins: &[Ins]) -> bool {
    let dividing = ins
        .iter()
        .filter(|i| {
            matches!(
                i,
                Ins::Bin(Bin::Div, ..)
                    | Ins::KBin(Bin::Div, ..)
                    | Ins::ExpEuler(..)
                    | Ins::ExpAffRecip(..)
                    | Ins::EfunAff(..)
                    | Ins::Un(Un::Efun | Un::Fun(Func::Exprel), ..)
            )
        })
        .count();
    4 * dividing >= ins.len() && dividing > 0
}

/// The compiled set of programs of a model, sharing one register layout.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// Run once per block after fixed registers are filled: parameter-only values.
    pub prologue: Program,
    /// The requested programs, in the order given.
    pub programs: Vec<Program>,
    /// Registers needed in a frame.
    pub n_regs: usize,
}

impl Builder {
    /// Compiles the programs whose outputs are given (one list of nodes per program).
    #[allow(clippy::needless_range_loop)] // node ids index several parallel tables
    pub fn compile(&self, outputs: &[Vec<NodeId>]) -> Compiled {
        let n = self.nodes.len();
        let n_fixed = self.n_fixed() as u32;
        // Liveness over the whole DAG: which nodes any program needs.
        let mut live = vec![false; n];
        let mut stack: Vec<NodeId> = outputs.iter().flatten().copied().collect();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut live[id as usize], true) {
                continue;
            }
            operands(self.nodes[id as usize], |o| stack.push(o));
        }
        // Use counts decide fusion: a single-use product folds into its consumer.
        let mut uses = vec![0u32; n];
        for (id, node) in self.nodes.iter().enumerate() {
            if live[id] {
                operands(*node, |o| uses[o as usize] += 1);
            }
        }
        for &o in outputs.iter().flatten() {
            uses[o as usize] += 1;
        }
        // Prologue: invariant, non-constant, non-fixed live nodes get pinned registers.
        let mut reg: Vec<Option<R>> = vec![None; n];
        let mut next = n_fixed;
        let mut prologue = Vec::new();
        for id in 0..n {
            if let Node::Fixed(r) = self.nodes[id] {
                reg[id] = Some(r);
            }
        }
        let fused = self.fusion_plan(&live, &uses);
        for id in 0..n {
            let node = self.nodes[id];
            if !live[id] || !self.invariant[id] || matches!(node, Node::Fixed(_)) || fused[id] {
                continue;
            }
            if matches!(node, Node::Const(_))
                && !outputs.iter().flatten().any(|&o| o as usize == id)
            {
                // Constants are folded into instructions; materialised lazily below if an
                // instruction needs one in a register.
                continue;
            }
            let d = next;
            next += 1;
            reg[id] = Some(d);
            self.emit(
                id as NodeId,
                d,
                &reg,
                &fused,
                &mut prologue,
                &mut next,
                &mut None,
            );
        }
        let pinned = next;
        let mut n_regs = pinned as usize;
        let mut programs = Vec::new();
        for outs in outputs {
            // Nodes of this program's body, in topological (creation) order.
            let mut need = vec![false; n];
            let mut stack: Vec<NodeId> = outs.clone();
            while let Some(id) = stack.pop() {
                let idu = id as usize;
                if need[idu] || reg[idu].is_some() && self.invariant[idu] {
                    continue;
                }
                need[idu] = true;
                operands(self.nodes[idu], |o| stack.push(o));
            }
            // Last use of each node within this body (outputs live to the end).
            let mut last = vec![0usize; n];
            for id in 0..n {
                if need[id] && !fused[id] {
                    operands_fused(self, &fused, id as NodeId, &mut |o| {
                        last[o as usize] = last[o as usize].max(id)
                    });
                }
            }
            for &o in outs {
                last[o as usize] = usize::MAX;
            }
            let mut body_reg = reg.clone();
            let mut free: Vec<R> = Vec::new();
            let mut top = pinned;
            let mut ins = Vec::new();
            let mut extra = Some((&mut free, &mut top));
            for id in 0..n {
                let node = self.nodes[id];
                if !need[id] || fused[id] || matches!(node, Node::Fixed(_)) {
                    continue;
                }
                if matches!(node, Node::Const(_)) && last[id] != usize::MAX {
                    continue; // folded into its users
                }
                // Allocate the destination before freeing operands: an instruction's
                // destination never aliases its operands (the kernels rely on it).
                let d = {
                    let (free, top) = extra.as_mut().unwrap();
                    free.pop().unwrap_or_else(|| {
                        let r = **top;
                        **top += 1;
                        r
                    })
                };
                body_reg[id] = Some(d);
                let mut tmp_next = 0u32;
                self.emit(
                    id as NodeId,
                    d,
                    &body_reg,
                    &fused,
                    &mut ins,
                    &mut tmp_next,
                    &mut extra,
                );
                let (free, _) = extra.as_mut().unwrap();
                operands_fused(self, &fused, id as NodeId, &mut |o| {
                    let ou = o as usize;
                    if last[ou] == id
                        && !self.invariant[ou]
                        && !matches!(self.nodes[ou], Node::Fixed(_) | Node::Const(_))
                        && let Some(r) = body_reg[ou]
                        && !free.contains(&r)
                    {
                        free.push(r);
                    }
                });
            }
            let out_regs = outs
                .iter()
                .map(|&o| {
                    body_reg[o as usize].unwrap_or_else(|| {
                        // An output that is a folded constant not yet in a register.
                        let (_, top) = extra.as_mut().unwrap();
                        let r = **top;
                        **top += 1;
                        ins.push(Ins::Splat(r, self.konst(o).unwrap_or(f64::NAN)));
                        r
                    })
                })
                .collect();
            n_regs = n_regs.max(top as usize);
            programs.push(Program {
                fast_div: divides_much(&ins),
                ins,
                outputs: out_regs,
            });
        }
        Compiled {
            prologue: Program {
                fast_div: divides_much(&prologue),
                ins: prologue,
                outputs: vec![],
            },
            programs,
            n_regs: n_regs.max(next as usize),
        }
    }

    /// Which nodes are folded into their single consumer.
    fn fusion_plan(&self, live: &[bool], uses: &[u32]) -> Vec<bool> {
        // Nodes come in topological order, so a consumer decides about its operands after
        // they decided about theirs.
        let mut fused = vec![false; self.nodes.len()];
        let same = |a: usize, b: usize| self.invariant[a] == self.invariant[b];
        for (id, node) in self.nodes.iter().enumerate() {
            if !live[id] {
                continue;
            }
            match *node {
                // exp(x*k1 + k2) and efun(x*k1 + k2): the affine argument goes into the
                // function.
                Node::Un(Un::Fun(Func::Exp) | Un::Efun, arg) => {
                    let au = arg as usize;
                    if uses[au] == 1 && same(au, id) && self.affine_arg(arg, &fused, uses) {
                        fused[au] = true;
                    }
                }
                // k / (exp(..)*k3 + k4): the exponential's instruction takes the division.
                Node::Bin(Bin::Div, k, e)
                    if self.konst(k).is_some()
                        && uses[e as usize] == 1
                        && !fused[e as usize]
                        && same(e as usize, id)
                        && self.exp_chain(e, &fused).is_some() =>
                {
                    fused[e as usize] = true;
                }
                Node::Bin(op, a, b) => {
                    // exp(..) + k and exp(..) * k.
                    if matches!(op, Bin::Add | Bin::Mul)
                        && self.is_exp(a)
                        && uses[a as usize] == 1
                        && same(a as usize, id)
                        && self.konst(b).is_some()
                    {
                        fused[a as usize] = true;
                        continue;
                    }
                    // a*b + c.
                    if op == Bin::Add {
                        for (m, c) in [(a, b), (b, a)] {
                            let mu = m as usize;
                            let Node::Bin(Bin::Mul, x, _) = self.nodes[mu] else {
                                continue;
                            };
                            // A product of a fused exponential needs a constant addend.
                            let exp_inside = fused[x as usize] && self.is_exp(x);
                            if uses[mu] == 1
                                && !fused[mu]
                                && same(mu, id)
                                && (!exp_inside || self.konst(c).is_some())
                            {
                                fused[mu] = true;
                                break;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        fused
    }

    /// Register of an operand, materialising a constant into a fresh register if needed.
    fn operand_reg(
        &self,
        o: NodeId,
        reg: &[Option<R>],
        out: &mut Vec<Ins>,
        next: &mut R,
        extra: &mut Option<(&mut Vec<R>, &mut R)>,
    ) -> R {
        if let Some(r) = reg[o as usize] {
            return r;
        }
        let k = self.konst(o).unwrap_or(f64::NAN);
        let r = match extra {
            Some((_, top)) => {
                // Body: a scratch register above everything in use; never freed, but
                // this only happens for constants inside clip/select.
                let r = **top;
                **top += 1;
                r
            }
            None => {
                let r = *next;
                *next += 1;
                r
            }
        };
        out.push(Ins::Splat(r, k));
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        id: NodeId,
        d: R,
        reg: &[Option<R>],
        fused: &[bool],
        out: &mut Vec<Ins>,
        next: &mut R,
        extra: &mut Option<(&mut Vec<R>, &mut R)>,
    ) {
        let node = self.nodes[id as usize];
        match node {
            Node::Fixed(_) => {}
            Node::Const(b) => out.push(Ins::Splat(d, f64::from_bits(b))),
            Node::Un(Un::Fun(Func::Exp), a) if fused[a as usize] => {
                let (x, k1, k2) = self.exp_affine(id, fused);
                let rx = self.operand_reg(x, reg, out, next, extra);
                out.push(Ins::ExpAff(d, rx, [k1, k2, 1.0, 0.0]));
            }
            Node::Un(Un::Efun, a) if fused[a as usize] => {
                let (x, k1, k2) = self.affine_parts(a, fused);
                let rx = self.operand_reg(x, reg, out, next, extra);
                out.push(Ins::EfunAff(d, rx, k1, k2));
            }
            Node::Un(op, a) => {
                let ra = self.operand_reg(a, reg, out, next, extra);
                out.push(Ins::Un(op, d, ra));
            }
            Node::Bin(Bin::Div, k, e) if fused[e as usize] => {
                let (x, [k1, k2, k3, k4]) = self
                    .exp_chain(e, fused)
                    .expect("the fusion plan fuses only exponential chains");
                let k5 = self.konst(k).unwrap_or(f64::NAN);
                let rx = self.operand_reg(x, reg, out, next, extra);
                out.push(Ins::ExpAffRecip(d, rx, [k1, k2, k3, k4, k5]));
            }
            Node::Bin(op @ (Bin::Add | Bin::Mul), e, c)
                if fused[e as usize] && self.is_exp(e) && self.konst(c).is_some() =>
            {
                let (x, k1, k2) = self.exp_affine(e, fused);
                let k = self.konst(c).unwrap_or(0.0);
                let (k3, k4) = if op == Bin::Add { (1.0, k) } else { (k, 0.0) };
                let rx = self.operand_reg(x, reg, out, next, extra);
                out.push(Ins::ExpAff(d, rx, [k1, k2, k3, k4]));
            }
            Node::Bin(Bin::Add, a, b)
                if self.is_fused_mul(a, fused) || self.is_fused_mul(b, fused) =>
            {
                let (m, c) = if self.is_fused_mul(a, fused) {
                    (a, b)
                } else {
                    (b, a)
                };
                let Node::Bin(Bin::Mul, x, y) = self.nodes[m as usize] else {
                    unreachable!("fused node is a product")
                };
                if fused[x as usize] && self.is_exp(x) {
                    // exp(..)*k3 + k4 (the plan fuses the exponential only with constants).
                    let (ex, k1, k2) = self.exp_affine(x, fused);
                    let k3 = self.konst(y).unwrap_or(f64::NAN);
                    let k4 = self.konst(c).unwrap_or(f64::NAN);
                    let rx = self.operand_reg(ex, reg, out, next, extra);
                    out.push(Ins::ExpAff(d, rx, [k1, k2, k3, k4]));
                    return;
                }
                let v = if self.konst(x).is_some() { y } else { x };
                match (self.konst(x).or(self.konst(y)), self.konst(c)) {
                    (Some(k1), Some(k2)) => {
                        let rv = self.operand_reg(v, reg, out, next, extra);
                        out.push(Ins::MulAddK(d, rv, k1, k2));
                    }
                    (Some(k1), None) => {
                        let rv = self.operand_reg(v, reg, out, next, extra);
                        let rc = self.operand_reg(c, reg, out, next, extra);
                        out.push(Ins::MulKAdd(d, rv, k1, rc));
                    }
                    (None, Some(k2)) => {
                        let rx = self.operand_reg(x, reg, out, next, extra);
                        let ry = self.operand_reg(y, reg, out, next, extra);
                        out.push(Ins::MulAddC(d, rx, ry, k2));
                    }
                    _ => {
                        let rx = self.operand_reg(x, reg, out, next, extra);
                        let ry = self.operand_reg(y, reg, out, next, extra);
                        let rc = self.operand_reg(c, reg, out, next, extra);
                        out.push(Ins::MulAdd(d, rx, ry, rc));
                    }
                }
            }
            Node::Bin(op, a, b) => match (self.konst(a), self.konst(b)) {
                (_, Some(k)) => {
                    let ra = self.operand_reg(a, reg, out, next, extra);
                    match op {
                        Bin::Sub => out.push(Ins::BinK(Bin::Add, d, ra, -k)),
                        Bin::Div => out.push(Ins::BinK(Bin::Mul, d, ra, 1.0 / k)),
                        _ => out.push(Ins::BinK(op, d, ra, k)),
                    }
                }
                (Some(k), None) => {
                    let rb = self.operand_reg(b, reg, out, next, extra);
                    match op {
                        Bin::Add | Bin::Mul => out.push(Ins::BinK(op, d, rb, k)),
                        _ => out.push(Ins::KBin(op, d, k, rb)),
                    }
                }
                (None, None) => {
                    let ra = self.operand_reg(a, reg, out, next, extra);
                    let rb = self.operand_reg(b, reg, out, next, extra);
                    out.push(Ins::Bin(op, d, ra, rb));
                }
            },
            Node::Clip(a, lo, hi) => {
                let ra = self.operand_reg(a, reg, out, next, extra);
                let rl = self.operand_reg(lo, reg, out, next, extra);
                let rh = self.operand_reg(hi, reg, out, next, extra);
                out.push(Ins::Clip(d, ra, rl, rh));
            }
            Node::Select(c, a, b) => {
                let rc = self.operand_reg(c, reg, out, next, extra);
                let ra = self.operand_reg(a, reg, out, next, extra);
                let rb = self.operand_reg(b, reg, out, next, extra);
                out.push(Ins::Select(d, rc, ra, rb));
            }
            Node::ExpEuler(x, a, b, dt) => {
                let rx = self.operand_reg(x, reg, out, next, extra);
                let ra = self.operand_reg(a, reg, out, next, extra);
                let rb = self.operand_reg(b, reg, out, next, extra);
                out.push(Ins::ExpEuler(d, rx, ra, rb, f64::from_bits(dt)));
            }
        }
    }

    fn is_fused_mul(&self, m: NodeId, fused: &[bool]) -> bool {
        fused[m as usize] && matches!(self.nodes[m as usize], Node::Bin(Bin::Mul, ..))
    }

    fn is_exp(&self, e: NodeId) -> bool {
        matches!(self.nodes[e as usize], Node::Un(Un::Fun(Func::Exp), _))
    }

    /// `exp(x*k1 + k2)`: the register operand and constants of a (possibly fused) argument.
    fn exp_affine(&self, e: NodeId, fused: &[bool]) -> (NodeId, f64, f64) {
        let Node::Un(Un::Fun(Func::Exp), arg) = self.nodes[e as usize] else {
            unreachable!("exp_affine of a non-exponential")
        };
        if !fused[arg as usize] {
            return (arg, 1.0, 0.0);
        }
        self.affine_parts(arg, fused)
    }

    /// What an exponential's instruction computes when node `id` is emitted as one:
    /// `exp(x*k[0] + k[1])*k[2] + k[3]` as `(x, k)`; `None` for any other node.
    fn exp_chain(&self, id: NodeId, fused: &[bool]) -> Option<(NodeId, [f64; 4])> {
        match self.nodes[id as usize] {
            Node::Un(Un::Fun(Func::Exp), _) => {
                let (x, k1, k2) = self.exp_affine(id, fused);
                Some((x, [k1, k2, 1.0, 0.0]))
            }
            Node::Bin(op @ (Bin::Add | Bin::Mul), e, c)
                if fused[e as usize] && self.is_exp(e) && self.konst(c).is_some() =>
            {
                let (x, k1, k2) = self.exp_affine(e, fused);
                let k = self.konst(c)?;
                Some((
                    x,
                    if op == Bin::Add {
                        [k1, k2, 1.0, k]
                    } else {
                        [k1, k2, k, 0.0]
                    },
                ))
            }
            Node::Bin(Bin::Add, a, b) => {
                let (m, c) = if self.is_fused_mul(a, fused) {
                    (a, b)
                } else {
                    (b, a)
                };
                let Node::Bin(Bin::Mul, x, y) = self.nodes[m as usize] else {
                    return None;
                };
                if !(self.is_fused_mul(m, fused) && fused[x as usize] && self.is_exp(x)) {
                    return None;
                }
                let (ex, k1, k2) = self.exp_affine(x, fused);
                Some((ex, [k1, k2, self.konst(y)?, self.konst(c)?]))
            }
            _ => None,
        }
    }

    /// `x*k1 + k2`, `x*k1` or `x + k2` (a fused affine node): `(x, k1, k2)`.
    fn affine_parts(&self, arg: NodeId, fused: &[bool]) -> (NodeId, f64, f64) {
        match self.nodes[arg as usize] {
            Node::Bin(Bin::Add, m, c) => {
                let k2 = self.konst(c).unwrap_or(f64::NAN);
                match self.nodes[m as usize] {
                    Node::Bin(Bin::Mul, x, k) if fused[m as usize] => {
                        (x, self.konst(k).unwrap_or(f64::NAN), k2)
                    }
                    _ => (m, 1.0, k2),
                }
            }
            Node::Bin(Bin::Mul, x, k) => (x, self.konst(k).unwrap_or(f64::NAN), 0.0),
            _ => unreachable!("fused exponential argument is affine"),
        }
    }

    /// Whether `arg` has the form `x*K1 + K2`, `x*K1` or `x + K2` with a register operand.
    fn affine_arg(&self, arg: NodeId, fused: &[bool], uses: &[u32]) -> bool {
        let reg_operand = |x: NodeId| !fused[x as usize] && self.konst(x).is_none();
        match self.nodes[arg as usize] {
            Node::Bin(Bin::Add, m, c) if self.konst(c).is_some() => match self.nodes[m as usize] {
                Node::Bin(Bin::Mul, x, k) if fused[m as usize] => {
                    self.konst(k).is_some() && reg_operand(x)
                }
                _ => !fused[m as usize] && reg_operand(m),
            },
            Node::Bin(Bin::Mul, x, k) => {
                self.konst(k).is_some() && reg_operand(x) && uses[arg as usize] == 1
            }
            _ => false,
        }
    }
}

fn operands(n: Node, mut f: impl FnMut(NodeId)) {
    match n {
        Node::Fixed(_) | Node::Const(_) => {}
        Node::Un(_, a) => f(a),
        Node::Bin(_, a, b) => {
            f(a);
            f(b);
        }
        Node::Clip(a, b, c) | Node::Select(a, b, c) | Node::ExpEuler(a, b, c, _) => {
            f(a);
            f(b);
            f(c);
        }
    }
}

/// Operands as the emitted instruction reads them: a fused product contributes its own
/// operands instead of itself.
fn operands_fused(b: &Builder, fused: &[bool], id: NodeId, f: &mut impl FnMut(NodeId)) {
    operands(b.nodes[id as usize], |o| {
        if fused[o as usize] {
            operands_fused(b, fused, o, &mut *f);
        } else {
            f(o);
        }
    });
}

/// Disjoint access to a destination register and up to three operand registers.
///
/// # Safety
/// `d` must differ from every operand and all indices must be in bounds; `Builder::compile`
/// guarantees both (destinations are allocated before operands are freed) and
/// [`Program::exec`] checks bounds once per program.
#[inline(always)]
unsafe fn regs<'a>(base: *mut Lanes, d: R, ops: [R; 3]) -> (&'a mut Lanes, [&'a Lanes; 3]) {
    // SAFETY: per the function's contract, `d` is distinct from the operands, so the
    // mutable reference does not alias the shared ones; operands may alias each other.
    unsafe {
        (
            &mut *base.add(d as usize),
            [
                &*base.add(ops[0] as usize),
                &*base.add(ops[1] as usize),
                &*base.add(ops[2] as usize),
            ],
        )
    }
}

/// `d[l] = e` for the first `W` lanes (a constant, so LLVM emits straight vector code).
macro_rules! lanes {
    ($w:ident, $d:ident, $l:ident, $e:expr) => {
        for $l in 0..$w {
            $d[$l] = $e;
        }
    };
}

#[inline(always)]
fn bool_lanes<const W: usize>(d: &mut Lanes, a: &Lanes, b: &Lanes, f: impl Fn(f64, f64) -> bool) {
    lanes!(W, d, l, if f(a[l], b[l]) { 1.0 } else { 0.0 });
}

#[inline(always)]
fn bin_lanes<const W: usize>(op: Bin, d: &mut Lanes, a: &Lanes, b: &Lanes, fd: bool) {
    match op {
        Bin::Add => lanes!(W, d, l, a[l] + b[l]),
        Bin::Sub => lanes!(W, d, l, a[l] - b[l]),
        Bin::Mul => lanes!(W, d, l, a[l] * b[l]),
        Bin::Div => divide::div_lanes::<W>(d, a, b, fd),
        Bin::Pow => lanes!(W, d, l, a[l].powf(b[l])),
        Bin::Cmp(c) => bool_lanes::<W>(d, a, b, |x, y| c.eval(x, y)),
        Bin::And => bool_lanes::<W>(d, a, b, |x, y| x != 0.0 && y != 0.0),
        Bin::Or => bool_lanes::<W>(d, a, b, |x, y| x != 0.0 || y != 0.0),
        Bin::Poisson => lanes!(W, d, l, crate::ir::poisson_quantile(a[l], b[l])),
    }
}

#[inline(always)]
fn bin_k_lanes<const W: usize>(op: Bin, d: &mut Lanes, a: &Lanes, k: f64, k_first: bool, fd: bool) {
    match (op, k_first) {
        (Bin::Add, _) => lanes!(W, d, l, a[l] + k),
        (Bin::Mul, _) => lanes!(W, d, l, a[l] * k),
        (Bin::Sub, false) => lanes!(W, d, l, a[l] - k),
        (Bin::Sub, true) => lanes!(W, d, l, k - a[l]),
        (Bin::Div, false) => lanes!(W, d, l, a[l] / k),
        (Bin::Div, true) => divide::kdiv_lanes::<W>(d, k, a, fd),
        (Bin::Pow, false) => lanes!(W, d, l, a[l].powf(k)),
        (Bin::Pow, true) => lanes!(W, d, l, k.powf(a[l])),
        _ => {
            let kb = [k; LANES];
            if k_first {
                bin_lanes::<W>(op, d, &kb, a, fd)
            } else {
                bin_lanes::<W>(op, d, a, &kb, fd)
            }
        }
    }
}

/// `fastmath::efun` over lanes, its division through [`divide`].
#[inline(always)]
fn efun_lanes<const W: usize>(d: &mut Lanes, z: &Lanes, fd: bool) {
    let mut em = [0.0; LANES];
    lanes!(W, em, l, fastmath::expm1(z[l]));
    divide::div_lanes::<W>(d, z, &em, fd);
    lanes!(W, d, l, if z[l] == 0.0 { 1.0 } else { d[l] });
}

/// [`exp_euler_scalar`] over lanes, the same operations in the same order, its division
/// through [`divide`].
#[inline(always)]
fn exp_euler_lanes<const W: usize>(
    d: &mut Lanes,
    x: &Lanes,
    a: &Lanes,
    b: &Lanes,
    dt: f64,
    fd: bool,
) {
    let (mut e, mut em, mut q) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    lanes!(W, e, l, fastmath::exp(a[l] * dt));
    lanes!(W, em, l, e[l] - 1.0);
    divide::div_lanes::<W>(&mut q, &em, a, fd);
    lanes!(W, d, l, {
        let exact = x[l] * e[l] + b[l] * q[l];
        let euler = x[l] + b[l] * dt;
        if a[l] == 0.0 { euler } else { exact }
    });
}

#[inline(always)]
fn un_lanes<const W: usize>(op: Un, d: &mut Lanes, a: &Lanes, fd: bool) {
    match op {
        Un::Not => lanes!(W, d, l, if a[l] == 0.0 { 1.0 } else { 0.0 }),
        Un::PowI(2) => lanes!(W, d, l, a[l] * a[l]),
        Un::PowI(3) => lanes!(W, d, l, a[l] * a[l] * a[l]),
        Un::PowI(4) => lanes!(W, d, l, {
            let s = a[l] * a[l];
            s * s
        }),
        Un::PowI(n) => lanes!(W, d, l, powi(a[l], n)),
        Un::Efun => efun_lanes::<W>(d, a, fd),
        Un::Fun(f) => match f {
            Func::Exp => lanes!(W, d, l, fastmath::exp(a[l])),
            Func::Exprel => {
                let mut em = [0.0; LANES];
                lanes!(W, em, l, fastmath::expm1(a[l]));
                divide::div_lanes::<W>(d, &em, a, fd);
                lanes!(W, d, l, if a[l] == 0.0 { 1.0 } else { d[l] });
            }
            Func::Abs => lanes!(W, d, l, a[l].abs()),
            Func::Sqrt => lanes!(W, d, l, a[l].sqrt()),
            Func::Floor => lanes!(W, d, l, a[l].floor()),
            Func::Ceil => lanes!(W, d, l, a[l].ceil()),
            Func::Int => lanes!(W, d, l, a[l].trunc()),
            other => lanes!(W, d, l, other.eval(a[l])),
        },
    }
}

impl Program {
    /// Runs the program on a register file.
    #[inline(always)]
    pub fn exec(&self, file: &mut [Lanes], n_regs: usize) {
        self.exec_w::<LANES>(file, n_regs);
    }

    /// Runs the program on the first `width` lanes only (1, 2, 4, 8 or [`LANES`]; other
    /// widths run all lanes): what a block of a few neurons costs. Lanes are independent, so a
    /// lane's results do not depend on the width.
    #[inline(always)]
    pub fn exec_width(&self, file: &mut [Lanes], n_regs: usize, width: usize) {
        match width {
            1 => self.exec_w::<1>(file, n_regs),
            2 => self.exec_w::<2>(file, n_regs),
            4 => self.exec_w::<4>(file, n_regs),
            8 => self.exec_w::<8>(file, n_regs),
            _ => self.exec_w::<LANES>(file, n_regs),
        }
    }

    #[inline(always)]
    fn exec_w<const W: usize>(&self, file: &mut [Lanes], n_regs: usize) {
        assert!(
            file.len() >= n_regs,
            "register file smaller than the program needs"
        );
        let base = file.as_mut_ptr();
        let fd = self.fast_div;
        for ins in &self.ins {
            // SAFETY: every register index is below `n_regs` (compile-time invariant of
            // `Builder::compile`, with `file.len() >= n_regs` checked above) and each
            // destination differs from its operands.
            unsafe {
                match *ins {
                    Ins::Bin(op, d, a, b) => {
                        let (d, [a, b, _]) = regs(base, d, [a, b, b]);
                        bin_lanes::<W>(op, d, a, b, fd);
                    }
                    Ins::BinK(op, d, a, k) => {
                        let (d, [a, _, _]) = regs(base, d, [a, a, a]);
                        bin_k_lanes::<W>(op, d, a, k, false, fd);
                    }
                    Ins::KBin(op, d, k, a) => {
                        let (d, [a, _, _]) = regs(base, d, [a, a, a]);
                        bin_k_lanes::<W>(op, d, a, k, true, fd);
                    }
                    Ins::MulAdd(d, a, b, c) => {
                        let (d, [a, b, c]) = regs(base, d, [a, b, c]);
                        lanes!(W, d, l, a[l] * b[l] + c[l]);
                    }
                    Ins::MulAddK(d, a, k1, k2) => {
                        let (d, [a, _, _]) = regs(base, d, [a, a, a]);
                        lanes!(W, d, l, a[l] * k1 + k2);
                    }
                    Ins::MulKAdd(d, a, k, c) => {
                        let (d, [a, c, _]) = regs(base, d, [a, c, c]);
                        lanes!(W, d, l, a[l] * k + c[l]);
                    }
                    Ins::MulAddC(d, a, b, k) => {
                        let (d, [a, b, _]) = regs(base, d, [a, b, b]);
                        lanes!(W, d, l, a[l] * b[l] + k);
                    }
                    Ins::Un(op, d, a) => {
                        let (d, [a, _, _]) = regs(base, d, [a, a, a]);
                        un_lanes::<W>(op, d, a, fd);
                    }
                    Ins::Clip(d, a, lo, hi) => {
                        let (d, [a, lo, hi]) = regs(base, d, [a, lo, hi]);
                        lanes!(W, d, l, clip(a[l], lo[l], hi[l]));
                    }
                    Ins::Select(d, c, a, b) => {
                        let (d, [c, a, b]) = regs(base, d, [c, a, b]);
                        lanes!(W, d, l, if c[l] != 0.0 { a[l] } else { b[l] });
                    }
                    Ins::ExpEuler(d, x, a, b, dt) => {
                        let (d, [x, a, b]) = regs(base, d, [x, a, b]);
                        exp_euler_lanes::<W>(d, x, a, b, dt, fd);
                    }
                    Ins::ExpAff(d, a, k) => {
                        let (d, [a, _, _]) = regs(base, d, [a, a, a]);
                        lanes!(W, d, l, fastmath::exp(a[l] * k[0] + k[1]) * k[2] + k[3]);
                    }
                    Ins::ExpAffRecip(d, a, k) => {
                        let (d, [a, _, _]) = regs(base, d, [a, a, a]);
                        let mut den = [0.0; LANES];
                        lanes!(W, den, l, fastmath::exp(a[l] * k[0] + k[1]) * k[2] + k[3]);
                        divide::kdiv_lanes::<W>(d, k[4], &den, fd);
                    }
                    Ins::EfunAff(d, a, k1, k2) => {
                        let (d, [a, _, _]) = regs(base, d, [a, a, a]);
                        let mut z = [0.0; LANES];
                        lanes!(W, z, l, a[l] * k1 + k2);
                        efun_lanes::<W>(d, &z, fd);
                    }
                    Ins::Splat(d, k) => {
                        let d = &mut *base.add(d as usize);
                        lanes!(LANES, d, l, k);
                    }
                }
            }
        }
    }

    /// A program of instruction `i` alone (diagnostics: [`crate::profile`]).
    pub(crate) fn single(&self, i: usize) -> Program {
        Program {
            ins: vec![self.ins[i]],
            outputs: Vec::new(),
            fast_div: self.fast_div,
        }
    }

    /// Instruction `i` as text.
    pub(crate) fn instruction_text(&self, i: usize) -> String {
        format!("{:?}", self.ins[i])
    }

    /// One instruction per line (diagnostics).
    pub fn listing(&self) -> String {
        let mut s = String::new();
        for ins in &self.ins {
            s.push_str(&format!("  {ins:?}\n"));
        }
        s.push_str(&format!("  outputs: {:?}\n", self.outputs));
        s
    }

    /// Number of instructions (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.ins.len()
    }

    /// Whether the program is empty.
    pub fn is_empty(&self) -> bool {
        self.ins.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{add, div, mul, sub};

    fn run(b: &Builder, c: &Compiled, fixed: &[f64]) -> Vec<f64> {
        let mut file = vec![[0.0; LANES]; c.n_regs];
        for (r, v) in fixed.iter().enumerate() {
            file[r] = [*v; LANES];
        }
        let _ = b;
        c.prologue.exec(&mut file, c.n_regs);
        let p = &c.programs[0];
        p.exec(&mut file, c.n_regs);
        p.outputs.iter().map(|&r| file[r as usize][0]).collect()
    }

    /// Compiles `exprs` into one program over state 0 (register 0) and parameter 0
    /// (register 1, run-constant).
    fn compile_xp(exprs: &[Ex]) -> (Builder, Compiled) {
        let mut b = Builder::new(vec![false, true]);
        let slot = |b: &mut Builder, s: Slot| match s {
            Slot::State(0) => b.fixed(0),
            _ => b.fixed(1),
        };
        let outs: Vec<NodeId> = exprs.iter().map(|e| b.lower(e, &slot)).collect();
        let c = b.compile(&[outs]);
        (b, c)
    }

    /// Every output at every (x, p) within `rel` of the reference evaluation, relative to
    /// the larger of |reference| and `floor`.
    fn assert_agrees(
        b: &Builder,
        c: &Compiled,
        exprs: &[Ex],
        points: &[(f64, f64)],
        rel: f64,
        floor: f64,
    ) {
        for &(xv, pv) in points {
            let got = run(b, c, &[xv, pv]);
            for (e, g) in exprs.iter().zip(got) {
                let want = e.eval(&|s| if s == Slot::State(0) { xv } else { pv });
                assert!(
                    (g - want).abs() <= rel * want.abs().max(floor),
                    "{e:?}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn compiled_programs_agree_with_reference_evaluation() {
        // x = state 0 (fixed 0), p = param (fixed 1, invariant)
        let x = || Ex::Slot(Slot::State(0));
        let p = || Ex::Slot(Slot::Param(0));
        let exprs = [
            add(mul(x(), p()), Ex::Num(2.0)),
            div(sub(Ex::Num(1.0), x()), add(p(), Ex::Num(3.0))),
            Ex::Call(Func::Exprel, Box::new(mul(x(), Ex::Num(0.25)))),
            Ex::Pow(Box::new(x()), Box::new(Ex::Num(3.0))),
            Ex::Cmp(Cmp::Gt, Box::new(x()), Box::new(p())),
            mul(mul(p(), p()), add(x(), Ex::Num(1.0))),
            Ex::Clip(Box::new(x()), Box::new(Ex::Num(-1.0)), Box::new(p())),
        ];
        let (b, c) = compile_xp(&exprs);
        let points = [(0.3, 1.7), (-2.0, 0.5), (5.0, -1.0)];
        assert_agrees(&b, &c, &exprs, &points, 1e-14, 1.0);
    }

    fn positive_tree() -> impl proptest::strategy::Strategy<Value = Ex> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            (0usize..3).prop_map(|k| Ex::Slot(Slot::State(k))),
            (0usize..2).prop_map(|k| Ex::Slot(Slot::Param(k))),
            (0.5f64..2.0).prop_map(Ex::Num),
        ];
        leaf.prop_recursive(5, 48, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| add(a, b)),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| mul(a, b)),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| div(a, b)),
                (inner.clone(), 0.01f64..0.3, -1.0f64..1.0).prop_map(|(a, k, c)| {
                    // exp(k*a + c), scaled and shifted: the fused exponential forms.
                    let e = Ex::Call(Func::Exp, Box::new(add(mul(a, Ex::Num(k)), Ex::Num(c))));
                    add(mul(e, Ex::Num(1.5)), Ex::Num(0.25))
                }),
                inner.prop_map(|a| Ex::Call(Func::Exp, Box::new(mul(a, Ex::Num(0.1))))),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Whatever the compiler folds, fuses, hoists and reuses, the program computes the
        /// expressions (well-conditioned positive arithmetic, so any difference is a bug).
        #[test]
        fn compiled_random_programs_match_reference(exprs in proptest::collection::vec(positive_tree(), 1..4),
                                                   xs in proptest::array::uniform3(0.5f64..2.0),
                                                   ps in proptest::array::uniform2(0.5f64..2.0)) {
            let mut b = Builder::new(vec![false, false, false, true, true]);
            let slot = |b: &mut Builder, s: Slot| match s {
                Slot::State(k) => b.fixed(k as u32),
                Slot::Param(k) => b.fixed(3 + k as u32),
                _ => b.num(0.0),
            };
            let outs: Vec<NodeId> = exprs.iter().map(|e| b.lower(e, &slot)).collect();
            let c = b.compile(&[outs]);
            let mut file = vec![[0.0; LANES]; c.n_regs];
            for (r, v) in xs.iter().chain(ps.iter()).enumerate() {
                file[r] = [*v; LANES];
            }
            c.prologue.exec(&mut file, c.n_regs);
            c.programs[0].exec(&mut file, c.n_regs);
            for (e, &r) in exprs.iter().zip(&c.programs[0].outputs) {
                let want = e.eval(&|s| match s {
                    Slot::State(k) => xs[k],
                    Slot::Param(k) => ps[k],
                    _ => 0.0,
                });
                let got = file[r as usize][0];
                if want.is_finite() && want.abs() < 1e200 {
                    proptest::prop_assert!((got - want).abs() <= 1e-10 * want.abs(), "{e:?}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn parameter_only_values_are_hoisted() {
        let mut b = Builder::new(vec![false, true]);
        let slot = |b: &mut Builder, s: Slot| match s {
            Slot::State(0) => b.fixed(0),
            _ => b.fixed(1),
        };
        // exp(p) * x: exp(p) goes to the prologue, the body is one multiply.
        let e = mul(
            Ex::Call(Func::Exp, Box::new(Ex::Slot(Slot::Param(0)))),
            Ex::Slot(Slot::State(0)),
        );
        let o = b.lower(&e, &slot);
        let c = b.compile(&[vec![o]]);
        assert_eq!(c.prologue.len(), 1);
        assert_eq!(c.programs[0].len(), 1);
    }

    #[test]
    fn sigmoid_rates_and_efun_arguments_fuse_into_their_instruction() {
        let x = || Ex::Slot(Slot::State(0));
        let p = || Ex::Slot(Slot::Param(0));
        let exp = |e: Ex| Ex::Call(Func::Exp, Box::new(e));
        let exprs = [
            // Hodgkin-Huxley's beta_h: 4/(1 + exp((40 mV - u)/5 mV)).
            div(
                Ex::Num(4000.0),
                add(
                    Ex::Num(1.0),
                    exp(div(sub(Ex::Num(0.04), x()), Ex::Num(0.005))),
                ),
            ),
            div(
                Ex::Num(1.0),
                add(
                    mul(exp(mul(x(), Ex::Num(-3.0))), Ex::Num(2.0)),
                    Ex::Num(0.5),
                ),
            ),
            div(
                Ex::Num(1.28),
                Ex::Call(
                    Func::Exprel,
                    Box::new(add(mul(x(), Ex::Num(0.25)), Ex::Num(1.0))),
                ),
            ),
            // The divisor depends on a parameter too: p*exp(x) is no exponential chain.
            div(Ex::Num(2.0), mul(exp(x()), p())),
        ];
        let (b, c) = compile_xp(&exprs);
        let code = format!("{:?}", c.programs[0].ins);
        assert_eq!(code.matches("ExpAffRecip").count(), 2, "{code}");
        assert_eq!(code.matches("EfunAff").count(), 1, "{code}");
        let points = [(-0.07, 0.3), (0.04, 1.5), (-4.0, 2.0), (0.0, -0.2)];
        assert_agrees(&b, &c, &exprs, &points, 1e-14, 0.0);
    }

    #[test]
    fn rate_functions_lose_their_divisions() {
        let x = || Ex::Slot(Slot::State(0));
        let p = || Ex::Slot(Slot::Param(0));
        let z = || div(sub(Ex::Num(0.013), x()), Ex::Num(0.004));
        let exprs = [
            // Hodgkin-Huxley's 1.28/exprel((13 mV - v)/4 mV)/ms.
            mul(
                div(Ex::Num(1.28), Ex::Call(Func::Exprel, Box::new(z()))),
                Ex::Num(1000.0),
            ),
            // (p_inf - p)/tau with tau = k/(...).
            div(
                sub(p(), x()),
                div(
                    Ex::Num(0.6),
                    add(Ex::Call(Func::Exp, Box::new(x())), Ex::Num(2.0)),
                ),
            ),
        ];
        let (b, c) = compile_xp(&exprs);
        let code = format!("{:?}", c.programs[0].ins);
        assert!(!code.contains("Div"), "{code}");
        let points = [
            (-0.07, 0.3),
            (0.013, 1.5),
            (0.02, -0.2),
            (0.013 + 1e-12, 0.0),
        ];
        assert_agrees(&b, &c, &exprs, &points, 1e-13, 0.0);
        // (k - x)/k2 is one multiply-add.
        let (_, c) = compile_xp(&[z()]);
        assert_eq!(c.programs[0].len(), 1);
    }
}
