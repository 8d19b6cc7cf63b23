//! The network layout's noise, `rand()` and inputs: an unconnected group is the batch
//! runner's neurons, number for number, with the same seed; groups take consecutive
//! streams; connected noisy networks are reproducible; bad inputs are named.
#![allow(clippy::needless_range_loop)] // neuron loops index both sides' trains

use neurosbi_sim::circuit::{CircuitDescription, Connect, GroupDescription, SynapseDescription};
use neurosbi_sim::network::{Network, NetworkRun};
use neurosbi_sim::{CompiledKernel, Model, ModelDescription, RunConfig, Stimulus, parse_quantity};

/// Leaky integrate-and-fire with white noise, a drive read from an input and a random
/// initial voltage.
const LIF: &str = "dv/dt = (mu + I_ext - v)/tau + sigma*xi*tau**-0.5 : volt (unless refractory)
mu : volt
sigma : volt
tau : second (constant)";
const DT: f64 = 1e-4;
const STEPS: usize = 3_000;

fn group(name: &str, n: usize) -> GroupDescription {
    let mut g = GroupDescription::new(name, LIF);
    g.n = n;
    g.threshold = Some("v > 10*mV".into());
    g.reset = Some("v = 0*mV".into());
    g.refractory = Some("2*ms".into());
    g.method = Some("euler".into());
    g.initial.push(("v".into(), "rand()*10*mV".into()));
    g.inputs
        .push(("I_ext".into(), parse_quantity("1*volt").unwrap().dim));
    g
}

/// Parameter values of group `g` (SI), as the network takes them.
fn values(g: &str) -> Vec<(String, f64)> {
    [("mu", 8e-3), ("sigma", 4e-3), ("tau", 1e-2)]
        .iter()
        .map(|(p, v)| (format!("{p}_{g}"), *v))
        .collect()
}

/// A drive that switches on after 50 ms and ramps.
fn drive() -> Vec<f64> {
    (0..STEPS)
        .map(|s| {
            if s < 500 {
                0.0
            } else {
                4e-3 * (s as f64 / STEPS as f64)
            }
        })
        .collect()
}

/// The same neurons through `run::simulate`: `n` parameter sets of one trace each.
fn batch(n: usize, seed: u64, record: &[usize]) -> neurosbi_sim::SimResult {
    batch_with(n, seed, record, &|_, _, v| v)
}

/// As [`batch`], neuron `k`'s parameter `p` set to `f(k, p, value)`.
fn batch_with(
    n: usize,
    seed: u64,
    record: &[usize],
    f: &dyn Fn(usize, &str, f64) -> f64,
) -> neurosbi_sim::SimResult {
    let g = group("x", n);
    let mut desc = ModelDescription::new(LIF);
    desc.threshold = g.threshold.clone();
    desc.reset = g.reset.clone();
    desc.refractory = g.refractory.clone();
    desc.method = g.method.clone();
    desc.initial = g.initial.clone();
    desc.inputs = g.inputs.clone();
    let model = Model::new(&desc).unwrap();
    let kernel = CompiledKernel::new(&model, DT, &["v".to_string()]).unwrap();
    let vals = values("x");
    let value = |p: &str| vals.iter().find(|(k, _)| *k == format!("{p}_x")).unwrap().1;
    let mut params = Vec::new();
    for k in 0..n {
        for p in model.parameters() {
            params.push(f(k, &p.name, value(&p.name)));
        }
    }
    let mut cfg = RunConfig::new(DT, STEPS);
    cfg.seed = seed;
    cfg.record = vec!["v".into()];
    let stim = Stimulus::from_rows("I_ext", &[drive()]).unwrap();
    let out =
        neurosbi_sim::run::simulate(&kernel, &params, 1, &[stim], &["I_ext".into()], &cfg).unwrap();
    assert!(record.iter().all(|&k| k < n));
    out
}

fn network_run(groups: &[(&str, usize)], seed: u64, record: &[usize]) -> NetworkRun {
    let mut run = NetworkRun::new(DT, STEPS);
    run.seed = seed;
    for (g, _) in groups {
        run.inputs.push((g.to_string(), "I_ext".into(), drive()));
        run.record
            .push((g.to_string(), "v".into(), record.to_vec()));
    }
    run
}

#[test]
fn an_unconnected_noisy_group_is_the_batch_runner_bit_for_bit() {
    // 150 neurons: two full blocks and a partial one.
    let n = 150;
    let rec = [0, 63, 64, 149];
    let c = CircuitDescription::new(vec![group("x", n)], Vec::new());
    let net = Network::new(&c, &values("x")).unwrap();
    let out = net.simulate(&network_run(&[("x", n)], 11, &rec)).unwrap();
    let reference = batch(n, 11, &rec);
    let spikes = out.spikes("x").unwrap();
    let total: usize = spikes.iter().map(Vec::len).sum();
    assert!(
        total > 100,
        "the drive makes the group fire ({total} spikes)"
    );
    for k in 0..n {
        assert_eq!(spikes[k], reference.spikes[k], "spikes of neuron {k}");
    }
    for &k in &rec {
        let ours = out.trace("x", "v", k).unwrap();
        let theirs = reference.trace("v", k).unwrap();
        assert_eq!(ours.len(), STEPS);
        let same = ours
            .iter()
            .zip(theirs)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "v of neuron {k} differs from the batch runner's");
    }
    // The noise is live: neurons with equal parameters and inputs differ.
    assert_ne!(spikes[0], spikes[1]);
    let v = |k| out.trace("x", "v", k).unwrap()[0];
    assert!(
        v(0) != v(63) && (0.0..0.01).contains(&v(0)),
        "random initial voltages"
    );
}

