//! The integration method of a model that names none follows Brian2's order: `exact` for
//! linear systems (under Brian's conditions, see `exact.rs`), else `euler` (Euler-Maruyama
//! for additive noise), else `heun` (multiplicative noise). A model copied from Brian without
//! its method therefore simulates as in Brian.

use neurosbi_sim::{Method, Model, ModelDescription, RunConfig, SimError};

const EXPIF: &str = "dv/dt = (-(v - El) + DeltaT*exp((v - VT)/DeltaT))/tau : volt
El : volt (constant)
VT : volt (constant)
DeltaT : volt (constant)
tau : second (constant)";
const EXPIF_PARAMS: [f64; 4] = [-0.070, -0.050, 0.002, 0.010];

fn model(desc: &ModelDescription) -> Model {
    Model::new(desc).unwrap_or_else(|e| panic!("{e}"))
}

/// The trace of `v` from both models, bit for bit.
fn same_run(a: &Model, b: &Model, params: &[f64]) {
    let cfg = RunConfig::new(1e-4, 300).record(&["v"]).seed(7);
    let (ra, rb) = (
        a.simulate(params, 2, &[], &cfg).unwrap(),
        b.simulate(params, 2, &[], &cfg).unwrap(),
    );
    for n in 0..2 {
        let (ta, tb) = (ra.trace("v", n).unwrap(), rb.trace("v", n).unwrap());
        assert!(ta.iter().zip(tb).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}

#[test]
fn a_linear_model_without_method_gets_exact() {
    let lif = ModelDescription::new("dv/dt = (El - v + R*I)/tau : volt\nR : ohm (constant)")
        .input("I", neurosbi_sim::units::lookup_unit("amp").unwrap().dim)
        .constant(
            "El",
            neurosbi_sim::parse_quantity("-70*mV").unwrap_or_else(|e| panic!("{e}")),
        )
        .constant(
            "tau",
            neurosbi_sim::parse_quantity("20*ms").unwrap_or_else(|e| panic!("{e}")),
        );
    assert_eq!(model(&lif).method(), Method::Exact);
    // Naming a method is still obeyed.
    assert_eq!(
        model(&lif.clone().method("exponential_euler")).method(),
        Method::ExponentialEuler
    );
    // Coupled linear systems with real eigenvalues too (a matrix exponential).
    let coupled = ModelDescription::new(
        "dv/dt = (-v + w)/(10*ms) : 1\ndw/dt = -(w - 0.1*v)/(5*ms) + g/ms : 1\ng : 1",
    );
    assert_eq!(model(&coupled).method(), Method::Exact);
}

#[test]
fn models_brian_cannot_solve_exactly_get_euler_bit_for_bit() {
    let expif = ModelDescription::new(EXPIF).initial("v", "El");
    let chosen = model(&expif);
    assert_eq!(chosen.method(), Method::Euler);
    same_run(
        &chosen,
        &model(&expif.clone().method("euler")),
        &EXPIF_PARAMS,
    );
    // Non-linear through a product of states, or linear with coefficients that depend on
    // `t`: not `exact` in Brian either.
    for eqs in [
        "dv/dt = -v*w/ms : 1\ndw/dt = -w/ms : 1",
        "dv/dt = -v*(1 + sin(t/ms))/ms : 1",
        "dv/dt = (t/ms - v)/ms : 1",
    ] {
        assert_eq!(model(&ModelDescription::new(eqs)).method(), Method::Euler);
    }
}

#[test]
fn additive_noise_gets_euler_maruyama() {
    let ou = ModelDescription::new(
        "dv/dt = -v/tau + sigma*xi*sqrt(2/tau) : volt\nsigma : volt (constant)\ntau : second (constant)",
    );
    let chosen = model(&ou);
    assert_eq!(chosen.method(), Method::EulerMaruyama);
    same_run(
        &chosen,
        &model(&ou.clone().method("euler_maruyama")),
        &[1e-3, 0.01],
    );
}

#[test]
fn multiplicative_noise_gets_heun() {
    // Geometric Brownian motion: the noise coefficient reads the state.
    let gbm = ModelDescription::new("dv/dt = v/(10*ms) + s*v*xi : volt\ns : second**-0.5")
        .initial("v", "1*mV");
    let chosen = model(&gbm);
    assert_eq!(chosen.method(), Method::Heun);
    same_run(&chosen, &model(&gbm.clone().method("heun")), &[3.0]);
    // A coefficient that reads the clock is multiplicative for Brian too.
    let timed = ModelDescription::new("dv/dt = -v/ms + sin(t/ms)*xi/sqrt(ms) : 1");
    assert_eq!(model(&timed).method(), Method::Heun);
}

#[test]
fn an_explicit_method_is_never_second_guessed() {
    let e = Model::new(&ModelDescription::new("dv/dt = -v/ms : 1").method("exakt")).unwrap_err();
    assert!(
        matches!(&e, SimError::Model(m) if m.contains("unknown integration method `exakt`")),
        "{e}"
    );
    for m in ["euler", "rk2", "rk4", "exponential_euler", "exact"] {
        let model = model(&ModelDescription::new("dv/dt = -v/ms : 1").method(m));
        assert_eq!(model.method().to_string(), m);
    }
}
