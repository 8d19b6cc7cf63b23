//! Native Rust models: hand-written right-hand sides that run through the same
//! integrators (see [`crate::integrate`]) and the same batch runner as equation strings.

use crate::fastmath;
use crate::integrate::{self, StepAlgebra};
use crate::kernel::{Kernel, Layout, RefractoryKind};
use crate::model::{Method, Var};
use crate::units::Dimension;
use crate::vm::{LANES, Lanes};

/// A model written in Rust. Every method works on a block of [`LANES`] neurons in
/// structure-of-arrays form: `x[j][lane]` is state `j` of neuron `lane`.
pub trait NativeModel: Send + Sync {
    /// State variables (names and dimensions, SI).
    fn state_vars(&self) -> Vec<Var>;
    /// Per-neuron parameters.
    fn parameters(&self) -> Vec<Var>;
    /// Input variables read from stimuli.
    fn inputs(&self) -> Vec<Var>;
    /// Integration method.
    fn method(&self) -> Method;
    /// Right-hand sides `dx/dt` at time `t`.
    fn drift(&self, x: &[Lanes], p: &[Lanes], inputs: &[Lanes], t: f64, out: &mut [Lanes]);
    /// Conditionally linear form `dx_j/dt = a_j x_j + b_j`; needed for exponential Euler.
    /// The default derives it from nothing and returns false (method unsupported).
    fn linear(
        &self,
        _x: &[Lanes],
        _p: &[Lanes],
        _inputs: &[Lanes],
        _t: f64,
        _a: &mut [Lanes],
        _b: &mut [Lanes],
    ) -> bool {
        false
    }
    /// Initial states from parameters.
    fn initial(&self, p: &[Lanes], x: &mut [Lanes]);
    /// Spike condition (1/0); false if the model has none.
    fn threshold(&self, _x: &[Lanes], _p: &[Lanes], _out: &mut Lanes) -> bool {
        false
    }
    /// Reset where `mask` is 1.
    fn reset(&self, _x: &mut [Lanes], _p: &[Lanes], _mask: &Lanes) {}
    /// Refractoriness.
    fn refractory(&self) -> RefractoryKind {
        RefractoryKind::None
    }
    /// Refractory duration (s) per neuron when [`NativeModel::refractory`] is `Duration`.
    fn refractory_duration(&self, _p: &[Lanes], out: &mut Lanes) {
        *out = [0.0; LANES];
    }
    /// Refractory condition (1 = refractory) when [`NativeModel::refractory`] is `Condition`.
    fn refractory_condition(&self, _x: &[Lanes], _p: &[Lanes], _out: &mut Lanes) {}
    /// Whether state `j` is frozen while refractory.
    fn frozen_when_refractory(&self, _j: usize) -> bool {
        false
    }
}

/// Eager step algebra: values are registers of the frame, computed immediately.
struct Eager<'a, M: NativeModel> {
    model: &'a M,
    frame: &'a mut [Lanes],
    layout: Layout,
    next: usize,
    dt: f64,
}

impl<M: NativeModel> Eager<'_, M> {
    #[inline(always)]
    fn alloc(&mut self, n: usize) -> usize {
        let r = self.next;
        self.next += n;
        assert!(
            self.next <= self.frame.len(),
            "native kernel arena exhausted"
        );
        r
    }

    #[inline(always)]
    fn op2(&mut self, a: usize, b: usize, f: impl Fn(f64, f64) -> f64) -> usize {
        let d = self.alloc(1);
        let (lo, hi) = self.frame.split_at_mut(d);
        let (x, y, out) = (&lo[a], &lo[b], &mut hi[0]);
        for l in 0..LANES {
            out[l] = f(x[l], y[l]);
        }
        d
    }

    /// Copies stage values into a contiguous block (unless they already are the states).
    #[inline(always)]
    fn gather(&mut self, x: &[usize]) -> usize {
        if x.iter()
            .enumerate()
            .all(|(j, &r)| r == self.layout.state(j))
        {
            return self.layout.state(0);
        }
        let s = self.alloc(x.len());
        for (j, &r) in x.iter().enumerate() {
            self.frame[s + j] = self.frame[r];
        }
        s
    }

    #[inline(always)]
    fn params_inputs(&self, stage: f64) -> (std::ops::Range<usize>, std::ops::Range<usize>, f64) {
        let l = self.layout;
        let p = l.param(0)..l.param(l.n_params);
        let next = stage >= 1.0;
        let i = l.input(0, next)..l.input(0, next) + l.n_inputs;
        let t = self.frame[l.time()][0] + stage * self.dt;
        (p, i, t)
    }
}

