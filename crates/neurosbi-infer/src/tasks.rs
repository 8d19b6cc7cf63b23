//! The sbibm benchmark tasks (Lueckmann et al. 2021, sbibm 1.1 `tasks/<name>/task.py`), with the
//! published observations 1..=10 and reference posterior samplers: exact for gaussian_linear,
//! gaussian_linear_uniform, two_moons and gaussian_mixture; slice-sampling MCMC on the analytic
//! likelihood for slcp and bernoulli_glm.

use crate::error::{InferError, Result, check_finite, invalid_arg};
use crate::mcmc::{LogDensity, SliceConfig, sample_posterior_mcmc};
use crate::prior::{IndependentPrior, Marginal, MultivariateNormalPrior, Prior};
use crate::rng::{SimRng, purpose, stream_rng};
use crate::simulator::{SimulationError, Simulator};
use rand::RngExt;
use rand_distr::StandardNormal;
use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::sync::OnceLock;

/// Names of the implemented tasks.
pub const TASK_NAMES: [&str; 6] = [
    "gaussian_linear",
    "gaussian_linear_uniform",
    "two_moons",
    "slcp",
    "gaussian_mixture",
    "bernoulli_glm",
];

/// A benchmark task: prior, simulator, observations and a reference posterior sampler.
pub trait Task: Simulator + Send {
    /// sbibm name.
    fn name(&self) -> &'static str;
    /// The prior.
    fn prior(&self) -> &dyn Prior;
    /// Analytic log-likelihood `log p(x | theta)` up to a constant in theta, if available.
    fn log_likelihood(&self, theta: &[f64], x: &[f64]) -> Option<f64>;
    /// `n` reference posterior samples for the observation `x_o` (row-major `n x dim_theta`).
    fn reference_posterior(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>>;
    /// sbibm observation `num` (1..=10).
    fn observation(&self, num: usize) -> Result<Vec<f64>> {
        fixture_row(self.name(), "observations", num)
    }
    /// True parameters of sbibm observation `num` (1..=10).
    fn true_parameters(&self, num: usize) -> Result<Vec<f64>> {
        fixture_row(self.name(), "true_parameters", num)
    }
}

/// Builds a task by its sbibm name.
pub fn task_by_name(name: &str) -> Result<Box<dyn Task>> {
    Ok(match name {
        "gaussian_linear" => Box::new(GaussianLinear::new()),
        "gaussian_linear_uniform" => Box::new(GaussianLinearUniform::new()),
        "two_moons" => Box::new(TwoMoons::new()),
        "slcp" => Box::new(Slcp::new()),
        "gaussian_mixture" => Box::new(GaussianMixture::new()),
        "bernoulli_glm" => Box::new(BernoulliGlm::new()),
        _ => {
            return Err(invalid_arg(
                "task",
                format!("unknown task `{name}`; known: {}", TASK_NAMES.join(", ")),
            ));
        }
    })
}

#[derive(serde::Deserialize)]
struct TaskFixture {
    observations: Vec<Vec<f64>>,
    true_parameters: Vec<Vec<f64>>,
}

#[derive(serde::Deserialize)]
struct ObsFixture {
    bernoulli_glm_stimulus: Vec<f64>,
    tasks: std::collections::HashMap<String, TaskFixture>,
}

fn fixtures() -> &'static ObsFixture {
    static F: OnceLock<ObsFixture> = OnceLock::new();
    F.get_or_init(|| {
        serde_json::from_str(include_str!("../data/sbibm_observations.json"))
            .expect("bundled sbibm observation file is valid JSON (checked by tests)")
    })
}

fn fixture_row(task: &str, field: &str, num: usize) -> Result<Vec<f64>> {
    let t = &fixtures().tasks[task];
    let rows = if field == "observations" {
        &t.observations
    } else {
        &t.true_parameters
    };
    if num == 0 || num > rows.len() {
        return Err(invalid_arg(
            "observation number",
            format!("{num} is outside 1..={}", rows.len()),
        ));
    }
    Ok(rows[num - 1].clone())
}

