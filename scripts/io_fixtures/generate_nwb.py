"""NWB 2.x fixtures for neurosbi-io's NWB reader, written by pynwb from the sample ABF files.

Writes into crates/neurosbi-io/tests/data/nwb/:
- ic_steps.nwb: 17o05028_ic_steps.abf (a real neuron, current steps), its even sweeps 0, 2, ..
  14 (all 16 would pass 1 MB; the gaps in sweep_number are kept): per sweep a
  CurrentClampSeries of the ADC's int16 codes with conversion (volts per code) and a non-zero
  offset, rate, sweep_number, gzip-compressed, plus a CurrentClampStimulusSeries (float32,
  amperes) and the icephys intracellular-recordings table.
- ic_ramp.nwb: 17o05027_ic_ramp.abf (2 sweeps of a current ramp): float32 volts with
  `timestamps` instead of a rate (the stimulus series link to the response's), no
  sweep_number (the reader then pairs series by name order).
- axon5.nwb: File_axon_5.abf (9 sweeps, the first 8000 of 20000 samples each, to stay under
  1 MB): float64 millivolts with conversion 1e-3, each sweep with its own starting_time, no
  stimulus series.
- no_current_clamp.nwb: a VoltageClampSeries only (the first 2000 samples of
  171116sh_0014.abf), for the error test.

and, read back with pynwb, reference/<name>.json: sampling rate, channel units, sweep count,
per sweep and channel the length, the float64 sum, and every `stride`-th value (data as float64
times conversion plus offset, resolution ignored), which tests/nwb_reference.rs compares.

Run from the repository root:  python scripts/io_fixtures/generate_nwb.py
"""

import json
import os
from datetime import datetime, timezone

import numpy as np
import pyabf
from hdmf.backends.hdf5.h5_utils import H5DataIO
from pynwb import NWBHDF5IO, NWBFile
from pynwb.icephys import (
    CurrentClampSeries,
    CurrentClampStimulusSeries,
    VoltageClampSeries,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "crates", "neurosbi-io", "tests", "data")
ABF = os.path.join(DATA, "abf")
OUT = os.path.join(DATA, "nwb")
SAMPLES_PER_SWEEP = 256


def new_file(abf_name):
    # Fixed identifier and dates so that reruns write the same content.
    nwb = NWBFile(
        session_description=f"converted from pyABF sample {abf_name}",
        identifier=f"neurosbi-fixture-{abf_name}",
        session_start_time=datetime(2018, 1, 1, tzinfo=timezone.utc),
        file_create_date=datetime(2018, 1, 1, tzinfo=timezone.utc),
    )
    device = nwb.create_device(name="amplifier")
    electrode = nwb.create_icephys_electrode(
        name="elec0", description="whole-cell patch pipette", device=device
    )
    return nwb, electrode


def write(nwb, name):
    path = os.path.join(OUT, name)
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


def ic_steps():
    abf = pyabf.ABF(os.path.join(ABF, "17o05028_ic_steps.abf"))
    nwb, elec = new_file("17o05028_ic_steps.abf")
    gain_mv = float(abf._dataGain[0])  # mV per ADC code
    conversion = gain_mv * 1e-3  # volts per code
    shift = -2294  # codes: stored = code - shift, offset = shift * conversion (about -70 mV)
    offset = shift * conversion
    for s in abf.sweepList[::2]:
        abf.setSweep(s)
        codes = np.round(abf.sweepY / gain_mv).astype(np.int64) - shift
        assert codes.min() >= -32768 and codes.max() <= 32767
        cc = CurrentClampSeries(
            name=f"CurrentClampSeries_{s:03d}",
            data=H5DataIO(codes.astype(np.int16), compression="gzip"),
            electrode=elec,
            gain=1.0,
            conversion=conversion,
            offset=offset,
            resolution=conversion,
            rate=float(abf.sampleRate),
            starting_time=s * abf.sweepLengthSec,
            sweep_number=s,
        )
        stim = CurrentClampStimulusSeries(
            name=f"CurrentClampStimulusSeries_{s:03d}",
            data=H5DataIO((abf.sweepC * 1e-12).astype(np.float32), compression="gzip"),
            electrode=elec,
            gain=1.0,
            rate=float(abf.sampleRate),
            starting_time=s * abf.sweepLengthSec,
            sweep_number=s,
        )
        nwb.add_acquisition(cc)
        nwb.add_stimulus(stim)
        nwb.add_intracellular_recording(electrode=elec, stimulus=stim, response=cc)
    return write(nwb, "ic_steps.nwb")


