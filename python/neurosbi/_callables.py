"""Python feature callables of ``Inferencer(features=...)``: their column names and what
the problem's fingerprint records of them (name and a hash of their code)."""

from __future__ import annotations

import hashlib
import types

import numpy as np


def _callable_name(f, taken):
    """A column name for a feature callable: its qualified name, made distinct."""
    base = getattr(f, "__qualname__", None) or type(f).__qualname__
    name, k = base, 2
    while name in taken:
        name, k = f"{base}#{k}", k + 1
    taken.add(name)
    return name


def _stable_bytes(value):
    """Bytes that identify a value across runs: array data for arrays, else its repr when
    that carries no memory address, else only its type."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}".encode() + value.tobytes()
    text = repr(value)
    return (type(value).__qualname__ if " at 0x" in text else text).encode()


def _hash_code(code, h):
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames)).encode())
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            _hash_code(c, h)
        else:
            h.update(_stable_bytes(c))


def _provenance(f):
    """What the problem's fingerprint records of a feature callable: module and qualified
    name, and a SHA-256 of its bytecode, constants, defaults and closure values (not of the
    global variables it reads)."""
    name = f"{getattr(f, '__module__', None) or '?'}." + (
        getattr(f, "__qualname__", None) or type(f).__qualname__)
    code = getattr(f, "__code__", None)
    if code is None:
        return f"python callable {name} (no Python code to hash: a change is not detected)"
    h = hashlib.sha256()
    _hash_code(code, h)
    for v in getattr(f, "__defaults__", None) or ():
        h.update(_stable_bytes(v))
    for cell in getattr(f, "__closure__", None) or ():
        h.update(_stable_bytes(cell.cell_contents))
    return f"python callable {name} code sha256:{h.hexdigest()}"
