"""Real Brian2 objects (``brian2.Equations``, Quantity arrays, quantities as priors): the
same problem as plain numbers with ``units`` (test_inferencer.py keeps a stand-in for
machines without Brian2)."""

import numpy as np
import pytest

from test_inferencer import (DT_MS, EQS, FEATURES, OFF, ON, PRIORS, UNITS, make, membrane,
                             step)

b2 = pytest.importorskip("brian2")
import neurosbi  # noqa: E402

ms, mV, nA, pF = b2.ms, b2.mV, b2.nA, b2.pF


def brian_inferencer(**kw):
    El = -70 * mV  # noqa: F841 (found in this frame, as Brian finds it)
    args = dict(dt=DT_MS * ms, model=b2.Equations(EQS), input={"I": step()[None, :] * nA},
                output={"v": membrane()[None, :] * mV}, features=FEATURES,
                method="exponential_euler", param_init={"v": "El"},
                window=[ON * DT_MS * ms, OFF * DT_MS * ms])
    args.update(kw)
    return neurosbi.Inferencer(**args)


def test_equations_and_quantities_give_the_plain_number_problem():
    brian = brian_inferencer()
    brian.infer(n_samples=200, seed=5, train_kwargs=dict(max_num_epochs=3),
                tau=[5 * ms, 50 * ms], C=[50 * pF, 200 * pF])
    plain = make()
    plain.infer(n_samples=200, seed=5, train_kwargs=dict(max_num_epochs=3), **PRIORS)
    assert brian.param_units == ["ms", "pF"]
    np.testing.assert_allclose(brian.x_o, plain.x_o, rtol=1e-12)
    np.testing.assert_allclose(brian.sample((300,)), plain.sample((300,)), rtol=1e-9)
    # Dict points and conditions take quantities too.
    np.testing.assert_allclose(brian._row({"tau": 20 * ms, "C": 0.1 * b2.nF}, "points"),
                               [20.0, 100.0])


def test_a_prior_in_the_wrong_unit_and_spike_trains_as_quantities():
    with pytest.raises(ValueError, match=r"priors\.tau"):
        brian_inferencer().set_priors(tau=[5 * mV, 50 * mV], C=[50 * pF, 200 * pF])
    spikes = dict(features={"spikes": ["train_count", "train_latency"]},
                  threshold="v > -55*mV", reset="v = El")
    inf = brian_inferencer(output={"spikes": [np.array([10.5, 20.1, 29.0]) * ms]}, **spikes)
    inf.set_priors(tau=[5 * ms, 50 * ms], C=[50 * pF, 200 * pF])
    plain = make(output={"spikes": [np.array([0.0105, 0.0201, 0.029])]},
                 units=dict(UNITS, spikes="second"), **spikes)
    plain.set_priors(**PRIORS)
    assert inf.x_o[0] == 3.0
    np.testing.assert_allclose(inf.x_o, plain.x_o, rtol=1e-12)
