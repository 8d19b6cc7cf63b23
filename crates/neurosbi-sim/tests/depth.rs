//! Deep expressions: too deep is an ordinary error with a position, never a stack overflow,
//! and anything within the limit goes through every pass (checking, printing, linearity,
//! compilation, simulation) on the 2 MiB stack that `cargo test` gives its threads.

// Errors are built once per test; their size does not matter.
#![allow(clippy::result_large_err)]

use neurosbi_sim::syntax::MAX_DEPTH;
use neurosbi_sim::{Model, ModelDescription, RunConfig, SimError};

/// Runs `f` on a thread with the default test-thread stack, so that the test does not
/// depend on how the harness was started.
fn on_test_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

fn build(desc: ModelDescription) -> Result<Model, SimError> {
    on_test_stack(move || Model::new(&desc))
}

/// The error's position and message, for errors that must be syntax errors.
fn syntax(e: SimError) -> (usize, usize, String) {
    match e {
        SimError::Syntax { at, message } => (at.line, at.col, message),
        e => panic!("expected a syntax error, got {e}"),
    }
}

fn sum(term: &str, n: usize) -> String {
    vec![term; n].join("+")
}

#[test]
fn a_flat_sum_of_200000_ones_is_an_error_not_a_crash() {
    let eqs = format!("dv/dt = ({})/ms : 1", sum("1", 200_000));
    let e = build(ModelDescription::new(eqs).method("euler")).unwrap_err();
    let (line, col, message) = syntax(e);
    let limit = MAX_DEPTH;
    assert_eq!(
        message,
        format!(
            "expression nested too deeply: depth {} exceeds the limit of {limit}",
            limit + 1
        )
    );
    // The node that is one too many starts at the first term.
    assert_eq!((line, col), (1, 10));
}

#[test]
fn a_flat_sum_of_10000_states_is_an_error_not_a_crash() {
    let eqs = format!("dv/dt = (-v/ms\n  + ({})/ms) : 1", sum("v", 10_000));
    let e = build(ModelDescription::new(eqs).method("euler")).unwrap_err();
    let (line, col, message) = syntax(e);
    assert!(
        message.starts_with("expression nested too deeply"),
        "{message}"
    );
    assert_eq!((line, col), (2, 6));
}

#[test]
fn long_chains_of_every_operator_are_errors() {
    for op in ["-", "*", "/", " and ", " or "] {
        let eqs = format!("dv/dt = ({})/ms : 1", vec!["1"; 20_000].join(op));
        let e = build(ModelDescription::new(eqs).method("euler")).unwrap_err();
        assert!(e.to_string().contains("nested too deeply"), "{op}: {e}");
    }
    let e = build(
        ModelDescription::new("dv/dt = -v/ms : 1")
            .method("euler")
            .threshold(format!("v > {}", sum("1", 20_000))),
    )
    .unwrap_err();
    let (line, _, message) = syntax(e);
    assert!(
        message.contains("nested too deeply") && line == 1,
        "{message}"
    );
}

#[test]
fn chains_of_subexpressions_count_as_written_out() {
    // s_k = s_(k-1) + v: each written tree is shallow, the inlined one is not.
    let mut eqs = String::from("dv/dt = -s1000/ms : 1\ns0 = v : 1\n");
    for k in 1..=1000 {
        eqs += &format!("s{k} = s{} + v : 1\n", k - 1);
    }
    let e = build(ModelDescription::new(eqs).method("euler")).unwrap_err();
    let (_, _, message) = syntax(e);
    assert!(
        message.starts_with("expression nested too deeply")
            && message.contains("with subexpressions written out"),
        "{message}"
    );
}

#[test]
fn repeated_reset_statements_are_an_error() {
    let reset = vec!["v += 0.1"; 2_000].join("\n");
    let desc = ModelDescription::new("dv/dt = -v/ms : 1")
        .method("euler")
        .threshold("v > 1")
        .reset(reset);
    let e = build(desc).unwrap_err();
    let (line, _, message) = syntax(e);
    assert!(message.starts_with("reset nested too deeply"), "{message}");
    assert_eq!(line, MAX_DEPTH);
}

