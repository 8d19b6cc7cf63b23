//! Brian's model language as Brian users write it (issue 22): the constants, functions and
//! operators of its expressions, its line joining, models without differential equations,
//! `(shared)`, initial values that read state variables, `not_refractory`, and the `exact`
//! method, each against a value worked out by hand or an analytic solution.

use neurosbi_sim::{Method, Model, ModelDescription, RunConfig, SimError};

fn model(desc: &ModelDescription) -> Model {
    Model::new(desc).unwrap_or_else(|e| panic!("{e}"))
}

fn error(desc: &ModelDescription) -> String {
    match Model::new(desc) {
        Ok(m) => panic!("expected an error, got a model with method {}", m.method()),
        Err(e) => e.to_string(),
    }
}

/// The initial value of `name` (sample 0 of its recording) for one neuron.
fn initial(desc: &ModelDescription, params: &[f64], name: &str) -> f64 {
    let cfg = RunConfig::new(1e-4, 1).record(&[name]);
    model(desc)
        .simulate(params, 1, &[], &cfg)
        .unwrap()
        .trace(name, 0)
        .unwrap()[0]
}

/// Each expression, as the right-hand side of a subexpression, and its value.
#[test]
fn constants_functions_and_operators_evaluate_as_in_python() {
    let cases: [(&str, f64); 20] = [
        ("pi", std::f64::consts::PI),
        ("e", std::f64::consts::E),
        ("1/(1 + inf)", 0.0),
        ("arcsin(0.5)", 0.5f64.asin()),
        ("arccos(-0.25)", (-0.25f64).acos()),
        ("arctan(2)", 2f64.atan()),
        ("expm1(1e-10)", 1e-10f64.exp_m1()),
        ("log1p(-0.5)", (-0.5f64).ln_1p()),
        ("sign(-3.5)", -1.0),
        ("clip(7, 0, 5)", 5.0),
        ("int(True) + int(False)", 1.0),
        ("int(3 > 2) * 4", 4.0),
        ("7 // 2", 3.0),
        ("-7 // 2", -4.0),
        ("7 % 3", 1.0),
        ("-7 % 3", 2.0),
        ("7.5 % -2", -0.5),
        ("1 < 2 < 3", 1.0),
        ("1 < 3 < 2", 0.0),
        ("0 <= 0.5 < 1 != 2", 1.0),
    ];
    for (expr, want) in cases {
        // `x` keeps the expression from folding away: it is a parameter set to zero.
        let desc = ModelDescription::new(format!("y = x + ({expr}) : 1\nx : 1"));
        let cfg = RunConfig::new(1e-4, 1).record(&["y"]);
        let out = model(&desc).simulate(&[0.0], 1, &[], &cfg).unwrap();
        let got = out.trace("y", 0).unwrap()[0];
        assert!(
            (got - want).abs() <= 1e-15 * want.abs().max(1.0),
            "{expr}: {got} != {want}"
        );
    }
    // Per-neuron values too: the same operators compiled, not folded.
    let desc = ModelDescription::new("y = (x // 2) + 10*(x % 2) + 100*int(0 < x < 3) : 1\nx : 1");
    let cfg = RunConfig::new(1e-4, 1).record(&["y"]);
    let out = model(&desc)
        .simulate(&[5.0, -3.0, 2.0], 1, &[], &cfg)
        .unwrap();
    let ys: Vec<f64> = (0..3).map(|n| out.trace("y", n).unwrap()[0]).collect();
    assert_eq!(ys, vec![2.0 + 10.0, -2.0 + 10.0, 1.0 + 100.0]);
}

#[test]
fn the_namespace_and_the_equations_shadow_built_in_constants() {
    let desc = ModelDescription::new("y = e*x : 1\nx : 1\ne : 1");
    assert_eq!(
        model(&desc)
            .parameters()
            .iter()
            .map(|p| &p.name[..])
            .collect::<Vec<_>>(),
        ["x", "e"]
    );
    // `%` and `//` need the same dimension on both sides, as for numbers with units.
    let e = error(&ModelDescription::new("y = t % (2*mV) : second"));
    assert!(e.contains("modulo"), "{e}");
}

#[test]
fn an_equation_runs_over_lines_up_to_its_unit() {
    // Brian's own HH example writes its equations this way.
    let text = "dv/dt = (gl*(El - v)
                - gk*(v - Ek)) / C
        : volt
