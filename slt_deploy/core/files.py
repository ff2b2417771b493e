"""Atomic file writes and the reading of user-supplied files.

Every artefact is written to a temporary file beside its destination and
renamed into place, so a crash or a bad input never leaves a half-written
file behind. Readers of user files turn every failure into a
:class:`~slt_deploy.core.errors.UserError` naming the file and the problem.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import UserError


@contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place on
    success, delete it on any exception."""
    destination = check_output_file(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphaned_temporaries(destination)
        fd, tmp = tempfile.mkstemp(prefix=f".{destination.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=destination.parent)
    except OSError as exc:
        raise UserError(f"cannot write {destination}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artefacts are ordinary files
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, destination)
        except OSError as exc:
            raise UserError(f"cannot write {destination}: {exc.strerror or exc}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _remove_orphaned_temporaries(destination: Path) -> None:
    """Delete temporaries of ``destination`` left by a writer that was killed
    (SIGKILL mid-write): their name carries the writer's pid, no longer alive."""
    for leftover in destination.parent.glob(f".{glob.escape(destination.name)}.*.tmp"):
        pid = leftover.name[len(destination.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _nearest_existing(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Refuse, before any work is done, a file path that cannot be written: an
    existing folder, or a path under a file or an unwritable folder. Creates nothing."""
    path = Path(path)
    if path.is_dir() or path.name in ("", ".", ".."):
        raise UserError(f"{what} {path} is a folder: give a file name")
    parent = _nearest_existing(path)
    if not parent.is_dir():
        raise UserError(f"cannot write {what} {path}: {parent} is not a folder")
    _probe(parent, f"cannot write {what} {path}")
    return path


def _probe(folder: Path, problem: str) -> None:
    """Create and drop a nameless file in ``folder`` (what permissions say is not
    enough: a read-only mount, /proc, root)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".slt-deploy-probe."):
            pass
    except OSError as exc:
        raise UserError(f"{problem}: {folder} is not writable ({exc.strerror or exc})") from None


def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Refuse, before any work is done, a folder that cannot be written (an
    existing file, or a path under a file or an unwritable folder). Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder")
    parent = path if path.exists() else _nearest_existing(path)
    if not parent.is_dir():
        raise UserError(f"cannot write {what} {path}: {parent} is not a folder")
    _probe(parent, f"cannot write {what} {path}")
    return path


def safe_name(text: str, fallback: str = "model") -> str:
    """``text`` as one file name: letters, digits, '.', '_', '-' (anything else
    becomes '_'), no leading dot -- it cannot name a folder or leave the one it is put in."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(text)).lstrip(".")
    return name[:100] or fallback


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


def _read_parsed(path: str | os.PathLike, what: str, parse: Callable[[str], Any], errors: tuple, form: str) -> Any:
    """``parse`` of the text of ``path``; any failure a one-line UserError."""
    path = require_file(path, what)
    try:
        return parse(path.read_text())
    except (*errors, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{what} {path} is not valid {form}: {str(exc) or type(exc).__name__}") from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def read_toml(path: str | os.PathLike, what: str = "TOML file") -> dict[str, Any]:
    return _read_parsed(path, what, tomllib.loads, (tomllib.TOMLDecodeError,), "TOML")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    return _read_parsed(path, what, json.loads, (json.JSONDecodeError,), "JSON")