#[test]
fn groups_take_consecutive_streams() {
    // Group `a` (70 neurons) then `b` (50): b's neuron k is the batch runner's 70 + k.
    let c = CircuitDescription::new(vec![group("a", 70), group("b", 50)], Vec::new());
    let vals: Vec<_> = values("a").into_iter().chain(values("b")).collect();
    let net = Network::new(&c, &vals).unwrap();
    let out = net
        .simulate(&network_run(&[("a", 70), ("b", 50)], 5, &[0]))
        .unwrap();
    let reference = batch(120, 5, &[0]);
    let (a, b) = (out.spikes("a").unwrap(), out.spikes("b").unwrap());
    for k in 0..70 {
        assert_eq!(a[k], reference.spikes[k], "a[{k}]");
    }
    for k in 0..50 {
        assert_eq!(b[k], reference.spikes[70 + k], "b[{k}]");
    }
}

#[test]
fn a_connected_noisy_network_is_reproducible_by_seed() {
    let mut s = SynapseDescription::new("e", "x", "x", "");
    s.on_pre = Some("v_post += 0.5*mV".into());
    s.connect = Connect::Random {
        p: 0.1,
        seed: 3,
        condition: None,
    };
    let c = CircuitDescription::new(vec![group("x", 200)], vec![s]);
    let net = Network::new(&c, &values("x")).unwrap();
    let run = |seed| {
        net.simulate(&network_run(&[("x", 200)], seed, &[0]))
            .unwrap()
            .spikes("x")
            .unwrap()
            .to_vec()
    };
    let (a, b, other) = (run(1), run(1), run(2));
    assert_eq!(a, b);
    assert_ne!(a, other);
    // Coupling changes the dynamics: the same seed without synapses fires differently.
    let alone = batch(200, 1, &[0]).spikes;
    assert_ne!(a, alone);
}

#[test]
fn per_neuron_parameters_are_the_batch_runners_parameter_sets() {
    // Heterogeneous drive and membrane time constants, as Brian's `G.mu = '...*i'`.
    let n = 100;
    let het = |k: usize, p: &str, v: f64| match p {
        "mu" => v * (0.5 + k as f64 / n as f64),
        "tau" => v * (1.0 + (k % 7) as f64 / 10.0),
        _ => v,
    };
    let c = CircuitDescription::new(vec![group("x", n)], Vec::new());
    let net = Network::new(&c, &values("x")).unwrap();
    let mut run = network_run(&[("x", n)], 3, &[0]);
    for (p, v) in [("mu", 8e-3), ("tau", 1e-2)] {
        run.parameters
            .push(("x".into(), p.into(), (0..n).map(|k| het(k, p, v)).collect()));
    }
    let out = net.simulate(&run).unwrap();
    let reference = batch_with(n, 3, &[0], &het);
    let spikes = out.spikes("x").unwrap();
    for k in 0..n {
        assert_eq!(spikes[k], reference.spikes[k], "spikes of neuron {k}");
    }
    assert!(
        spikes[n - 1].len() > spikes[0].len(),
        "a stronger drive fires more"
    );
    let bad = |f: &dyn Fn(&mut NetworkRun)| {
        let mut r = run.clone();
        f(&mut r);
        net.simulate(&r).unwrap_err().to_string()
    };
    let e = bad(&|r| r.parameters[0].2.truncate(10));
    assert!(
        e.contains("`mu` of `x`") && e.contains("100 finite values"),
        "{e}"
    );
    let e = bad(&|r| {
        r.parameters
            .push(("x".into(), "gain".into(), vec![0.0; 100]))
    });
    assert!(e.contains("`x` has no parameter `gain`"), "{e}");
    let e = bad(&|r| r.parameters.push(r.parameters[1].clone()));
    assert!(e.contains("`tau` of `x` is given twice"), "{e}");
}

#[test]
fn bad_inputs_are_named() {
    let c = CircuitDescription::new(vec![group("x", 10)], Vec::new());
    let net = Network::new(&c, &values("x")).unwrap();
    let err = |f: &dyn Fn(&mut NetworkRun)| {
        let mut run = network_run(&[("x", 10)], 0, &[0]);
        f(&mut run);
        net.simulate(&run).unwrap_err().to_string()
    };
    let e = err(&|r| r.inputs.clear());
    assert!(e.contains("no values for input `I_ext` of `x`"), "{e}");
    let e = err(&|r| r.inputs[0].2.pop().map_or((), drop));
    assert!(e.contains("`I_ext` of `x`") && e.contains("3000"), "{e}");
    let e = err(&|r| r.inputs[0].2[7] = f64::NAN);
    assert!(e.contains("finite"), "{e}");
    let e = err(&|r| r.inputs.push(("y".into(), "I_ext".into(), drive())));
    assert!(e.contains("no such group"), "{e}");
    let e = err(&|r| r.inputs.push(("x".into(), "I_syn".into(), drive())));
    assert!(e.contains("`x` has no input `I_syn`"), "{e}");
    let e = err(&|r| r.inputs.push(("x".into(), "I_ext".into(), drive())));
    assert!(e.contains("given twice"), "{e}");
}
