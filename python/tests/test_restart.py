"""``infer(restart=..., posterior_kwargs=...)`` with brian2modelfitting's meaning: a second
call continues the run with more rounds unless ``restart=True``."""

import numpy as np
import pytest

from test_inferencer import PRIORS, make

TRAIN = dict(max_num_epochs=3)


def test_continuing_equals_one_run_with_all_the_rounds():
    first = make()
    first.infer(n_samples=150, seed=2, train_kwargs=TRAIN, **PRIORS)
    one_round = first.sample((200,))
    first.infer()  # restart=False: one more round of 150 from the posterior
    both = make()
    both.infer(n_samples=150, n_rounds=2, seed=2, train_kwargs=TRAIN, **PRIORS)
    assert np.array_equal(first.sample((200,)), both.sample((200,)))
    assert not np.array_equal(one_round, both.sample((200,)))
    # restart=True starts again: the same as a fresh one-round run.
    first.infer(n_samples=150, seed=2, train_kwargs=TRAIN, restart=True, **PRIORS)
    assert np.array_equal(first.sample((200,)), one_round)


def test_continuing_keeps_the_first_call_s_problem():
    inf = make()
    inf.infer(n_samples=100, seed=1, train_kwargs=TRAIN, **PRIORS)
    with pytest.raises(ValueError, match=r"priors: restart=False continues the previous run"):
        inf.infer(n_samples=100, tau=[1.0, 60.0], C=[50.0, 200.0])
    with pytest.raises(ValueError, match=r"seed: restart=False continues .*\(seed=1, not 7\)"):
        inf.infer(n_samples=100, seed=7, train_kwargs=TRAIN)
    given = make()
    t, xs = np.array([[20.0, 100.0]] * 50), np.tile(inf.x_o, (50, 1))
    given.infer(theta=t + np.random.default_rng(0).normal(0, 1, t.shape), x=xs, seed=0,
                train_kwargs=TRAIN, **PRIORS)
    with pytest.raises(ValueError, match=r"restart: .*not a loaded one or given theta and x"):
        given.infer(n_samples=10)


def test_posterior_kwargs_pick_the_sampler():
    inf = make()
    inf.infer(n_samples=100, seed=1, train_kwargs=TRAIN,
              posterior_kwargs={"sample_with": "rejection"}, **PRIORS)
    assert "Rejection" in repr(inf.posterior)
    direct = make()
    direct.infer(n_samples=100, seed=1, train_kwargs=TRAIN, **PRIORS)
    assert "Direct" in repr(direct.posterior)
    with pytest.raises(TypeError, match=r"posterior_kwargs: unknown keyword 'sample_wit'; "
                                        r"did you mean 'sample_with'\?"):
        make().infer(n_samples=10, posterior_kwargs={"sample_wit": "mcmc"}, **PRIORS)
