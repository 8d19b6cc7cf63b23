"""Reference values for neurosbi-io's ABF reader, from pyabf and neo.

For every ABF file in crates/neurosbi-io/tests/data/abf/ this writes
crates/neurosbi-io/tests/data/reference/<name>.json with what the Rust tests compare:
header facts (version, data format, sampling rate, channels, units, sweep count and lengths),
the epoch table and the per-sweep epochs pyabf derives from it, tags, and per sweep and
channel the SHA-256 of the stored samples (int16 or float32, as neo reads them raw),
neo's gain and offset, and a strided sample of neo's float64 values.

Raw samples equal bit for bit (hash) and gain/offset equal make every scaled sample equal;
the strided float64 values check the scaling formula end to end. pyabf's own float32 values
are checked here against neo's float64 values (pyabf scales in float32, so only to ~1e-6).

Run from the repository root:  python scripts/io_fixtures/generate_abf.py
"""

import hashlib
import json
import os
import sys
import warnings

import neo
import numpy as np
import pyabf
import pyabf.waveform

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "crates", "neurosbi-io", "tests", "data", "abf")
OUT = os.path.join(ROOT, "crates", "neurosbi-io", "tests", "data", "reference")
SAMPLES_PER_FILE = 1024

EPOCH_TYPES = {0: "off", 1: "step", 2: "ramp", 3: "pulse", 4: "triangle", 5: "cosine", 7: "biphasic"}


def clean(text):
    """pyabf writes '?' for an empty name; the Rust reader gives an empty string."""
    return "" if text in ("?", None) else text


def sweep_bounds(abf):
    """(start, length) of each sweep in samples per channel, as pyabf cuts them."""
    bounds = []
    for sweep in range(abf.sweepCount):
        abf.setSweep(sweep, channel=0)
        length = len(abf.sweepY)
        start = bounds[-1][0] + bounds[-1][1] if bounds else 0
        bounds.append((start, length))
    return bounds


def neo_raw(path):
    """neo's raw samples per channel over the whole file, and its gain/offset per channel."""
    reader = neo.rawio.AxonRawIO(path)
    reader.parse_header()
    chans = reader.header["signal_channels"]
    pieces = []
    for seg in range(reader.header["nb_segment"][0]):
        pieces.append(reader.get_analogsignal_chunk(0, seg, stream_index=0))
    raw = np.concatenate(pieces, axis=0)
    scaled = reader.rescale_signal_raw_to_float(raw, dtype="float64", stream_index=0)
    gains = [float(c["gain"]) for c in chans]
    offsets = [float(c["offset"]) for c in chans]
    rate = float(reader.get_signal_sampling_rate(0))
    return raw, scaled, gains, offsets, rate