def ic_ramp():
    abf = pyabf.ABF(os.path.join(ABF, "17o05027_ic_ramp.abf"))
    nwb, elec = new_file("17o05027_ic_ramp.abf")
    for s in abf.sweepList:
        abf.setSweep(s)
        t = s * abf.sweepLengthSec + np.arange(abf.sweepPointCount) / abf.sampleRate
        cc = CurrentClampSeries(
            name=f"ramp_response_{s}",
            data=H5DataIO((abf.sweepY * 1e-3).astype(np.float32), compression="gzip"),
            electrode=elec,
            gain=1.0,
            timestamps=H5DataIO(t, compression="gzip"),
        )
        nwb.add_acquisition(cc)
        nwb.add_stimulus(
            CurrentClampStimulusSeries(
                name=f"ramp_stimulus_{s}",
                data=H5DataIO((abf.sweepC * 1e-12).astype(np.float32), compression="gzip"),
                electrode=elec,
                gain=1.0,
                timestamps=cc,  # an HDF5 link to the response's timestamps
            )
        )
    return write(nwb, "ic_ramp.nwb")


def axon5():
    abf = pyabf.ABF(os.path.join(ABF, "File_axon_5.abf"))
    nwb, elec = new_file("File_axon_5.abf")
    for s in abf.sweepList:
        abf.setSweep(s)
        nwb.add_acquisition(
            CurrentClampSeries(
                name=f"sweep_{s}",
                data=abf.sweepY[:8000].astype(np.float64),  # millivolts
                electrode=elec,
                gain=1.0,
                conversion=1e-3,
                rate=float(abf.sampleRate),
                starting_time=s * abf.sweepLengthSec,
                sweep_number=s,
            )
        )
    return write(nwb, "axon5.nwb")


def no_current_clamp():
    abf = pyabf.ABF(os.path.join(ABF, "171116sh_0014.abf"))
    nwb, elec = new_file("171116sh_0014.abf")
    abf.setSweep(0)
    nwb.add_acquisition(
        VoltageClampSeries(
            name="voltage_clamp_0",
            data=(abf.sweepY[:2000] * 1e-12).astype(np.float32),
            electrode=elec,
            gain=1.0,
            rate=float(abf.sampleRate),
            sweep_number=0,
        )
    )
    return write(nwb, "no_current_clamp.nwb")


def sort_key(series):
    # The reader's order: by sweep_number when every series has one, else by name.
    return (series.sweep_number if series.sweep_number is not None else -1, series.name)


def values(series):
    # What the NWB schema defines: data times conversion plus offset, in float64.
    return np.asarray(series.data[:], dtype=np.float64) * series.conversion + series.offset


def rate(series):
    if series.rate is not None:
        return float(series.rate)
    t = np.asarray(series.timestamps[:], dtype=np.float64)
    return (len(t) - 1) / (t[-1] - t[0])


def reference(path):
    with NWBHDF5IO(path, "r") as io:
        nwb = io.read()
        vs = sorted(
            (x for x in nwb.acquisition.values() if type(x) is CurrentClampSeries), key=sort_key
        )
        st = sorted(
            (x for x in nwb.stimulus.values() if type(x) is CurrentClampStimulusSeries),
            key=sort_key,
        )
        channels = [("V", vs)] + ([("A", st)] if st else [])
        # Rates from timestamps differ between sweeps in the last bits; the reader takes the
        # first voltage series' rate and checks the others against it.
        rates = [rate(x) for _, ser in channels for x in ser]
        assert all(abs(r / rates[0] - 1) < 1e-9 for r in rates), rates
        sweeps = []
        for k in range(len(vs)):
            row = []
            for _, ser in channels:
                v = values(ser[k])
                stride = max(1, len(v) // SAMPLES_PER_SWEEP)
                row.append(
                    {
                        "series": ser[k].name,
                        "unit": ser[k].unit,
                        "conversion": float(ser[k].conversion),
                        "offset": float(ser[k].offset),
                        "len": len(v),
                        "sum": float(v.sum()),
                        "stride": stride,
                        "values": v[::stride].tolist(),
                    }
                )
            sweeps.append(row)
        return {
            "file": os.path.basename(path),
            "sample_rate_hz": rates[0],
            "sweep_rates_hz": [rate(x) for x in vs],
            "channel_units": [u for u, _ in channels],
            "sweep_count": len(vs),
            "sweep_numbers": [None if x.sweep_number is None else int(x.sweep_number) for x in vs],
            "sweeps": sweeps,
        }


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(os.path.join(OUT, "reference"), exist_ok=True)
    for make in (ic_steps, ic_ramp, axon5):
        path = make()
        ref = reference(path)
        size = os.path.getsize(path)
        assert size < 1_000_000, (path, size)
        out = os.path.join(OUT, "reference", os.path.basename(path)[: -len(".nwb")] + ".json")
        with open(out, "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        print(f"{path}: {size} bytes, {ref['sweep_count']} sweeps, {ref['sample_rate_hz']} Hz")
    print(no_current_clamp())


if __name__ == "__main__":
    main()
