"""neurosbi.simulate_for_sbi: a user's Python simulator in batches."""

import numpy as np
import pytest

import neurosbi

PRIOR = neurosbi.BoxUniform(low=[-2.0, -2.0], high=[2.0, 2.0])


def test_batches_shapes_and_determinism():
    sizes = []

    def simulator(theta):
        sizes.append(len(theta))
        return np.column_stack([theta.sum(axis=1), theta[:, 0] ** 2, theta[:, 1]])

    theta, x = neurosbi.simulate_for_sbi(simulator, PRIOR, 250, simulation_batch_size=100,
                                         seed=3)
    assert sizes == [100, 100, 50]
    assert theta.shape == (250, 2) and x.shape == (250, 3) and x.dtype == np.float64
    assert np.all(np.abs(theta) <= 2.0)
    np.testing.assert_array_equal(x[:, 0], theta.sum(axis=1))
    again, _ = neurosbi.simulate_for_sbi(simulator, PRIOR, 250, simulation_batch_size=7,
                                         seed=3)
    assert np.array_equal(theta, again)
    threads, x4 = neurosbi.simulate_for_sbi(simulator, PRIOR, 250, num_workers=4,
                                            simulation_batch_size=16, seed=3)
    assert np.array_equal(threads, theta) and np.array_equal(x4, x)


def test_one_row_simulators_and_float32_and_array_protocol():
    class Tensorish:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    theta, x = neurosbi.simulate_for_sbi(
        lambda t: Tensorish((t[0] * 2).astype(np.float32)), PRIOR, 5, seed=0)
    np.testing.assert_allclose(x, theta * 2, rtol=1e-6)


def test_wrong_shape_names_what_was_expected():
    with pytest.raises(ValueError, match=r"simulator: returned shape \(10,\) for a batch of 10 "
                       r"parameter sets, expected \(10, dim x\)"):
        neurosbi.simulate_for_sbi(lambda t: t[:, 0], PRIOR, 20, simulation_batch_size=10)
    with pytest.raises(ValueError, match=r"rows of different lengths \[1, 2\]"):
        neurosbi.simulate_for_sbi(lambda t: t if len(t) == 10 else t[:, :1], PRIOR, 15,
                                  simulation_batch_size=10)
    with pytest.raises(ValueError, match=r"simulator: returned str"):
        neurosbi.simulate_for_sbi(lambda t: "oops", PRIOR, 3)


def test_a_simulator_that_raises():
    def simulator(theta):
        raise ZeroDivisionError("division by zero in my model")

    with pytest.raises(neurosbi.SimulatorError,
                       match=r"raised on the batch of rows 0\.\.4 .*ZeroDivisionError: "
                             r"division by zero in my model") as info:
        neurosbi.simulate_for_sbi(simulator, PRIOR, 5, simulation_batch_size=5)
    assert isinstance(info.value, neurosbi.Error)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_bad_counts():
    with pytest.raises(ValueError, match=r"num_simulations: expected a positive number"):
        neurosbi.simulate_for_sbi(lambda t: t, PRIOR, 0)
    with pytest.raises(ValueError, match=r"simulation_batch_size"):
        neurosbi.simulate_for_sbi(lambda t: t, PRIOR, 3, simulation_batch_size=0)


def test_sbi_flow_build_posterior_takes_the_estimator():
    rng = np.random.default_rng(0)
    theta, x = neurosbi.simulate_for_sbi(
        lambda t: t + 0.1 * rng.standard_normal(t.shape), PRIOR, 500, seed=1,
        simulation_batch_size=50)
    inference = neurosbi.NPE(PRIOR)
    estimator = inference.append_simulations(theta, x).train(max_num_epochs=3, seed=0)
    posterior = inference.build_posterior(estimator)
    assert posterior.sample((4,), x=[0.1, 0.2], seed=0).shape == (4, 2)
    rejection = inference.build_posterior(sample_with="rejection")
    assert "Rejection" in repr(rejection)
    draws = rejection.sample((50,), x=[0.1, 0.2], seed=0)
    assert draws.shape == (50, 2) and np.all(np.abs(draws) <= 2.0)
    with pytest.raises(ValueError, match=r"sample_with: unknown sampler `gibbs`"):
        inference.build_posterior(sample_with="gibbs")
