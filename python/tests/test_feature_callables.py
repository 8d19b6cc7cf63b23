"""Python feature callables ``f(trace) -> float`` in ``Inferencer(features=...)``, as
brian2modelfitting allows: SI traces in, one number out, called once per trace in batches."""

import numpy as np
import pytest

import neurosbi
from neurosbi._callables import _provenance
from test_inferencer import PRIORS, make, membrane

FAST = dict(max_num_epochs=3)


def v_mean(trace):
    return trace.mean()


def test_callables_see_si_traces_and_sit_after_the_catalogue_features():
    calls = []

    def v_range(trace):
        calls.append(len(trace))
        return float(trace.max() - trace.min())

    inf = make(features={"v": ["max", v_mean, v_range]})
    inf.set_priors(**PRIORS)
    v = membrane()  # mV
    # Catalogue features get mV, callables SI volts (as brian2modelfitting hands them).
    np.testing.assert_allclose(inf.x_o, [v.max(), v.mean() * 1e-3, np.ptp(v) * 1e-3],
                               rtol=1e-12)
    assert calls == [len(v)]
    assert inf._rust.feature_names == ["v/0/max", "v/0/v_mean", "v/0/test_callables_see_si_"
                                       "traces_and_sit_after_the_catalogue_features.<locals>."
                                       "v_range"]
    inf.infer(n_samples=60, seed=1, train_kwargs=FAST, **PRIORS)
    # infer() builds the problem again (one more call for the observation), then one call
    # per simulation (one trace each).
    assert len(calls) == 2 + 60


def test_same_seed_same_samples_and_the_callable_decides_x():
    runs = []
    for f in (v_mean, v_mean, lambda tr: tr.std()):
        inf = make(features={"v": ["max", f]})
        inf.infer(n_samples=100, seed=4, train_kwargs=FAST, **PRIORS)
        theta, x = neurosbi._neurosbi.store_simulations(inf._store)
        runs.append((inf.sample((50,)), x))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][1][:, 1], runs[2][1][:, 1])


def test_the_fingerprint_records_the_callable_by_name_and_code():
    def fp(f):
        inf = make(features={"v": ["max", f]})
        inf.set_priors(**PRIORS)
        return dict(inf._rust.fingerprint())

    def a(trace):
        return trace.mean()

    def b(trace):
        return trace.mean() + 0.0

    same = dict(fp(a)), dict(fp(a))
    assert same[0] == same[1]
    changed = fp(b)
    assert changed["features"] != same[0]["features"]
    assert {k for k in changed if changed[k] != same[0][k]} == {"features"}
    p = _provenance(a)
    assert "test_feature_callables.test_the_fingerprint_records_the_callable_by_name_and_code" \
           ".<locals>.a code sha256:" in p
    assert _provenance(a) != _provenance(b)
    # Closure values count; a builtin has no code to hash, and says so.
    k = 1.0
    assert _provenance(lambda t: t.mean() * k) == _provenance(lambda t: t.mean() * k)
    assert "no Python code to hash" in _provenance(np.add)


def test_a_callable_that_raises_or_returns_no_float_is_named():
    n = {"calls": 0}

    def flaky(trace):
        n["calls"] += 1
        if n["calls"] > 10:
            raise ZeroDivisionError("boom")
        return 1.0

    inf = make(features={"v": ["max", flaky]})
    with pytest.raises(neurosbi.SimulatorError, match=r"features\.v: `.*flaky` raised on "
                       r"trace \d+ of a batch: ZeroDivisionError\('boom'\)") as e:
        inf.infer(n_samples=200, seed=0, train_kwargs=FAST, **PRIORS)
    assert isinstance(e.value.__cause__, ZeroDivisionError)
    # The run stopped after the chunk that failed, not after all 200 simulations.
    assert n["calls"] < 200
    for result, shown in (("text", "str"), (np.ones(3), "ndarray"), (None, "NoneType")):
        bad = make(features={"v": [lambda tr, r=result: r]})
        with pytest.raises(ValueError, match=rf"features\.v: `.*<lambda>` returned {shown} .*"
                                             "one float"):
            bad.set_priors(**PRIORS)


def test_callables_cannot_go_into_a_fit_file_or_read_spikes(tmp_path):
    inf = make(features={"v": [v_mean]})
    inf.set_priors(**PRIORS)
    with pytest.raises(ValueError, match=r"fit file cannot carry Python feature callables "
                                         r"\(features\.v: v_mean\)"):
        inf.to_fit_file(tmp_path / "f.toml")
    with pytest.raises(ValueError, match=r"features\.spikes: Python callables read traces"):
        make(output={"spikes": [np.array([0.01])]}, features={"spikes": [v_mean]},
             threshold="v > -55*mV", reset="v = El")
