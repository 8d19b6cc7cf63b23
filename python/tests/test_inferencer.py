"""neurosbi.Inferencer: brian2modelfitting's API over the Rust engine."""

import os
import subprocess

import numpy as np
import pytest

import neurosbi

# A passive membrane driven by a current step; free: time constant and capacitance. The
# observation is the exact solution (exponential Euler is exact for this linear equation).
EQS = """
dv/dt = (El - v)/tau + I/C : volt
tau : second (constant)
C : farad (constant)
"""
DT_MS, N_STEPS = 0.1, 400
TAU_MS, C_PF = 20.0, 100.0
EL_MV, I_NA = -70.0, 0.1
ON, OFF = 50, 300  # step on/off sample
PRIORS = dict(tau=[5.0, 50.0], C=[50.0, 200.0])
UNITS = {"I": "nA", "v": "mV", "dt": "ms", "tau": "ms", "C": "pF", "El": "mV"}
FEATURES = {"v": ["mean", "max", "std", "mean(window=stim)"]}


def step():
    i = np.zeros(N_STEPS)
    i[ON:OFF] = I_NA
    return i


def membrane(tau_ms=TAU_MS, c_pf=C_PF):
    """v (mV) of the model for the step, as exponential Euler computes it."""
    v, out = EL_MV, []
    decay = np.exp(-DT_MS / tau_ms)
    for i_na in step():
        out.append(v)
        v_inf = EL_MV + i_na * 1e-9 * tau_ms * 1e-3 / (c_pf * 1e-12) * 1e3
        v = v_inf + (v - v_inf) * decay
    return np.array(out)


def make(**kw):
    args = dict(dt=DT_MS, model=EQS, input={"I": step()[None, :]},
                output={"v": membrane()[None, :]}, features=FEATURES,
                method="exponential_euler", param_init={"v": "El"}, units=UNITS,
                namespace={"El": EL_MV}, window=[f"{ON * DT_MS}*ms", f"{OFF * DT_MS}*ms"])
    args.update(kw)
    return neurosbi.Inferencer(**args)


FAST = dict(max_num_epochs=20, training_batch_size=100)


@pytest.fixture(scope="module")
def fitted():
    inf = make()
    # 3000 simulations and 100 epochs: about 7 s on one core, and a posterior that has
    # found the narrow ridge tau/C = amplitude/I (1000 simulations and 20 epochs have not).
    inf.infer(n_samples=3000, seed=3, train_kwargs=dict(max_num_epochs=100), progress=False,
              **PRIORS)
    return inf


def test_posterior_concentrates_near_the_truth(fitted):
    assert fitted.param_names == ["tau", "C"] and fitted.param_units == ["ms", "pF"]
    samples = fitted.sample((2000,))
    assert samples.shape == (2000, 2)
    # The prior's standard deviations are 13 ms and 43 pF; the features pin both (the step's
    # amplitude is I*tau/C, its rise time tau), so the posterior is far narrower.
    mean, std = samples.mean(axis=0), samples.std(axis=0)
    assert abs(mean[0] - TAU_MS) < 3.0, mean
    assert abs(mean[1] - C_PF) < 10.0, mean
    assert np.all(std < [4.0, 8.0]), std
    ratio = samples[:, 0] / samples[:, 1]
    assert abs(ratio.mean() - TAU_MS / C_PF) < 0.02
    lp = fitted.posterior.log_prob(np.array([[TAU_MS, C_PF], [45.0, 60.0]]))
    assert lp[0] > lp[1]


def test_observed_features_are_the_engine_s(fitted):
    v = membrane()
    x_o = fitted.x_o
    np.testing.assert_allclose(x_o[:3], [v.mean(), v.max(), v.std()], rtol=1e-9)
    np.testing.assert_allclose(x_o[3], v[ON:OFF].mean(), rtol=1e-3)


def test_same_seed_same_samples_and_another_seed_differs():
    runs = []
    for seed in (5, 5, 6):
        inf = make()
        inf.infer(n_samples=200, seed=seed, train_kwargs=dict(max_num_epochs=3), **PRIORS)
        runs.append(inf.sample((100,)))
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


CLI = os.environ.get("NEUROSBI_CLI")


@pytest.mark.skipif(not CLI, reason="NEUROSBI_CLI (the neurosbi binary; `cargo xtask test` "
                    "builds it) is not set")
def test_python_and_cli_give_identical_samples(tmp_path):
    inf = make()
    inf.infer(n_samples=300, seed=9, inference_method="SNPE",
              train_kwargs=dict(max_num_epochs=4), **PRIORS)
    fit_file = tmp_path / "same.toml"
    inf.to_fit_file(fit_file, samples=500, output=tmp_path / "out")
    subprocess.run([CLI, "fit", str(fit_file), "--quiet"], check=True, cwd=tmp_path)
    from_cli = np.load(tmp_path / "out" / "samples.npy")
    assert np.array_equal(from_cli, inf.sample((500,)))


