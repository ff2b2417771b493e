"""Reading and writing NIR files (HDF5) safely.

The IR does not know files (as in NIR itself); this module is the only place
that does. Reading turns every failure -- a missing, truncated, bit-flipped
or foreign file, an unknown node type, inconsistent shapes -- into a
one-line :class:`~slt_deploy.errors.UserError`. Writing is atomic.

Graph metadata is kept flat (NIR's reader reads one level) and holds only
numbers and strings; structured values (recipe, accuracy and energy
profiles) are JSON strings, never pickled objects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .files import atomic_path, require_file


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _plain(value[()])
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_graph(path: str | os.PathLike):
    """A ``nir.NIRGraph`` from ``path``, with its metadata decoded to plain
    Python values (str, int, float, arrays)."""
    import h5py
    import nir

    path = require_file(path, "NIR file")
    try:
        if not h5py.is_hdf5(path):
            raise UserError(f"{path} is not a NIR file: not HDF5")
        # NIR's own type inference mistakes grouped convolutions (and is
        # skipped by some exporters); slt_deploy.graph checks shapes itself.
        graph = nir.read(path, type_check=False)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AssertionError, AttributeError, IndexError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{path} is not a valid NIR graph: {reason[:200]}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise UserError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    graph.metadata = {key: _plain(value) for key, value in (graph.metadata or {}).items()}
    return graph


def write_graph(graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` atomically (HDF5, NIR's own writer)."""
    import nir

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
    except (TypeError, json.JSONDecodeError):
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
    stored = float(stored)
    if not (np.isfinite(stored) and stored > 0):
        raise UserError(f"the NIR graph's metadata has an invalid dt: {stored}")
    return stored
