//! The corpus of issue 22: single-NeuronGroup models of Brian2's and brian2modelfitting's
//! examples, run verbatim (equation string, threshold, reset, refractory, method or none,
//! initial values as the example writes them) and compared with Brian2 2.11 (numpy target)
//! on fixtures made by `scripts/brian_corpus/generate.py`: same spike count, spike times
//! within one dt, recorded variable RMSE below the entry's tolerance (0.1 mV for voltages).

use neurosbi_sim::{Model, ModelDescription, RunConfig, Stimulus, parse_quantity};
use serde_json::Value;

fn strings(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Runs one corpus entry; returns a description of the mismatch, if any.
fn run(fx: &Value) -> Result<(), String> {
    let s = |k: &str| fx[k].as_str().map(str::to_string);
    let mut desc = ModelDescription::new(s("equations").unwrap());
    desc.threshold = s("threshold");
    desc.reset = s("reset");
    desc.refractory = s("refractory");
    desc.method = s("method");
    for (name, text) in fx["namespace"].as_object().unwrap() {
        let q = parse_quantity(text.as_str().unwrap()).map_err(|e| format!("{name}: {e}"))?;
        desc = desc.constant(name.clone(), q);
    }
    for (name, unit) in fx["input_units"].as_object().unwrap() {
        let dim = parse_quantity(unit.as_str().unwrap()).unwrap().dim;
        desc = desc.input(name.clone(), dim);
    }
    for pair in fx["initial"].as_array().unwrap() {
        desc = desc.initial(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
    }
    let model = Model::new(&desc).map_err(|e| format!("not accepted: {e}"))?;
    let params: Vec<f64> = model
        .parameters()
        .iter()
        .map(|p| fx["params"][&p.name].as_f64().unwrap_or(0.0))
        .collect();
    let stimuli: Vec<Stimulus> = model
        .inputs()
        .iter()
        .map(|i| Stimulus::from_rows(i.name.clone(), &[strings(&fx["inputs"][&i.name])]).unwrap())
        .collect();
    let dt = fx["dt"].as_f64().unwrap();
    let var = fx["record"].as_str().unwrap();
    let cfg = RunConfig::new(dt, fx["n_steps"].as_u64().unwrap() as usize)
        .record(&[var])
        .record_every(fx["record_every"].as_u64().unwrap() as usize);
    let out = model
        .simulate(&params, 1, &stimuli, &cfg)
        .map_err(|e| format!("run: {e}"))?;
    let (ours, theirs) = (&out.spikes[0], strings(&fx["spikes"]));
    if ours.len() != theirs.len() {
        return Err(format!("{} spikes, Brian2 {}", ours.len(), theirs.len()));
    }
    if let Some((a, b)) = ours
        .iter()
        .zip(&theirs)
        .find(|(a, b)| (*a - *b).abs() > dt * 1.001)
    {
        return Err(format!("spike at {a} s, Brian2 at {b} s"));
    }
    let reference = strings(&fx["recorded"]);
    let trace = out.trace(var, 0).unwrap();
    let rmse = (trace
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / reference.len() as f64)
        .sqrt();
    let tol = fx["tolerance"].as_f64().unwrap();
    if trace.len() != reference.len() || rmse.is_nan() || rmse >= tol {
        return Err(format!(
            "{var} RMSE {rmse:e} (tolerance {tol:e}), method {}",
            model.method()
        ));
    }
    Ok(())
}

#[test]
fn every_corpus_model_is_accepted_verbatim_and_matches_brian2() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/brian_corpus.json"
    );
    let corpus: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let models = corpus["models"].as_array().unwrap();
    let failures: Vec<String> = models
        .iter()
        .filter_map(|fx| run(fx).err().map(|e| format!("{}: {e}", fx["name"])))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} corpus models differ from Brian2:\n{}",
        failures.len(),
        models.len(),
        failures.join("\n")
    );
}