@pytest.mark.skipif(not CLI, reason="NEUROSBI_CLI is not set")
def test_spike_train_problem_agrees_with_the_cli(tmp_path):
    """The fit file carries spike trains (CSV), an inline model with a threshold and reset,
    and a synthetic-free observation: `neurosbi fit` still draws the same samples."""
    inf = make(output={"spikes": [np.array([0.0105, 0.0201, 0.029])]},
               features={"spikes": ["train_count", "train_latency"]},
               threshold="v > -55*mV", reset="v = El", units=dict(UNITS, spikes="second"))
    inf.infer(n_samples=200, seed=2, train_kwargs=dict(max_num_epochs=2), **PRIORS)
    inf.to_fit_file(tmp_path / "spikes.toml", samples=100, output=tmp_path / "out")
    assert (tmp_path / "spikes.spikes.csv").read_text() == "0.0105,0.0201,0.029\n"
    subprocess.run([CLI, "fit", str(tmp_path / "spikes.toml"), "--quiet"], check=True)
    assert np.array_equal(np.load(tmp_path / "out" / "samples.npy"), inf.sample((100,)))


class Dim:
    def __init__(self, exps):
        self._dims = exps


class Q(np.ndarray):
    """The part of a Brian quantity neurosbi reads: SI values and ``.dim._dims``."""

    def __new__(cls, values, exps):
        obj = np.asarray(values, dtype=float).view(cls)
        obj.dim = Dim(exps)
        return obj


VOLT, AMP = [2, 1, -3, -1, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0]
SECOND, FARAD = [0, 0, 1, 0, 0, 0, 0], [-2, -1, 4, 2, 0, 0, 0]


def test_brian_quantities_and_caller_namespace_give_the_same_problem(fitted):
    El = Q(-0.070, VOLT)  # noqa: F841 (read by the Inferencer from this frame, as Brian does)
    inf = neurosbi.Inferencer(
        dt=Q(DT_MS * 1e-3, SECOND), model=EQS, input={"I": Q(step()[None, :] * 1e-9, AMP)},
        output={"v": Q(membrane()[None, :] * 1e-3, VOLT)}, features=FEATURES,
        method="exponential_euler", param_init={"v": "El"},
        window=[Q(ON * DT_MS * 1e-3, SECOND), Q(OFF * DT_MS * 1e-3, SECOND)])
    inf.set_priors(tau=[Q(0.005, SECOND), Q(0.05, SECOND)],
                   C=[Q(50e-12, FARAD), Q(200e-12, FARAD)])
    assert inf.param_units == ["ms", "pF"]
    np.testing.assert_allclose(inf.x_o, fitted.x_o, rtol=1e-9)
    # Quantities in a dict for points/conditions, converted to the priors' units.
    row = inf._row({"tau": Q(0.02, SECOND), "C": Q(1e-10, FARAD)}, "points")
    np.testing.assert_allclose(row, [20.0, 100.0])


def test_sample_plots_and_correlations(fitted):
    fig = fitted.pairplot(points={"tau": TAU_MS, "C": C_PF}, limits=None, figsize=(4, 4))
    assert fig._repr_svg_().lstrip().startswith("<svg") and "tau (ms)" in fig.svg
    cond = fitted.sample((1,), seed=0)
    c = fitted.conditional_corrcoeff(cond, resolution=20)
    assert c.shape == (2, 2) and np.allclose(np.diag(c), 1.0) and c[0, 1] == c[1, 0]
    # tau and C trade off in the step's amplitude I*tau/C: positively correlated.
    assert c[0, 1] > 0.2, c
    assert "<svg" in fitted.conditional_pairplot(cond, resolution=20).svg
    with pytest.raises(TypeError, match=r"'figsze'; did you mean 'figsize'\?"):
        fitted.pairplot(figsze=(3, 3))
    html = fitted.posterior._repr_html_()
    assert "dim theta</th><td>2" in html


def test_generate_traces_follow_the_observation(fitted):
    one = fitted.generate_traces()
    assert one.shape == (1, N_STEPS)
    many = fitted.generate_traces(n_samples=5, output_var="v")
    assert many.shape == (5, 1, N_STEPS)
    # Posterior-predictive traces rise by about the observed 20 mV.
    rise = many[:, 0, OFF - 1] - many[:, 0, 0]
    assert np.all(np.abs(rise - (membrane()[OFF - 1] - EL_MV)) < 5.0), rise
    with pytest.raises(ValueError, match=r"`w` is not an output \(outputs: v\)"):
        fitted.generate_traces(output_var="w")


def test_summary_statistics_and_posterior_round_trip(fitted, tmp_path):
    path = tmp_path / "stats.npz"
    fitted.save_summary_statistics(path)
    theta, x = fitted.load_summary_statistics(path)
    assert theta.shape == (3000, 2) and x.shape == (3000, 4)
    assert np.all((theta[:, 0] >= 5) & (theta[:, 0] <= 50))
    again = make()
    again.infer(theta=theta, x=x, seed=1, train_kwargs=FAST, **PRIORS)
    assert abs(again.sample((1000,)).mean(axis=0)[0] - TAU_MS) < 5.0
    fitted.save_posterior(tmp_path / "post")
    other = make()
    other.set_priors(**PRIORS)
    other.load_posterior(tmp_path / "post")
    assert np.array_equal(other.sample((50,), seed=4), fitted.sample((50,), seed=4))
    with pytest.raises(FileNotFoundError):
        other.load_posterior(tmp_path / "nothing")


