"""The Python peers of `cargo xtask bench io` (issue 21), one measurement per process.

    python peers.py make-nwb SAMPLE.abf OUT.nwb MB   # pynwb writes an NWB of about MB MB
    python peers.py pyabf FILE.abf                    # one JSON line: seconds, MB/s, memory
    python peers.py pynwb FILE.nwb

make-nwb repeats the sweeps of a real current-clamp ABF (int16 codes as pyabf stores them)
as CurrentClampSeries with a conversion (volts per code), a rate and sweep numbers, plus a
float32 CurrentClampStimulusSeries per sweep, uncompressed, until the series' data fill MB
megabytes (responses and stimuli together).

pyabf: `pyabf.ABF(path)` (reads every sample, scaled) and `sweepY` of every sweep and
channel, summed. pynwb: every CurrentClampSeries and CurrentClampStimulusSeries read in full
(`data[:]`) and scaled by conversion and offset in float64, summed. The same work as the Rust
side (`io_bench read`): every sample of every sweep in its units.

Peak memory is VmHWM of this process less its resident memory before reading (after the
imports).
"""

import json
import os
import sys
import time
from datetime import datetime, timezone


def memory():
    rss = hwm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return rss, hwm


def report(reader, path, t, base, total, sweeps):
    _, peak = memory()
    mb = os.path.getsize(path) / 1e6
    print(
        json.dumps(
            {
                "reader": reader,
                "file": path,
                "file_mb": round(mb, 3),
                "sweeps": sweeps,
                "seconds": round(t, 4),
                "mb_per_s": round(mb / t, 1),
                "peak_extra_mb": round((peak - base) / 1e6, 1),
                "checksum": total,
            }
        )
    )


def read_pyabf(path):
    import pyabf

    base, _ = memory()
    t0 = time.perf_counter()
    abf = pyabf.ABF(path)
    total = 0.0
    for c in abf.channelList:
        for s in abf.sweepList:
            abf.setSweep(s, channel=c)
            total += float(abf.sweepY.sum(dtype="float64"))
    report("pyabf " + pyabf.__version__, path, time.perf_counter() - t0, base, total, abf.sweepCount)


def read_pynwb(path):
    import numpy as np
    import pynwb
    from pynwb import NWBHDF5IO

    base, _ = memory()
    t0 = time.perf_counter()
    total = 0.0
    sweeps = 0
    with NWBHDF5IO(path, "r") as io:
        nwb = io.read()
        series = list(nwb.acquisition.values()) + list(nwb.stimulus.values())
        for s in series:
            if type(s).__name__ not in ("CurrentClampSeries", "CurrentClampStimulusSeries"):
                continue
            v = np.asarray(s.data[:], dtype=np.float64) * s.conversion + s.offset
            total += float(v.sum())
            sweeps += type(s).__name__ == "CurrentClampSeries"
    report("pynwb " + pynwb.__version__, path, time.perf_counter() - t0, base, total, sweeps)


def make_nwb(sample, out, mb):
    import numpy as np
    import pyabf
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    abf = pyabf.ABF(sample)
    nwb = NWBFile(
        session_description=f"neurosbi io bench: sweeps of {os.path.basename(sample)} repeated",
        identifier="neurosbi-io-bench",
        session_start_time=datetime(2018, 1, 1, tzinfo=timezone.utc),
    )
    device = nwb.create_device(name="amplifier")
    elec = nwb.create_icephys_electrode(name="elec0", description="pipette", device=device)
    sweeps = []
    for s in abf.sweepList:
        abf.setSweep(s)
        y = abf.sweepY.astype(np.float64)  # mV
        codes = np.round(y / 0.0305).astype(np.int16)  # 0.0305 mV per code
        abf.setSweep(s, channel=0)
        stim = (abf.sweepC * 1e-12).astype(np.float32)  # pA -> A
        sweeps.append((codes, stim))
    per_sweep = sweeps[0][0].nbytes + sweeps[0][1].nbytes
    n = max(1, int(round(mb * 1e6 / per_sweep)))
    rate = float(abf.sampleRate)
    for k in range(n):
        codes, stim = sweeps[k % len(sweeps)]
        nwb.add_acquisition(
            CurrentClampSeries(
                name=f"sweep_{k:04d}",
                data=codes,
                conversion=0.0305e-3,
                offset=0.0,
                unit="volts",
                rate=rate,
                starting_time=0.0,
                sweep_number=k,
                electrode=elec,
                gain=1.0,
            )
        )
        nwb.add_stimulus(
            CurrentClampStimulusSeries(
                name=f"stimulus_{k:04d}",
                data=stim,
                unit="amperes",
                rate=rate,
                starting_time=0.0,
                sweep_number=k,
                electrode=elec,
                gain=1.0,
            )
        )
    with NWBHDF5IO(out, "w") as io:
        io.write(nwb)
    print(f"peers.py: wrote {out} ({n} sweeps, {os.path.getsize(out) / 1e6:.1f} MB)", file=sys.stderr)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "make-nwb" and len(sys.argv) == 5:
        make_nwb(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif what == "pyabf" and len(sys.argv) == 3:
        read_pyabf(sys.argv[2])
    elif what == "pynwb" and len(sys.argv) == 3:
        read_pynwb(sys.argv[2])
    else:
        sys.exit(__doc__)
