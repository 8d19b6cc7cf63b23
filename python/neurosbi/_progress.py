"""A progress bar for long simulations and training: tqdm when installed (its notebook
widget in Jupyter via ``tqdm.auto``), else one line of plain text rewritten in place."""

from __future__ import annotations

import contextlib
import sys


class _TextBar:
    def __init__(self, desc, total):
        self.desc, self.total, self.n = desc, total, 0

    def update(self, n):
        self.n += n
        total = f"/{self.total}" if self.total else ""
        sys.stderr.write(f"\r{self.desc}: {self.n}{total}")
        sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")
        sys.stderr.flush()


def _new_bar(desc, total):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(desc, total)
    return tqdm(desc=desc, total=total or None, leave=False)


@contextlib.contextmanager
def progress_bar(show):
    """Yields a callback ``(stage, done, total)`` for the engine (None when not shown); one
    bar per stage (simulating, training), closed when the stage changes or on exit."""
    if not show:
        yield None
        return
    state = {"stage": None, "bar": None, "done": 0}

    def callback(stage, done, total):
        if stage != state["stage"] or done < state["done"]:
            if state["bar"] is not None:
                state["bar"].close()
            state.update(stage=stage, bar=_new_bar(stage, total), done=0)
        state["bar"].update(done - state["done"])
        state["done"] = done

    try:
        yield callback
    finally:
        if state["bar"] is not None:
            state["bar"].close()
