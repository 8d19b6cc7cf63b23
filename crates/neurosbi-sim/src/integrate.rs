//! The integration methods, written once over an abstract "step algebra".
//!
//! For equation strings the algebra builds the compiled program symbolically (each
//! operation adds a node to the shared DAG); for native models it computes on lanes
//! right away. Both therefore use exactly the same formulas.

use crate::model::Method;

/// The operations an integrator needs: arithmetic on values of type `V` (a DAG node or a
/// register of lanes) and the model's right-hand sides.
pub trait StepAlgebra {
    /// A value: a symbolic node or a register.
    type V: Copy;
    /// Number of state variables.
    fn n_states(&self) -> usize;
    /// Number of noise sources.
    fn n_noise(&self) -> usize;
    /// The time step in seconds.
    fn dt(&self) -> f64;
    /// The current value of state `j`.
    fn state(&mut self, j: usize) -> Self::V;
    /// A constant.
    fn num(&mut self, v: f64) -> Self::V;
    /// `a + b`
    fn add(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`
    fn sub(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`
    fn mul(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`
    fn div(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `if a == 0 { x } else { y }`
    fn if_zero(&mut self, a: Self::V, x: Self::V, y: Self::V) -> Self::V;
    /// The exponential Euler update of `x` under `dx/dt = a x + b`: `x e^(a dt) + b (e^(a dt)
    /// - 1)/a`, or `x + b dt` where `a = 0` (see [`crate::vm::exp_euler_scalar`]).
    fn exp_euler(&mut self, x: Self::V, a: Self::V, b: Self::V) -> Self::V;
    /// 1 where the spike source that freezes state `j` is not refractory, 0 where it is.
    fn not_refractory(&mut self, j: usize) -> Self::V;
    /// Whether state `j` is frozen while refractory.
    fn frozen_when_refractory(&self, j: usize) -> bool;
    /// Drift `f(x, t + stage*dt)` of every state.
    fn drift(&mut self, x: &[Self::V], stage: f64) -> Vec<Self::V>;
    /// Noise coefficients `g[j][k](x, t + stage*dt)`.
    fn diffusion(&mut self, x: &[Self::V], stage: f64) -> Vec<Vec<Self::V>>;
    /// `(A_j, B_j)` with `dx_j/dt = A_j x_j + B_j` at the current state and time.
    fn linear(&mut self) -> Vec<(Self::V, Self::V)>;
    /// `(M, c)` with `dX/dt = M X + c`, for [`Method::Exact`]: only equation models have it
    /// (native kernels refuse the method when they are built).
    fn linear_system(&mut self) -> (Vec<Vec<Self::V>>, Vec<Self::V>) {
        unreachable!("only equation models are integrated with `exact`")
    }
    /// The Wiener increment of noise `k` over this step (`sqrt(dt) * N(0, 1)`).
    fn dw(&mut self, k: usize) -> Self::V;
    /// Whether `v` is known to be exactly zero before the run (a noise coefficient the
    /// equations leave out): its term `0 * dW` is then dropped, which changes no value
    /// because the increments are always finite.
    fn is_zero(&self, _v: Self::V) -> bool {
        false
    }
}

// Loops below push into vectors instead of `map(..).collect()`: a closure inside `collect`
// is compiled into the non-inlined `from_iter`, outside the runner's target-feature
// function, and would lose vectorisation (measured: 3x slower native kernels).

#[inline(always)]
fn axpy<A: StepAlgebra>(a: &mut A, x: &[A::V], h: f64, k: &[A::V]) -> Vec<A::V> {
    let hv = a.num(h);
    let mut out = Vec::with_capacity(x.len());
    for (&xi, &ki) in x.iter().zip(k) {
        let t = a.mul(hv, ki);
        out.push(a.add(xi, t));
    }
    out
}

#[inline(always)]
fn add_noise<A: StepAlgebra>(a: &mut A, x: Vec<A::V>, g: &[Vec<A::V>], scale: f64) -> Vec<A::V> {
    let n_noise = a.n_noise();
    if n_noise == 0 {
        return x;
    }
    let mut dws = Vec::with_capacity(n_noise);
    for k in 0..n_noise {
        dws.push(a.dw(k));
    }
    let s = a.num(scale);
    let mut out = x;
    for (j, v) in out.iter_mut().enumerate() {
        for k in 0..n_noise {
            if a.is_zero(g[j][k]) {
                continue;
            }
            let gdw = a.mul(g[j][k], dws[k]);
            let gdw = if scale == 1.0 { gdw } else { a.mul(s, gdw) };
            *v = a.add(*v, gdw);
        }
    }
    out
}

/// One step of `method`: the new value of every state variable (refractory freezing
/// applied).
#[inline(always)]
pub fn step<A: StepAlgebra>(a: &mut A, method: Method) -> Vec<A::V> {
    let n = a.n_states();
    let dt = a.dt();
    let mut x = Vec::with_capacity(n);
    for j in 0..n {
        x.push(a.state(j));
    }
    let new = match method {
        Method::Exact => {
            let (m, c) = a.linear_system();
            crate::exact::step(a, &x, &m, &c)
        }
        Method::Euler => {
            let f = a.drift(&x, 0.0);
            axpy(a, &x, dt, &f)
        }
        Method::Rk2 => {
            let k1 = a.drift(&x, 0.0);
            let xm = axpy(a, &x, dt / 2.0, &k1);
            let k2 = a.drift(&xm, 0.5);
            axpy(a, &x, dt, &k2)
        }
        Method::Rk4 => {
            let k1 = a.drift(&x, 0.0);
            let x2 = axpy(a, &x, dt / 2.0, &k1);
            let k2 = a.drift(&x2, 0.5);
            let x3 = axpy(a, &x, dt / 2.0, &k2);
            let k3 = a.drift(&x3, 0.5);
            let x4 = axpy(a, &x, dt, &k3);
            let k4 = a.drift(&x4, 1.0);
            let two = a.num(2.0);
            let mut sum = Vec::with_capacity(n);
            for j in 0..n {
                let s23 = a.add(k2[j], k3[j]);
                let s23 = a.mul(two, s23);
                let s = a.add(k1[j], s23);
                sum.push(a.add(s, k4[j]));
            }
            axpy(a, &x, dt / 6.0, &sum)
        }
        Method::Heun => {
            // Brian's stochastic Heun (Stratonovich), exactly as Brian 2.11 defines it:
            // x_s = x + g(x,t) dW; x' = x + f(x,t) dt + (g(x,t) + g(x_s,t+dt)) dW / 2.
            // The drift is an Euler step, so without noise this is Euler (order 1).
            let f = a.drift(&x, 0.0);
            let g1 = a.diffusion(&x, 0.0);
            let support = add_noise(a, x.clone(), &g1, 1.0);
            let g2 = a.diffusion(&support, 1.0);
            let mut gsum = Vec::with_capacity(n);
            for j in 0..n {
                let mut row = Vec::with_capacity(a.n_noise());
                for k in 0..a.n_noise() {
                    row.push(a.add(g1[j][k], g2[j][k]));
                }
                gsum.push(row);
            }
            let out = axpy(a, &x, dt, &f);
            add_noise(a, out, &gsum, 0.5)
        }
        Method::ExponentialEuler => {
            // x <- x e^(A dt) + B (e^(A dt) - 1)/A, the exact solution over the step for
            // frozen A and B (Brian writes it -B/A + (x + B/A) e^(A dt)); A = 0 gives Euler.
            let ab = a.linear();
            let mut out = Vec::with_capacity(n);
            for j in 0..n {
                let (ca, cb) = ab[j];
                out.push(a.exp_euler(x[j], ca, cb));
            }
            out
        }
        Method::EulerMaruyama => {
            let f = a.drift(&x, 0.0);
            let g = a.diffusion(&x, 0.0);
            let out = axpy(a, &x, dt, &f);
            add_noise(a, out, &g, 1.0)
        }
        Method::Milstein => {
            // Brian's derivative-free Milstein, exactly as Brian 2.11 defines it:
            // x_s = x + f dt + g sqrt(dt); x' = x + f dt + g dW + (g(x_s) - g(x)) dW^2 / (2 sqrt(dt)).
            // (Brian uses dW^2 where Kloeden & Platen's Ito form has dW^2 - dt; for additive
            // noise the correction vanishes either way.) Applied per noise source.
            let f = a.drift(&x, 0.0);
            let g = a.diffusion(&x, 0.0);
            let base = axpy(a, &x, dt, &f);
            let mut out = add_noise(a, base.clone(), &g, 1.0);
            let sq = a.num(dt.sqrt());
            let half = a.num(0.5 / dt.sqrt());
            for k in 0..a.n_noise() {
                let mut support = Vec::with_capacity(n);
                for j in 0..n {
                    let t = a.mul(g[j][k], sq);
                    support.push(a.add(base[j], t));
                }
                let gs = a.diffusion(&support, 0.0);
                let dw = a.dw(k);
                let dw2 = a.mul(dw, dw);
                for j in 0..n {
                    let dg = a.sub(gs[j][k], g[j][k]);
                    let t = a.mul(dg, dw2);
                    let t = a.mul(t, half);
                    out[j] = a.add(out[j], t);
                }
            }
            out
        }
    };
    let mut out = new;
    for (j, v) in out.iter_mut().enumerate() {
        if a.frozen_when_refractory(j) {
            let nr = a.not_refractory(j);
            // if not_refractory == 0 { x } else { new }
            *v = a.if_zero(nr, x[j], *v);
        }
    }
    out
}
