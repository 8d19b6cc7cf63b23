//! Brian's COBA network from the fixture `tests/fixtures/brian_circuits/coba.json` (and its
//! `.npy` connectivity): shared by `tests/brian_network.rs` and the `coba_throughput`
//! example, so that both run the network Brian2 ran.

use neurosbi_sim::circuit::{CircuitDescription, Connect, GroupDescription, SynapseDescription};
use neurosbi_sim::network::{Network, NetworkRun};
use neurosbi_sim::parse_quantity;
use serde_json::Value;
use std::path::PathBuf;

/// The fixture folder.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/brian_circuits")
}

/// An integer `.npy` array of the fixture folder (int16 or int32).
pub fn npy_ints(name: &str) -> Vec<i64> {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    match npy.dtype() {
        npyz::DType::Plain(t) if t.size_field() == 2 => npy
            .into_vec::<i16>()
            .unwrap()
            .into_iter()
            .map(i64::from)
            .collect(),
        _ => npy
            .into_vec::<i32>()
            .unwrap()
            .into_iter()
            .map(i64::from)
            .collect(),
    }
}

fn pairs(i: &str, j: &str) -> Vec<(usize, usize)> {
    let (i, j) = (npy_ints(i), npy_ints(j));
    i.iter()
        .zip(&j)
        .map(|(&a, &b)| (a as usize, b as usize))
        .collect()
}

/// The fixture, the network as Brian2 built it, and the run with Brian's initial voltages.
pub fn coba() -> (Value, Network, NetworkRun) {
    let text = std::fs::read_to_string(dir().join("coba.json")).unwrap();
    let f: Value = serde_json::from_str(&text).unwrap();
    let g = &f["objects"][0];
    let mut c = CircuitDescription::new(Vec::new(), Vec::new());
    for (name, q) in f["namespace"].as_object().unwrap() {
        let expr = q["expr"].as_str().unwrap();
        c.constants
            .push((name.clone(), parse_quantity(expr).unwrap()));
    }
    let mut group = GroupDescription::new("neurons", g["model"].as_str().unwrap());
    group.n = g["N"].as_u64().unwrap() as usize;
    group.threshold = Some(g["threshold"].as_str().unwrap().into());
    group.reset = Some(g["reset"].as_str().unwrap().into());
    group.refractory = Some(g["refractory"].as_str().unwrap().into());
    group.method = g["method"].as_str().map(String::from);
    c.groups.push(group);
    for s in &f["objects"].as_array().unwrap()[1..] {
        let name = s["name"].as_str().unwrap();
        let mut syn = SynapseDescription::new(name, "neurons", "neurons", "");
        syn.on_pre = Some(s["on_pre"].as_str().unwrap().into());
        syn.connect = Connect::Pairs(pairs(
            &format!("coba.{name}_i.npy"),
            &format!("coba.{name}_j.npy"),
        ));
        c.synapses.push(syn);
    }
    let net = Network::new(&c, &[]).unwrap();
    let v0: Vec<f64> = g["initial"]["v"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let n_steps = f["n_steps"].as_u64().unwrap() as usize;
    let mut run = NetworkRun::new(f["dt"].as_f64().unwrap(), n_steps);
    run.initial.push(("neurons".into(), "v".into(), v0));
    (f, net, run)
}