fn check_obs(task: &dyn Task, x_o: &[f64]) -> Result<()> {
    if x_o.len() != task.dim_x() {
        return Err(InferError::DimMismatch {
            what: format!("{} observation", task.name()),
            expected: task.dim_x(),
            got: x_o.len(),
        });
    }
    check_finite("observation", x_o)
}

fn normal(rng: &mut SimRng) -> f64 {
    rng.sample(StandardNormal)
}

/// Draws `n` rows by repeating `draw` (which returns `false` to reject) with one stream per row.
fn draw_rows(
    n: usize,
    d: usize,
    seed: u64,
    mut draw: impl FnMut(&mut SimRng, &mut [f64]) -> bool,
) -> Result<Vec<f64>> {
    let mut out = vec![0.0; n * d];
    for (i, row) in out.chunks_mut(d).enumerate() {
        let mut rng = stream_rng(seed, purpose::SAMPLING, i as u64);
        let mut tries = 0u64;
        while !draw(&mut rng, row) {
            tries += 1;
            if tries > 10_000_000 {
                return Err(invalid_arg(
                    "reference posterior",
                    "rejection sampler accepted nothing in 1e7 tries",
                ));
            }
        }
    }
    Ok(out)
}

/// Batch MCMC target `log prior + log likelihood` for a task and an observation.
struct PosteriorTarget<'a> {
    task: &'a dyn Task,
    x_o: &'a [f64],
}

impl LogDensity for PosteriorTarget<'_> {
    fn dim(&self) -> usize {
        self.task.dim_theta()
    }
    fn log_density(&self, points: &[f64], out: &mut [f64]) {
        let d = self.dim();
        for (o, th) in out.iter_mut().zip(points.chunks(d)) {
            let lp = self.task.prior().log_prob(th);
            *o = if lp == f64::NEG_INFINITY {
                lp
            } else {
                lp + self
                    .task
                    .log_likelihood(th, self.x_o)
                    .unwrap_or(f64::NEG_INFINITY)
            };
        }
    }
}

