//! Brian's `exact` method (alias `linear`): the exact solution of a linear system over a
//! step, `X(t + dt) = e^(M dt) X(t) + (∫_0^dt e^(M s) ds) c`, for `dX/dt = M X + c` with `M`
//! and `c` constant over the step.
//!
//! Brian (`brian2/stateupdaters/exact.py`, `LinearStateUpdater`) asks sympy for `e^(M dt)`
//! and for the fixed point `M^-1 c`, so it applies only where `M` is invertible and, for a
//! numeric `M`, where the solution has no complex values. Those are its conditions here too,
//! so that the automatic choice of a method matches Brian's. The update itself needs no
//! fixed point: `e^(M dt)` and `dt φ1(M dt)` (`φ1(A) = (e^A - I)/A`) come from a Taylor
//! series of `M dt / 2^S` and `S` doublings written as operations of the step algebra, so
//! they fold to numbers for a numeric `M` and are hoisted into the per-block prologue when
//! `M` depends only on parameters. The doublings carry `E = e^A - I` rather than `e^A`
//! (`E(2A) = 2E + E²`, `φ1(2A) = φ1(A)(I + E/2)`), which keeps full relative precision for
//! the tiny scaled matrix (Higham, "Functions of Matrices", 2008, §10.3 and §10.7.4).

use crate::integrate::StepAlgebra;
use crate::ir::{Ex, Slot};
use crate::model::Var;

/// `dX/dt = M X + c`, in lowered expressions free of state variables and of `t`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearSystem {
    /// `m[j][k]`: coefficient of state `k` in the equation of state `j`.
    pub m: Vec<Vec<Ex>>,
    /// The constant term of each equation.
    pub c: Vec<Ex>,
}

/// Doublings after the Taylor series: `||M dt|| / 2^30` stays below 1e-3 for any
/// `||M dt||` up to 1e6, where the degree-5 series is exact to rounding.
const DOUBLINGS: i32 = 30;
/// Degree of the Taylor series.
const DEGREE: usize = 5;

/// Whether `e` reads something that changes within a step: a state variable integrated
/// with it (`solved`), the time or noise. The states of a circuit's other objects are held
/// while one object is integrated, so they count as constants there.
fn varies(e: &Ex, solved: &[usize]) -> Option<Slot> {
    let mut found = None;
    e.visit(&mut |n| match n {
        Ex::Slot(s @ Slot::State(k)) if solved.contains(k) => {
            found.get_or_insert(*s);
        }
        Ex::Slot(s @ (Slot::Time | Slot::Noise(_))) => {
            found.get_or_insert(*s);
        }
        _ => {}
    });
    found
}

/// The linear system of `drift`, or why Brian's `exact` cannot integrate it.
pub fn linear_system(drift: &[Ex], states: &[Var]) -> Result<LinearSystem, String> {
    let all: Vec<usize> = (0..drift.len()).collect();
    linear_system_of(drift, states, &all)
}

/// The linear system of the states `solved` (one object of a circuit, integrated while the
/// others are held), in their order, or why Brian's `exact` cannot integrate it.
pub fn linear_system_of(
    drift: &[Ex],
    states: &[Var],
    solved: &[usize],
) -> Result<LinearSystem, String> {
    let n = solved.len();
    let name = |s: Slot| match s {
        Slot::State(k) => format!("`{}`", states[k].name),
        Slot::Time => "the time `t`".to_string(),
        _ => "noise".to_string(),
    };
    let mut m = Vec::with_capacity(n);
    let mut c = Vec::with_capacity(n);
    for &j in solved {
        let var = &states[j].name;
        let mut rest = drift[j].clone();
        let mut row = Vec::with_capacity(n);
        for &k in solved {
            let state = &states[k];
            let (a, b) = rest
                .linear_in(Slot::State(k))
                .map_err(|why| format!("d{var}/dt is not linear in `{}`: {why}", state.name))?;
            if let Some(s) = varies(&a, solved) {
                return Err(format!(
                    "in d{var}/dt the factor of `{}` depends on {} (a product of variables is not linear)",
                    state.name,
                    name(s)
                ));
            }
            row.push(a);
            rest = b;
        }
        if let Some(s) = varies(&rest, solved) {
            return Err(match s {
                Slot::State(_) => format!(
                    "in d{var}/dt, {} occurs inside a function, a denominator or a power",
                    name(s)
                ),
                _ => format!(
                    "d{var}/dt depends on {}, which is not constant over a step",
                    name(s)
                ),
            });
        }
        m.push(row);
        c.push(rest);
    }
    let sys = LinearSystem { m, c };
    sys.check_solvable()?;
    Ok(sys)
}

