//! Bad input: every error is typed and says what is wrong and where.

use neurosbi_sim::units::lookup_unit;
use neurosbi_sim::{Model, ModelDescription, ModelSpec, Quantity, RunConfig, SimError, Stimulus};

fn err(desc: &ModelDescription) -> SimError {
    Model::new(desc).unwrap_err()
}

fn volt() -> neurosbi_sim::Dimension {
    lookup_unit("volt").unwrap().dim
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = err(&ModelDescription::new(
        "dv/dt = -v/tau : volt\ndw/dt = (w + : 1",
    ));
    let SimError::Syntax { at, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((at.origin.as_str(), at.line), ("equations", 2));
    assert!(e.to_string().contains("equations line 2"), "{e}");
}

#[test]
fn unknown_identifiers_are_named_with_a_suggestion() {
    let e = err(&ModelDescription::new(
        "dv/dt = -v/taux : volt\ntau : second (constant)",
    ));
    let SimError::UnknownIdentifier {
        name,
        at,
        suggestion,
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(name, "taux");
    assert_eq!((at.line, at.col), (1, 12));
    assert_eq!(suggestion.as_deref(), Some("tau"));
    let e = err(&ModelDescription::new(
        "dv/dt = expp(v/volt)*volt/second : volt",
    ));
    assert!(
        e.to_string().contains("expp()") && e.to_string().contains("`exp`"),
        "{e}"
    );
}

#[test]
fn dimension_mismatches_print_both_dimensions_and_the_position() {
    // An addition of volt and amp.
    let e = err(&ModelDescription::new(
        "dv/dt = (v + I)/tau : volt\nI : amp (constant)\ntau : second (constant)",
    ));
    let SimError::Dimension {
        at, left, right, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(*left, volt());
    assert_eq!(*right, lookup_unit("amp").unwrap().dim);
    assert_eq!(at.line, 1);
    let msg = e.to_string();
    assert!(
        msg.contains("metre**2 * kilogram * second**-3 * amp**-1") && msg.contains("vs amp"),
        "{msg}"
    );
    // The declared unit vs the right-hand side.
    let e = err(&ModelDescription::new("dv/dt = v : volt"));
    assert!(
        matches!(e, SimError::Dimension { .. }) && e.to_string().contains("declared unit"),
        "{e}"
    );
    // A function argument.
    let e = err(&ModelDescription::new("dv/dt = exp(v)/second : volt"));
    assert!(
        e.to_string()
            .contains("argument of `exp` must be dimensionless"),
        "{e}"
    );
    // The threshold is a condition.
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt").threshold("v + 1*mV"));
    assert!(e.to_string().contains("threshold"), "{e}");
    // A reset of the wrong unit.
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt")
        .threshold("v > 1*mV")
        .reset("v = 3*ms"));
    assert!(e.to_string().contains("reset of `v`"), "{e}");
}

#[test]
fn exponential_euler_names_the_non_linear_variable() {
    let e =
        err(&ModelDescription::new("dv/dt = -v**2/(volt*second) : volt")
            .method("exponential_euler"));
    let SimError::NotLinear { variable, reason } = &e else {
        panic!("{e}")
    };
    assert_eq!(variable, "v");
    assert!(reason.contains("power"), "{reason}");
    // Without a method, a non-linear model falls back to Euler instead of failing.
    let m = Model::new(&ModelDescription::new("dv/dt = -v**2/(volt*second) : volt")).unwrap();
    assert_eq!(m.method(), neurosbi_sim::Method::Euler);
}

#[test]
fn structural_errors() {
    // Brian accepts a model of parameters only; so does neurosbi (it has nothing to do).
    assert!(Model::new(&ModelDescription::new("gl : siemens (constant)")).is_ok());
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt").method("rk5"));
    assert!(
        e.to_string().contains("unknown integration method `rk5`") && e.to_string().contains("rk4"),
        "{e}"
    );
    let e =
        err(&ModelDescription::new("dv/dt = -v/second + xi*volt/second**0.5 : volt").method("rk4"));
    assert!(e.to_string().contains("stochastic"), "{e}");
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt").initial("w", "1*volt"));
    assert!(
        e.to_string().contains("`w`, which is not a state variable"),
        "{e}"
    );
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt")
        .threshold("v > 0*volt")
        .reset("u = 0*volt"));
    assert!(
        matches!(e, SimError::UnknownIdentifier { ref name, .. } if name == "u"),
        "{e}"
    );
    let e = err(&ModelDescription::new(
        "dv/dt = -a/second : volt\na = b : volt\nb = a : volt",
    ));
    assert!(e.to_string().contains("refers to itself"), "{e}");
    let e = err(&ModelDescription::new("dv/dt = -v/tau : volt")
        .constant("v", Quantity::new(1.0, volt()))
        .constant(
            "tau",
            Quantity::new(1.0, lookup_unit("second").unwrap().dim),
        ));
    assert!(e.to_string().contains("also given as a constant"), "{e}");
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt").refractory("2*volt"));
    assert!(e.to_string().contains("refractory"), "{e}");
}

#[test]
fn stimulus_and_run_configuration_errors() {
    let model = Model::new(
        &ModelDescription::new("dv/dt = (I*ohm - v)/ms : volt\ng : siemens (constant)")
            .input("I", lookup_unit("amp").unwrap().dim)
            .method("euler"),
    )
    .unwrap();
    let cfg = RunConfig::new(1e-4, 10);
    let short = Stimulus::from_rows("I", &[vec![0.0; 9]]).unwrap();
    let e = model.simulate(&[1e-9], 1, &[short], &cfg).unwrap_err();
    assert!(
        matches!(e, SimError::Stimulus { ref input, .. } if input == "I"),
        "{e}"
    );
    assert!(e.to_string().contains("expected 10"), "{e}");
    let e = model.simulate(&[1e-9], 1, &[], &cfg).unwrap_err();
    assert!(e.to_string().contains("no stimulus given"), "{e}");
    let ok = Stimulus::from_rows("I", &[vec![0.0; 10]]).unwrap();
    let extra = Stimulus::from_rows("J", &[vec![0.0; 10]]).unwrap();
    let e = model
        .simulate(&[1e-9], 1, &[ok.clone(), extra], &cfg)
        .unwrap_err();
    assert!(e.to_string().contains("no such input"), "{e}");
    let e = model
        .simulate(&[1e-9], 2, std::slice::from_ref(&ok), &cfg)
        .unwrap_err();
    assert!(e.to_string().contains("has 1 traces, expected 2"), "{e}");
    let e = model
        .simulate(&[f64::NAN], 1, std::slice::from_ref(&ok), &cfg)
        .unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let mut nan = ok.clone();
    nan.values[3] = f64::INFINITY;
    let e = model.simulate(&[1e-9], 1, &[nan], &cfg).unwrap_err();
    assert!(e.to_string().contains("sample 3"), "{e}");
    let e = model
        .simulate(
            &[1e-9],
            1,
            std::slice::from_ref(&ok),
            &RunConfig::new(1e-4, 10).record(&["q"]),
        )
        .unwrap_err();
    assert!(e.to_string().contains("cannot record `q`"), "{e}");
    let e = model
        .simulate(
            &[1e-9],
            1,
            std::slice::from_ref(&ok),
            &RunConfig::new(-1.0, 10),
        )
        .unwrap_err();
    assert!(e.to_string().contains("dt"), "{e}");
    assert!(Stimulus::from_rows("I", &[vec![0.0; 3], vec![0.0; 4]]).is_err());
}

#[test]
fn model_files_report_key_and_file() {
    let good = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/models/hh_c.toml"
    ))
    .unwrap();
    let e = ModelSpec::parse("x.toml", &good.replace("threshold =", "treshold =")).unwrap_err();
    assert!(
        e.to_string().contains("x.toml") && e.to_string().contains("did you mean `threshold`"),
        "{e}"
    );
    let e = ModelSpec::parse(
        "x.toml",
        &good.replace("gleak = \"10*nS\"", "gleak = \"10*nV\""),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("x.toml") && e.to_string().contains("dimension mismatch"),
        "{e}"
    );
    let e =
        ModelSpec::parse("x.toml", &good.replace("gK = \"1*uS\"", "gX = \"1*uS\"")).unwrap_err();
    assert!(e.to_string().contains("`gX`: not a parameter"), "{e}");
    let e = ModelSpec::parse(
        "x.toml",
        &good.replace("gNa = \"32*uS\"", "gNa = \"32*mV\""),
    )
    .unwrap_err();
    assert!(e.to_string().contains("has dimension"), "{e}");
    let e = ModelSpec::parse(
        "x.toml",
        "equations = '''\ndv/dt = -v/tau : volt\n'''\n[constants]\ntau = \"10*mss\"\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("constants.tau") && e.to_string().contains("`mss`"),
        "{e}"
    );
    let e = ModelSpec::parse("x.toml", "equations = 3").unwrap_err();
    assert!(e.to_string().contains("expected a string"), "{e}");
    let e = ModelSpec::parse("x.toml", "equations = '''\n").unwrap_err();
    assert!(e.to_string().contains("x.toml (line"), "{e}");
}

