//! Circuits flattened into one model: Brian's step order against a hand-written reference,
//! the naming of flat variables, model files with `[groups]` / `[synapses]`, and the
//! errors for bad circuits.

use neurosbi_sim::circuit::{CircuitDescription, Connect, GroupDescription, SynapseDescription};
use neurosbi_sim::{Model, ModelSpec, RunConfig};

const LEAKY: &str =
    "dv/dt = (-v + I_in + I_ext)/tau : volt\nI_in : volt\nI_ext : volt\ntau : second (constant)";

/// `pre` drives `post` through a first-order synapse `syn`; Brian's order updates `post`,
/// then `pre`, then `syn` (by name), each with Euler, the summed input first of all.
fn pair() -> CircuitDescription {
    let mut pre = GroupDescription::new("pre", LEAKY);
    pre.initial.push(("v".into(), "2*mV".into()));
    let post = GroupDescription::new("post", LEAKY);
    let syn = SynapseDescription::new(
        "syn",
        "pre",
        "post",
        "ds/dt = (v_pre/mV - s)/(5*ms) : 1 (clock-driven)\nw : volt\nI_in_post = w*s : volt (summed)",
    );
    let mut c = CircuitDescription::new(vec![pre, post], vec![syn]);
    c.method = Some("euler".into());
    c
}

#[test]
fn flat_names_and_brian_order() {
    let desc = pair().flatten().unwrap();
    let order: Vec<Vec<String>> = desc.schedule.iter().map(|p| p.states.clone()).collect();
    assert_eq!(order, [["v_post"], ["v_pre"], ["s_syn"]]);
    let model = Model::new(&desc).unwrap();
    let params: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        params,
        [
            "I_in_pre",
            "I_ext_pre",
            "tau_pre",
            "I_ext_post",
            "tau_post",
            "w_syn"
        ]
    );
    let states: Vec<&str> = model.state_vars().iter().map(|p| p.name.as_str()).collect();
    // The summed target of `post` is held over each step.
    assert_eq!(states, ["v_pre", "v_post", "I_in_post", "s_syn"]);
}

/// Step `k` of the pair's `v_pre`, `v_post` and `s_syn` equals the reference's, to 1e-12.
fn same(out: &neurosbi_sim::SimResult, k: usize, want: [f64; 3]) {
    for (name, want) in ["v_pre", "v_post", "s_syn"].into_iter().zip(want) {
        let got = out.trace(name, 0).unwrap()[k];
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1e-6),
            "{name} at step {k}: {got} vs {want}"
        );
    }
}

/// The pair's drive, time constants and synaptic weight (SI).
const EXT: f64 = 5e-3;
const TAU_PRE: f64 = 10e-3;
const TAU_POST: f64 = 20e-3;
const W: f64 = 3e-3;

/// Simulates the pair for `n` steps, recording `v_pre`, `v_post` and `s_syn`.
fn run_pair(desc: &neurosbi_sim::ModelDescription, dt: f64, n: usize) -> neurosbi_sim::SimResult {
    let model = Model::new(desc).unwrap();
    let cfg = RunConfig::new(dt, n).record(&["v_pre", "v_post", "s_syn"]);
    // Parameters: I_in_pre, I_ext_pre, tau_pre, I_ext_post, tau_post, w_syn.
    model
        .simulate(&[0.0, EXT, TAU_PRE, 0.0, TAU_POST, W], 1, &[], &cfg)
        .unwrap()
}

#[test]
fn matches_a_hand_written_euler_in_brian_order() {
    let (dt, n) = (1e-4, 400);
    let out = run_pair(&pair().flatten().unwrap(), dt, n);
    let (ext, tau_pre, tau_post, w) = (EXT, TAU_PRE, TAU_POST, W);
    let (mut vpre, mut vpost, mut s) = (2e-3, 0.0, 0.0);
    for k in 0..n {
        same(&out, k, [vpre, vpost, s]);
        let i_in_post = w * s; // summed, from the state at the step's start
        vpost += dt * (-vpost + i_in_post) / tau_post; // post_stateupdater
        vpre += dt * (-vpre + ext) / tau_pre; // pre_stateupdater
        s += dt * (vpre / 1e-3 - s) / 5e-3; // syn_stateupdater reads the new v_pre
    }
    assert!(s > 1.0 && vpost > 1e-4, "the synapse was driven");
}

