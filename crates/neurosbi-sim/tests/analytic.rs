//! Analytic solutions, convergence orders, Brian's step semantics, noise statistics and
//! determinism.

use neurosbi_sim::units::lookup_unit;
use neurosbi_sim::{Method, Model, ModelDescription, Quantity, RunConfig, Stimulus};

fn dim(u: &str) -> neurosbi_sim::Dimension {
    lookup_unit(u).unwrap().dim
}

fn q(v: f64, u: &str) -> Quantity {
    let unit = lookup_unit(u).unwrap();
    Quantity::new(v * unit.value, unit.dim)
}

#[test]
fn exponential_decay_is_exact_under_exponential_euler_and_close_under_rk4() {
    let desc = ModelDescription::new("dv/dt = -v/tau : volt\ntau : second (constant)")
        .method("exponential_euler")
        .initial("v", "1*volt");
    for (method, tol) in [(Method::ExponentialEuler, 1e-13), (Method::Rk4, 1e-9)] {
        let model = Model::new(&desc).unwrap().with_method(method).unwrap();
        let dt = 1e-4;
        let out = model
            .simulate(
                &[0.01, 0.02],
                1,
                &[],
                &RunConfig::new(dt, 500).record(&["v"]),
            )
            .unwrap();
        for (n, tau) in [(0, 0.01), (1, 0.02)] {
            for (k, v) in out.trace("v", n).unwrap().iter().enumerate() {
                let exact = (-(k as f64) * dt / tau).exp();
                assert!(
                    (v - exact).abs() < tol,
                    "{method}: step {k}: {v} vs {exact}"
                );
            }
        }
    }
}

/// LIF under constant input from rest: v(t) = El + R I (1 - exp(-t/tau)), first spike at
/// t* = -tau ln(1 - (Vt - El)/(R I)), recorded at the start of the step that crosses.
#[test]
fn lif_voltage_and_first_spike_time_match_the_analytic_solution() {
    let desc = ModelDescription::new(
        "dv/dt = (El - v + R*I)/tau : volt (unless refractory)\nR : ohm (constant)",
    )
    .input("I", dim("amp"))
    .constant("El", q(-70.0, "mV"))
    .constant("tau", q(20.0, "ms"))
    .constant("Vt", q(-50.0, "mV"))
    .threshold("v > Vt")
    .reset("v = El")
    .refractory("5*ms")
    .initial("v", "El")
    .method("exponential_euler");
    let model = Model::new(&desc).unwrap();
    assert_eq!(model.method(), Method::ExponentialEuler);
    let dt = 1e-4;
    let n_steps = 1000;
    let r = 100e6;
    let i = 0.3e-9; // R I = 30 mV, above the 20 mV to threshold
    let stim = Stimulus::from_rows("I", &[vec![i; n_steps]]).unwrap();
    let out = model
        .simulate(
            &[r],
            1,
            &[stim],
            &RunConfig::new(dt, n_steps).record(&["v"]),
        )
        .unwrap();
    let v = out.trace("v", 0).unwrap();
    let tau = 0.02;
    let t_star = -tau * (1.0 - 0.02 / (r * i)).ln();
    let first = out.spikes[0][0];
    let k_star = (t_star / dt).floor();
    assert!(
        (first - k_star * dt).abs() < 1e-12,
        "first spike {first} vs {}",
        k_star * dt
    );
    for (k, vk) in v.iter().enumerate().take(k_star as usize) {
        let exact = -0.07 + r * i * (1.0 - (-(k as f64) * dt / tau).exp());
        assert!((vk - exact).abs() < 1e-12, "step {k}");
    }
    // Refractory 5 ms = 50 steps, v frozen at El (unless refractory): the next samples
    // after the spike step hold El exactly, and the inter-spike interval is t* + 5 ms
    // rounded to steps.
    let ks = k_star as usize;
    for vk in &v[ks + 1..ks + 50] {
        assert_eq!(*vk, -0.07);
    }
    assert!(v[ks + 51] > -0.07);
    let isi = out.spikes[0][1] - out.spikes[0][0];
    assert!((isi - (k_star + 50.0) * dt).abs() < 1.5 * dt, "ISI {isi}");
}