#[test]
fn a_50_term_sum_still_works() {
    let eqs = format!("dv/dt = ({})/ms - v/ms : 1", sum("0.02", 50));
    let cfg = RunConfig::new(1e-4, 10).record(&["v"]);
    let v = on_test_stack(move || {
        let model = Model::new(&ModelDescription::new(eqs).method("euler")).unwrap();
        model
            .simulate(&[], 1, &[], &cfg)
            .unwrap()
            .trace("v", 0)
            .unwrap()[1]
    });
    // One Euler step from 0 with dv/dt = 1/ms.
    assert!((v - 0.1).abs() < 1e-12, "{v}");
}

/// The deepest accepted trees, through every pass: a sum at the limit in the drift
/// (linearity analysis, exponential Euler, rk4 and Heun code), the threshold and the reset,
/// a chain of subexpressions at the limit (inlining, recording), and an error message that
/// prints the deepest tree.
#[test]
fn trees_at_the_limit_go_through_every_pass() {
    // A sum of n terms is n deep; the drift adds a negation, a division and a difference.
    let deep = sum("v", MAX_DEPTH - 3);
    let hops = MAX_DEPTH - 2;
    let mut eqs = format!("dv/dt = -({deep})/(1000*ms) - s/ms : 1\ns0 = v : 1\n");
    for k in 1..hops {
        eqs += &format!("s{k} = 0.001 + s{} : 1\n", k - 1);
    }
    eqs += &format!("s = s{} : 1\n", hops - 1);
    for method in ["exponential_euler", "rk4", "heun"] {
        let desc = ModelDescription::new(eqs.clone())
            .method(method)
            .threshold(format!("({deep}) > 1000"))
            .reset(format!("v = ({deep})/1000"))
            .initial("v", "0.5");
        let cfg = RunConfig::new(1e-5, 20).record(&["v", "s"]);
        let out = on_test_stack(move || {
            let model = Model::new(&desc).unwrap();
            model.simulate(&[], 1, &[], &cfg).unwrap()
        });
        let v = out.trace("v", 0).unwrap();
        assert!(
            v.iter().all(|x| x.is_finite() && *x > 0.0),
            "{method}: {v:?}"
        );
    }
    // One more hop is refused.
    let longer = eqs.replace("\ns = ", "\nt1 = 0.001 + s0 : 1\ns = 0.001 + ");
    let e = build(ModelDescription::new(longer).method("euler")).unwrap_err();
    assert!(e.to_string().contains("depth 257"), "{e}");
    // A dimension error quotes the whole deepest expression.
    let eqs = format!("dv/dt = ({})/ms + 1*mV/ms : 1", sum("v", MAX_DEPTH - 2));
    let e = build(ModelDescription::new(eqs).method("euler")).unwrap_err();
    assert!(matches!(e, SimError::Dimension { .. }), "{e}");
}

/// Parentheses, unary minus and powers nest by recursion in the parser and to the right in
/// the tree; at the limit they still compile and run.
#[test]
fn right_nesting_at_the_limit_works() {
    let n = MAX_DEPTH - 4;
    let nested = format!("{}v{}", "(v + ".repeat(n), ")".repeat(n));
    let minus = format!("{}v", "- ".repeat(n));
    let power = format!("({}1)", "1**".repeat(n));
    for rhs in [nested, minus, power] {
        let desc = ModelDescription::new(format!("dv/dt = -({rhs})/ms : 1")).method("rk4");
        let cfg = RunConfig::new(1e-5, 3).record(&["v"]);
        let out = on_test_stack(move || {
            let model = Model::new(&desc).unwrap();
            model.simulate(&[], 1, &[], &cfg).unwrap()
        });
        assert!(out.trace("v", 0).unwrap().iter().all(|x| x.is_finite()));
    }
}