gl : siemens
gk : siemens
El : volt
Ek : volt
C : farad";
    let set = neurosbi_sim::equations::EquationSet::parse("equations", text).unwrap();
    assert_eq!(set.equations.len(), 6);
    let printed = set.to_string();
    let again = neurosbi_sim::equations::EquationSet::parse("equations", &printed).unwrap();
    assert_eq!(set.equations[0].expr, again.equations[0].expr);
    // A forgotten unit shows up as a second `=`, at the line that lacks it.
    let err = neurosbi_sim::equations::EquationSet::parse(
        "equations",
        "dv/dt = -v/tau\ndw/dt = -w/tau : 1",
    )
    .unwrap_err();
    assert!(
        matches!(&err, SimError::Syntax { at, message } if at.line == 2 && message.contains("`: unit`")),
        "{err}"
    );
}

#[test]
fn models_without_differential_equations_run() {
    // A threshold on a subexpression of time and a parameter: a clock neuron.
    let desc = ModelDescription::new("phase = (t/period) % 1 : 1\nperiod : second (shared)")
        .threshold("phase > 0.999");
    let m = model(&desc);
    assert!(m.state_vars().is_empty());
    let cfg = RunConfig::new(1e-4, 1000).record(&["phase"]);
    let out = m.simulate(&[0.025], 1, &[], &cfg).unwrap();
    let phase = out.trace("phase", 0).unwrap();
    assert_eq!(phase[10], 10.0 * 1e-4 / 0.025);
    assert!((phase[260] - 0.04).abs() < 1e-12);
    // The threshold sees `t` of the step's start, as Brian's thresholder; `t/period` just
    // below a whole number (rounding) fires.
    assert!(!out.spikes[0].is_empty());
    for &s in &out.spikes[0] {
        let x = s / 0.025;
        assert!(x - x.floor() > 0.999, "spike at {s}");
    }
}

#[test]
fn shared_flag_is_accepted_and_printed() {
    let set = neurosbi_sim::equations::EquationSet::parse(
        "equations",
        "dv/dt = -v/tau : 1\ntau : second (constant, shared)",
    )
    .unwrap();
    assert!(set.equations[1].flags.shared && set.equations[1].flags.constant);
    assert!(set.to_string().contains("(constant, shared)"));
}

const HH_GATES: &str = "dv/dt = -v/(10*ms) : volt
dm/dt = alpha_m*(1 - m) - beta_m*m : 1
alpha_m = 0.32/mV*(v + 54*mV)/ms : Hz
beta_m = 0.28/ms : Hz";

#[test]
fn initial_values_read_states_and_subexpressions_in_dependency_order() {
    // Brian's `m = 'alpha_m/(alpha_m + beta_m)'` after `v = -60*mV`, written in either order.
    let want = {
        let a = 0.32 / 1e-3 * (-0.060 + 0.054) / 1e-3;
        a / (a + 0.28 / 1e-3)
    };
    for order in [["v", "m"], ["m", "v"]] {
        let mut desc = ModelDescription::new(HH_GATES).method("euler");
        for var in order {
            desc = match var {
                "v" => desc.initial("v", "-60*mV"),
                _ => desc.initial("m", "alpha_m/(alpha_m + beta_m)"),
            };
        }
        let got = initial(&desc, &[], "m");
        assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    }
    // A variable that reads itself sees its value before the assignment, zero.
    let desc = ModelDescription::new("dv/dt = -v/ms : volt").initial("v", "v + 2*mV");
    assert!((initial(&desc, &[], "v") - 0.002).abs() < 1e-18);
    // Cycles are errors that name them.
    let desc = ModelDescription::new("dv/dt = -v/ms : volt\ndw/dt = -w/ms : volt")
        .initial("v", "w + 1*mV")
        .initial("w", "v");
    let e = error(&desc);
    assert!(e.contains("cycle") && e.contains("v -> w -> v"), "{e}");
}

#[test]
fn not_refractory_is_a_readable_variable() {
    // v integrates 1/ms only while not refractory (Brian's `int(not_refractory)` idiom).
    let desc = ModelDescription::new("dv/dt = int(not_refractory)/ms : 1")
        .threshold("v > 0.5")
        .reset("v = 0")
        .refractory("1*ms")
        .method("euler");
    let cfg = RunConfig::new(1e-4, 100).record(&["v"]);
    let out = model(&desc).simulate(&[], 1, &[], &cfg).unwrap();
    let v = out.trace("v", 0).unwrap();
    // First spike in the step starting at 0.5 ms (v reaches 0.6 > 0.5 at its end).
    let k = (out.spikes[0][0] / 1e-4).round() as usize;
    assert_eq!(k, 5);
    // Refractory for 10 steps after the spike step: v stays 0 through them.
    assert!(
        v[k + 1..k + 10].iter().all(|&x| x == 0.0),
        "{:?}",
        &v[k..k + 12]
    );
    assert!(v[k + 11] > 0.0);
}