/// dx/dt = -x (1 + sin(t/s)/2)/s has x(t) = exp(-(t + (1 - cos t)/2)); the coefficient
/// depends on time, so stage times must be right for the higher orders.
fn global_error(method: Method, dt: f64) -> f64 {
    let desc =
        ModelDescription::new("dx/dt = -x*(1 + 0.5*sin(t/second))/second : 1").initial("x", "1");
    let model = Model::new(&desc).unwrap().with_method(method).unwrap();
    let t_end = 2.0;
    let n = (t_end / dt).round() as usize;
    let out = model
        .simulate(&[], 1, &[], &RunConfig::new(dt, n + 1).record(&["x"]))
        .unwrap();
    let x = out.trace("x", 0).unwrap()[n];
    let exact = (-(t_end + 0.5 * (1.0 - t_end.cos()))).exp();
    (x - exact).abs()
}

#[test]
fn empirical_convergence_orders_are_within_0_2_of_theory() {
    for (method, dts) in [
        (Method::Euler, [0.02, 0.01]),
        (Method::ExponentialEuler, [0.02, 0.01]),
        (Method::EulerMaruyama, [0.02, 0.01]),
        (Method::Milstein, [0.02, 0.01]),
        (Method::Rk2, [0.02, 0.01]),
        (Method::Heun, [0.02, 0.01]),
        (Method::Rk4, [0.1, 0.05]),
    ] {
        let (e1, e2) = (global_error(method, dts[0]), global_error(method, dts[1]));
        let order = (e1 / e2).log2();
        assert!(
            (order - method.order()).abs() <= 0.2,
            "{method}: empirical order {order:.3} (errors {e1:.3e}, {e2:.3e}), theory {}",
            method.order()
        );
    }
}

#[test]
fn stimulus_sample_k_drives_step_k_and_holds_past_the_end() {
    // Euler on dv/dt = I/C: v after k steps is sum_{j<k} I_j dt / C.
    let desc = ModelDescription::new("dv/dt = I/C : volt")
        .input("I", dim("amp"))
        .constant("C", q(1.0, "nF"))
        .method("euler");
    let model = Model::new(&desc).unwrap();
    let dt = 1e-4;
    let stim: Vec<f64> = (0..20).map(|k| (k as f64 + 1.0) * 1e-12).collect();
    let out = model
        .simulate(
            &[],
            1,
            &[Stimulus::from_rows("I", std::slice::from_ref(&stim)).unwrap()],
            &RunConfig::new(dt, 20).record(&["v"]),
        )
        .unwrap();
    let v = out.trace("v", 0).unwrap();
    let mut acc = 0.0;
    for k in 0..20 {
        assert!((v[k] - acc).abs() < 1e-18, "step {k}");
        acc += stim[k] * dt / 1e-9;
    }
}

#[test]
fn traces_are_sample_major_and_each_trace_reads_its_own_stimulus_row() {
    let desc = ModelDescription::new("dv/dt = (g*I/nS - v)/ms : volt\ng : siemens (constant)")
        .input("I", dim("volt"))
        .method("euler");
    let model = Model::new(&desc).unwrap();
    let rows = vec![vec![1.0; 10], vec![2.0; 10], vec![3.0; 10]];
    let stim = Stimulus::from_rows("I", &rows).unwrap();
    let params = [1e-9, 2e-9];
    let out = model
        .simulate(
            &params,
            3,
            &[stim],
            &RunConfig::new(1e-5, 10).record(&["v"]),
        )
        .unwrap();
    assert_eq!(out.n_neurons, 6);
    for (s, g) in params.iter().enumerate() {
        for k in 0..3 {
            let v = out.trace("v", s * 3 + k).unwrap()[1];
            // One Euler step from 0: dt * g*I/nS / ms.
            let want = 1e-5 * (g * (k as f64 + 1.0) / 1e-9) / 1e-3;
            assert!((v - want).abs() < 1e-15, "set {s} trace {k}: {v} vs {want}");
        }
    }
}

