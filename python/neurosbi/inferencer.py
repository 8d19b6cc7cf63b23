"""brian2modelfitting's ``Inferencer`` over the Rust engine.

This module only turns Python values into neurosbi's problem description (the JSON form of
``neurosbi::spec::ProblemSpec``, the description a fit file is read into): Brian quantities
and numbers with ``units`` become SI values with their dimension, unit names or quantity
text. Checking the description (model, units, shapes, priors, settings), simulating,
computing features, training and sampling happen in Rust, with the GIL released, through the
same validation and the same code path as ``neurosbi fit``.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import shutil
import tempfile

import numpy as np

from . import _neurosbi
from ._progress import progress_bar
from ._callables import _callable_name, _provenance
from .figure import Figure
from .recording import RecordingSelection

# sbi's training keyword names -> the fit file's [inference] keys.
_TRAIN_KEYS = {
    "training_batch_size": "training_batch_size",
    "learning_rate": "learning_rate",
    "validation_fraction": "validation_fraction",
    "stop_after_epochs": "stop_after_epochs",
    "max_num_epochs": "max_epochs",
}
_INFER_KEYWORDS = (
    "n_samples", "theta", "x", "n_rounds", "inference_method", "density_estimator_model",
    "inference_kwargs", "train_kwargs", "posterior_kwargs", "restart", "sbi_device", "seed",
    "progress",
)
# sbi's pairplot keywords: accepted for compatibility, the figure is neurosbi's own.
_PLOT_KEYWORDS = (
    "limits", "ticks", "labels", "figsize", "points_colors", "points_offdiag", "upper",
    "diag", "offdiag", "fig", "axes", "title", "subset", "hist_diag", "kde_diag",
    "kde_offdiag", "samples_colors", "legend", "resolution",
)


def _dims(value):
    """Dimension exponents (m, kg, s, A, K, mol, cd) of a Brian quantity, else None (duck-typed
    on ``.dim``, so Brian need not be installed)."""
    dim = getattr(value, "dim", None)
    if dim is None:
        return None
    exps = getattr(dim, "_dims", None)
    if exps is None:
        return None
    return [float(e) for e in exps]


def _quantity(value, unit_name, what):
    """(SI values as float64 array, exponents) of a Brian quantity, a sequence of them, or
    numbers in ``unit_name`` (None: dimensionless)."""
    dims = _dims(value)
    if dims is None and isinstance(value, (list, tuple)) and value:
        found = [_dims(v) for v in value]
        if all(d is not None for d in found):
            if any(d != found[0] for d in found):
                raise ValueError(f"{what}: the values have different dimensions")
            return np.array([np.asarray(v, dtype=float) for v in value]), found[0]
    if dims is not None:
        return np.asarray(value, dtype=float), dims
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{what}: expected numbers or a Brian quantity, got dtype {arr.dtype}")
    if unit_name is None:
        return arr.astype(float), [0.0] * 7
    scale, exps = _neurosbi.unit(unit_name)
    return arr.astype(float) * scale, list(exps)


def _text(value, unit_name, what):
    """Quantity text (``"-65*mV"``) for a scalar quantity, a string, or a number in unit_name."""
    if isinstance(value, str):
        return value
    si, exps = _quantity(value, unit_name, what)
    if si.ndim != 0:
        raise ValueError(f"{what}: expected one value, got shape {si.shape}")
    unit = _neurosbi.display_unit(exps, float(si)) if any(exps) else ""
    if any(exps) and not unit:
        raise ValueError(f"{what}: no unit name for dimension {exps}; write it as text")
    if not unit:
        return repr(float(si))
    scale, _ = _neurosbi.unit(unit)
    return f"{float(si) / scale!r}*{unit}"


def _si_entry(value, unit_name, what):
    """A constant as neurosbi's SI quantity ``{value, dim}``."""
    if isinstance(value, str):
        v, exps = _neurosbi.unit(value)
        return {"value": v, "dim": {"exponents": list(exps)}}
    si, exps = _quantity(value, unit_name, what)
    if si.ndim != 0:
        raise ValueError(f"{what}: expected one value, got shape {si.shape}")
    return {"value": float(si), "dim": {"exponents": exps}}