/// Leaky integrator with a constant input: `v(t) = v_inf + (v0 - v_inf) e^(-t/tau)`.
#[test]
fn exact_is_the_analytic_solution_of_a_leaky_integrator() {
    let desc = ModelDescription::new(
        "dv/dt = (El - v + R*I0)/tau : volt\nEl : volt\nR : ohm\nI0 : amp\ntau : second",
    )
    .initial("v", "El");
    let m = model(&desc);
    assert_eq!(
        m.method(),
        Method::Exact,
        "Brian's default for linear equations"
    );
    let params = [-0.070, 1e8, 2e-10, 0.013];
    let dt = 1e-4;
    let cfg = RunConfig::new(dt, 500).record(&["v"]);
    let out = m.simulate(&params, 1, &[], &cfg).unwrap();
    let v_inf = -0.070 + 1e8 * 2e-10;
    for (k, &v) in out.trace("v", 0).unwrap().iter().enumerate() {
        let t = k as f64 * dt;
        let want = v_inf + (-0.070 - v_inf) * (-t / 0.013f64).exp();
        assert!((v - want).abs() < 1e-12 * 0.07, "step {k}: {v} vs {want}");
    }
}

/// A coupled, parameter-dependent system against nalgebra's matrix exponential: an
/// adaptive leaky integrator, `dv/dt = (El - v - w)/tau`, `dw/dt = (a(v - El) - w)/tau_w`.
#[test]
fn exact_matches_the_matrix_exponential_of_a_coupled_system() {
    let desc = ModelDescription::new(
        "dv/dt = (El - v - R*w)/tau : volt
dw/dt = (a*(v - El) - w)/tau_w : amp
El : volt
R : ohm
a : siemens
tau : second
tau_w : second",
    )
    .initial("v", "El + 5*mV");
    let m = model(&desc);
    assert_eq!(m.method(), Method::Exact);
    let dt = 1e-4;
    let n = 300;
    // Two parameter sets, one with equal time constants (a non-diagonalisable case for
    // sympy's closed forms).
    let sets = [
        [-0.065, 1e7, 2e-9, 0.010, 0.100],
        [-0.070, 5e7, 1e-9, 0.020, 0.020],
    ];
    let cfg = RunConfig::new(dt, n).record(&["v", "w"]);
    let out = m.simulate(&sets.concat(), 1, &[], &cfg).unwrap();
    for (s, p) in sets.iter().enumerate() {
        let [el, r, a, tau, tau_w] = *p;
        // d(v - El, w)/dt = M (v - El, w)
        let mat = nalgebra::Matrix2::new(-1.0 / tau, -r / tau, a / tau_w, -1.0 / tau_w);
        let x0 = nalgebra::Vector2::new(0.005, 0.0);
        for k in [1, 17, 150, n - 1] {
            let x = (mat * (k as f64 * dt)).exp() * x0;
            let v = out.trace("v", s).unwrap()[k];
            let w = out.trace("w", s).unwrap()[k];
            assert!((v - el - x[0]).abs() < 1e-12 * 0.005, "set {s} step {k}: v");
            assert!(
                (w - x[1]).abs() < 1e-12 * x[1].abs().max(1e-11),
                "set {s} step {k}: w"
            );
        }
    }
}

#[test]
fn exact_follows_brians_conditions() {
    // Brian names `linear` too.
    let m = model(&ModelDescription::new("dv/dt = -v/ms : 1").method("linear"));
    assert_eq!(m.method(), Method::Exact);
    // Not exact, so Euler as in Brian: products of states, `t` in the coefficients, a
    // singular matrix (pure integrator), complex eigenvalues of a numeric matrix.
    for eqs in [
        "dv/dt = -v*w/ms : 1\ndw/dt = -w/ms : 1",
        "dv/dt = (t/ms - v)/ms : 1",
        "dv/dt = I/(1*ms) : 1\nI : 1",
        "dv/dt = (-v + w)/(10*ms) : 1\ndw/dt = -(w + 2*v)/(5*ms) : 1",
    ] {
        assert_eq!(
            model(&ModelDescription::new(eqs)).method(),
            Method::Euler,
            "{eqs}"
        );
    }
    // Named on non-linear equations, it says what is not linear.
    let e = error(&ModelDescription::new("dv/dt = -v**2/ms : 1").method("exact"));
    assert!(
        e.contains("`exact`") && e.contains("dv/dt") && e.contains("power"),
        "{e}"
    );
    let e = error(&ModelDescription::new("dv/dt = -v*w/ms : 1\ndw/dt = -w/ms : 1").method("exact"));
    assert!(e.contains("depends on `w`"), "{e}");
}

