"""Reading and writing NIR files (HDF5) safely.

The IR does not know files (as in NIR itself); this module is the only place
that does. Reading turns every failure -- a missing, truncated, bit-flipped
or foreign file, an unknown node type, inconsistent shapes -- into a
one-line :class:`~slt_deploy.core.errors.UserError`. Writing is atomic.

Graph metadata is kept flat (NIR's reader reads one level) and holds only
numbers and strings; structured values (recipe, accuracy and energy
profiles) are JSON strings, never pickled objects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np

from ..core.errors import UserError
from ..core.files import atomic_path, require_file
from ..core.latency import check_latency

MAX_ARRAY_BYTES = 400_000_000
"""Largest array a NIR file may hold (5*10^7 float64 values, the largest
dense layer the Lava builder makes); a file that declares more is refused
before any of it is read."""


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _plain(value[()])
    if isinstance(value, np.generic):
        return _plain(value.item()) if isinstance(value, np.void) else value.item()
    return value




def _plain_metadata(path: Path, metadata: dict | None) -> dict:
    """Graph metadata as inert plain values -- strings, numbers, numeric or
    string arrays. Anything else (binary blobs, object arrays, references,
    nested groups) is refused, naming the key; nothing is ever unpickled."""
    plain = {}
    for key, value in (metadata or {}).items():
        try:
            value = _plain(value)
        except UnicodeDecodeError:
            raise UserError(f"{path}: metadata '{key}' holds binary data, not a UTF-8 string") from None
        if isinstance(value, np.ndarray) and value.dtype.kind not in "biufSU":
            raise UserError(f"{path}: metadata '{key}' is an array of {value.dtype} values, not numbers or strings")
        if not isinstance(value, (str, int, float, bool, np.ndarray)):
            raise UserError(f"{path}: metadata '{key}' holds {type(value).__name__} data, not a number or a string")
        plain[key] = value
    T = plain.get("latency_T")
    if T is not None:
        plain["latency_T"] = check_latency(T, f"{path}: metadata latency_T")
    return plain


def _check_sizes(path: Path) -> None:
    """Refuse a file that declares an array too large to read (HDF5 can
    declare a 10^12-element dataset in a few bytes): checked before NIR's
    reader allocates it."""
    def check(name: str, item) -> None:
        if isinstance(item, h5py.Dataset) and item.nbytes > MAX_ARRAY_BYTES:
            raise UserError(f"{path} declares an array '{name}' of shape {list(item.shape or ())} "
                            f"({item.nbytes:,} bytes; at most {MAX_ARRAY_BYTES:,} supported)")

    with h5py.File(path, "r") as f:
        f.visititems(check)


def read_graph(path: str | os.PathLike):
    """A ``nir.NIRGraph`` from ``path``, with its metadata decoded to plain
    Python values (str, int, float, arrays)."""
    path = require_file(path, "NIR file")
    try:
        if not h5py.is_hdf5(path):
            raise UserError(f"{path} is not a NIR file: not HDF5")
        _check_sizes(path)
        # NIR's own type inference mistakes grouped convolutions (and is
        # skipped by some exporters); slt_deploy.ir.graph checks shapes itself.
        graph = nir.read(path, type_check=False)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AssertionError, AttributeError, IndexError,
            RuntimeError, ArithmeticError) as exc:  # RuntimeError: HDF5's, and a corrupt file's RecursionError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{path} is not a valid NIR graph: {reason[:200]}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise UserError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    graph.metadata = _plain_metadata(path, graph.metadata)
    return graph


def write_graph(graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` atomically (HDF5, NIR's own writer)."""
    for key, value in (graph.metadata or {}).items():
        if not isinstance(value, (str, int, float, bool, np.ndarray, np.generic)):
            raise TypeError(f"metadata {key!r} must be a number or a string, got {type(value).__name__}")
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return Path(path)


def metadata_json(graph, key: str) -> Any | None:
    """A JSON-valued metadata entry, decoded; None when absent."""
    value = (graph.metadata or {}).get(key)
    if value is None:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError, RecursionError):  # ValueError: JSON's and UTF-8's decode errors
        raise UserError(f"NIR metadata '{key}' is not valid JSON") from None


def graph_dt(graph, dt: float | None = None) -> float:
    """The time step (s) of ``graph``: ``dt`` if given, else its metadata's.

    Foreign graphs usually carry none; then ``dt`` is required."""
    if dt is not None:
        if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
            raise UserError(f"--dt must be a positive number of seconds, got {dt}")
        return float(dt)
    stored = (graph.metadata or {}).get("dt")
    if stored is None:
        raise UserError("the NIR graph has no 'dt' in its metadata: give the simulation step with --dt (seconds)")
    try:
        stored = float(stored)
    except (TypeError, ValueError):
        raise UserError(f"the NIR graph's metadata has an invalid dt: {str(stored)[:60]!r}") from None
    if not (np.isfinite(stored) and stored > 0):
        raise UserError(f"the NIR graph's metadata has an invalid dt: {stored}")
    return stored