#[test]
fn groups_of_several_neurons_and_conditions() {
    let mut g = GroupDescription::new("E", "dv/dt = (I - v)/(10*ms) : 1\nI : 1");
    g.n = 3;
    let mut syn = SynapseDescription::new("EE", "E", "E", "w : 1\nI_post = w*v_pre : 1 (summed)");
    syn.connect = Connect::Condition("i != j".into());
    let mut c = CircuitDescription::new(vec![g], vec![syn]);
    c.method = Some("euler".into());
    c.groups[0].initial.push(("v".into(), "0.1*(i + 1)".into()));
    let desc = c.flatten().unwrap();
    let model = Model::new(&desc).unwrap();
    let params: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    // 6 synapses (i != j), in Brian's order: (0,1) (0,2) (1,0) (1,2) (2,0) (2,1).
    assert_eq!(
        params,
        ["w_EE_0", "w_EE_1", "w_EE_2", "w_EE_3", "w_EE_4", "w_EE_5"]
    );
    // I of neuron 0 sums the synapses from 1 and 2 (numbers 2 and 4).
    assert!(
        desc.equations
            .contains("I_E_0 = (w_EE_2 * v_E_1) + (w_EE_4 * v_E_2) : 1.0 (constant over dt)"),
        "{}",
        desc.equations
    );
    let cfg = RunConfig::new(1e-4, 2).record(&["v_E_0", "v_E_1", "v_E_2"]);
    let out = model.simulate(&[0.0; 6], 1, &[], &cfg).unwrap();
    for k in 0..3 {
        assert_eq!(
            out.trace(&format!("v_E_{k}"), 0).unwrap()[0],
            0.1 * (k as f64 + 1.0)
        );
    }
}

#[test]
fn model_file_with_groups_and_synapses() {
    let text = r#"
name = "pair"
method = "euler"
[constants]
tau_s = "5*ms"
[groups.pre]
equations = """
dv/dt = (-v + I_ext)/(10*ms) : volt
I_ext : volt
"""
[groups.pre.initial]
v = "2*mV"
[groups.post]
equations = """
dv/dt = (-v + I_in)/(20*ms) : volt
I_in : volt
"""
[synapses.syn]
source = "pre"
target = "post"
equations = """
ds/dt = (v_pre/mV - s)/tau_s : 1 (clock-driven)
w : volt
I_in_post = w*s : volt (summed)
"""
[parameters]
w_syn = "3*mV"
I_ext_pre = "5*mV"
[priors]
w_syn = ["0*mV", "10*mV"]
"#;
    let spec = ModelSpec::parse("pair.toml", text).unwrap();
    let model = spec.build().unwrap();
    let p = spec.default_parameters(&model).unwrap();
    let cfg = RunConfig::new(1e-4, 1000).record(&["v_post"]);
    let out = model.simulate(&p, 1, &[], &cfg).unwrap();
    assert!(out.trace("v_post", 0).unwrap()[999] > 1e-4);
}

fn err(c: &CircuitDescription) -> String {
    c.flatten().unwrap_err().to_string()
}

