"""sbi's ``simulate_for_sbi``: draws parameters from a proposal and calls a user's Python
simulator on them in batches."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _neurosbi
from ._progress import progress_bar


class SimulatorError(_neurosbi.Error):
    """The user's simulator raised; the message names the batch and its parameter rows."""


def _draw(proposal, n, seed):
    try:
        theta = proposal.sample((n,), seed=seed)
    except TypeError:  # a distribution without our seed keyword (torch, scipy)
        theta = proposal.sample((n,))
    theta = np.asarray(theta, dtype=float)
    return theta.reshape(n, -1)


def _call(simulator, theta, start):
    """One batch: x of shape (len(theta), dim x) as float64, or an exception that says
    what was expected."""
    try:
        x = simulator(theta)
    except Exception as e:
        raise SimulatorError(
            f"simulator: raised on the batch of rows {start}..{start + len(theta) - 1} "
            f"(first theta {theta[0].tolist()}): {type(e).__name__}: {e}") from e
    try:
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"simulator: returned {type(x).__name__}, expected an array of "
                         f"shape ({len(theta)}, dim x) of numbers: {e}") from None
    if x.ndim == 1 and len(theta) == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] != len(theta):
        raise ValueError(f"simulator: returned shape {x.shape} for a batch of {len(theta)} "
                         f"parameter sets, expected ({len(theta)}, dim x): one row of x per "
                         "row of theta")
    return x


def simulate_for_sbi(simulator, proposal, num_simulations, num_workers=1,
                     simulation_batch_size=1, seed=None, show_progress_bar=True):
    """Returns ``(theta, x)``: ``num_simulations`` draws of ``proposal`` (a
    ``neurosbi.BoxUniform``, a posterior, or anything with ``sample((n,))``) and the
    simulator's outputs. ``simulator(theta)`` gets a (batch, dim theta) float64 array and
    returns (batch, dim x); batches of ``simulation_batch_size`` rows run on
    ``num_workers`` threads (this helps simulators that release the GIL: numpy, neurosbi,
    compiled code). Every row of x must have the same length; NaN rows are kept (sbi drops
    them at training, neurosbi's ``append_simulations`` refuses them by name)."""
    n = int(num_simulations)
    if n <= 0:
        raise ValueError(f"num_simulations: expected a positive number, got {num_simulations}")
    batch = int(simulation_batch_size)
    if batch <= 0:
        raise ValueError(f"simulation_batch_size: expected a positive number, got {batch}")
    theta = _draw(proposal, n, seed)
    starts = range(0, n, batch)
    xs = [None] * len(starts)
    with progress_bar(show_progress_bar and n >= 1000) as bar:
        def run(k):
            xs[k] = _call(simulator, theta[starts[k]:starts[k] + batch], starts[k])
            return len(xs[k])
        if num_workers > 1:
            with ThreadPoolExecutor(int(num_workers)) as pool:
                done = 0
                for m in pool.map(run, range(len(starts))):
                    done += m
                    if bar:
                        bar("simulating", done, n)
        else:
            done = 0
            for k in range(len(starts)):
                done += run(k)
                if bar:
                    bar("simulating", done, n)
    widths = {x.shape[1] for x in xs}
    if len(widths) > 1:
        raise ValueError(f"simulator: returned rows of different lengths {sorted(widths)}; "
                         "expected the same dim x for every batch")
    return theta, np.concatenate(xs)


def _seconds(value, what):
    """Seconds from a Brian quantity, quantity text or a number (seconds)."""
    if isinstance(value, str):
        scale, exps = _neurosbi.unit(value) if "*" not in value else (None, None)
        if scale is None:
            number, unit = value.split("*", 1)
            scale, exps = _neurosbi.unit(unit.strip())
            scale *= float(number)
        if list(exps) != [0, 0, 1, 0, 0, 0, 0]:
            raise ValueError(f"{what}: {value!r} is not a time")
        return float(scale)
    dim = getattr(getattr(value, "dim", None), "_dims", None)
    if dim is not None and [float(d) for d in dim] != [0, 0, 1, 0, 0, 0, 0]:
        raise ValueError(f"{what}: {value!r} is not a time")
    return float(np.asarray(value, dtype=float))


def simulate(model, dt, duration, params=None, record=None, seed=0):
    """One run of a model file for one parameter set: ``model`` is a model file's path or
    its tables as a dict (a circuit's ``groups`` and ``synapses``, ``constants``,
    ``parameters``, ...: docs/model-language.md); ``dt``, ``duration``: Brian quantities,
    quantity text or seconds. ``params``: ``{name: value}`` (SI numbers, quantity text or
    Brian quantities) over the model file's ``[parameters]``; a circuit's names carry their
    object (``g_syn``, ``I_ext_pre``). Returns ``{variable: trace}`` in SI (volts, ...), one
    value per step, for ``record`` (default: every recordable variable), with ``"spikes"``
    (times in s) when the model has a threshold, and ``"spikes_NAME"`` for each spiking
    neuron of a circuit (``spikes_cells_3``: neuron 3 of group ``cells``)."""
    import json
    import os

    if isinstance(model, dict):
        text, origin = json.dumps(model), "neurosbi.simulate model"
    else:
        origin = os.fspath(model)
        with open(origin, encoding="utf-8") as f:
            text = f.read()
    dt_s = _seconds(dt, "dt")
    n_steps = int(round(_seconds(duration, "duration") / dt_s))
    values = []
    for name, v in (params or {}).items():
        if isinstance(v, str):
            values.append((name, v))
        else:
            values.append((name, float(np.asarray(v, dtype=float))))
    return _neurosbi.simulate_model(text, origin, dt_s, n_steps, values,
                                    None if record is None else list(record), int(seed))
