"""neurosbi: simulation-based inference with a Rust engine and the names of sbi.

>>> import numpy as np, neurosbi
>>> prior = neurosbi.BoxUniform(low=[-2, -2], high=[2, 2])
>>> inference = neurosbi.NPE(prior)
>>> inference.append_simulations(theta, x).train(max_num_epochs=50, seed=0)
>>> posterior = inference.build_posterior()
>>> posterior.sample((1000,), x=x_o, seed=1)

Checks, training and sampling run in Rust with the GIL released; errors of the engine
arrive with its message, as ``ValueError`` (a bad argument), ``FileNotFoundError`` or
``neurosbi.Error``.
"""

from __future__ import annotations

import difflib

from ._neurosbi import (
    METHOD_NAMES,
    BoxUniform,
    Error,
    LogNormal,
    LogUniform,
    MultipleIndependent,
    MultivariateNormal,
    Normal,
    Posterior,
    Prior,
    load_posterior,
)
from ._neurosbi import Trainer as _RustTrainer
from ._neurosbi import feature_catalogue as _feature_catalogue

__all__ = [
    "BoxUniform",
    "Error",
    "LogNormal",
    "LogUniform",
    "MultipleIndependent",
    "MultivariateNormal",
    "Normal",
    "Prior",
    "Figure",
    "Inferencer",
    "SimulatorError",
    "features",
    "inspect",
    "read_recording",
    "Recording",
    "simulate",
    "simulate_for_sbi",
    "METHOD_NAMES",
    "NLE",
    "NPE",
    "NRE",
    "Posterior",
    "Trainer",
    "load_posterior",
]

def features():
    """The feature catalogue: ``{name: (group, unit, summary, parameters)}`` (the names
    ``Inferencer(features={...})`` and fit files take; ``neurosbi features`` prints it)."""
    return {n: (g, u, s, p) for n, g, u, s, p in _feature_catalogue()}


# sbi's defaults (sbi 0.27), the same as neurosbi_flows::TrainConfig's.
_TRAIN_DEFAULTS = {
    "training_batch_size": 200,
    "learning_rate": 5e-4,
    "validation_fraction": 0.1,
    "stop_after_epochs": 20,
    "max_num_epochs": None,
    "clip_max_norm": 5.0,
    "seed": None,
}


def _check_keywords(function: str, given, allowed) -> None:
    """Raises TypeError for a keyword `function` does not take, suggesting the closest."""
    for name in given:
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise TypeError(
                f"{function}() got an unexpected keyword argument '{name}'{hint} "
                f"(it takes {', '.join(allowed)})"
            )


class Trainer:
    """Trains one of sbi's methods, chosen by name (see ``METHOD_NAMES``), on given simulations.

    ``estimator`` is the density estimator (``"maf"``, ``"nsf"``, ``"mdn"``) or, for the NRE
    methods, the classifier (``"resnet"``, ``"mlp"``); None takes sbi's default.
    """

    def __init__(self, method: str, prior: Prior, estimator: str | None = None):
        self._rust = _RustTrainer(method, prior, estimator)
        self.prior = prior

    @property
    def method(self) -> str:
        return self._rust.method

    @property
    def num_simulations(self) -> int:
        return self._rust.num_simulations

    def append_simulations(self, theta, x):
        """Adds simulations: ``theta`` of shape (n, dim theta), ``x`` of shape (n, dim x)."""
        self._rust.append_simulations(theta, x)
        return self

    def train(self, **kwargs) -> dict:
        """Trains on every simulation appended so far. Keywords (sbi's, same defaults):
        training_batch_size, learning_rate, validation_fraction, stop_after_epochs,
        max_num_epochs, clip_max_norm, seed (None: a fresh one; the same seed gives the same
        network). Returns the epochs run and the best validation loss."""
        _check_keywords("train", kwargs, _TRAIN_DEFAULTS)
        args = {**_TRAIN_DEFAULTS, **kwargs}
        epochs, best = self._rust.train(**args)
        return {"epochs": epochs, "best_validation_loss": best}

    def build_posterior(self, density_estimator=None, sample_with=None) -> Posterior:
        """The posterior of the last training (amortised: give ``x`` when sampling).
        ``density_estimator`` (what sbi's ``train()`` returns) is accepted and ignored: the
        posterior is always the last training's. ``sample_with``: None (the method's own
        sampler: direct for NPE, MCMC for NLE/NRE), or sbi's direct, mcmc, rejection,
        importance, vi."""
        return self._rust.build_posterior(sample_with)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r}, prior={self.prior!r})"


class NPE(Trainer):
    """Neural posterior estimation (sbi's ``NPE``)."""

    def __init__(self, prior: Prior, density_estimator: str = "maf"):
        super().__init__("npe", prior, density_estimator)


class NLE(Trainer):
    """Neural likelihood estimation (sbi's ``NLE``); its posterior samples with MCMC."""

    def __init__(self, prior: Prior, density_estimator: str = "maf"):
        super().__init__("nle", prior, density_estimator)


class NRE(Trainer):
    """Neural ratio estimation (sbi's ``NRE``, i.e. NRE-A); its posterior samples with MCMC."""

    def __init__(self, prior: Prior, classifier: str = "resnet"):
        super().__init__("nre", prior, classifier)


# Imported last: they use the trainers above.
from .figure import Figure  # noqa: E402
from .inferencer import Inferencer  # noqa: E402
from .recording import Recording, inspect, read_recording  # noqa: E402
from .simulate import SimulatorError, simulate, simulate_for_sbi  # noqa: E402