#[test]
fn bad_circuits_are_named_errors() {
    let mut c = pair();
    c.synapses[0].target = "nowhere".into();
    let e = err(&c);
    assert!(e.contains("synapses.syn") && e.contains("`nowhere`"), "{e}");

    let mut c = pair();
    c.synapses[0].equations = "ds/dt = (u_pre/mV - s)/(5*ms) : 1 (clock-driven)".into();
    let e = err(&c);
    assert!(
        e.contains("synapses.syn.equations")
            && e.contains("line 1, column 10")
            && e.contains("no variable `u`"),
        "{e}"
    );

    let mut c = pair();
    c.synapses[0].equations = "w : volt\nv_post = w : volt (summed)".into();
    let e = err(&c);
    assert!(
        e.contains("must be a parameter of group `post`") && e.contains("line 2"),
        "{e}"
    );

    let mut c = pair();
    c.synapses[0].equations = "w : volt\nI_in = w : volt (summed)".into();
    assert!(err(&c).contains("suffix `_post`"), "{}", err(&c));

    let mut c = pair();
    c.synapses[0].equations = "w : amp\nI_in_post = w : amp (summed)".into();
    let e = err(&c);
    assert!(
        e.contains("I_in_post") && e.contains("dimension") || e.contains("amp"),
        "{e}"
    );

    let mut c = pair();
    c.synapses[0].equations = "ds/dt = -s/(5*ms) : 1".into();
    assert!(err(&c).contains("(clock-driven)"), "{}", err(&c));

    let mut c = pair();
    let mut second = c.synapses[0].clone();
    second.name = "syn2".into();
    c.synapses.push(second);
    let e = err(&c);
    assert!(
        e.contains("already the target") && e.contains("`syn`"),
        "{e}"
    );

    let mut c = pair();
    c.synapses[0].connect = Connect::Pairs(vec![(0, 3)]);
    let e = err(&c);
    assert!(
        e.contains("synapses.syn.connect") && e.contains("(0, 3)"),
        "{e}"
    );

    // `exact` on one object of a circuit: that object's equations alone must be linear
    // (the others' variables are held while it is integrated).
    let mut c = pair();
    c.groups[1].method = Some("exact".into());
    let model = Model::new(&c.flatten().unwrap()).unwrap();
    let methods = model.phase_methods();
    assert!(
        methods
            .iter()
            .any(|(s, m)| *s == ["v_post"] && m.to_string() == "exact"),
        "{methods:?}"
    );
    c.groups[1].equations = LEAKY.replace("-v + I_in", "-v**3/mV**2 + I_in");
    let e = err(&c);
    assert!(
        e.contains("groups.post") && e.contains("`exact`") && e.contains("not linear in `v`"),
        "{e}"
    );

    let mut c = pair();
    c.synapses[0].on_pre = Some("w += 1*mV".into());
    let e = err(&c);
    assert!(
        e.contains("synapses.syn") && e.contains("`pre`, which has no threshold"),
        "{e}"
    );

    // Spike-triggered synapses: what their statements write, delays, event-driven variables.
    let spiking = || {
        let mut c = pair();
        c.groups[0].threshold = Some("v > 10*mV".into());
        c
    };
    let mut c = spiking();
    c.synapses[0].on_pre = Some("w += 1*mV\nx_post += 1*mV".into());
    let e = err(&c);
    assert!(
        e.contains("synapses.syn.on_pre") && e.contains("line 2") && e.contains("`x_post`"),
        "{e}"
    );
    let mut c = spiking();
    c.synapses[0].on_pre = Some("w += 1*mV".into());
    c.synapses[0].delay = Some("(1 + i)*mV".into());
    let e = err(&c);
    assert!(
        e.contains("synapses.syn.delay") && e.contains("duration"),
        "{e}"
    );
    let mut c = spiking();
    c.synapses[0].equations = "w : volt\nI_in_post = w : volt (summed)\n\
                               dA/dt = -A**2/(5*ms) : 1 (event-driven)"
        .into();
    c.synapses[0].on_pre = Some("A += 1".into());
    let e = err(&c);
    assert!(e.contains("event-driven `A` must be linear"), "{e}");

    // A synaptic flag in a neuron group.
    let mut c = pair();
    c.groups[1].equations = "dv/dt = -v/(20*ms) : volt (clock-driven)\nI_in : volt".into();
    let e = err(&c);
    assert!(
        e.contains("groups.post") && e.contains("belongs to synapse equations"),
        "{e}"
    );
}

/// Brian's `order` puts the synapse first, so it reads the old `v_pre` (a Jacobi step, as
/// the pyloric package integrates); each object keeps its own method.
#[test]
fn order_and_a_method_per_object() {
    let mut c = pair();
    c.synapses[0].order = -1;
    c.groups[0].method = Some("exponential_euler".into());
    let desc = c.flatten().unwrap();
    let order: Vec<Vec<String>> = desc.schedule.iter().map(|p| p.states.clone()).collect();
    assert_eq!(order, [["s_syn"], ["v_post"], ["v_pre"]]);
    let (dt, n) = (1e-4, 300);
    let out = run_pair(&desc, dt, n);
    let (ext, tau_pre, tau_post, w) = (EXT, TAU_PRE, TAU_POST, W);
    let (mut vpre, mut vpost, mut s) = (2e-3, 0.0, 0.0);
    for k in 0..n {
        same(&out, k, [vpre, vpost, s]);
        let i_in_post = w * s;
        s += dt * (vpre / 1e-3 - s) / 5e-3; // first: the old v_pre
        vpost += dt * (-vpost + i_in_post) / tau_post;
        // Exponential Euler, exact for this linear equation.
        let a = (-dt / tau_pre).exp();
        vpre = ext + (vpre - ext) * a;
    }
}

