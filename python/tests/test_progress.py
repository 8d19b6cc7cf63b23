"""Progress bars: tqdm driven by the engine (simulations and epochs), and the plain-text
bar when tqdm is missing."""

import sys

import pytest

from test_inferencer import PRIORS, make

tqdm_auto = pytest.importorskip("tqdm.auto")


def test_tqdm_bars_count_simulations_and_epochs(monkeypatch):
    bars = []

    class Recorded(tqdm_auto.tqdm):
        def close(self):
            if not self.disable:  # tqdm's close runs again from __del__, disabled by then
                bars.append((self.desc, self.total, self.n))
            super().close()

    monkeypatch.setattr(tqdm_auto, "tqdm", Recorded)
    inf = make()
    inf.infer(n_samples=1200, seed=0, progress=True, train_kwargs=dict(max_num_epochs=3),
              **PRIORS)
    # Chunks of 500 simulations: the bar reaches the total; then one step per epoch.
    assert bars == [("simulating", 1200, 1200), ("training", 3, 3)], bars


def test_text_bar_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails as if not installed
    inf = make()
    inf.infer(n_samples=100, seed=0, progress=True, train_kwargs=dict(max_num_epochs=2),
              **PRIORS)
    err = capsys.readouterr().err
    assert "simulating: 100/100" in err and "training: 2/2" in err
