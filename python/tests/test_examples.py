"""The shipped examples run (short versions, NEUROSBI_QUICK=1), the notebook in a real
Jupyter kernel: any error fails the test."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
QUICK = dict(os.environ, NEUROSBI_QUICK="1")


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_script_runs(script):
    r = subprocess.run([sys.executable, str(EXAMPLES / script)], env=QUICK,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{script} failed:\n{r.stdout}\n{r.stderr}"


def test_hh_tutorial_notebook_runs_in_a_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(EXAMPLES / "hh_tutorial.ipynb", as_version=4)
    os.environ["NEUROSBI_QUICK"] = "1"  # the kernel inherits this process's environment
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    finally:
        del os.environ["NEUROSBI_QUICK"]
    svgs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) >= 2, "the pairplots render inline as SVG"