#[test]
fn ornstein_uhlenbeck_noise_has_the_stationary_variance() {
    // dv/dt = -v/tau + sigma*sqrt(2/tau)*xi has stationary variance sigma^2.
    let desc = ModelDescription::new("dv/dt = -v/tau + sigma*sqrt(2/tau)*xi : volt")
        .constant("tau", q(10.0, "ms"))
        .constant("sigma", q(1.0, "mV"));
    let model = Model::new(&desc).unwrap();
    assert_eq!(model.method(), Method::EulerMaruyama);
    let n = 4000;
    let dt = 1e-5;
    let steps = 6000; // 6 tau
    let out = model
        .simulate(
            &[],
            n,
            &[],
            &RunConfig::new(dt, steps)
                .record(&["v"])
                .record_every(steps - 1)
                .seed(7),
        )
        .unwrap();
    let last: Vec<f64> = (0..n).map(|k| out.trace("v", k).unwrap()[1]).collect();
    let mean = last.iter().sum::<f64>() / n as f64;
    let var = last.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    // Standard error of the variance: sigma^2 sqrt(2/(n-1)) ~ 2.2 %; allow 4 of them.
    assert!((var / 1e-6 - 1.0).abs() < 0.09, "variance {var}");
    assert!(mean.abs() < 4.0 * 1e-3 / (n as f64).sqrt(), "mean {mean}");
}

#[test]
fn same_seed_gives_identical_results_for_any_thread_count_and_batch() {
    let desc = ModelDescription::new(
        "dv/dt = (mu - v)/tau + sigma*xi/sqrt(tau) : volt\nmu : volt (constant)",
    )
    .constant("tau", q(10.0, "ms"))
    .constant("sigma", q(2.0, "mV"))
    .threshold("v > 1*mV")
    .reset("v = 0*mV");
    let model = Model::new(&desc).unwrap();
    let params: Vec<f64> = (0..130).map(|k| 0.5e-3 + 1e-5 * k as f64).collect();
    let cfg = RunConfig::new(1e-4, 500).record(&["v"]).seed(42);
    let run = |threads: usize, params: &[f64]| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| model.simulate(params, 1, &[], &cfg).unwrap())
    };
    let a = run(1, &params);
    let b = run(2, &params);
    let c = run(2, &params[..100]);
    assert_eq!(a.spikes, b.spikes);
    assert!(a.spikes.iter().map(Vec::len).sum::<usize>() > 0);
    for k in 0..130 {
        assert_eq!(a.trace("v", k).unwrap(), b.trace("v", k).unwrap());
    }
    // A smaller batch (other block boundaries) gives the same numbers for the neurons it has,
    // also the small ones that run on 1, 4 or 8 lanes instead of a whole block.
    for small in [
        c,
        run(1, &params[..1]),
        run(1, &params[..3]),
        run(2, &params[..29]),
    ] {
        for k in 0..small.spikes.len() {
            assert_eq!(a.trace("v", k).unwrap(), small.trace("v", k).unwrap());
            assert_eq!(a.spikes[k], small.spikes[k]);
        }
    }
    let other_seed = model
        .simulate(&params, 1, &[], &cfg.clone().seed(43))
        .unwrap();
    assert_ne!(a.trace("v", 0).unwrap(), other_seed.trace("v", 0).unwrap());
}

#[test]
fn a_neuron_that_blows_up_is_reported_and_the_others_finish() {
    let desc = ModelDescription::new("dv/dt = k*v : 1\nk : hertz (constant)")
        .initial("v", "1")
        .method("euler");
    let model = Model::new(&desc).unwrap();
    let params = [1.0, 1e6, 2.0]; // the middle one overflows
    let out = model
        .simulate(&params, 1, &[], &RunConfig::new(1e-3, 200).record(&["v"]))
        .unwrap();
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].neuron, 1);
    assert_eq!(out.failed[0].variable, "v");
    assert!(out.is_failed(1) && !out.is_failed(0));
    let v0 = out.trace("v", 0).unwrap();
    assert!((v0[199] - 1.001f64.powi(199)).abs() < 1e-12);
}

#[test]
fn subexpressions_can_be_recorded() {
    let desc = ModelDescription::new("dv/dt = -v/tau : volt\nI_l = v/R : amp")
        .constant("tau", q(10.0, "ms"))
        .constant("R", q(100.0, "Mohm"))
        .initial("v", "10*mV")
        .method("exponential_euler");
    let model = Model::new(&desc).unwrap();
    let out = model
        .simulate(&[], 1, &[], &RunConfig::new(1e-4, 10).record(&["I_l", "v"]))
        .unwrap();
    let (i, v) = (out.trace("I_l", 0).unwrap(), out.trace("v", 0).unwrap());
    for k in 0..10 {
        assert!((i[k] - v[k] / 100e6).abs() < 1e-22);
    }
}