def channel_sweeps(abf, raw, scaled, gains, offsets, bounds):
    sweeps = []
    for sweep, (start, length) in enumerate(bounds):
        per_channel = []
        for ch in range(abf.channelCount):
            r = np.ascontiguousarray(raw[start:start + length, ch])
            s = scaled[start:start + length, ch]
            abf.setSweep(sweep, channel=ch)
            # pyabf scales in float32: agreement to float32 precision shows both read the same.
            tol = 2e-6 * max(1.0, float(np.max(np.abs(s))))
            assert np.max(np.abs(abf.sweepY.astype(np.float64) - s)) <= tol, (abf.abfID, sweep, ch)
            # At most ~SAMPLES_PER_FILE values per channel in all, at least 8 per sweep.
            per_sweep = max(8, SAMPLES_PER_FILE // len(bounds))
            step = max(1, length // per_sweep)
            per_channel.append({
                "raw_sha256": hashlib.sha256(r.tobytes()).hexdigest(),
                "gain": gains[ch],
                "offset": offsets[ch],
                "sample_step": step,
                "sample_value": [float(v) for v in s[::step]],
                "sum": float(np.sum(s)),
            })
        sweeps.append(per_channel)
    return sweeps


def command_sweep0(abf, dac):
    """pyabf's command waveform for sweep 0 of a DAC driven by its epoch table, else None."""
    header = abf._headerV1 if abf.abfVersion["major"] == 1 else abf._dacSection
    if dac >= len(header.nWaveformEnable):
        return None
    if not header.nWaveformEnable[dac] or header.nWaveformSource[dac] != 1:
        return None
    abf.setSweep(0, channel=dac)
    command = np.asarray(abf.sweepC, dtype=np.float64)
    return None if np.isnan(command).any() else command


def epochs(abf):
    """pyabf's epoch table per DAC, and the per-sweep epochs (start, stop, level, type)."""
    out = []
    for dac in range(len(abf.holdingCommand)):
        if dac >= abf.channelCount:
            break
        table = pyabf.waveform.EpochTable(abf, dac)
        rows = [{
            "type": EPOCH_TYPES.get(e.epochType, "unknown"),
            "first_level": float(e.level),
            "delta_level": float(e.levelDelta),
            "first_duration": int(e.duration),
            "delta_duration": int(e.durationDelta),
            "pulse_period": int(e.pulsePeriod),
            "pulse_width": int(e.pulseWidth),
        } for e in table.epochs]
        per_sweep = []
        for wave in table.epochWaveformsBySweep:
            per_sweep.append([{
                "start": int(p1), "stop": int(p2), "level": float(level), "type": kind.lower(),
            } for p1, p2, level, kind in zip(wave.p1s, wave.p2s, wave.levels, wave.types)])
        command = command_sweep0(abf, dac)
        out.append({
            "dac": dac,
            "holding": float(abf.holdingCommand[dac]),
            "return_to_holding": not table.returnToHold,
            "rows": rows,
            "sweeps": per_sweep,
            # pyabf's command waveform of sweep 0 when the epoch table drives this DAC.
            "command_sweep0": None if command is None else {
                "len": int(len(command)),
                "sum": float(np.sum(command)),
                "sample_step": max(1, len(command) // 64),
                "sample_value": [float(v) for v in command[::max(1, len(command) // 64)]],
            },
        })
    return out


def reference(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        abf = pyabf.ABF(path)
        raw, scaled, gains, offsets, neo_rate = neo_raw(path)
    bounds = sweep_bounds(abf)
    assert sum(n for _, n in bounds) <= raw.shape[0], abf.abfID
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    dac_units = [clean(u) for u in abf.dacUnits]
    return {
        "file": os.path.basename(path),
        "file_sha256": digest,
        "generator": {"pyabf": pyabf.__version__, "neo": neo.__version__, "numpy": np.__version__},
        "version": abf.abfVersionString,
        "major": int(abf.abfVersion["major"]),
        "data_format": "int16" if abf._nDataFormat == 0 else "float32",
        "operation_mode": int(abf.nOperationMode),
        "sample_rate_hz": neo_rate,
        "pyabf_rate_hz": int(abf.dataRate),
        "channel_names": [clean(n) for n in abf.adcNames],
        "channel_units": [clean(u) for u in abf.adcUnits],
        "dac_names": [clean(n) for n in abf.dacNames][:len(dac_units)],
        "dac_units": dac_units,
        "sweep_count": abf.sweepCount,
        "sweep_lengths": [n for _, n in bounds],
        "tags": [{"time_s": float(t), "comment": c} for t, c in zip(abf.tagTimesSec, abf.tagComments)],
        "epochs": epochs(abf),
        "sweeps": channel_sweeps(abf, raw, scaled, gains, offsets, bounds),
    }


def finite(value):
    """JSON has no NaN: an unknown level (NaN) is written as null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def main():
    os.makedirs(OUT, exist_ok=True)
    names = sorted(n for n in os.listdir(DATA) if n.lower().endswith(".abf"))
    if not names:
        sys.exit(f"no .abf files in {DATA}")
    for name in names:
        ref = reference(os.path.join(DATA, name))
        target = os.path.join(OUT, os.path.splitext(name)[0] + ".json")
        with open(target, "w") as f:
            json.dump(finite(ref), f, separators=(",", ":"), allow_nan=False)
            f.write("\n")
        print(f"{name}: v{ref['version']} {ref['data_format']} {len(ref['channel_names'])} ch, "
              f"{ref['sweep_count']} sweeps -> {os.path.relpath(target, ROOT)}")


if __name__ == "__main__":
    main()