/// `rand()` in an initial value: uniform in [0, 1), one draw per neuron from its own
/// stream, so the same for a neuron whatever the batch size or the number of threads.
#[test]
fn rand_streams_do_not_depend_on_batch_size_or_threads() {
    let desc = ModelDescription::new("dv/dt = -v/(10*ms) : volt\nx : 1")
        .initial("v", "rand()*mV + x*mV")
        .threshold("v > 100*mV")
        .reset("v = randn()*mV");
    let m = model(&desc);
    let cfg = RunConfig::new(1e-4, 3).record(&["v"]).seed(11);
    let v0 = |n: usize, threads: usize| -> Vec<f64> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let out = pool
            .install(|| {
                m.simulate(&vec![0.0; n], 1, &[], &cfg)
                    .map_err(|e| e.to_string())
            })
            .unwrap();
        (0..n).map(|k| out.trace("v", k).unwrap()[0]).collect()
    };
    let big = v0(200, 2);
    assert_eq!(&v0(3, 1)[..], &big[..3]);
    assert_eq!(v0(200, 1), big);
    assert!(big.iter().all(|&v| (0.0..1e-3).contains(&v)));
    let mean = big.iter().sum::<f64>() / 200.0;
    // Uniform on [0, 1 mV): mean 0.5 mV, standard error 0.29/sqrt(200) mV = 0.02 mV.
    assert!((mean - 5e-4).abs() < 4.0 * 2.04e-5, "{mean}");
    // Another seed, other draws.
    let other = m
        .simulate(&[0.0; 3], 1, &[], &cfg.clone().seed(12))
        .unwrap();
    assert_ne!(other.trace("v", 0).unwrap()[0], big[0]);
}

/// A Poisson neuron in Brian's idiom: no equation, `threshold = 'rand() < rate*dt'`.
#[test]
fn rand_in_a_threshold_makes_a_poisson_neuron() {
    let desc = ModelDescription::new("rate : Hz").threshold("rand() < rate*dt");
    let m = model(&desc);
    let (n, steps) = (400, 2000);
    let cfg = RunConfig::new(1e-4, steps).seed(3);
    let out = m.simulate(&vec![50.0; n], 1, &[], &cfg).unwrap();
    let total: usize = out.spikes.iter().map(Vec::len).sum();
    // Binomial(n*steps, 50 Hz * 0.1 ms): mean 4000, sd 63.
    assert!((total as f64 - 4000.0).abs() < 4.0 * 63.2, "{total}");
    // randn() in a reset: standard normal values.
    let desc = ModelDescription::new("dv/dt = 0*Hz : 1")
        .threshold("True")
        .reset("v = randn()")
        .method("euler");
    let cfg = RunConfig::new(1e-4, 2).record(&["v"]).seed(5);
    let out = model(&desc).simulate(&[], 1, &[], &cfg).unwrap();
    assert_eq!(out.trace("v", 0).unwrap()[0], 0.0);
    let out = model(&desc).simulate(&[], 1000, &[], &cfg).unwrap();
    let v: Vec<f64> = (0..1000).map(|k| out.trace("v", k).unwrap()[1]).collect();
    let mean = v.iter().sum::<f64>() / 1000.0;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 999.0;
    assert!(mean.abs() < 4.0 / 1000f64.sqrt(), "{mean}");
    assert!((var - 1.0).abs() < 4.0 * (2.0 / 999f64).sqrt(), "{var}");
}

#[test]
fn rand_is_refused_where_brian_refuses_it() {
    let e = error(&ModelDescription::new("dv/dt = rand()/ms : 1"));
    assert!(e.contains("`rand()`") && e.contains("xi"), "{e}");
    let e = error(&ModelDescription::new("dv/dt = r/ms : 1\nr = randn() : 1"));
    assert!(e.contains("constant over dt"), "{e}");
    let e = error(&ModelDescription::new("dv/dt = -v/ms : 1").initial("v", "rand(2)"));
    assert!(e.contains("`rand` takes 0 argument"), "{e}");
}