/// `connect(p=...)`: the same seed gives the same synapses; about `p` of the candidate
/// pairs (where the condition holds) are connected.
#[test]
fn random_connections_are_seeded_and_have_probability_p() {
    let text = |seed: u64| {
        format!(
            "[groups.a]\nn = 40\nequations = \"dv/dt = -v/(10*ms) : volt\\nI : volt\"\n\
             [groups.b]\nn = 30\nequations = \"dv/dt = (I - v)/(10*ms) : volt\\nI : volt\"\n\
             [synapses.ab]\nsource = \"a\"\ntarget = \"b\"\n\
             equations = \"I_post = 0.1*v_pre : volt (summed)\"\n\
             connect = {{ p = 0.25, seed = {seed}, condition = \"i != j\" }}\n\
             method = \"euler\"\n"
        )
    };
    let synapses = |seed: u64| {
        let spec = neurosbi_sim::ModelSpec::parse("m.toml", &text(seed)).unwrap();
        spec.build().unwrap().canonical_form()
    };
    assert_eq!(synapses(1), synapses(1));
    assert_ne!(synapses(1), synapses(2));
    // The summed input of each target lists its synapses: count the terms.
    let spec = neurosbi_sim::ModelSpec::parse("m.toml", &text(1)).unwrap();
    let eqs = &spec.model.equations;
    let n: usize = eqs
        .lines()
        .filter(|l| l.starts_with("I_b_"))
        .map(|l| l.matches("v_a_").count())
        .sum();
    // 40*30 - 30 candidates (i != j), p = 0.25: 292.5 expected, sd 15.
    assert!((230..=355).contains(&n), "{n} synapses");
    let bad = text(1).replace("p = 0.25", "p = 1.5");
    let spec = neurosbi_sim::ModelSpec::parse("m.toml", &bad);
    let e = match spec {
        Err(e) => e.to_string(),
        Ok(s) => s.build().map(|_| ()).unwrap_err().to_string(),
    };
    assert!(e.contains("probability"), "{e}");
}

/// A spiking circuit from a model file and from the Rust API is the same model: the same
/// program and the same spikes (both doors go through `CircuitDescription::flatten`).
#[test]
fn spiking_circuit_from_a_model_file_equals_the_api() {
    let file = r#"
method = "euler"
[constants]
tau = "10*ms"
[groups.cells]
n = 3
equations = """
dv/dt = (drive - v)/tau : volt (unless refractory)
drive : volt (constant)
"""
threshold = "v > 10*mV"
reset = "v = 0*mV"
refractory = "2*ms"
[groups.cells.initial]
v = "i*3*mV"
[synapses.rec]
source = "cells"
target = "cells"
equations = """
w : volt
dA/dt = -A/(15*ms) : 1 (event-driven)
"""
on_pre = """
v_post += w
A += 0.1
"""
on_post = "w = clip(w + A*1*mV, 0*mV, 3*mV)"
delay = "(1 + i)*ms"
connect = "i != j"
"#;
    let spec = neurosbi_sim::ModelSpec::parse("net.toml", file).unwrap();
    let from_file = spec.build().unwrap();

    let mut g = GroupDescription::new(
        "cells",
        "dv/dt = (drive - v)/tau : volt (unless refractory)\ndrive : volt (constant)",
    );
    g.n = 3;
    g.threshold = Some("v > 10*mV".into());
    g.reset = Some("v = 0*mV".into());
    g.refractory = Some("2*ms".into());
    g.initial.push(("v".into(), "i*3*mV".into()));
    let mut s = SynapseDescription::new(
        "rec",
        "cells",
        "cells",
        "w : volt\ndA/dt = -A/(15*ms) : 1 (event-driven)",
    );
    s.on_pre = Some("v_post += w\nA += 0.1".into());
    s.on_post = Some("w = clip(w + A*1*mV, 0*mV, 3*mV)".into());
    s.delay = Some("(1 + i)*ms".into());
    s.connect = Connect::Condition("i != j".into());
    let mut c = CircuitDescription::new(vec![g], vec![s]);
    c.method = Some("euler".into());
    c.constants
        .push(("tau".into(), neurosbi_sim::parse_quantity("10*ms").unwrap()));
    let from_api = Model::new(&c.flatten().unwrap()).unwrap();
    assert_eq!(from_file.canonical_form(), from_api.canonical_form());

    let names: Vec<&str> = from_api
        .parameters()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let params: Vec<f64> = names
        .iter()
        .map(|n| if n.starts_with("drive") { 0.012 } else { 0.001 })
        .collect();
    let cfg = RunConfig::new(1e-4, 3000);
    let a = from_file.simulate(&params, 1, &[], &cfg).unwrap();
    let b = from_api.simulate(&params, 1, &[], &cfg).unwrap();
    assert_eq!(a.events, b.events);
    let n_spikes: usize = a.events.iter().map(|(_, t)| t[0].len()).sum();
    assert!(n_spikes > 10, "{n_spikes} spikes");
}