/// Reference posterior by slice sampling the analytic posterior: 100 chains (so that the
/// weights of separated modes rest on many chains), long warm-up, thinned.
pub fn mcmc_reference(task: &dyn Task, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>> {
    check_obs(task, x_o)?;
    let target = PosteriorTarget { task, x_o };
    let cfg = SliceConfig {
        num_chains: 100,
        warmup: 500,
        thin: 5,
        seed,
        ..Default::default()
    };
    let out = sample_posterior_mcmc(task.prior(), &target, n, &cfg)?;
    Ok(out.samples(n))
}

/// Gaussian linear: theta ~ N(0, 0.1 I_10), x ~ N(theta, 0.1 I_10) (0.1 is a variance in sbibm).
pub struct GaussianLinear {
    prior: IndependentPrior,
}

impl GaussianLinear {
    /// The 10-D task.
    pub fn new() -> Self {
        let prior = IndependentPrior::new(vec![
            Marginal::Normal {
                mean: 0.0,
                std: 0.1f64.sqrt()
            };
            10
        ])
        .expect("valid constant prior");
        Self { prior }
    }
    /// Analytic posterior N(x/2, 0.05 I): (mean, per-dimension variance).
    pub fn posterior_mean_var(&self, x_o: &[f64]) -> (Vec<f64>, f64) {
        // Precisions add: 1/0.1 + 1/0.1 = 20; mean = (10 * x) / 20.
        (x_o.iter().map(|v| v / 2.0).collect(), 0.05)
    }
}

impl Default for GaussianLinear {
    fn default() -> Self {
        Self::new()
    }
}

fn gauss_sim(theta: &[f64], rngs: &mut [SimRng], x: &mut [f64], d: usize) {
    let s = 0.1f64.sqrt();
    for (i, rng) in rngs.iter_mut().enumerate() {
        for j in 0..d {
            x[i * d + j] = theta[i * d + j] + s * normal(rng);
        }
    }
}

fn gauss_loglik(theta: &[f64], x: &[f64]) -> f64 {
    theta
        .iter()
        .zip(x)
        .map(|(t, v)| -0.5 * (v - t).powi(2) / 0.1)
        .sum()
}

impl Simulator for GaussianLinear {
    fn dim_theta(&self) -> usize {
        10
    }
    fn dim_x(&self) -> usize {
        10
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        gauss_sim(theta, rngs, x, 10);
        Ok(())
    }
}

impl Task for GaussianLinear {
    fn name(&self) -> &'static str {
        "gaussian_linear"
    }
    fn prior(&self) -> &dyn Prior {
        &self.prior
    }
    fn log_likelihood(&self, theta: &[f64], x: &[f64]) -> Option<f64> {
        Some(gauss_loglik(theta, x))
    }
    fn reference_posterior(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>> {
        check_obs(self, x_o)?;
        let (m, v) = self.posterior_mean_var(x_o);
        draw_rows(n, 10, seed, |rng, row| {
            for (r, mu) in row.iter_mut().zip(&m) {
                *r = mu + v.sqrt() * normal(rng);
            }
            true
        })
    }
}

/// Gaussian linear with a uniform prior: theta ~ U(-1, 1)^10, x ~ N(theta, 0.1 I_10).
pub struct GaussianLinearUniform {
    prior: IndependentPrior,
}

impl GaussianLinearUniform {
    /// The 10-D task.
    pub fn new() -> Self {
        Self {
            prior: IndependentPrior::uniform_box(10, -1.0, 1.0).expect("valid constant prior"),
        }
    }
}

impl Default for GaussianLinearUniform {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator for GaussianLinearUniform {
    fn dim_theta(&self) -> usize {
        10
    }
    fn dim_x(&self) -> usize {
        10
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        gauss_sim(theta, rngs, x, 10);
        Ok(())
    }
}

impl Task for GaussianLinearUniform {
    fn name(&self) -> &'static str {
        "gaussian_linear_uniform"
    }
    fn prior(&self) -> &dyn Prior {
        &self.prior
    }
    fn log_likelihood(&self, theta: &[f64], x: &[f64]) -> Option<f64> {
        Some(gauss_loglik(theta, x))
    }
    fn reference_posterior(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>> {
        check_obs(self, x_o)?;
        // Posterior = N(x_o, 0.1 I) truncated to the box: exact by rejection, per dimension
        // (the box and the covariance factorise).
        let s = 0.1f64.sqrt();
        draw_rows(n, 10, seed, |rng, row| {
            for (r, mu) in row.iter_mut().zip(x_o) {
                loop {
                    let v = mu + s * normal(rng);
                    if (-1.0..=1.0).contains(&v) {
                        *r = v;
                        break;
                    }
                }
            }
            true
        })
    }
}

/// Two moons: theta ~ U(-1, 1)^2; a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2),
/// x = (r cos a + 0.25, r sin a) + (-|theta_1 + theta_2| / sqrt 2, (theta_2 - theta_1) / sqrt 2).
pub struct TwoMoons {
    prior: IndependentPrior,
}

impl TwoMoons {
    /// The task.
    pub fn new() -> Self {
        Self {
            prior: IndependentPrior::uniform_box(2, -1.0, 1.0).expect("valid constant prior"),
        }
    }
    fn moon_point(rng: &mut SimRng) -> (f64, f64) {
        let a = -PI / 2.0 + PI * rng.random::<f64>();
        let r = 0.1 + 0.01 * normal(rng);
        (r * a.cos() + 0.25, r * a.sin())
    }
}

impl Default for TwoMoons {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator for TwoMoons {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (i, rng) in rngs.iter_mut().enumerate() {
            let (p0, p1) = Self::moon_point(rng);
            let (t0, t1) = (theta[2 * i], theta[2 * i + 1]);
            x[2 * i] = p0 - ((t0 + t1) * FRAC_1_SQRT_2).abs();
            x[2 * i + 1] = p1 + (t1 - t0) * FRAC_1_SQRT_2;
        }
        Ok(())
    }
}

impl Task for TwoMoons {
    fn name(&self) -> &'static str {
        "two_moons"
    }
    fn prior(&self) -> &dyn Prior {
        &self.prior
    }
    fn log_likelihood(&self, theta: &[f64], x: &[f64]) -> Option<f64> {
        // Density of p = x - shift(theta) under the moon: polar (r, a) with a uniform, so
        // p(u, v) = N(r; 0.1, 0.01) / (pi r) for u = p0 - 0.25 > 0 (sbibm omits the 1/(pi r)).
        let u = x[0] + ((theta[0] + theta[1]) * FRAC_1_SQRT_2).abs() - 0.25;
        let v = x[1] - (theta[1] - theta[0]) * FRAC_1_SQRT_2;
        if u < 0.0 {
            return Some(f64::NEG_INFINITY);
        }
        let r = (u * u + v * v).sqrt();
        Some(-0.5 * ((r - 0.1) / 0.01).powi(2) - r.ln())
    }
    fn reference_posterior(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>> {
        check_obs(self, x_o)?;
        // Exact: draw a moon point p, invert the shift (|z0| = p0 - x0, z1 = x1 - p1), choose the
        // sign of z0 at random and rotate back by +pi/4, as sbibm does; unlike sbibm we also reject
        // p0 < x0 (no theta maps there), which never happens for sbibm's observations.
        draw_rows(n, 2, seed, |rng, row| {
            let (p0, p1) = Self::moon_point(rng);
            let mut z0 = p0 - x_o[0];
            let z1 = x_o[1] - p1;
            if z0 < 0.0 {
                return false;
            }
            if rng.random::<bool>() {
                z0 = -z0;
            }
            row[0] = (z0 - z1) * FRAC_1_SQRT_2;
            row[1] = (z0 + z1) * FRAC_1_SQRT_2;
            self.prior.in_support(row)
        })
    }
}

/// SLCP: theta ~ U(-3, 3)^5; four i.i.d. 2-D normal draws with mean (theta_1, theta_2),
/// standard deviations theta_3^2, theta_4^2 and correlation tanh(theta_5) (+1e-6 on the diagonal).
pub struct Slcp {
    prior: IndependentPrior,
}

impl Slcp {
    /// The task (without distractors).
    pub fn new() -> Self {
        Self {
            prior: IndependentPrior::uniform_box(5, -3.0, 3.0).expect("valid constant prior"),
        }
    }
    /// (mean, Cholesky factor l00, l10, l11) of the 2-D normal.
    fn params(t: &[f64]) -> ([f64; 2], [f64; 3]) {
        let (s1, s2, rho) = (t[2] * t[2], t[3] * t[3], t[4].tanh());
        let (c00, c01, c11) = (s1 * s1 + 1e-6, rho * s1 * s2, s2 * s2 + 1e-6);
        let l00 = c00.sqrt();
        let l10 = c01 / l00;
        let l11 = (c11 - l10 * l10).max(1e-300).sqrt();
        ([t[0], t[1]], [l00, l10, l11])
    }
}

impl Default for Slcp {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator for Slcp {
    fn dim_theta(&self) -> usize {
        5
    }
    fn dim_x(&self) -> usize {
        8
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (i, rng) in rngs.iter_mut().enumerate() {
            let (m, l) = Self::params(&theta[5 * i..5 * i + 5]);
            for k in 0..4 {
                let (z0, z1) = (normal(rng), normal(rng));
                x[8 * i + 2 * k] = m[0] + l[0] * z0;
                x[8 * i + 2 * k + 1] = m[1] + l[1] * z0 + l[2] * z1;
            }
        }
        Ok(())
    }
}

impl Task for Slcp {
    fn name(&self) -> &'static str {
        "slcp"
    }
    fn prior(&self) -> &dyn Prior {
        &self.prior
    }
    fn log_likelihood(&self, theta: &[f64], x: &[f64]) -> Option<f64> {
        let (m, l) = Self::params(theta);
        let mut s = 0.0;
        for k in 0..4 {
            let y0 = (x[2 * k] - m[0]) / l[0];
            let y1 = (x[2 * k + 1] - m[1] - l[1] * y0) / l[2];
            s += -0.5 * (y0 * y0 + y1 * y1) - l[0].ln() - l[2].ln();
        }
        Some(s)
    }
    fn reference_posterior(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>> {
        let mut s = mcmc_reference(self, x_o, n, seed)?;
        // The likelihood depends on theta_3, theta_4 only through their squares and the prior is
        // symmetric, so flipping their signs at random is exact and fills all four modes even if
        // a chain stayed in one.
        for (i, row) in s.chunks_mut(5).enumerate() {
            let mut rng = stream_rng(seed, purpose::SAMPLING ^ 0x51, i as u64);
            for k in [2, 3] {
                if rng.random::<bool>() {
                    row[k] = -row[k];
                }
            }
        }
        Ok(s)
    }
}

/// Gaussian mixture: theta ~ U(-10, 10)^2, x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I).
pub struct GaussianMixture {
    prior: IndependentPrior,
}

impl GaussianMixture {
    /// The 2-D task.
    pub fn new() -> Self {
        Self {
            prior: IndependentPrior::uniform_box(2, -10.0, 10.0).expect("valid constant prior"),
        }
    }
}

impl Default for GaussianMixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator for GaussianMixture {
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (i, rng) in rngs.iter_mut().enumerate() {
            let s = if rng.random::<f64>() < 0.5 { 1.0 } else { 0.1 };
            for j in 0..2 {
                x[2 * i + j] = theta[2 * i + j] + s * normal(rng);
            }
        }
        Ok(())
    }
}

impl Task for GaussianMixture {
    fn name(&self) -> &'static str {
        "gaussian_mixture"
    }
    fn prior(&self) -> &dyn Prior {
        &self.prior
    }
    fn log_likelihood(&self, theta: &[f64], x: &[f64]) -> Option<f64> {
        let r2: f64 = theta.iter().zip(x).map(|(t, v)| (v - t).powi(2)).sum();
        // 0.5 N(x; theta, I) + 0.5 N(x; theta, 0.01 I), both in 2-D (common 1/(2 pi) dropped).
        Some((0.5 * (-0.5 * r2).exp() + 0.5 * 100.0 * (-0.5 * r2 / 0.01).exp()).ln())
    }
    fn reference_posterior(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>> {
        check_obs(self, x_o)?;
        draw_rows(n, 2, seed, |rng, row| {
            let s = if rng.random::<f64>() < 0.5 { 1.0 } else { 0.1 };
            for (r, v) in row.iter_mut().zip(x_o) {
                *r = v + s * normal(rng);
            }
            self.prior.in_support(row)
        })
    }
}

/// Bernoulli GLM: theta = (offset, 9-tap filter) ~ N(0, B) with sbibm's smoothness precision;
/// spikes y_t ~ Bernoulli(sigmoid(X theta)_t) for a fixed white-noise stimulus (100 steps);
/// x = (sum y, spike-triggered sums of the stimulus at 9 lags) = X^T y, a sufficient statistic,
/// so the posterior given x equals sbibm's posterior given the raw spike train.
pub struct BernoulliGlm {
    prior: MultivariateNormalPrior,
    design: Vec<f64>,
}

impl BernoulliGlm {
    /// The task with sbibm's stimulus (numpy RandomState(42), float32).
    pub fn new() -> Self {
        let stim = &fixtures().bernoulli_glm_stimulus;
        let t = stim.len();
        let mut design = vec![0.0; t * 10];
        for i in 0..t {
            design[i * 10] = 1.0;
            for j in 0..9 {
                if i >= j {
                    design[i * 10 + 1 + j] = stim[i - j];
                }
            }
        }
        // Prior precision: 0.5 for the offset; F^T F for the filter with
        // F = D D + diag(sqrt(k / 9)), D = I - subdiagonal ones (sbibm task.py).
        let m = 9;
        let mut f = nalgebra::DMatrix::<f64>::zeros(m, m);
        let mut dm = nalgebra::DMatrix::<f64>::identity(m, m);
        for i in 1..m {
            dm[(i, i - 1)] = -1.0;
        }
        f += &dm * &dm;
        for k in 0..m {
            f[(k, k)] += (k as f64 / m as f64).sqrt();
        }
        let mut prec = nalgebra::DMatrix::<f64>::zeros(10, 10);
        prec[(0, 0)] = 0.5;
        prec.view_mut((1, 1), (m, m))
            .copy_from(&(f.transpose() * &f));
        let cov = prec
            .try_inverse()
            .expect("sbibm's prior precision is invertible");
        let cov = (&cov + cov.transpose()) * 0.5;
        let cov_rows: Vec<f64> = (0..10)
            .flat_map(|i| (0..10).map(move |j| (i, j)))
            .map(|(i, j)| cov[(i, j)])
            .collect();
        let prior =
            MultivariateNormalPrior::new(vec![0.0; 10], cov_rows).expect("valid constant prior");
        Self { prior, design }
    }

    /// Summary statistics `X^T y` of a raw spike train `y` (length 100, values 0 or 1).
    pub fn summary(&self, y: &[f64]) -> Result<Vec<f64>> {
        if y.len() * 10 != self.design.len() {
            return Err(InferError::DimMismatch {
                what: "bernoulli_glm raw spike train length".into(),
                expected: self.design.len() / 10,
                got: y.len(),
            });
        }
        let mut out = vec![0.0; 10];
        for (yt, row) in y.iter().zip(self.design.chunks(10)) {
            for (o, d) in out.iter_mut().zip(row) {
                *o += yt * d;
            }
        }
        Ok(out)
    }

    fn psi(&self, theta: &[f64]) -> impl Iterator<Item = f64> + '_ {
        let th: [f64; 10] = std::array::from_fn(|k| theta[k]);
        self.design
            .chunks(10)
            .map(move |row| row.iter().zip(&th).map(|(a, b)| a * b).sum())
    }
}

impl Default for BernoulliGlm {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator for BernoulliGlm {
    fn dim_theta(&self) -> usize {
        10
    }
    fn dim_x(&self) -> usize {
        10
    }
    fn simulate(
        &self,
        theta: &[f64],
        rngs: &mut [SimRng],
        x: &mut [f64],
    ) -> Result<(), SimulationError> {
        for (i, rng) in rngs.iter_mut().enumerate() {
            let xr = &mut x[10 * i..10 * i + 10];
            xr.fill(0.0);
            for (t, psi) in self.psi(&theta[10 * i..10 * i + 10]).enumerate() {
                let z = 1.0 / (1.0 + (-psi).exp());
                if rng.random::<f64>() < z {
                    for (o, d) in xr.iter_mut().zip(&self.design[t * 10..t * 10 + 10]) {
                        *o += d;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Task for BernoulliGlm {
    fn name(&self) -> &'static str {
        "bernoulli_glm"
    }
    fn prior(&self) -> &dyn Prior {
        &self.prior
    }
    fn log_likelihood(&self, theta: &[f64], x: &[f64]) -> Option<f64> {
        // sum_t y_t psi_t - log(1 + e^psi_t) = theta . X^T y - sum_t softplus(psi_t).
        let lin: f64 = theta.iter().zip(x).map(|(a, b)| a * b).sum();
        let sp: f64 = self
            .psi(theta)
            .map(|p| {
                if p > 0.0 {
                    p + (-p).exp().ln_1p()
                } else {
                    p.exp().ln_1p()
                }
            })
            .sum();
        Some(lin - sp)
    }
    fn reference_posterior(&self, x_o: &[f64], n: usize, seed: u64) -> Result<Vec<f64>> {
        mcmc_reference(self, x_o, n, seed)
    }
}