impl<M: NativeModel> StepAlgebra for Eager<'_, M> {
    type V = usize;
    fn n_states(&self) -> usize {
        self.layout.n_states
    }
    fn n_noise(&self) -> usize {
        0
    }
    fn dt(&self) -> f64 {
        self.dt
    }
    #[inline(always)]
    fn state(&mut self, j: usize) -> usize {
        self.layout.state(j)
    }
    #[inline(always)]
    fn num(&mut self, v: f64) -> usize {
        let d = self.alloc(1);
        self.frame[d] = [v; LANES];
        d
    }
    #[inline(always)]
    fn add(&mut self, a: usize, b: usize) -> usize {
        self.op2(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(&mut self, a: usize, b: usize) -> usize {
        self.op2(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(&mut self, a: usize, b: usize) -> usize {
        self.op2(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn div(&mut self, a: usize, b: usize) -> usize {
        self.op2(a, b, |x, y| x / y)
    }
    #[inline(always)]
    fn if_zero(&mut self, a: usize, x: usize, y: usize) -> usize {
        let d = self.alloc(1);
        let (lo, hi) = self.frame.split_at_mut(d);
        for l in 0..LANES {
            hi[0][l] = if lo[a][l] == 0.0 { lo[x][l] } else { lo[y][l] };
        }
        d
    }
    #[inline(always)]
    fn exp_euler(&mut self, x: usize, a: usize, b: usize) -> usize {
        let d = self.alloc(1);
        let dt = self.dt;
        let (lo, hi) = self.frame.split_at_mut(d);
        for l in 0..LANES {
            hi[0][l] = crate::vm::exp_euler_scalar(lo[x][l], lo[a][l], lo[b][l], dt);
        }
        d
    }
    #[inline(always)]
    fn not_refractory(&mut self, _j: usize) -> usize {
        self.layout.not_refractory()
    }
    fn frozen_when_refractory(&self, j: usize) -> bool {
        self.model.frozen_when_refractory(j)
    }
    #[inline(always)]
    fn drift(&mut self, x: &[usize], stage: f64) -> Vec<usize> {
        let n = x.len();
        let xs = self.gather(x);
        let out = self.alloc(n);
        let (p, i, t) = self.params_inputs(stage);
        let (lo, hi) = self.frame.split_at_mut(out);
        self.model
            .drift(&lo[xs..xs + n], &lo[p], &lo[i], t, &mut hi[..n]);
        (out..out + n).collect()
    }
    fn diffusion(&mut self, x: &[usize], _stage: f64) -> Vec<Vec<usize>> {
        vec![Vec::new(); x.len()]
    }
    #[inline(always)]
    fn linear(&mut self) -> Vec<(usize, usize)> {
        let n = self.layout.n_states;
        let a = self.alloc(2 * n);
        let (p, i, t) = self.params_inputs(0.0);
        let (lo, hi) = self.frame.split_at_mut(a);
        let (ha, hb) = hi.split_at_mut(n);
        let ok = self
            .model
            .linear(&lo[0..n], &lo[p], &lo[i], t, ha, &mut hb[..n]);
        assert!(
            ok,
            "exponential Euler selected for a native model without a linear form"
        );
        (0..n).map(|j| (a + j, a + n + j)).collect()
    }
    fn dw(&mut self, _k: usize) -> usize {
        unreachable!("native models have no noise sources")
    }
}

/// Runs a [`NativeModel`] through the batch runner.
pub struct NativeKernel<M: NativeModel> {
    model: M,
    layout: Layout,
    dt: f64,
    method: Method,
    arena: usize,
    record: Vec<usize>,
}

impl<M: NativeModel> NativeKernel<M> {
    /// Wraps `model` for time step `dt`, recording the named state variables.
    pub fn new(model: M, dt: f64, record: &[String]) -> crate::error::Result<Self> {
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(crate::error::SimError::Config(format!(
                "dt must be a positive duration, got {dt} s"
            )));
        }
        let layout = Layout {
            n_states: model.state_vars().len(),
            n_params: model.parameters().len(),
            n_inputs: model.inputs().len(),
            n_noise: 0,
            n_rand: 0,
            lastspike: false,
            n_sources: 1,
        };
        let method = model.method();
        if method == Method::Exact {
            return Err(crate::error::SimError::Model(
                "native models cannot use `exact`: it needs the equations' linear system".into(),
            ));
        }
        if matches!(method, Method::EulerMaruyama | Method::Milstein) {
            return Err(crate::error::SimError::Model(format!(
                "native models are deterministic; method {method} needs noise"
            )));
        }
        let names: Vec<String> = model.state_vars().into_iter().map(|v| v.name).collect();
        let record = record
            .iter()
            .map(|r| {
                names.iter().position(|n| n == r).ok_or_else(|| {
                    crate::error::SimError::Config(format!(
                        "cannot record `{r}`: native models record state variables ({})",
                        names.join(", ")
                    ))
                })
            })
            .collect::<crate::error::Result<Vec<_>>>()?;
        // Enough scratch registers for the longest method (RK4).
        let arena = 40 * (layout.n_states + 2) + 16;
        Ok(NativeKernel {
            model,
            layout,
            dt,
            method,
            arena,
            record,
        })
    }

    /// The wrapped model.
    pub fn model(&self) -> &M {
        &self.model
    }
}

impl<M: NativeModel> Kernel for NativeKernel<M> {
    fn layout(&self) -> Layout {
        self.layout
    }
    fn n_regs(&self) -> usize {
        self.layout.n_fixed() + self.arena
    }
    fn state_names(&self) -> Vec<String> {
        self.model
            .state_vars()
            .into_iter()
            .map(|v| v.name)
            .collect()
    }
    fn init(&self, frame: &mut [Lanes]) {
        let l = self.layout;
        let (x, rest) = frame.split_at_mut(l.n_states);
        self.model.initial(&rest[..l.n_params], x);
    }
    #[inline(always)]
    fn step(&self, frame: &mut [Lanes]) {
        let n = self.layout.n_states;
        let mut alg = Eager {
            model: &self.model,
            frame,
            layout: self.layout,
            next: self.layout.n_fixed(),
            dt: self.dt,
        };
        let new = integrate::step(&mut alg, self.method);
        for (j, r) in new.into_iter().enumerate() {
            debug_assert!(r >= n || r == j);
            if r != j {
                frame[j] = frame[r];
            }
        }
    }
    fn threshold(&self, frame: &mut [Lanes], out: &mut Lanes) -> bool {
        let l = self.layout;
        self.model.threshold(
            &frame[..l.n_states],
            &frame[l.param(0)..l.param(l.n_params)],
            out,
        )
    }
    fn reset(&self, frame: &mut [Lanes], mask: &Lanes) {
        let l = self.layout;
        let (x, rest) = frame.split_at_mut(l.n_states);
        self.model.reset(x, &rest[..l.n_params], mask);
    }
    fn refractory(&self) -> RefractoryKind {
        self.model.refractory()
    }
    fn refractory_duration(&self, frame: &mut [Lanes], out: &mut Lanes) {
        let l = self.layout;
        self.model
            .refractory_duration(&frame[l.param(0)..l.param(l.n_params)], out);
    }
    fn refractory_condition(&self, frame: &mut [Lanes], out: &mut Lanes) {
        let l = self.layout;
        self.model.refractory_condition(
            &frame[..l.n_states],
            &frame[l.param(0)..l.param(l.n_params)],
            out,
        );
    }
    fn record(&self, frame: &mut [Lanes], k: usize, out: &mut Lanes) {
        *out = frame[self.record[k]];
    }
}

/// Hodgkin-Huxley model C of `shared/design/REFERENCE.md` (Brian2's SBI example: Traub-Miles
/// kinetics without M-current, absolute units) written by hand: the speed reference for
/// the equation-string path. States `v, m, h, n`; parameters `gNa, gK` (siemens); input
/// `I` (amp). Threshold and refractory condition `m > 0.5`.
#[derive(Clone, Debug)]
pub struct HodgkinHuxleyC {
    /// Leak conductance (S).
    pub gl: f64,
    /// Membrane capacitance (F).
    pub c: f64,
    /// Leak reversal (V).
    pub el: f64,
    /// Potassium reversal (V).
    pub ek: f64,
    /// Sodium reversal (V).
    pub ena: f64,
    /// Threshold-adjusting voltage of the rate functions (V).
    pub vt: f64,
}

impl Default for HodgkinHuxleyC {
    fn default() -> Self {
        HodgkinHuxleyC {
            gl: 10e-9,
            c: 200e-12,
            el: -70e-3,
            ek: -107e-3,
            ena: 53e-3,
            vt: -60e-3,
        }
    }
}

/// Rates of model C in 1/s at membrane potential `v` (V): (alpha_m, beta_m, alpha_h,
/// beta_h, alpha_n, beta_n). The `x/(exp(x) - 1)` forms go through [`fastmath::efun`],
/// which also removes their 0/0 points.
#[inline(always)]
fn hh_rates(v: f64, vt: f64) -> [f64; 6] {
    let u = (v - vt) * 1e3; // mV above VT
    let am = 0.32 * 4.0 * fastmath::efun((13.0 - u) / 4.0);
    let bm = 0.28 * 5.0 * fastmath::efun((u - 40.0) / 5.0);
    let ah = 0.128 * fastmath::exp((17.0 - u) / 18.0);
    let bh = 4.0 / (1.0 + fastmath::exp((40.0 - u) / 5.0));
    let an = 0.032 * 5.0 * fastmath::efun((15.0 - u) / 5.0);
    let bn = 0.5 * fastmath::exp((10.0 - u) / 40.0);
    [am * 1e3, bm * 1e3, ah * 1e3, bh * 1e3, an * 1e3, bn * 1e3]
}

fn var(name: &str, dim: Dimension) -> Var {
    Var {
        name: name.into(),
        dim,
        unless_refractory: false,
    }
}

impl NativeModel for HodgkinHuxleyC {
    fn state_vars(&self) -> Vec<Var> {
        let volt = crate::units::lookup_unit("volt").expect("volt").dim;
        vec![
            var("v", volt),
            var("m", Dimension::DIMENSIONLESS),
            var("h", Dimension::DIMENSIONLESS),
            var("n", Dimension::DIMENSIONLESS),
        ]
    }
    fn parameters(&self) -> Vec<Var> {
        let s = crate::units::lookup_unit("siemens").expect("siemens").dim;
        vec![var("gNa", s), var("gK", s)]
    }
    fn inputs(&self) -> Vec<Var> {
        vec![var("I", crate::units::lookup_unit("amp").expect("amp").dim)]
    }
    fn method(&self) -> Method {
        Method::ExponentialEuler
    }
    #[inline(always)]
    fn drift(&self, x: &[Lanes], p: &[Lanes], inputs: &[Lanes], t: f64, out: &mut [Lanes]) {
        let mut a = [[0.0; LANES]; 4];
        let mut b = [[0.0; LANES]; 4];
        self.linear(x, p, inputs, t, &mut a, &mut b);
        for j in 0..4 {
            for l in 0..LANES {
                out[j][l] = a[j][l] * x[j][l] + b[j][l];
            }
        }
    }
    #[inline(always)]
    fn linear(
        &self,
        x: &[Lanes],
        p: &[Lanes],
        inputs: &[Lanes],
        _t: f64,
        a: &mut [Lanes],
        b: &mut [Lanes],
    ) -> bool {
        // One simple loop per rate: LLVM vectorises these reliably, while one loop doing
        // everything stayed scalar (measured 3x slower).
        let inv_c = 1.0 / self.c;
        let mut u = [0.0; LANES];
        for l in 0..LANES {
            u[l] = (x[0][l] - self.vt) * 1e3;
        }
        let mut r = [[0.0; LANES]; 6];
        for l in 0..LANES {
            r[0][l] = 0.32 * 4.0e3 * fastmath::efun((13.0 - u[l]) / 4.0);
        }
        for l in 0..LANES {
            r[1][l] = 0.28 * 5.0e3 * fastmath::efun((u[l] - 40.0) / 5.0);
        }
        for l in 0..LANES {
            r[2][l] = 0.128e3 * fastmath::exp((17.0 - u[l]) / 18.0);
        }
        for l in 0..LANES {
            r[3][l] = 4.0e3 / (1.0 + fastmath::exp((40.0 - u[l]) / 5.0));
        }
        for l in 0..LANES {
            r[4][l] = 0.032 * 5.0e3 * fastmath::efun((15.0 - u[l]) / 5.0);
        }
        for l in 0..LANES {
            r[5][l] = 0.5e3 * fastmath::exp((10.0 - u[l]) / 40.0);
        }
        for l in 0..LANES {
            let (m, h, n) = (x[1][l], x[2][l], x[3][l]);
            let gna = p[0][l] * m * m * m * h;
            let n2 = n * n;
            let gk = p[1][l] * n2 * n2;
            a[0][l] = -(self.gl + gna + gk) * inv_c;
            b[0][l] = (self.gl * self.el + gna * self.ena + gk * self.ek + inputs[0][l]) * inv_c;
        }
        for (j, (ra, rb)) in [(0, 1), (2, 3), (4, 5)].into_iter().enumerate() {
            for l in 0..LANES {
                a[j + 1][l] = -(r[ra][l] + r[rb][l]);
                b[j + 1][l] = r[ra][l];
            }
        }
        true
    }
    fn initial(&self, _p: &[Lanes], x: &mut [Lanes]) {
        // v at El, each gate at its steady state there (as Brian's example).
        let [am, bm, ah, bh, an, bn] = hh_rates(self.el, self.vt);
        let vals = [self.el, am / (am + bm), ah / (ah + bh), an / (an + bn)];
        for (j, v) in vals.iter().enumerate() {
            x[j] = [*v; LANES];
        }
    }
    fn threshold(&self, x: &[Lanes], _p: &[Lanes], out: &mut Lanes) -> bool {
        for l in 0..LANES {
            out[l] = if x[1][l] > 0.5 { 1.0 } else { 0.0 };
        }
        true
    }
    fn refractory(&self) -> RefractoryKind {
        RefractoryKind::Condition
    }
    fn refractory_condition(&self, x: &[Lanes], p: &[Lanes], out: &mut Lanes) {
        self.threshold(x, p, out);
    }
}
