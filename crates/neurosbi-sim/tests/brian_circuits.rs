//! Circuits of graded synapses against Brian2 2.11 (fixtures from
//! `scripts/brian_circuits/generate.py`, numpy target): the Brian code of every object is
//! used verbatim (equations, methods, initial values, connections), and voltages, synaptic
//! variables and spike times must agree.
//!
//! Brian's thresholds here only detect spikes (no reset; the refractory condition gates
//! nothing), so the circuits run without them and spikes are read from the voltage as
//! Brian's thresholder would: a step whose new `v` is above -20 mV where the `v` it started
//! from was not.

use neurosbi_sim::circuit::{CircuitDescription, Connect, GroupDescription, SynapseDescription};
use neurosbi_sim::{Model, RunConfig, parse_quantity};
mod common;
use common::{fixture, params_by_name, text};
use serde_json::Value;

/// The circuit as Brian ran it, and the values of its parameters by flat name.
fn circuit(f: &Value) -> (CircuitDescription, Vec<(String, f64)>) {
    let mut c = CircuitDescription::new(Vec::new(), Vec::new());
    for (name, q) in f["namespace"].as_object().unwrap() {
        c.constants
            .push((name.clone(), parse_quantity(&text(&q["expr"])).unwrap()));
    }
    let mut values = Vec::new();
    for o in f["objects"].as_array().unwrap() {
        let name = text(&o["name"]);
        let mut initial = Vec::new();
        for a in o["initial_assignments"].as_array().unwrap() {
            let (var, expr) = (text(&a[0]), text(&a[1]));
            // Parameters are set once (Brian: `S.g = '2*mS'`); states get initial values.
            let is_param = o["model"]
                .as_str()
                .unwrap()
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{var} :")));
            if is_param {
                values.push((
                    format!("{var}_{name}"),
                    parse_quantity(&expr).unwrap().value,
                ));
            } else {
                initial.push((var, expr));
            }
        }
        let method = o["method"].as_str().map(String::from);
        match o["kind"].as_str().unwrap() {
            "NeuronGroup" => {
                assert_eq!(o["N"], 1);
                let mut g = GroupDescription::new(name, text(&o["model"]));
                g.method = method;
                g.initial = initial;
                c.groups.push(g);
            }
            "Synapses" => {
                let mut s = SynapseDescription::new(
                    name,
                    text(&o["source"]),
                    text(&o["target"]),
                    text(&o["model"]),
                );
                s.method = method;
                s.initial = initial;
                let pairs = o["i"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(o["j"].as_array().unwrap())
                    .map(|(i, j)| (i.as_u64().unwrap() as usize, j.as_u64().unwrap() as usize));
                s.connect = Connect::Pairs(pairs.collect());
                c.synapses.push(s);
            }
            other => panic!("unexpected object {other}"),
        }
    }
    (c, values)
}

/// Runs a fixture's circuit and compares every recorded variable and every spike train.
fn check(name: &str, rmse_v: f64) {
    let f = fixture(name);
    let (c, values) = circuit(&f);
    let model = Model::new(&c.flatten().unwrap()).unwrap();
    let params: Vec<f64> = params_by_name(&model, &values);
    let dt = f["dt"].as_f64().unwrap();
    let n_steps = f["n_steps"].as_u64().unwrap() as usize;
    let records = f["records"].as_object().unwrap();
    let mut names = Vec::new();
    for r in records.values().filter(|r| r.get("values").is_some()) {
        let source = text(&r["source"]);
        for var in r["values"].as_object().unwrap().keys() {
            names.push(format!("{var}_{source}"));
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = model
        .simulate(&params, 1, &[], &RunConfig::new(dt, n_steps).record(&refs))
        .unwrap();
    assert!(out.failed.is_empty());
    for r in records.values() {
        let source = text(&r["source"]);
        if let Some(vals) = r.get("values") {
            let every = r["record_every"].as_u64().unwrap() as usize;
            for (var, rec) in vals.as_object().unwrap() {
                let want: Vec<f64> = rec["data"][0]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                let ours = out.trace(&format!("{var}_{source}"), 0).unwrap();
                let (mut se, mut worst) = (0.0, 0.0f64);
                for (k, w) in want.iter().enumerate() {
                    let d = ours[k * every] - w;
                    se += d * d;
                    worst = worst.max(d.abs());
                }
                let rmse = (se / want.len() as f64).sqrt();
                let tol = if var == "v" { rmse_v } else { 1e-9 };
                assert!(
                    rmse < tol,
                    "{name}: {var}_{source}: RMSE {rmse:e} (largest difference {worst:e}) vs Brian2"
                );
            }
        } else {
            // A spike monitor: compare the steps of the threshold crossings.
            let want: Vec<i64> = r["step"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            let v = out.trace(&format!("v_{source}"), 0).unwrap();
            let ours: Vec<i64> = (0..n_steps - 1)
                .filter(|&k| v[k + 1] > -0.020 && v[k] <= -0.020)
                .map(|k| k as i64)
                .collect();
            assert_eq!(ours.len(), want.len(), "{name}: spikes of {source}");
            for (a, b) in ours.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1,
                    "{name}: {source} spike at step {a} vs Brian's {b}"
                );
            }
        }
    }
}

#[test]
fn graded_pair_with_euler_matches_brian() {
    check("graded_pair_euler", 1e-9);
}

#[test]
fn graded_pair_with_exponential_euler_matches_brian() {
    check("graded_pair_exponential_euler", 1e-9);
}

#[test]
fn graded_pair_with_rk4_matches_brian() {
    check("graded_pair_rk4", 1e-9);
}

#[test]
fn three_cells_with_five_synapses_and_two_methods_match_brian() {
    check("three_cell", 1e-9);
}

#[test]
fn objects_without_a_method_get_brians_choice_for_each() {
    // Brian picks euler for the nonlinear `pre`, exact for the synapse (linear in `s`,
    // `v_pre` held) and for the passive two-compartment `post`; euler for every object
    // misses Brian's synaptic current by up to 3e-8 A (RMSE 1.6e-8, tolerance 1e-9).
    let f = fixture("default_methods");
    let chosen = f["methods_chosen_by_brian"].as_object().unwrap();
    let (c, _) = circuit(&f);
    let model = Model::new(&c.flatten().unwrap()).unwrap();
    let ours = model.phase_methods();
    assert_eq!(ours.len(), 3);
    for (states, method) in ours {
        let object = states[0].rsplit_once('_').unwrap().1;
        let object = if states[0].ends_with("_pre_post") {
            "pre_post"
        } else {
            object
        };
        assert_eq!(
            method.to_string(),
            chosen[object].as_str().unwrap(),
            "method of {object} ({states:?})"
        );
    }
    check("default_methods", 1e-9);
}