impl LinearSystem {
    /// Brian's further conditions: an invertible `M` (sympy solves for the fixed point) and,
    /// for a numeric `M`, real eigenvalues (sympy's solution would be complex). `M` is tried
    /// at two arbitrary points of its parameters: a structurally singular `M` is singular at
    /// both.
    fn check_solvable(&self) -> Result<(), String> {
        let n = self.m.len();
        if n == 0 {
            return Ok(());
        }
        let numeric = self.m.iter().flatten().all(|e| matches!(e, Ex::Num(_)));
        let mut singular = true;
        for seed in [0.377, 0.613] {
            let val = |s: Slot| match s {
                Slot::Param(k) | Slot::Input(k) => 1.0 + ((k as f64 + 1.0) * seed * 7.31).fract(),
                Slot::Dt => 1e-4,
                _ => 1.0,
            };
            let mat = nalgebra::DMatrix::from_fn(n, n, |j, k| self.m[j][k].eval(&val));
            let scale = mat
                .iter()
                .fold(0.0f64, |a, v| a.max(v.abs()))
                .max(f64::MIN_POSITIVE);
            let det = (mat.clone() / scale).determinant();
            if det.abs() > 1e-12 && det.is_finite() {
                singular = false;
            }
            if numeric && n > 1 {
                let eig = mat.complex_eigenvalues();
                if eig
                    .iter()
                    .any(|z| z.im.abs() > 1e-12 * z.re.abs().max(scale))
                {
                    return Err(
                        "its coefficient matrix has complex eigenvalues (an oscillating solution), which Brian's exact does not implement".into(),
                    );
                }
            }
        }
        if singular {
            return Err("its coefficient matrix is singular (e.g. a pure integrator `dv/dt = I/C`), so Brian's exact cannot solve for the fixed point".into());
        }
        Ok(())
    }
}

/// A square matrix of algebra values, `None` for a known zero (kept sparse so that an
/// uncoupled system costs no cross terms).
type Mat<V> = Vec<Vec<Option<V>>>;

fn acc<A: StepAlgebra>(a: &mut A, sum: Option<A::V>, t: A::V) -> Option<A::V> {
    Some(match sum {
        None => t,
        Some(s) => a.add(s, t),
    })
}

fn mat_mul<A: StepAlgebra>(a: &mut A, x: &Mat<A::V>, y: &Mat<A::V>) -> Mat<A::V> {
    let n = x.len();
    let mut out = vec![vec![None; n]; n];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            for k in 0..n {
                if let (Some(p), Some(q)) = (x[i][k], y[k][j]) {
                    let t = a.mul(p, q);
                    *cell = acc(a, *cell, t);
                }
            }
        }
    }
    out
}

/// `sum_k w_k X_k` (+ `w_id I` on the diagonal).
fn combine<A: StepAlgebra>(a: &mut A, w_id: f64, terms: &[(f64, &Mat<A::V>)]) -> Mat<A::V> {
    let n = terms[0].1.len();
    let mut out = vec![vec![None; n]; n];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            if i == j && w_id != 0.0 {
                *cell = Some(a.num(w_id));
            }
            for &(w, m) in terms {
                if let Some(v) = m[i][j] {
                    let wv = a.num(w);
                    let t = a.mul(v, wv);
                    *cell = acc(a, *cell, t);
                }
            }
        }
    }
    out
}

/// `e^(A) - I` and `φ1(A)` for `A = m * dt`.
fn expm1_phi1<A: StepAlgebra>(a: &mut A, m: &[Vec<A::V>]) -> (Mat<A::V>, Mat<A::V>) {
    let h = a.dt() / 2f64.powi(DOUBLINGS);
    let hv = a.num(h);
    let scaled: Mat<A::V> = m
        .iter()
        .map(|row| {
            row.iter()
                .map(|&v| (!a.is_zero(v)).then(|| a.mul(v, hv)))
                .collect()
        })
        .collect();
    let mut powers = vec![scaled.clone()];
    for _ in 1..DEGREE {
        let next = mat_mul(a, powers.last().unwrap_or(&scaled), &scaled);
        powers.push(next);
    }
    let mut fact = 1.0;
    let mut e_terms = Vec::new();
    let mut g_terms = Vec::new();
    for (k, p) in powers.iter().enumerate() {
        fact *= (k + 1) as f64;
        e_terms.push((1.0 / fact, p));
        g_terms.push((1.0 / (fact * (k + 2) as f64), p));
    }
    let mut e = combine(a, 0.0, &e_terms);
    let mut g = combine(a, 1.0, &g_terms);
    for _ in 0..DOUBLINGS {
        let ge = mat_mul(a, &g, &e);
        g = combine(a, 0.0, &[(1.0, &g), (0.5, &ge)]);
        let ee = mat_mul(a, &e, &e);
        e = combine(a, 0.0, &[(2.0, &e), (1.0, &ee)]);
    }
    (e, g)
}

/// The exact update of the states `x` under `dx/dt = m x + c` over one step.
pub fn step<A: StepAlgebra>(a: &mut A, x: &[A::V], m: &[Vec<A::V>], c: &[A::V]) -> Vec<A::V> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let (e, g) = expm1_phi1(a, m);
    let dt = a.num(a.dt());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // x + E x + dt G c: the identity part added last, exactly.
        let mut sum = None;
        for j in 0..n {
            if let Some(eij) = e[i][j] {
                let t = a.mul(eij, x[j]);
                sum = acc(a, sum, t);
            }
            if let Some(gij) = g[i][j]
                && !a.is_zero(c[j])
            {
                let gdt = a.mul(gij, dt);
                let t = a.mul(gdt, c[j]);
                sum = acc(a, sum, t);
            }
        }
        out.push(match sum {
            Some(s) => a.add(x[i], s),
            None => x[i],
        });
    }
    out
}
