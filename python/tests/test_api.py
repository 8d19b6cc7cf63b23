"""Tests of the Python API of neurosbi (run by `cargo xtask test`)."""

import os
import subprocess

import numpy as np
import pytest

import neurosbi

LOW, HIGH = -2.0, 2.0
NOISE = 0.1
X_O = np.array([0.5, -0.3])
EPOCHS = 60


def gaussian_toy(n=2000, seed=0, dtype=np.float64):
    """theta ~ U(-2, 2)^2, x = theta + N(0, 0.1^2): the posterior for an x_o well inside the
    box is N(x_o, 0.1^2 I) (the prior is flat around it; 0.8 from x_o to the nearest bound is
    eight standard deviations)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(LOW, HIGH, size=(n, 2))
    x = theta + NOISE * rng.standard_normal((n, 2))
    return theta.astype(dtype), x.astype(dtype)


def prior():
    return neurosbi.BoxUniform(low=[LOW, LOW], high=np.array([HIGH, HIGH]))


@pytest.fixture(scope="module")
def trained():
    theta, x = gaussian_toy()
    inference = neurosbi.NPE(prior(), density_estimator="maf")
    inference.append_simulations(theta, x)
    report = inference.train(max_num_epochs=EPOCHS, seed=3)
    return inference, inference.build_posterior(), report


def test_npe_posterior_mean_near_the_truth(trained):
    _, posterior, report = trained
    assert 1 <= report["epochs"] <= EPOCHS
    draws = posterior.sample((2000,), x=X_O, seed=1)
    assert draws.shape == (2000, 2) and draws.dtype == np.float64
    # The true posterior is N(x_o, 0.1^2 I). The Monte-Carlo error of a 2000-draw mean is
    # 0.1 / sqrt(2000) = 0.002, so the tolerance is for the estimator trained on 2000 pairs
    # for at most 60 epochs: half a posterior standard deviation.
    np.testing.assert_allclose(draws.mean(axis=0), X_O, atol=0.5 * NOISE)
    std = draws.std(axis=0)
    assert np.all((std > 0.5 * NOISE) & (std < 2.0 * NOISE)), std
    # log_prob: the density is higher at x_o than one posterior-width... four away.
    lp = posterior.log_prob(np.array([X_O, X_O + 0.4]), x=X_O)
    assert lp.shape == (2,) and lp[0] > lp[1] + 2.0
    mode = posterior.map(x=X_O, seed=0)
    assert mode.shape == (2,)
    np.testing.assert_allclose(mode, X_O, atol=0.5 * NOISE)


def test_same_seed_same_samples_and_default_x(trained):
    _, posterior, _ = trained
    a = posterior.sample((100,), x=X_O, seed=7)
    b = posterior.sample(100, x=X_O.tolist(), seed=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, posterior.sample((100,), x=X_O, seed=8))
    posterior.set_default_x(X_O)
    assert np.array_equal(a, posterior.sample((100,), seed=7))


def test_same_seed_same_network():
    theta, x = gaussian_toy(n=500)
    posts = []
    for _ in range(2):
        inference = neurosbi.NPE(prior()).append_simulations(theta, x)
        inference.train(max_num_epochs=3, seed=11)
        posts.append(inference.build_posterior())
    assert np.array_equal(
        posts[0].sample((50,), x=X_O, seed=2), posts[1].sample((50,), x=X_O, seed=2)
    )


def test_float32_input_and_array_protocol():
    theta, x = gaussian_toy(n=300, dtype=np.float32)

    class Wrapped:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    inference = neurosbi.NPE(prior(), density_estimator="mdn")
    inference.append_simulations(Wrapped(theta), x)
    assert inference.num_simulations == 300
    inference.train(max_num_epochs=2, seed=0)
    assert inference.build_posterior().sample((5,), x=X_O, seed=0).shape == (5, 2)


def test_save_load_round_trip(trained, tmp_path):
    _, posterior, _ = trained
    path = tmp_path / "posterior"
    posterior.save(str(path))
    loaded = neurosbi.load_posterior(path)
    assert np.array_equal(
        posterior.sample((200,), x=X_O, seed=5), loaded.sample((200,), x=X_O, seed=5)
    )
    theta = np.array([[0.4, -0.2], [1.0, 1.0]])
    assert np.array_equal(posterior.log_prob(theta, x=X_O), loaded.log_prob(theta, x=X_O))


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        neurosbi.load_posterior(tmp_path / "nothing-here")


def test_nle_and_nre_and_generic_trainer():
    theta, x = gaussian_toy(n=400)
    for inference in (
        neurosbi.NLE(prior()),
        neurosbi.NRE(prior()),
        neurosbi.Trainer("nre_c", prior()),
    ):
        inference.append_simulations(theta, x).train(max_num_epochs=2, seed=0)
        draws = inference.build_posterior().sample((20,), x=X_O, seed=0)
        assert draws.shape == (20, 2) and np.all(np.abs(draws) <= HIGH)


def test_bad_shapes_raise_value_error_naming_the_argument():
    theta, x = gaussian_toy(n=100)
    inference = neurosbi.NPE(prior())
    with pytest.raises(ValueError, match=r"theta: expected a 2-D float64 or float32 array of shape \(n, 2\), got shape \[100, 3\]"):
        inference.append_simulations(np.zeros((100, 3)), x)
    with pytest.raises(ValueError, match=r"theta: .*got shape \[200\]"):
        inference.append_simulations(theta.ravel(), x)
    with pytest.raises(ValueError, match=r"x: has 99 rows but theta has 100"):
        inference.append_simulations(theta, x[:99])
    with pytest.raises(ValueError, match=r"x: expected .* got dtype int64"):
        inference.append_simulations(theta, np.ones((100, 2), dtype=np.int64))
    inference.append_simulations(theta, x)
    with pytest.raises(ValueError, match=r"x: expected a 2-D .* \(n, 2\), got shape \[100, 4\]"):
        inference.append_simulations(theta, np.zeros((100, 4)))


def test_nan_in_x_raises_value_error():
    theta, x = gaussian_toy(n=100)
    x[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"x: has a non-finite value \(NaN\) at row 7, column 1"):
        neurosbi.NPE(prior()).append_simulations(theta, x)


def test_box_uniform_low_not_below_high():
    with pytest.raises(ValueError, match=r"invalid prior: dimension 1 \(uniform\)"):
        neurosbi.BoxUniform(low=[0.0, 1.0], high=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"high bounds vs low bounds"):
        neurosbi.BoxUniform(low=[0.0, 0.0], high=[1.0])


def test_unknown_keyword_suggests_the_close_one():
    with pytest.raises(TypeError, match=r"'lerning_rate'; did you mean 'learning_rate'\?"):
        neurosbi.NPE(prior()).train(lerning_rate=1e-3)


def test_unknown_method_and_estimator():
    with pytest.raises(ValueError, match=r"invalid argument `method`: unknown method `npx`"):
        neurosbi.Trainer("npx", prior())
    with pytest.raises(ValueError, match=r"density_estimator: unknown density estimator `flow`"):
        neurosbi.NPE(prior(), density_estimator="flow")
    with pytest.raises(ValueError, match=r"method: `abc_rejection` needs a simulator in the loop"):
        neurosbi.Trainer("rejection_abc", prior())


def test_engine_errors_are_neurosbi_error():
    assert issubclass(neurosbi.Error, Exception)
    with pytest.raises(neurosbi.Error, match=r"call train\(\) first"):
        neurosbi.NPE(prior()).build_posterior()
    inference = neurosbi.NPE(prior()).append_simulations(*gaussian_toy(n=50))
    inference.train(max_num_epochs=1, seed=0)
    posterior = inference.build_posterior()
    with pytest.raises(ValueError, match=r"x: expected a float64 or float32 array of shape \(n, 2\) or \(2,\)"):
        posterior.sample((3,), x=[1.0, 2.0, 3.0], seed=0)
    with pytest.raises(ValueError, match=r"x: no observation"):
        posterior.sample((3,))


RUST_EXAMPLE = os.environ.get("NEUROSBI_TRAIN_NPE_EXAMPLE")


@pytest.mark.skipif(
    not RUST_EXAMPLE,
    reason="NEUROSBI_TRAIN_NPE_EXAMPLE (the train_npe example binary; `cargo xtask test` builds it) is not set",
)
def test_python_matches_rust_bit_for_bit(tmp_path):
    theta, x = gaussian_toy(n=600, seed=4)
    theta.astype("<f8").tofile(tmp_path / "theta.f64")
    x.astype("<f8").tofile(tmp_path / "x.f64")
    out = tmp_path / "rust-posterior"
    args = [RUST_EXAMPLE, str(tmp_path / "theta.f64"), str(tmp_path / "x.f64"), "2", "2"]
    subprocess.run(args + [str(LOW), str(HIGH), "4", "21", str(out)], check=True)
    from_rust = neurosbi.load_posterior(out)

    inference = neurosbi.NPE(prior()).append_simulations(theta, x)
    inference.train(max_num_epochs=4, seed=21)
    from_python = inference.build_posterior()
    assert np.array_equal(
        from_python.sample((300,), x=X_O, seed=9), from_rust.sample((300,), x=X_O, seed=9)
    )
    grid = theta[:50]
    assert np.array_equal(from_python.log_prob(grid, x=X_O), from_rust.log_prob(grid, x=X_O))