def test_progress_bar_in_text(capsys):
    inf = make()
    inf.infer(n_samples=100, seed=0, progress=True, train_kwargs=dict(max_num_epochs=2),
              **PRIORS)
    err = capsys.readouterr().err
    assert "simulating" in err and "training" in err


def test_spike_trains_as_output():
    eqs = "dv/dt = (El - v)/tau + I/C : volt\ntau : second (constant)\nC : farad (constant)"
    inf = make(model=eqs, output={"spikes": [np.array([0.0105, 0.0201, 0.029])]},
               features={"spikes": ["train_count"]}, threshold="v > -55*mV",
               reset="v = El", units=dict(UNITS, spikes="second"))
    inf.set_priors(**PRIORS)
    assert inf.x_o.tolist() == [3.0]


# -- bad input: Python exceptions with the engine's message ------------------------------


def bad(match, exc=ValueError, **kw):
    priors = kw.pop("priors", PRIORS)
    with pytest.raises(exc, match=match):
        make(**kw).set_priors(**priors)


def test_prior_in_the_wrong_unit_or_empty():
    bad(r"`priors\.tau\.low`: \"5\.0\*mV\" has dimension .*the parameter is",
        units=dict(UNITS, tau="mV"))
    bad(r"neurosbi\.Inferencer: `priors\.tau`.*low", priors=dict(tau=[50.0, 5.0], C=[50, 200]))
    bad(r"`priors\.gl`: `gl` is not a parameter of the model \(parameters: tau, C\)",
        priors=dict(PRIORS, gl=[1, 2]))


def test_bare_dt_and_an_input_in_the_wrong_unit():
    bad(r"`dt`: \"0\.1\" has dimension 1 \(dimensionless\), expected second",
        units={k: u for k, u in UNITS.items() if k != "dt"})
    bad(r"`model`: dimension mismatch at equations line 2", units=dict(UNITS, I="mV"))


def test_bad_data_shapes_and_values():
    v = membrane()
    v[7] = np.nan
    bad(r"output v: has a non-finite value \(NaN\) at row 0, column 7", output={"v": v[None, :]})
    bad(r"outputs\.v\.data.*trace 0 has 399 samples, expected 400",
        output={"v": membrane()[None, :-1]})
    bad(r"output v: plain numbers need a unit: units=\{'v': 'mV'\}",
        units={k: u for k, u in UNITS.items() if k != "v"})
    bad(r"outputs\.v\.features.*nosuchfeature", features={"v": ["nosuchfeature"]})
    bad(r"`model`.*line 2", model="dv/dt = (El - v)/tau + I/C : volt\ntau : secnd (constant)")


def test_unknown_keywords_and_method():
    with pytest.raises(TypeError, match=r"'treshold'; did you mean 'threshold'\?"):
        make(treshold="v > 0*mV")
    inf = make()
    with pytest.raises(TypeError, match=r"'n_round'; did you mean 'n_rounds'\?"):
        inf.infer(n_samples=10, n_round=2, **PRIORS)
    with pytest.raises(TypeError, match=r"'max_epochs'; did you mean 'max_num_epochs'\?"):
        inf.infer(n_samples=10, train_kwargs=dict(max_epochs=3), **PRIORS)
    with pytest.raises(ValueError, match=r"inference\.method.*unknown method `snpx`"):
        inf.infer(n_samples=10, inference_method="SNPX", **PRIORS)
    with pytest.raises(neurosbi.Error, match=r"not trained yet"):
        make().sample((3,))


def test_any_method_float32_and_array_protocol_inputs():
    class Wrapped:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a if dtype is None else self.a.astype(dtype)

    inf = make(input={"I": Wrapped(step()[None, :].astype(np.float32))},
               output={"v": membrane()[None, :].astype(np.float32)})
    inf.infer(n_samples=200, seed=0, inference_method="SNLE", density_estimator_model="nsf",
              train_kwargs=dict(max_num_epochs=2), **PRIORS)
    draws = inf.sample((20,))
    assert draws.shape == (20, 2)
    assert np.all((draws >= [5, 50]) & (draws <= [50, 200]))
    with pytest.raises(ValueError, match=r"input I: expected a 2-D float64 or float32 array .*got dtype int64"):
        make(input={"I": np.ones((1, N_STEPS), dtype=np.int64)})


def test_feature_catalogue():
    cat = neurosbi.features()
    assert {"mean", "max", "train_count", "sbi_hh_tutorial"} <= set(cat)
    group, unit, summary, params = cat["mean"]
    assert group == "moments" and "window" in params