#[test]
fn noise_must_enter_additively_and_builtins_cannot_be_shadowed() {
    let e = err(&ModelDescription::new(
        "dv/dt = exp(xi*second**0.5)*volt/second : volt",
    ));
    assert!(e.to_string().contains("additive term"), "{e}");
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt")
        .constant("t", Quantity::new(1.0, volt())));
    assert!(e.to_string().contains("hide a built-in"), "{e}");
    let e = err(&ModelDescription::new("dv/dt = int(v)/second : volt"));
    assert!(
        e.to_string()
            .contains("argument of `int` must be dimensionless"),
        "{e}"
    );
    let model = Model::new(
        &ModelDescription::new("dv/dt = -v/tau : volt\ntau : second (constant)").method("euler"),
    )
    .unwrap();
    let e = model
        .simulate(&[], 1, &[], &RunConfig::new(1e-4, 10))
        .unwrap_err();
    assert!(e.to_string().contains("no parameter sets"), "{e}");
    // A duration read from a state variable is Brian's (evaluated at every step); an
    // infinite one is refused.
    Model::new(
        &ModelDescription::new("dv/dt = -v/second : volt")
            .threshold("v > 1*mV")
            .refractory("v/volt*second"),
    )
    .unwrap();
    let e = err(&ModelDescription::new("dv/dt = -v/second : volt")
        .threshold("v > 1*mV")
        .refractory("inf*ms"));
    assert!(e.to_string().contains("finite duration"), "{e}");
}
