"""Priors of API 2 besides BoxUniform, with sbi's (torch.distributions') constructors."""

import math

import numpy as np
import pytest

import neurosbi


def test_multivariate_normal_samples_and_density():
    loc = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    prior = neurosbi.MultivariateNormal(loc, covariance_matrix=cov)
    assert isinstance(prior, neurosbi.Prior) and prior.dim == 2
    draws = prior.sample((40_000,), seed=3)
    assert np.allclose(draws.mean(axis=0), loc, atol=0.03)
    assert np.allclose(np.cov(draws.T), cov, atol=0.04)
    assert np.array_equal(draws, prior.sample((40_000,), seed=3))
    theta = np.array([[0.0, 0.0], [1.0, -2.0]])
    d = theta - loc
    expected = -0.5 * np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d) \
        - 0.5 * math.log(np.linalg.det(2 * math.pi * cov))
    np.testing.assert_allclose(prior.log_prob(theta), expected, rtol=1e-12)
    np.testing.assert_array_equal(prior.covariance_matrix, cov)


def test_independent_priors_and_their_join():
    lu = neurosbi.LogUniform(low=[1e-3], high=[1e-1])
    n = neurosbi.Normal(loc=[0.0, 5.0], scale=2.0)  # a scalar scale is broadcast
    ln = neurosbi.LogNormal(loc=0.0, scale=[0.5])
    box = neurosbi.BoxUniform(low=[-1.0], high=[3.0])
    joint = neurosbi.MultipleIndependent([box, lu, n, ln])
    assert joint.dim == 5
    t = np.array([[0.0, 1e-2, 1.0, 4.0, 2.0]])
    expected = (math.log(1 / 4) + (-math.log(1e-2) - math.log(math.log(100)))
                + sum(-0.5 * ((x - m) / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi))
                      for x, m in ((1.0, 0.0), (4.0, 5.0)))
                + (-math.log(2.0) - 0.5 * (math.log(2.0) / 0.5) ** 2
                   - math.log(0.5 * math.sqrt(2 * math.pi))))
    np.testing.assert_allclose(joint.log_prob(t), [expected], rtol=1e-12)
    draws = joint.sample((20_000,), seed=1)
    assert np.all((draws[:, 0] >= -1) & (draws[:, 0] <= 3))
    assert np.all((draws[:, 1] >= 1e-3) & (draws[:, 1] <= 1e-1))
    # Log-uniform: the median is the geometric mean of the bounds.
    assert abs(np.median(draws[:, 1]) - 1e-2) < 1e-3
    assert abs(np.median(draws[:, 4]) - 1.0) < 0.03
    assert np.all(np.isneginf(box.log_prob(np.array([[5.0]]))))


def test_a_normal_prior_trains_and_samples():
    rng = np.random.default_rng(0)
    prior = neurosbi.MultivariateNormal(np.zeros(2), np.eye(2))
    theta = prior.sample((2000,), seed=2)
    x = theta + 0.1 * rng.standard_normal(theta.shape)
    inference = neurosbi.NPE(prior).append_simulations(theta, x)
    inference.train(max_num_epochs=30, seed=0)
    post = inference.build_posterior()
    s = post.sample((2000,), x=np.array([0.5, -0.5]), seed=1)
    assert np.allclose(s.mean(axis=0), [0.5, -0.5], atol=0.1)
    # The posterior round-trips with its prior (saved with it).
    assert "MultivariateNormal" in repr(prior)


def test_bad_prior_arguments_name_themselves():
    with pytest.raises(ValueError, match="covariance_matrix.*not positive definite"):
        neurosbi.MultivariateNormal([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match=r"covariance_matrix.*shape \(n, 2\).*got shape \[3, 3\]"):
        neurosbi.MultivariateNormal([0.0, 0.0], np.eye(3))
    with pytest.raises(ValueError, match=r"scale: has 3 values but loc has 2"):
        neurosbi.Normal([0.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"log-uniform"):
        neurosbi.LogUniform([0.0], [1.0])
    with pytest.raises(ValueError, match=r"dists\[0\]: MultivariateNormal.*not independent"):
        neurosbi.MultipleIndependent([neurosbi.MultivariateNormal([0.0], [[1.0]])])
    with pytest.raises(ValueError, match=r"prior: expected a neurosbi prior"):
        neurosbi.NPE(prior="uniform")
