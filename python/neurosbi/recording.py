"""Patch-clamp recordings: ``read_recording(path)`` (ABF 1 and 2; NWB only in a wheel built
with the ``nwb`` feature) and ``inspect(path)``, read by neurosbi-io in Rust.

A recording's sweeps are numpy arrays in the channel's units; ``Recording.output(...)`` and
``Recording.stimulus(...)`` hand a selection of sweeps to ``neurosbi.Inferencer``, which then
reads the file the way a fit file's ``data = "cell.abf"`` does (units converted and checked
against the model, resampled to ``dt``).
"""

from __future__ import annotations

import os

import numpy as np

from . import _neurosbi


class RecordingSelection:
    """Sweeps of one channel of a recording file, as an ``Inferencer`` output
    (``kind="output"``) or input (``kind="stimulus"``: the command waveform of the epoch
    table)."""

    def __init__(self, recording, kind, channel, sweeps, interpolate, command):
        self.recording, self.kind = recording, kind
        self.channel, self.sweeps = channel, sweeps
        self.interpolate, self.command = interpolate, command

    def description(self):
        """The fit file's keys for this selection (``data``/``from`` with the selectors)."""
        path = os.fspath(self.recording.path)
        out = {"data" if self.kind == "output" else "from": path}
        if self.sweeps is not None:
            out["sweeps"] = [int(s) for s in self.sweeps]
        if self.kind == "output" and self.channel is not None:
            out["channel"] = self.channel
        if self.kind == "stimulus" and self.command is not None:
            out["command"] = int(self.command)
        if self.interpolate:
            out["interpolate"] = True
        return out

    def n_samples(self):
        """Samples of the first selected sweep (the run's length when nothing else gives it)."""
        first = self.sweeps[0] if self.sweeps else 0
        return self.recording.sweep_lengths[first]

    def __repr__(self):
        return (f"RecordingSelection({self.kind}, {os.fspath(self.recording.path)!r}, "
                f"channel={self.channel!r}, sweeps={self.sweeps!r})")


class Recording:
    """A recording read from a file: rate, channels (name, units), sweeps as numpy arrays in
    the channel's units, command outputs with their epochs, tags."""

    def __init__(self, rust):
        self._rust = rust

    path = property(lambda self: self._rust.path, doc="The file.")
    format = property(lambda self: self._rust.format, doc="Format and version.")
    sample_rate_hz = property(lambda self: self._rust.sample_rate_hz, doc="Samples per second.")
    dt = property(lambda self: 1.0 / self._rust.sample_rate_hz, doc="Sampling interval (s).")
    channels = property(lambda self: self._rust.channels, doc="(name, units) per channel.")
    commands = property(lambda self: self._rust.commands, doc="(name, units) per command.")
    tags = property(lambda self: self._rust.tags, doc="(time in s, comment) per tag.")
    sweep_count = property(lambda self: self._rust.sweep_count, doc="Number of sweeps.")
    sweep_lengths = property(lambda self: self._rust.sweep_lengths, doc="Samples per sweep.")

    def units(self, channel=0):
        """The units of ``channel`` (an index or a name)."""
        return self.channels[self._rust.channel_index(channel)][1]

    def sweep(self, sweep, channel=0):
        """One sweep of ``channel`` (index or name), in the channel's units."""
        return self._rust.sweep(channel, int(sweep))

    def sweeps(self, channel=0, sweeps=None):
        """Sweeps of ``channel`` as rows of one array (n_sweeps, n_samples); all sweeps by
        default. Sweeps of different lengths are refused (take them one by one)."""
        chosen = range(self.sweep_count) if sweeps is None else sweeps
        rows = [self._rust.sweep(channel, int(s)) for s in chosen]
        if len({len(r) for r in rows}) > 1:
            raise ValueError("sweeps: the sweeps have different lengths "
                             f"({sorted({len(r) for r in rows})}); take them one by one")
        return np.array(rows)

    def command(self, sweep, dac=0):
        """The command waveform of ``sweep`` from the epoch table, in the command's units."""
        return self._rust.command(int(sweep), int(dac))

    def epochs(self, sweep, dac=0):
        """The epochs of ``sweep``: dicts with start, stop (samples), level, kind."""
        return self._rust.epochs(int(sweep), int(dac))

    def output(self, channel=None, sweeps=None, interpolate=False):
        """These sweeps of ``channel`` as an ``Inferencer`` output: ``output={"v":
        rec.output("IN 0", sweeps=[8, 10])}``."""
        return RecordingSelection(self, "output", channel, sweeps, interpolate, None)

    def stimulus(self, sweeps=None, command=None, interpolate=False):
        """The command waveforms of these sweeps (epoch table of output ``command``) as an
        ``Inferencer`` input: ``input={"I": rec.stimulus(sweeps=[8, 10])}``."""
        return RecordingSelection(self, "stimulus", None, sweeps, interpolate, command)

    def describe(self):
        """Channels, units, sweeps, protocol epochs and duration, in words."""
        return self._rust.describe()

    def __repr__(self):
        return (f"Recording({os.fspath(self.path)!r}, {self.format}, "
                f"{self.sample_rate_hz} Hz, {self.sweep_count} sweeps, channels "
                f"{[c[0] for c in self.channels]})")


def read_recording(path):
    """Reads a recording file (ABF 1 or 2; NWB needs a wheel built with the ``nwb``
    feature). Errors name the file and what is wrong."""
    return Recording(_neurosbi.read_recording(os.fspath(path)))


def inspect(path):
    """What ``neurosbi inspect FILE`` prints, as text: format, rate, channels with units,
    sweeps, the command outputs' epochs, tags."""
    return read_recording(path).describe()