def _rows(arr, what):
    """A 2-D float array (1-D: one trace) of finite values as a list of rows (checked by
    the engine's array reader: dtype, shape, NaN/inf)."""
    return _neurosbi.as_matrix(arr, what).tolist()


def _model_file(model):
    """The model as a model-file source: a path (``os.PathLike``, or text ending in
    ``.toml``) to a model file, or a dict with a model file's tables (a circuit's
    ``groups`` and ``synapses``, ``constants``, ...); None for equations."""
    if isinstance(model, dict):
        return model
    if isinstance(model, os.PathLike) or (isinstance(model, str)
                                          and model.strip().endswith(".toml")):
        path = os.path.abspath(os.fspath(model))
        if not os.path.exists(path):
            raise FileNotFoundError(f"model: {path}: no such model file")
        return path
    return None


# infer()'s settings and their defaults (a continuing call keeps the first call's).
_INFER_DEFAULTS = dict(inference_method="SNPE", density_estimator_model="maf",
                       inference_kwargs=None, train_kwargs=None, posterior_kwargs=None,
                       sbi_device="cpu", seed=0)

# sbi's build_posterior keywords that a neurosbi run takes.
_POSTERIOR_KEYS = ("sample_with",)


def _check_keywords_of(what, given, allowed):
    """TypeError for a key of the dict argument ``what`` that is not in ``allowed``."""
    for key in given or {}:
        if key not in allowed:
            raise TypeError(f"{what}: unknown keyword '{key}'{_suggest(key, allowed)} "
                            f"(it takes {', '.join(allowed)})")


