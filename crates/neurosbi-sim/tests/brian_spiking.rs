//! A spiking circuit against Brian2 2.11 (fixture `delays` from
//! `scripts/brian_circuits/generate.py`, numpy target): ten LIF neurons with thresholds,
//! resets and refractoriness, 90 synapses (`i != j`) with per-synapse delays from a string
//! expression, `on_pre` voltage jumps into an `(unless refractory)` variable (dropped for
//! refractory targets, as Brian does), and STDP with `(event-driven)` traces and weights
//! changed by `on_pre` and `on_post`. The Brian code of every object is used verbatim.

use neurosbi_sim::circuit::{CircuitDescription, Connect, GroupDescription, SynapseDescription};
use neurosbi_sim::{Model, RunConfig, parse_quantity};
mod common;
use common::{fixture, params_by_name, text};
use serde_json::Value;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A Brian initial-value expression of `i` (and `j`) for one neuron or synapse.
fn value_at(expr: &str, i: usize, j: usize) -> f64 {
    let e = expr
        .replace("i", &format!("({i})"))
        .replace("j", &format!("({j})"));
    parse_quantity(&e)
        .unwrap_or_else(|err| panic!("{e}: {err}"))
        .value
}

struct Built {
    model: Model,
    params: Vec<f64>,
    pairs: Vec<(usize, usize)>,
}

fn build(f: &Value) -> Built {
    let objs = f["objects"].as_array().unwrap();
    let (g, s) = (&objs[0], &objs[1]);
    let mut c = CircuitDescription::new(Vec::new(), Vec::new());
    for (name, q) in f["namespace"].as_object().unwrap() {
        c.constants
            .push((name.clone(), parse_quantity(&text(&q["expr"])).unwrap()));
    }
    let n = g["N"].as_u64().unwrap() as usize;
    let mut group = GroupDescription::new(text(&g["name"]), text(&g["model"]));
    group.n = n;
    group.threshold = Some(text(&g["threshold"]));
    group.reset = Some(text(&g["reset"]));
    group.refractory = Some(text(&g["refractory"]));
    group.method = g["method"].as_str().map(String::from);
    let mut values = Vec::new();
    for a in g["initial_assignments"].as_array().unwrap() {
        let (var, expr) = (text(&a[0]), text(&a[1]));
        if var == "drive" {
            for k in 0..n {
                values.push((format!("drive_cells_{k}"), value_at(&expr, k, 0)));
            }
        } else {
            group.initial.push((var, expr));
        }
    }
    c.groups.push(group);
    let mut syn = SynapseDescription::new(
        text(&s["name"]),
        text(&s["source"]),
        text(&s["target"]),
        text(&s["model"]),
    );
    syn.on_pre = Some(text(&s["on_pre"]));
    syn.on_post = Some(text(&s["on_post"]));
    syn.delay = Some(text(&s["delay"]));
    syn.connect = Connect::Condition(text(&s["connect"]["condition"]));
    let pairs: Vec<(usize, usize)> = s["i"]
        .as_array()
        .unwrap()
        .iter()
        .zip(s["j"].as_array().unwrap())
        .map(|(i, j)| (i.as_u64().unwrap() as usize, j.as_u64().unwrap() as usize))
        .collect();
    let w = text(&s["initial_assignments"][0][1]);
    for (m, &(i, j)) in pairs.iter().enumerate() {
        values.push((format!("w_rec_{m}"), value_at(&w, i, j)));
    }
    c.synapses.push(syn);
    let model = Model::new(&c.flatten().unwrap()).unwrap();
    let params = params_by_name(&model, &values);
    Built {
        model,
        params,
        pairs,
    }
}

#[test]
fn lif_network_with_delays_and_stdp_matches_brian() {
    let f = fixture("delays");
    let b = build(&f);
    // Brian's `i != j` in its order (by i, then j).
    let brian_pairs: Vec<(usize, usize)> = f["objects"][1]["i"]
        .as_array()
        .unwrap()
        .iter()
        .zip(f["objects"][1]["j"].as_array().unwrap())
        .map(|(i, j)| (i.as_u64().unwrap() as usize, j.as_u64().unwrap() as usize))
        .collect();
    assert_eq!(b.pairs, brian_pairs);
    let dt = f["dt"].as_f64().unwrap();
    let n_steps = f["n_steps"].as_u64().unwrap() as usize;
    let n_syn = b.pairs.len();
    let mut names: Vec<String> = (0..10).map(|k| format!("v_cells_{k}")).collect();
    for var in ["w", "Apre", "Apost", "lastupdate"] {
        names.extend((0..n_syn).map(|m| format!("{var}_rec_{m}")));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    // One step more: its first sample is the state at the end of Brian's run.
    let cfg = RunConfig::new(dt, n_steps + 1).record(&refs);
    let out = b.model.simulate(&b.params, 1, &[], &cfg).unwrap();
    assert!(out.failed.is_empty());

    // Spikes: every neuron's spike steps equal Brian's.
    let sp = &f["records"]["spikes_cells"];
    let (bi, bs) = (floats(&sp["i"]), floats(&sp["step"]));
    let mut total = 0;
    for k in 0..10 {
        let want: Vec<f64> = bi
            .iter()
            .zip(&bs)
            .filter(|(i, _)| **i as usize == k)
            .map(|(_, s)| *s)
            .collect();
        let ours: Vec<f64> = out
            .event_spikes(&format!("cells_{k}"), 0)
            .unwrap()
            .iter()
            .map(|t| (t / dt).round())
            .collect();
        assert_eq!(ours, want, "spike steps of neuron {k}");
        total += ours.len();
    }
    assert_eq!(total, 377);

    // Voltages, sampled every 10 steps at the step's start.
    let rec = &f["records"]["state_cells"];
    let every = rec["record_every"].as_u64().unwrap() as usize;
    for (row, k) in rec["indices"].as_array().unwrap().iter().enumerate() {
        let k = k.as_u64().unwrap() as usize;
        let want = floats(&rec["values"]["v"]["data"][row]);
        let ours = out.trace(&format!("v_cells_{k}"), 0).unwrap();
        let worst = want
            .iter()
            .enumerate()
            .map(|(s, w)| (ours[s * every] - w).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-12,
            "v of neuron {k}: largest difference {worst:e} V"
        );
    }

    // Weights and traces at the end of the run (STDP changed most weights).
    let fin = &f["final"]["rec"];
    for var in ["w", "Apre", "Apost", "lastupdate"] {
        let want = floats(&fin[var]);
        for (m, w) in want.iter().enumerate() {
            let ours = out.trace(&format!("{var}_rec_{m}"), 0).unwrap()[n_steps];
            let tol = 1e-12 * w.abs().max(1e-3);
            assert!(
                (ours - w).abs() <= tol,
                "{var} of synapse {m} {:?}: {ours:e} vs Brian's {w:e}",
                b.pairs[m]
            );
        }
    }
}
