"""Figures drawn by the Rust engine (SVG), shown inline by Jupyter."""

from __future__ import annotations

import os


class Figure:
    """An SVG figure: Jupyter renders it inline (``_repr_svg_``); ``save(path)`` writes it;
    ``svg`` is the text."""

    def __init__(self, svg: str, name: str = "figure"):
        self.svg = svg
        self.name = name

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path) -> None:
        """Writes the SVG text to ``path``."""
        with open(os.fspath(path), "w") as fh:
            fh.write(self.svg)

    def __repr__(self) -> str:
        return f"<neurosbi.Figure {self.name} ({len(self.svg)} characters of SVG)>"