#[test]
fn every_shipped_model_builds_and_runs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let spec = neurosbi_sim::ModelSpec::from_file(&path).unwrap();
        let model = spec.build().unwrap();
        let params = spec.default_parameters(&model).unwrap();
        let dt = 1e-5;
        let steps = 5000;
        let stimuli: Vec<Stimulus> = model
            .inputs()
            .iter()
            .map(|i| {
                // A moderate step in the input's own unit family.
                let level = if i.dim == dim("amp") { 0.5e-9 } else { 0.0 };
                Stimulus::from_rows(i.name.clone(), &[vec![level; steps]]).unwrap()
            })
            .collect();
        let out = model
            .simulate(&params, 1, &stimuli, &RunConfig::new(dt, steps).seed(1))
            .unwrap();
        assert!(
            out.failed.is_empty(),
            "{}: {:?}",
            path.display(),
            out.failed
        );
        n += 1;
    }
    assert!(n >= 7, "expected the seven shipped models, found {n}");
}

#[test]
fn refractory_durations_can_be_per_neuron_parameters() {
    // Constant drive, reset to rest: the inter-spike interval is the time to threshold plus
    // the neuron's own refractory period (in whole steps).
    let desc = ModelDescription::new(
        "dv/dt = (v_inf - v)/tau : volt (unless refractory)\ntau_ref : second (constant)",
    )
    .constant("v_inf", q(30.0, "mV"))
    .constant("tau", q(10.0, "ms"))
    .threshold("v > 20*mV")
    .reset("v = 0*mV")
    .refractory("tau_ref")
    .method("exponential_euler");
    let model = Model::new(&desc).unwrap();
    let out = model
        .simulate(&[1e-3, 4e-3], 1, &[], &RunConfig::new(1e-4, 2000))
        .unwrap();
    let isi = |n: usize| out.spikes[n][2] - out.spikes[n][1];
    assert!(out.spikes[0].len() > 3 && out.spikes[1].len() > 3);
    assert!(
        (isi(1) - isi(0) - 3e-3).abs() < 1.5e-4,
        "{} vs {}",
        isi(0),
        isi(1)
    );
}

#[test]
fn per_set_noise_seeds_make_a_simulation_independent_of_its_batch() {
    let desc = ModelDescription::new(
        "dv/dt = -v/tau + sigma*xi/sqrt(tau) : volt\nsigma : volt (constant)",
    )
    .constant("tau", q(10.0, "ms"));
    let model = Model::new(&desc).unwrap();
    let cfg = RunConfig::new(1e-4, 200).record(&["v"]);
    let seeds: Vec<u64> = (0..5).map(|k| 1000 + k).collect();
    let params = [1e-3, 2e-3, 3e-3, 4e-3, 5e-3];
    let all = model
        .simulate(&params, 2, &[], &cfg.clone().set_seeds(seeds.clone()))
        .unwrap();
    // Set 3 alone, with its own seed, gives the same two traces as inside the batch.
    let alone = model
        .simulate(
            &params[3..4],
            2,
            &[],
            &cfg.clone().set_seeds(vec![seeds[3]]),
        )
        .unwrap();
    for k in 0..2 {
        assert_eq!(
            all.trace("v", 3 * 2 + k).unwrap(),
            alone.trace("v", k).unwrap()
        );
    }
    assert_ne!(
        all.trace("v", 6).unwrap(),
        all.trace("v", 7).unwrap(),
        "traces get different streams"
    );
    let e = model
        .simulate(&params, 2, &[], &cfg.set_seeds(vec![1, 2]))
        .unwrap_err();
    assert!(
        e.to_string().contains("2 noise seeds for 5 parameter sets"),
        "{e}"
    );
    assert!((neurosbi_sim::parse_quantity("1*uF/cm**2").unwrap().value - 1e-2).abs() < 1e-17);
    assert!(neurosbi_sim::parse_quantity("1*uF/cm**2 + 1*volt").is_err());
}