def _suggest(name, allowed):
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class Inferencer:
    """Posterior inference for the parameters of a neuron model from recorded traces or
    spike trains, with brian2modelfitting's names and semantics.

    ``dt``: a Brian quantity, text (``"0.01*ms"``) or a number with ``units={"dt": "ms"}``.
    ``model``: equations (string or ``brian2.Equations``). ``input``: ``{name: (n_traces,
    n_steps)}``; ``output``: ``{variable: (n_traces, n_steps)}`` traces, or ``{"spikes":
    [spike times per trace]}`` (seconds unless ``units`` says otherwise). Plain numbers need
    their unit in ``units``; a recording's sweeps are ``rec.output(...)`` /
    ``rec.stimulus(...)`` (``neurosbi.read_recording``). ``features``: ``{output: [catalogue
    names (see ``neurosbi.features()``) or callables f(trace in SI) -> float]}``. Constants
    come from ``namespace``, else, as in Brian, from the caller's variables. ``param_init``:
    initial values (expressions or quantities). ``model`` may also be a model file (path) or
    its tables as a dict (a circuit). ``synthetic``: ground-truth parameter values whose
    simulation is the observation (give the outputs as ``{"v": None}``); ``window``: the
    stimulus window of windowed features; ``duration``: the run's length when no input gives
    it.
    """

    def __init__(self, dt, model, input=None, output=None, features=None, method=None,
                 threshold=None, reset=None, refractory=None, param_init=None,
                 units=None, namespace=None, window=None, synthetic=None, duration=None,
                 level=0, **unknown):
        for name in unknown:  # Python names no close match for a mistyped keyword
            allowed = inspect.signature(Inferencer.__init__).parameters
            raise TypeError(f"Inferencer() got an unexpected keyword argument '{name}'"
                            f"{_suggest(name, [a for a in allowed if a not in ('self', 'unknown')])}")
        if not output:
            raise ValueError("output: give at least one recorded output, e.g. {'v': traces}")
        self._units = dict(units or {})
        self._inputs = dict(input or {})
        self._callables = []  # (output, name, callable, provenance) of callable features
        self._recording_seconds = None  # a recording selection's sweep length
        self._outputs = dict(output)
        description = self._description(model, method, threshold, reset, refractory,
                                        param_init)
        stimuli, n_steps = self._stimuli(description)
        outputs = {}
        for var, data in self._outputs.items():
            outputs[var], steps = self._output(var, data, features)
            n_steps = n_steps or steps
        model_source = _model_file(model)
        if model_source is None:
            self._constants(description, stimuli, (threshold, reset, refractory), namespace,
                            level)
            model_source = {"description": description}
        self._spec = {"model": model_source, "dt": self._dt(dt), "stimuli": stimuli,
                      "outputs": outputs}
        dt_si = self._dt_seconds(self._spec["dt"])
        seconds = None
        if isinstance(duration, str):
            self._spec["duration"] = duration
        elif duration is not None:
            seconds = _si_entry(duration, self._units.get("duration"), "duration")["value"]
        elif n_steps is not None and dt_si is not None:
            seconds = n_steps * dt_si
        elif self._recording_seconds is not None:
            seconds = self._recording_seconds  # a recording's (first selected) sweep
        if seconds is not None:
            self._spec["duration"] = {"value": seconds,
                                      "dim": {"exponents": [0, 0, 1, 0, 0, 0, 0]}}
        if synthetic is not None:
            self._spec["synthetic"] = {
                n: _text(v, self._units.get(n), f"synthetic.{n}") for n, v in synthetic.items()}
        if window is not None:
            self._spec["features"] = {"window": [_text(w, self._units.get("window"), "window")
                                                 for w in window]}
        self._rust = None
        self._spec_run = None
        self._settings = {}
        self._simulated = False  # the posterior comes from infer()'s own simulations
        self._store = None
        self._given = None
        self._seed = 0
        self.posterior = None
        self._samples = None

    def _constants(self, description, stimuli, strings, namespace, level):
        """Constants the model names: from `namespace`, else the caller's variables (Brian's
        rule), looked up only for names the model uses and does not declare."""
        strings = [str(v) for v in strings if isinstance(v, str)]
        strings += [e for _, e in description["initial"]]
        wanted = [n for n in _neurosbi.external_names(description["equations"], strings)
                  if n not in stimuli]
        found = self._namespace(wanted, namespace, level + 1)
        description["constants"] = [
            [n, _si_entry(v, self._units.get(n), f"namespace.{n}")] for n, v in found.items()
        ]

    def _description(self, model, method, threshold, reset, refractory, param_init):
        """The model's description (``neurosbi_sim::ModelDescription``), without constants."""
        description = {"equations": str(model)}
        for key, value in (("threshold", threshold), ("reset", reset)):
            if value is not None:
                description[key] = str(value)
        if refractory is not None:
            description["refractory"] = _text(refractory, None, "refractory")
        if method is not None:
            description["method"] = str(method)
        description["initial"] = [
            [k, _text(v, self._units.get(k), f"param_init.{k}")]
            for k, v in (param_init or {}).items()
        ]
        return description

    def _stimuli(self, description):
        """Stimulus values (SI) per input, declaring each input's dimension in the model's
        description; and the number of steps (None without inputs)."""
        stimuli, n_steps, inputs = {}, None, []
        for name, values in self._inputs.items():
            if isinstance(values, RecordingSelection):
                # Read by the engine from the file's epoch table, in the command's units.
                stimuli[name] = values.description()
                dac = values.command or 0
                unit = values.recording.commands[dac][1] if values.recording.commands else ""
                exps = list(_neurosbi.unit(unit)[1]) if unit else [0.0] * 7
                inputs.append([name, {"exponents": exps}])
                self._recording_seconds = (
                    self._recording_seconds or values.n_samples() * values.recording.dt)
                continue
            if _dims(values) is None and name not in self._units:
                raise ValueError(
                    f"input {name}: plain numbers need a unit: units={{'{name}': 'nA'}} "
                    "(or pass a Brian quantity)")
            _rows(np.asarray(values), f"input {name}")  # dtype, shape, finite
            si, exps = _quantity(values, self._units.get(name), f"input {name}")
            stimuli[name] = {"values": _rows(si, f"input {name}")}
            n_steps = n_steps or len(stimuli[name]["values"][0])
            inputs.append([name, {"exponents": exps}])
        description["inputs"] = inputs
        return stimuli, n_steps

    def _dt(self, dt):
        if isinstance(dt, str) or (_dims(dt) is None and "dt" not in self._units):
            return dt if isinstance(dt, str) else float(dt)  # validation names the unit
        return _si_entry(dt, self._units.get("dt"), "dt")

    @staticmethod
    def _dt_seconds(dt):
        if isinstance(dt, dict):
            return dt["value"]
        if isinstance(dt, str):
            return _neurosbi.unit(dt)[0]
        return None  # a bare number: validation says it needs a unit

    def _output(self, var, data, features):
        """The output's description and its number of steps (None for spike trains)."""
        names = (features or {}).get(var)
        if names is None:
            names = ["train_count", "train_latency"] if var == "spikes" else [
                "mean", "std", "max", "min", "skew", "kurtosis"]
        if callable(names) or isinstance(names, str):
            names = [names]
        out = {"features": [str(f) for f in names if not callable(f)]}
        taken = set(out["features"])
        for f in (f for f in names if callable(f)):
            if var == "spikes":
                raise ValueError("features.spikes: Python callables read traces; spike-train "
                                 "features are catalogue names (neurosbi.features())")
            name = _callable_name(f, taken)
            out.setdefault("external_features", []).append(name)
            self._callables.append((var, name, f, _provenance(f)))
        if isinstance(data, RecordingSelection):  # read by the engine from the file
            out.update(data.description())
            out["unit"] = self._units.get(var) or data.recording.units(data.channel or 0)
            self._recording_seconds = (
                self._recording_seconds or data.n_samples() * data.recording.dt)
            return out, None
        if data is None:  # observation simulated from `synthetic`
            if var != "spikes" and var in self._units:
                out["unit"] = self._units[var]
            return out, None
        if var == "spikes":
            unit = self._units.get("spikes", "second")
            trains = []
            for k, train in enumerate(data):
                si, exps = _quantity(train, unit if _dims(train) is None else None,
                                     f"output spikes[{k}]")
                if any(exps[:2] + exps[3:]) or exps[2] != 1:
                    raise ValueError(f"output spikes[{k}]: spike times must be times")
                trains.append(np.atleast_1d(si).tolist())
            out.update(data=trains, time_unit="second")
            return out, None
        if _dims(data) is not None:
            si, exps = _quantity(data, None, f"output {var}")
            unit = _neurosbi.display_unit(exps, float(np.max(np.abs(si))) if si.size else 1.0)
            scale = _neurosbi.unit(unit)[0] if unit else 1.0
            rows = _rows(si / scale, f"output {var}")
        elif var in self._units:
            unit = self._units[var]
            rows = _rows(data, f"output {var}")
        else:
            raise ValueError(
                f"output {var}: plain numbers need a unit: units={{'{var}': 'mV'}} "
                "(or pass a Brian quantity)")
        out.update(unit=unit, data=rows)
        return out, len(rows[0])

    @staticmethod
    def _namespace(wanted, namespace, level):
        if namespace is not None:
            return {n: namespace[n] for n in wanted if n in namespace}
        frame = inspect.currentframe()
        try:
            caller = frame.f_back.f_back
            for _ in range(level):
                caller = caller.f_back
            scopes = (caller.f_locals, caller.f_globals)
            found = {}
            for n in wanted:
                for scope in scopes:
                    v = scope.get(n)
                    if v is not None and (_dims(v) is not None or isinstance(v, (int, float))):
                        found[n] = v
                        break
            return found
        finally:
            del frame

    # -- inference ------------------------------------------------------------------------

    def _priors(self, params):
        priors = {}
        for name, bounds in params.items():
            if isinstance(bounds, dict):
                priors[name] = bounds
                continue
            if isinstance(bounds, str) or not hasattr(bounds, "__len__") or len(bounds) != 2:
                raise TypeError(
                    f"infer() got an unexpected keyword argument '{name}'"
                    f"{_suggest(name, _INFER_KEYWORDS)} (a prior is name=[low, high])")
            low, high = bounds
            unit = None if _dims(low) is not None else self._units.get(name)
            if isinstance(low, str) and isinstance(high, str):
                priors[name] = [low, high]
            elif _dims(low) is not None or _dims(high) is not None or unit is not None:
                # Quantity text in one display unit: the form a fit file has, so
                # `to_fit_file` hands `neurosbi fit` the same numbers.
                si, exps = _quantity([low, high], unit, f"priors.{name}")
                shown = _neurosbi.display_unit(exps, float(np.max(np.abs(si))))
                if unit is not None:
                    priors[name] = [f"{float(low)!r}*{unit}", f"{float(high)!r}*{unit}"]
                else:
                    scale = _neurosbi.unit(shown)[0] if shown else 1.0
                    priors[name] = [f"{float(v) / scale!r}*{shown}" if shown else repr(float(v))
                                    for v in si]
            else:
                priors[name] = [float(low), float(high)]
        return priors

    def _inference_table(self, n_samples, n_rounds, method, estimator, inference_kwargs,
                         train_kwargs, sbi_device):
        table = {
            "method": str(method).lower(),
            "estimator": str(estimator).lower(),
            "simulations": int(n_samples),
            "rounds": int(n_rounds),
        }
        for key, value in (train_kwargs or {}).items():
            if key not in _TRAIN_KEYS:
                raise TypeError(f"train_kwargs: unknown keyword '{key}'"
                                f"{_suggest(key, _TRAIN_KEYS)} (it takes {', '.join(_TRAIN_KEYS)})")
            table[_TRAIN_KEYS[key]] = value
        table.update(inference_kwargs or {})
        if sbi_device and sbi_device != "cpu":
            table["device"] = str(sbi_device)
        return table

    def infer(self, n_samples=None, theta=None, x=None, n_rounds=1, inference_method="SNPE",
              density_estimator_model="maf", inference_kwargs=None, train_kwargs=None,
              posterior_kwargs=None, restart=False, sbi_device="cpu", seed=0, progress=None,
              **params):
        """Simulates ``n_samples`` parameter sets per round from the priors given as
        ``name=[low, high]``, trains ``inference_method`` (SNPE, SNLE, SNRE, or any name of
        ``neurosbi.METHOD_NAMES``) with ``density_estimator_model`` (maf, nsf, mdn), and
        returns the posterior given the observation. ``theta``/``x`` (e.g. from
        ``load_summary_statistics``) train on those simulations instead. ``train_kwargs``
        takes sbi's names (max_num_epochs, training_batch_size, ...); ``posterior_kwargs``
        sbi's ``build_posterior`` keyword ``sample_with``; ``seed`` fixes everything;
        ``progress`` (default: when n_samples >= 2000) shows a progress bar.

        As in brian2modelfitting, a second call with ``restart=False`` (the default)
        continues the previous run: ``n_rounds`` more rounds of ``n_samples`` (default: the
        last round's) drawn from the posterior, with the same priors and settings; the
        result is the same as one run with all the rounds. ``restart=True`` starts again."""
        _check_keywords_of("posterior_kwargs", posterior_kwargs, _POSTERIOR_KEYS)
        if not restart and self.posterior is not None:
            return self._continue(n_samples, theta, x, n_rounds, dict(
                inference_method=inference_method, density_estimator_model=density_estimator_model,
                inference_kwargs=inference_kwargs, train_kwargs=train_kwargs,
                posterior_kwargs=posterior_kwargs, sbi_device=sbi_device, seed=seed),
                params, progress)
        priors = self._priors(params)
        if (theta is None) != (x is None):
            raise ValueError("theta and x: give both (pre-computed simulations) or neither")
        if theta is not None:
            n_samples = len(np.asarray(theta))
        if n_samples is None:
            raise ValueError("n_samples: give the number of simulations per round")
        table = self._inference_table(n_samples, n_rounds, inference_method,
                                      density_estimator_model, inference_kwargs, train_kwargs,
                                      sbi_device)
        if posterior_kwargs and "sample_with" in posterior_kwargs:
            table["posterior"] = str(posterior_kwargs["sample_with"])
        spec = dict(self._spec, seed=int(seed), priors=priors, inference=table)
        self._rust = _neurosbi.ProblemInferencer(json.dumps(spec), self._callables)
        self._spec_run, self._seed = spec, int(seed)
        self._settings = dict(
            inference_method=inference_method, density_estimator_model=density_estimator_model,
            inference_kwargs=inference_kwargs, train_kwargs=train_kwargs,
            posterior_kwargs=posterior_kwargs, sbi_device=sbi_device, seed=seed)
        self._new_store()
        self._given = None
        if theta is not None:
            self._given = (np.asarray(theta), np.asarray(x))
            self._train_on(theta, x, spec["inference"])
        else:
            self._run(progress, n_samples * n_rounds)
        self.posterior = self._rust.posterior()
        self._simulated = theta is None
        return self.posterior

    def _run(self, progress, n_simulations):
        show = progress if progress is not None else n_simulations >= 2000
        with progress_bar(show) as bar:
            self._rust.infer(store=self._store, progress=bar)

    def _continue(self, n_samples, theta, x, n_rounds, settings, params, progress):
        """More rounds of the previous run (``restart=False``): the same problem with the
        rounds appended; the store keeps the simulations made so far, so only the new
        rounds simulate (earlier rounds retrain, with the same seeds, to the same networks)."""
        why = "restart=False continues the previous run (pass restart=True to start again)"
        if theta is not None or x is not None or not self._simulated:
            raise ValueError(f"restart: {why}, which needs a posterior trained by infer() on "
                             "its own simulations, not a loaded one or given theta and x")
        if params and self._priors(params) != self._spec_run["priors"]:
            raise ValueError(f"priors: {why}; it keeps the priors of the first call")
        for key, value in settings.items():
            # Left at its default: the first call's; given: it must be the first call's.
            if value != _INFER_DEFAULTS[key] and value != self._settings.get(key):
                raise ValueError(f"{key}: {why}; it keeps the settings of the first call "
                                 f"({key}={self._settings.get(key)!r}, not {value!r})")
        table = dict(self._spec_run["inference"])
        done = table["simulations"]
        done = done if isinstance(done, list) else [done] * int(table.get("rounds", 1))
        n = int(n_samples) if n_samples is not None else done[-1]
        table.update(simulations=done + [n] * int(n_rounds), rounds=len(done) + int(n_rounds))
        spec = dict(self._spec_run, inference=table)
        self._rust = _neurosbi.ProblemInferencer(json.dumps(spec), self._callables)
        self._spec_run = spec
        self._run(progress, n * int(n_rounds))
        self.posterior = self._rust.posterior()
        return self.posterior

    def _train_on(self, theta, x, table):
        """Single-round training on given simulations with the same settings."""
        from . import Trainer  # the sbi-style trainer (API 2)
        trainer = Trainer(table["method"], self._rust.prior(), table["estimator"])
        trainer.append_simulations(theta, x)
        kw = {k: table[v] for k, v in _TRAIN_KEYS.items() if v in table}
        trainer.train(seed=self._seed, **kw)
        folder = tempfile.mkdtemp(prefix="neurosbi-posterior-")
        try:
            trainer.build_posterior().save(folder)
            self._rust.load(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _new_store(self):
        if self._store:
            shutil.rmtree(self._store, ignore_errors=True)
        self._store = tempfile.mkdtemp(prefix="neurosbi-store-")

    def __del__(self):
        if getattr(self, "_store", None):
            shutil.rmtree(self._store, ignore_errors=True)

    def _problem(self):
        """The validated problem (after ``infer`` or ``set_priors``)."""
        if self._rust is None:
            raise _neurosbi.Error("the priors are not known yet: call infer(name=[low, high], "
                                  "...) or set_priors(...) first")
        return self._rust

    def _need(self):
        if self._rust is None or self.posterior is None:
            raise _neurosbi.Error("posterior: not trained yet: call infer() or "
                                  "load_posterior() first")
        return self._rust

    # -- results --------------------------------------------------------------------------

    @property
    def param_names(self):
        """Free parameter names, in the order of the sample columns."""
        return list(self._problem().parameter_names)

    @property
    def param_units(self):
        """Units of the sample columns (the priors' units; "" is SI)."""
        return list(self._problem().parameter_units)

    @property
    def x_o(self):
        """Features of the observation, shape (dim x,)."""
        return self._problem().observed_features()

    def sample(self, shape, seed=None):
        """Posterior samples given the observation, shape (n, n_params), in the priors'
        units. ``seed=None`` draws what ``neurosbi fit`` writes to samples.npy for the same
        problem and seed; pass another seed for other draws."""
        n = shape if isinstance(shape, int) else int(np.prod(shape))
        seed = (self._seed ^ 0x5A5A) if seed is None else int(seed)
        self._samples = self._need().sample(n, seed)
        return self._samples

    def _row(self, values, what):
        """A parameter row from an array or a ``{name: value}`` dict (quantities allowed)."""
        if isinstance(values, dict):
            row = []
            for name, unit in zip(self.param_names, self.param_units):
                if name not in values:
                    raise ValueError(f"{what}: missing `{name}`{_suggest(name, values)}")
                v = values[name]
                si, _ = _quantity(v, None, f"{what}.{name}")
                scale = _neurosbi.unit(unit)[0] if unit and _dims(v) is not None else 1.0
                row.append(float(si) / scale)
            return np.array(row)
        return np.asarray(values, dtype=float).reshape(-1)

    def _check_plot_keywords(self, function, kwargs):
        for k in kwargs:
            if k not in _PLOT_KEYWORDS:
                raise TypeError(f"{function}() got an unexpected keyword argument '{k}'"
                                f"{_suggest(k, _PLOT_KEYWORDS)}")

    def pairplot(self, samples=None, points=None, **kwargs):
        """Pairplot of posterior samples (default: the last ``sample()``, else 10 000 new
        ones) with ``points`` marked; renders inline in Jupyter. sbi's cosmetic keywords
        (limits, labels, figsize, ...) are accepted and ignored."""
        self._check_plot_keywords("pairplot", kwargs)
        if samples is None:
            samples = self._samples if self._samples is not None else self.sample(10_000)
        pts = None if points is None else self._row(points, "points")
        return Figure(self._need().pairplot_svg(samples, pts), "pairplot")

    def conditional_pairplot(self, condition, resolution=50, **kwargs):
        """Conditional densities of every pair on a grid, the others held at ``condition``."""
        self._check_plot_keywords("conditional_pairplot", kwargs)
        row = self._row(condition, "condition")
        return Figure(self._need().conditional_pairplot_svg(row, int(resolution)),
                      "conditional_pairplot")

    def conditional_corrcoeff(self, condition, resolution=50, **kwargs):
        """Correlation matrix (n_params, n_params) of the conditional posterior."""
        self._check_plot_keywords("conditional_corrcoeff", kwargs)
        return self._need().conditional_corrcoeff(self._row(condition, "condition"),
                                                  int(resolution))

    def generate_traces(self, n_samples=1, output_var=None, seed=None):
        """Simulations of posterior samples. For one output (``output_var``, or the only
        one): traces of shape (n_traces, n_steps) for one sample, (n_samples, n_traces,
        n_steps) for several, in the output's unit; spike trains as lists of arrays (ms).
        ``output_var="all"``: a dict of every output."""
        rust = self._need()
        seed = (self._seed ^ 0x77) if seed is None else int(seed)
        sets = rust.generate_traces(int(n_samples), seed)
        names = list(rust.output_names)
        def one(j):
            per = [s[j] for s in sets]
            if names[j] == "spikes":
                return per[0] if n_samples == 1 else per
            return per[0] if n_samples == 1 else np.stack(per)
        if output_var == "all":
            return {n: one(j) for j, n in enumerate(names)}
        if output_var is None:
            output_var = names[0] if len(names) == 1 else "all"
            if output_var == "all":
                return {n: one(j) for j, n in enumerate(names)}
        if output_var not in names:
            raise ValueError(f"output_var: `{output_var}` is not an output "
                             f"(outputs: {', '.join(names)}){_suggest(output_var, names)}")
        return one(names.index(output_var))

    # -- files ----------------------------------------------------------------------------

    def save_summary_statistics(self, f, theta=None, x=None):
        """Saves the simulations of the last ``infer`` (or the given theta, x) to ``f``
        (``.npz`` with arrays ``theta`` and ``x``)."""
        if theta is None or x is None:
            if getattr(self, "_given", None) is not None:
                theta, x = self._given
            elif self._store and os.listdir(self._store):
                theta, x = _neurosbi.store_simulations(self._store)
            else:
                raise _neurosbi.Error("save_summary_statistics: no simulations yet: call "
                                      "infer() first or pass theta and x")
        np.savez_compressed(f, theta=np.asarray(theta), x=np.asarray(x))

    def load_summary_statistics(self, f):
        """(theta, x) saved by ``save_summary_statistics``; pass them to ``infer(theta=...,
        x=...)`` to train without simulating."""
        path = os.fspath(f)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no saved summary statistics there")
        with np.load(path) as data:
            return data["theta"], data["x"]

    def save_posterior(self, f):
        """Saves the posterior into the folder ``f`` (neurosbi's versioned format)."""
        self._need().save(os.fspath(f))

    def load_posterior(self, f):
        """Loads a posterior saved by ``save_posterior`` for this problem; needs the priors
        of the problem, so call ``infer`` (or ``infer(..., n_samples=...)``) definitions
        first via ``set_priors``."""
        if self._rust is None:
            raise _neurosbi.Error("load_posterior: the priors are not known yet: call "
                                  "set_priors(name=[low, high], ...) or infer() first")
        self._rust.load(os.fspath(f))
        self.posterior = self._rust.posterior()
        self._simulated = False
        return self.posterior

    def set_priors(self, seed=0, **params):
        """Declares the priors without training (e.g. before ``load_posterior``)."""
        spec = dict(self._spec, seed=int(seed), priors=self._priors(params))
        self._rust = _neurosbi.ProblemInferencer(json.dumps(spec), self._callables)
        self._spec_run, self._seed = spec, int(seed)
        self.posterior, self._simulated = None, False

    def to_fit_file(self, path, samples=10_000, output=None):
        """Writes the problem of the last ``infer`` as a fit file (its arrays in files beside
        it); ``neurosbi fit`` on it runs the same problem with the same seed and draws
        ``samples`` posterior samples, the same as ``sample((samples,))``."""
        if self._rust is None:
            raise _neurosbi.Error("to_fit_file: call infer() or set_priors() first")
        if self._callables:
            names = ", ".join(f"features.{v}: {n}" for v, n, _, _ in self._callables)
            raise ValueError(f"to_fit_file: a fit file cannot carry Python feature callables "
                             f"({names}); name catalogue features instead")
        spec = dict(self._spec_run)
        spec["inference"] = dict(spec.get("inference", {}), samples=int(samples))
        if output is not None:
            spec["output"] = os.fspath(output)
        _neurosbi.write_fit_file(json.dumps(spec), os.fspath(path))

    def __repr__(self):
        state = "trained" if self.posterior is not None else "not trained"
        outs = ", ".join(self._outputs)
        return f"Inferencer(outputs=[{outs}], {state})"
