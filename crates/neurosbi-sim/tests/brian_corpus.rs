//! The corpus of issue 22: single-NeuronGroup models of Brian2's and brian2modelfitting's
//! examples, run verbatim (equation string, threshold, reset, refractory, method or none,
//! initial values as the example writes them) and compared with Brian2 2.11 (numpy target)
//! on fixtures made by `scripts/brian_corpus/generate.py`: same spike count, spike times
//! within one dt, recorded variable RMSE below the entry's tolerance (0.1 mV for voltages).
//! Noisy entries (`expected: statistics`: white noise or `rand()` initial values) are compared
//! over independent neurons: mean rate, ISI CV and time mean/std of the recorded variable
//! within 3 standard errors. Entries Brian2 accepts but neurosbi does not
//! (`expected: rejected`) must be rejected with an error naming the missing `feature`.

use neurosbi_sim::{Model, ModelDescription, RunConfig, Stimulus, parse_quantity};
use serde_json::Value;

fn strings(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Builds the entry's model verbatim.
fn build(fx: &Value) -> Result<Model, String> {
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
    Model::new(&desc).map_err(|e| format!("not accepted: {e}"))
}

/// Per-neuron statistics as `generate.py` computes them: rate (Hz), ISI CV (NaN below three
/// spikes), time mean and standard deviation of the recorded trace.
fn neuron_stats(spikes: &[f64], trace: &[f64], duration: f64) -> [f64; 4] {
    let cv = if spikes.len() >= 3 {
        let isi: Vec<f64> = spikes.windows(2).map(|w| w[1] - w[0]).collect();
        let (m, sd) = mean_std(&isi, 0);
        sd / m
    } else {
        f64::NAN
    };
    let (m, sd) = mean_std(trace, 0);
    [spikes.len() as f64 / duration, cv, m, sd]
}

/// Mean and standard deviation with `ddof` delta degrees of freedom.
fn mean_std(x: &[f64], ddof: usize) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - ddof as f64);
    (m, var.sqrt())
}

/// Compares a noisy entry over `n_neurons` independent neurons with Brian2's statistics.
fn compare_statistics(fx: &Value, model: &Model, params: &[f64]) -> Result<(), String> {
    let n = fx["n_neurons"].as_u64().unwrap() as usize;
    let dt = fx["dt"].as_f64().unwrap();
    let n_steps = fx["n_steps"].as_u64().unwrap() as usize;
    let var = fx["record"].as_str().unwrap();
    let cfg = RunConfig::new(dt, n_steps).record(&[var]).seed(2211);
    let all: Vec<f64> = (0..n).flat_map(|_| params.iter().copied()).collect();
    // Without parameters there are no sets to repeat: n traces of the one set instead.
    let traces = if params.is_empty() { n } else { 1 };
    let out = model
        .simulate(&all, traces, &[], &cfg)
        .map_err(|e| format!("run: {e}"))?;
    let per: Vec<[f64; 4]> = (0..n)
        .map(|k| {
            neuron_stats(
                &out.spikes[k],
                out.trace(var, k).unwrap(),
                n_steps as f64 * dt,
            )
        })
        .collect();
    let mut failures = Vec::new();
    for (j, key) in ["rate", "cv", "mean", "std"].iter().enumerate() {
        let Some(theirs) = fx["statistics"].get(*key) else {
            continue;
        };
        let (m_b, se_b) = (theirs[0].as_f64().unwrap(), theirs[1].as_f64().unwrap());
        let col: Vec<f64> = per.iter().map(|p| p[j]).filter(|x| x.is_finite()).collect();
        if col.len() < 10 {
            failures.push(format!("{key}: {} finite values", col.len()));
            continue;
        }
        let (m, sd) = mean_std(&col, 1);
        let se = (sd.powi(2) / col.len() as f64 + se_b.powi(2)).sqrt();
        // A statistic without spread (e.g. a deterministic rate) must match to rounding.
        if (m - m_b).abs() > 3.0 * se + 1e-9 * m_b.abs().max(1.0) {
            failures.push(format!(
                "{key} {m:e}, Brian2 {m_b:e} (3 SE = {:e})",
                3.0 * se
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Runs one corpus entry; returns a description of the mismatch, if any.
fn run(fx: &Value) -> Result<(), String> {
    if fx["expected"] == "rejected" {
        let feature = fx["feature"].as_str().unwrap();
        return match build(fx) {
            Ok(_) => Err(format!("accepted; expected a rejection naming `{feature}`")),
            Err(e) if e.contains(feature) => Ok(()),
            Err(e) => Err(format!("rejected without naming `{feature}`: {e}")),
        };
    }
    if fx["expected"] == "differs" {
        // A known difference from Brian2: must still differ, so that fixing it updates the list.
        return match compare(fx) {
            Ok(()) => Err(format!(
                "now matches Brian2: drop its `{}` note",
                fx["feature"]
            )),
            Err(_) => Ok(()),
        };
    }
    compare(fx)
}

/// Runs an accepted entry and compares it with Brian2.
fn compare(fx: &Value) -> Result<(), String> {
    let model = build(fx)?;
    let params: Vec<f64> = model
        .parameters()
        .iter()
        .map(|p| fx["params"][&p.name].as_f64().unwrap_or(0.0))
        .collect();
    if fx["expected"] == "statistics" {
        return compare_statistics(fx, &model, &params);
    }
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
    let (mut ours, mut theirs) = (out.spikes[0].clone(), strings(&fx["spikes"]));
    let mut reference = strings(&fx["recorded"]);
    let mut trace = out.trace(var, 0).unwrap().to_vec();
    // Models that amplify rounding: exact comparison up to `compare_until`, spike count
    // (rate) within 10% over the whole run.
    if let Some(until) = fx["compare_until"].as_f64() {
        let (n, m) = (ours.len() as f64, theirs.len() as f64);
        if (n - m).abs() > (0.1 * m).max(1.0) {
            return Err(format!("{n} spikes, Brian2 {m} (rate beyond 10%)"));
        }
        ours.retain(|&t| t < until);
        theirs.retain(|&t| t < until);
        let k = (until / (dt * fx["record_every"].as_f64().unwrap())).round() as usize;
        reference.truncate(k);
        trace.truncate(k);
    }
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
    let count = |kind: &str| models.iter().filter(|m| m["expected"] == kind).count();
    println!(
        "{} matching, {} statistically matching, {} rejected with the missing feature, {} known differences",
        count("match"),
        count("statistics"),
        count("rejected"),
        count("differs")
    );
    assert!(
        failures.is_empty(),
        "{} of {} corpus models differ from Brian2:\n{}",
        failures.len(),
        models.len(),
        failures.join("\n")
    );
}

/// Hand-written models for Brian features the corpus examples hardly use (refractory periods
/// from state variables and parameters, `lastspike` in equations, threshold and reset), on
/// fixtures made by `scripts/brian_corpus/language.py`, compared as the corpus.
#[test]
fn hand_written_models_match_brian2() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/brian_language.json"
    );
    let fixtures: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let models = fixtures["models"].as_array().unwrap();
    assert!(models.len() >= 4);
    let failures: Vec<String> = models
        .iter()
        .filter_map(|fx| run(fx).err().map(|e| format!("{}: {e}", fx["name"])))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} models differ from Brian2:\n{}",
        failures.len(),
        models.len(),
        failures.join("\n")
    );
}
