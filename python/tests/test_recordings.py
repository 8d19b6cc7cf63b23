"""Recordings from Python: neurosbi-io's ABF reader against the pyabf/neo reference values
of the committed fixtures (crates/neurosbi-io/tests/data), and a recording as an
Inferencer's observation and stimulus."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import neurosbi

DATA = pathlib.Path(__file__).resolve().parents[2] / "crates/neurosbi-io/tests/data"
STEPS = DATA / "abf/17o05028_ic_steps.abf"


def references():
    return sorted((DATA / "reference").glob("*.json"))


def test_every_reference_file_reads_as_pyabf_and_neo_read_it():
    refs = references()
    assert len(refs) >= 10
    for path in refs:
        r = json.loads(path.read_text())
        rec = neurosbi.read_recording(DATA / "abf" / r["file"])
        name = r["file"]
        assert rec.format == f"ABF {r['version']}", name
        assert rec.sample_rate_hz == pytest.approx(r["sample_rate_hz"], rel=1e-12), name
        assert [c[0] for c in rec.channels] == r["channel_names"], name
        assert [c[1] for c in rec.channels] == r["channel_units"], name
        assert rec.sweep_count == r["sweep_count"], name
        assert rec.sweep_lengths == r["sweep_lengths"], name
        for s, per_channel in enumerate(r["sweeps"]):
            for c, ref in enumerate(per_channel):
                got = rec.sweep(s, channel=c)[::ref["sample_step"]]
                np.testing.assert_allclose(got, ref["sample_value"], rtol=1e-9, atol=0,
                                           err_msg=f"{name} sweep {s} channel {c}")


def test_epochs_commands_and_inspect_of_a_step_protocol():
    r = json.loads((DATA / "reference/17o05028_ic_steps.json").read_text())
    rec = neurosbi.read_recording(STEPS)
    assert rec.commands[0] == ("Cmd 0", "pA") and rec.units("IN 0") == "mV"
    for s, want in enumerate(r["epochs"][0]["sweeps"]):
        got = rec.epochs(s)
        assert [(e["start"], e["stop"], e["level"], e["kind"]) for e in got] == \
               [(e["start"], e["stop"], e["level"], e["type"]) for e in want], s
    cmd = rec.command(0)
    ref = r["epochs"][0]["command_sweep0"]
    assert len(cmd) == ref["len"] and cmd.sum() == ref["sum"]
    np.testing.assert_array_equal(cmd[::ref["sample_step"]], ref["sample_value"])
    assert rec.sweeps("IN 0", sweeps=[1, 3]).shape == (2, 60000)
    text = neurosbi.inspect(STEPS)
    assert "IN 0" in text and "mV" in text and "16 sweep" in text and "20000 Hz" in text


def test_bad_recordings_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.abf"):
        neurosbi.read_recording(tmp_path / "nowhere.abf")
    fake = tmp_path / "fake.abf"
    fake.write_text("not an abf file at all, just text of some length " * 20)
    with pytest.raises(ValueError, match="fake.abf"):
        neurosbi.read_recording(fake)
    with pytest.raises(ValueError, match=r"Vm.*IN 0"):
        neurosbi.read_recording(STEPS).sweep(0, channel="Vm")
    nwb = tmp_path / "cell.nwb"
    nwb.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(neurosbi.Error, match=r"cell\.nwb.*wheel is built without NWB support"):
        neurosbi.read_recording(nwb)


ADEX = """
dv/dt = (gL*(EL - v) + gL*DeltaT*exp((v - VT)/DeltaT) + I - w)/C : volt
dw/dt = (a*(v - EL) - w)/tau_w : amp
gL : siemens (constant)
C : farad (constant)
EL : volt (constant)
VT : volt (constant)
a : siemens (constant)
b : amp (constant)
"""
ADEX_PRIORS = dict(gL=["1*nS", "8*nS"], C=["20*pF", "150*pF"], EL=["-65*mV", "-40*mV"],
                   VT=["-55*mV", "-35*mV"], a=["0*nS", "2*nS"], b=["0*pA", "30*pA"])


def real_cell():
    rec = neurosbi.read_recording(STEPS)
    return neurosbi.Inferencer(
        dt="0.1*ms", model=ADEX, input={"I": rec.stimulus(sweeps=[8, 10])},
        output={"v": rec.output("IN 0", sweeps=[8, 10])}, features={"v": ["spike_count"]},
        method="euler", threshold="v > 0*mV", reset="v = Vr\nw += b", duration="700*ms",
        param_init={"v": "EL", "w": "0*amp"},
        namespace={"DeltaT": "2*mV", "Vr": "-55*mV", "tau_w": "100*ms"})


def test_a_recording_is_the_observation_and_the_stimulus():
    inf = real_cell()
    inf.set_priors(**ADEX_PRIORS)
    # The recorded spike counts of sweeps 8 and 10 (docs/real-data.md: 11 and 15).
    assert inf.x_o.tolist() == [11.0, 15.0]


CLI = os.environ.get("NEUROSBI_CLI")


@pytest.mark.skipif(not CLI, reason="NEUROSBI_CLI is not set")
def test_a_recording_problem_simulates_as_the_cli_s(tmp_path):
    """The fit file `to_fit_file` writes reads the same recording (its `data` and stimulus
    `from` keys): `neurosbi simulate` + `export` give the simulations infer() made. (Not a
    whole `neurosbi fit`: a posterior trained for seconds on this problem leaks out of the
    prior, and the CLI's predictive checks then take minutes in a debug build.)"""
    inf = real_cell()
    inf.infer(n_samples=100, seed=1, train_kwargs=dict(max_num_epochs=2), **ADEX_PRIORS)
    theta, x = neurosbi._neurosbi.store_simulations(inf._store)
    inf.to_fit_file(tmp_path / "cell.toml", output=tmp_path / "out")
    text = (tmp_path / "cell.toml").read_text()
    assert 'sweeps = [8, 10]' in text and 'channel = "IN 0"' in text
    for command in ("simulate", "export"):
        subprocess.run([CLI, command, str(tmp_path / "cell.toml"), "--quiet"], check=True)
    assert np.array_equal(np.load(tmp_path / "out" / "theta.npy"), theta)
    assert np.array_equal(np.load(tmp_path / "out" / "x.npy"), x)
