"""Atomic file writes and the reading of user-supplied files.

Every artefact is written to a temporary file beside its destination and
renamed into place, so a crash or a bad input never leaves a half-written
file behind. Readers of user files turn every failure into a
:class:`~slt_deploy.errors.UserError` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError


@contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place on
    success, delete it on any exception."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artefacts are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, destination)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(destination: str | os.PathLike, text: str) -> Path:
    with atomic_path(destination) as tmp:
        tmp.write_text(text)
    return Path(destination)


def write_json(destination: str | os.PathLike, data: Any) -> Path:
    return write_text(destination, json.dumps(data, indent=2, sort_keys=False) + "\n")


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    return path


def read_toml(path: str | os.PathLike, what: str = "TOML file") -> dict[str, Any]:
    path = require_file(path, what)
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} is not valid TOML: {exc}") from None


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = require_file(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{what} {path} is not valid JSON: {exc}") from None