/// An input called as a TimedArray, `stim(t)` or `stim(t, i)`, is the input itself.
#[test]
fn inputs_called_as_timed_arrays_and_timestep() {
    use neurosbi_sim::{Stimulus, units::lookup_unit};
    let amp = lookup_unit("amp").unwrap().dim;
    let plain = ModelDescription::new("dv/dt = (-v + 1*Mohm*stim)/(5*ms) : volt")
        .input("stim", amp)
        .method("rk4");
    let called = ModelDescription::new(
        "dv/dt = (-v + 1*Mohm*I)/(5*ms) : volt\nI = stim(t) + 0*stim(t, i) : amp",
    )
    .input("stim", amp)
    .method("rk4");
    let steps = 50;
    let stim = Stimulus::from_rows(
        "stim",
        &[(0..steps).map(|k| 1e-9 * (k % 7) as f64).collect()],
    )
    .unwrap();
    let cfg = RunConfig::new(1e-4, steps).record(&["v"]);
    let a = model(&plain)
        .simulate(&[], 1, std::slice::from_ref(&stim), &cfg)
        .unwrap();
    let b = model(&called).simulate(&[], 1, &[stim], &cfg).unwrap();
    assert_eq!(a.trace("v", 0), b.trace("v", 0));
    let e = error(
        &ModelDescription::new("dv/dt = (-v + 1*Mohm*stim(t - dt))/(5*ms) : volt")
            .input("stim", amp),
    );
    assert!(e.contains("TimedArray") && e.contains("stim(t)"), "{e}");
    // timestep(t, dt) counts steps.
    let desc = ModelDescription::new("k = timestep(t, dt) : 1\nx : 1");
    let cfg = RunConfig::new(1e-4, 30).record(&["k"]);
    let out = model(&desc).simulate(&[0.0], 1, &[], &cfg).unwrap();
    let k: Vec<f64> = (0..30).map(f64::from).collect();
    assert_eq!(out.trace("k", 0).unwrap(), &k[..]);
}

