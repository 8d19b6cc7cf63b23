"""Every unit name Brian2 2.11 defines (`brian2.units.allunits` and `stdunits`), with its
SI scale and dimension, written to crates/neurosbi-sim/tests/fixtures/brian_units.json for
tests/brian_language.rs (`every_brian_unit_name_resolves`).

    /work/venv-lang/bin/python scripts/brian_corpus/units.py
"""

import json
import pathlib

import brian2
import brian2.units.allunits as allunits
import brian2.units.stdunits as stdunits
from brian2.units.fundamentalunits import Unit

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/neurosbi-sim/tests/fixtures/brian_units.json"


def main():
    names = {}
    # The exported names (`dir(allunits)` also has its loop variable `unit`).
    for module in (allunits, stdunits):
        for name in module.__all__:
            u = getattr(module, name)
            if isinstance(u, Unit) and not name.startswith("_"):
                d = u.dim
                dims = [float(d.get_dimension(k)) for k in ("m", "kg", "s", "A", "K", "mol", "cd")]
                names[name] = [float(u), dims]
    OUT.write_text(json.dumps({"brian2": brian2.__version__, "units": names}, indent=0, sort_keys=True) + "\n")
    print(f"{len(names)} units -> {OUT}")


if __name__ == "__main__":
    main()