/// Every unit name Brian2 2.11 defines (all twenty SI prefixes on full names, the exponent
/// suffixes `2` and `3`, the short names of `stdunits` such as `cm2` and `um3`) resolves to
/// Brian's scale and dimension (`tests/fixtures/brian_units.json`, written by
/// `scripts/brian_corpus/units.py`).
#[test]
fn every_brian_unit_name_resolves() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/brian_units.json");
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let units = fx["units"].as_object().unwrap();
    assert!(units.len() > 2000, "{}", units.len());
    let mut wrong = Vec::new();
    for (name, v) in units {
        let scale = v[0].as_f64().unwrap();
        let dims: Vec<f64> = v[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        match neurosbi_sim::units::lookup_unit(name) {
            Some(q)
                if (q.value / scale - 1.0).abs() < 1e-12 && q.dim.exponents.to_vec() == dims => {}
            got => wrong.push(format!("{name}: {got:?} vs {scale} {dims:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // In an equation: a conductance density in msiemens/cm2, as Brian's examples write it.
    let desc = ModelDescription::new("dv/dt = g*(-v)/(1*uF/cm2) : volt\ng : msiemens/cm2")
        .initial("v", "1*mV")
        .method("euler");
    let m = model(&desc);
    assert_eq!(
        m.parameters()[0].dim,
        neurosbi_sim::units::lookup_unit("siemens")
            .unwrap()
            .dim
            .div(&neurosbi_sim::units::lookup_unit("metre2").unwrap().dim)
    );
    // Names Brian does not define stay unknown: no prefixed symbols for the rare prefixes.
    for name in ["EL", "aF", "mV2", "m2", "Tm"] {
        assert!(neurosbi_sim::units::lookup_unit(name).is_none(), "{name}");
    }
}

/// Brian assigns initial values in sequence: `m` reads the `v` assigned before it, not a
/// later one; a variable assigned again reads its own earlier value. The same from a
/// model file, whose `initial` may be an array of pairs to assign a variable twice.
#[test]
fn initial_values_are_assigned_in_sequence() {
    let want_m = {
        let a = 0.32 / 1e-3 * (-0.060 + 0.054) / 1e-3;
        a / (a + 0.28 / 1e-3)
    };
    let desc = ModelDescription::new(HH_GATES)
        .method("euler")
        .initial("v", "-60*mV")
        .initial("m", "alpha_m/(alpha_m + beta_m)")
        .initial("v", "10*mV")
        .initial("v", "v*2");
    assert!((initial(&desc, &[], "m") - want_m).abs() < 1e-15);
    assert!((initial(&desc, &[], "v") - 0.020).abs() < 1e-18);
    let toml = format!(
        "equations = '''\n{HH_GATES}\n'''\nmethod = 'euler'\ninitial = [['v', '-60*mV'], ['m', 'alpha_m/(alpha_m + beta_m)'], ['v', '10*mV'], ['v', 'v*2']]\n"
    );
    let spec = neurosbi_sim::ModelSpec::parse("x.toml", &toml).unwrap();
    assert!((initial(&spec.model, &[], "m") - want_m).abs() < 1e-15);
    assert!((initial(&spec.model, &[], "v") - 0.020).abs() < 1e-18);
    // A table keeps the order written (`m` before `v`: dependency order, `m` reads -60 mV).
    let toml = format!(
        "equations = '''\n{HH_GATES}\n'''\nmethod = 'euler'\n[initial]\nm = 'alpha_m/(alpha_m + beta_m)'\nv = '-60*mV'\n"
    );
    let spec = neurosbi_sim::ModelSpec::parse("x.toml", &toml).unwrap();
    assert_eq!(spec.model.initial[0].0, "m");
    assert!((initial(&spec.model, &[], "m") - want_m).abs() < 1e-15);
    let bad = format!("equations = '''\n{HH_GATES}\n'''\ninitial = [['v', '1*mV'], ['m']]\n");
    let e = neurosbi_sim::ModelSpec::parse("x.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("initial[1]") && e.contains("pair"), "{e}");
}

/// `poisson(lambda)`: the inverse-transform draw has the Poisson mean and variance (checked
/// on a stratified grid of uniform draws, so within 1e-3 relative), also for means whose
/// `exp(-lambda)` underflows; it is refused in differential equations (as by Brian) and
/// for a mean with units. Against Brian2: `tests/brian_corpus.rs`.
#[test]
fn poisson_draws_have_the_poisson_moments() {
    use neurosbi_sim::ir::poisson_quantile;
    for lambda in [0.3, 3.5, 50.0, 2000.0] {
        let n = if lambda > 100.0 { 10_000 } else { 100_000 };
        let draws: Vec<f64> = (0..n)
            .map(|k| poisson_quantile((k as f64 + 0.5) / n as f64, lambda))
            .collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean / lambda - 1.0).abs() < 1e-3, "{lambda}: mean {mean}");
        assert!(
            (var / lambda - 1.0).abs() < 1e-2,
            "{lambda}: variance {var}"
        );
        assert!(draws.iter().all(|x| x.fract() == 0.0 && *x >= 0.0));
    }
    assert_eq!(poisson_quantile(0.5, 0.0), 0.0);
    assert!(poisson_quantile(0.5, f64::NAN).is_nan());
    let e = error(&ModelDescription::new("dv/dt = poisson(2)/ms : 1"));
    assert!(
        e.contains("`poisson()` cannot appear in a differential equation"),
        "{e}"
    );
    let e = error(
        &ModelDescription::new("dv/dt = -v/ms : 1")
            .threshold("v > 1")
            .reset("v = poisson(2*ms)"),
    );
    assert!(e.contains("mean of `poisson`"), "{e}");
}

/// Initial values may read inputs, at their first sample (Brian's TimedArray at `t = 0`),
/// per trace, also through a subexpression; `not_refractory` is 1 there.
#[test]
fn initial_values_read_inputs_at_their_first_sample() {
    let desc = ModelDescription::new("dv/dt = -v/(10*ms) : 1\nJ = 2*I : 1")
        .input("I", neurosbi_sim::units::Dimension::DIMENSIONLESS)
        .initial("v", "J + 1 + not_refractory")
        .method("euler");
    let stim =
        neurosbi_sim::Stimulus::from_rows("I", &[vec![0.25, 9.0, 9.0], vec![-1.5, 9.0, 9.0]])
            .unwrap();
    let cfg = RunConfig::new(1e-4, 3).record(&["v"]);
    let out = model(&desc).simulate(&[], 2, &[stim], &cfg).unwrap();
    assert_eq!(out.trace("v", 0).unwrap()[0], 2.5);
    assert_eq!(out.trace("v", 1).unwrap()[0], -1.0);
}
