"""Make lava-nc 0.10.0 / lava-dl 0.6.0 import on Python 3.11.

Both releases are final (the repositories were archived in 2026) and declare
Python <3.11. On 3.11 they fail at import time, because some of their
dataclasses use an instance of another (unhashable) dataclass as a field
default, which Python 3.11 rejects::

    ValueError: mutable default <class '...ByteEncoder'> for field x is not
    allowed: use default_factory

While Lava is being imported through :func:`import_lava`, such a default is
turned into ``field(default_factory=<deep copy of the default>)`` -- the
behaviour Python 3.10 allowed, except that every instance now gets its own
copy instead of sharing one object. Only classes defined in ``lava.*``
modules are touched, and only during the import; ``dataclasses`` is restored
afterwards. Nothing else in the process is changed.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import io
import logging
import threading
from contextlib import contextmanager, redirect_stdout
from typing import Iterator

# Every lava module whose import needs the patch, and the modules the rest of
# slt_deploy uses. They are imported eagerly, inside the patch, so that a
# later lazy import (Lava's compiler loads process models on demand) finds
# them in sys.modules already.
LAVA_MODULES = (
    "lava.magma.compiler.var_model",
    "lava.magma.compiler.compiler",
    "lava.magma.core.run_configs",
    "lava.magma.core.run_conditions",
    "lava.magma.runtime.runtime",
    "lava.proc.lif.process",
    "lava.proc.lif.models",
    "lava.proc.dense.process",
    "lava.proc.dense.models",
    "lava.proc.conv.process",
    "lava.proc.conv.models",
    "lava.proc.io.source",
    "lava.proc.io.sink",
    "lava.utils.system",
)
LAVA_DL_MODULES = (
    "lava.lib.dl.slayer",
    "lava.lib.dl.netx",
)

_lock = threading.Lock()
patched_fields: list[str] = []  # "module.Class.field" of every default turned into a factory


def _is_unhashable_dataclass_instance(value: object) -> bool:
    return (
        dataclasses.is_dataclass(value)
        and not isinstance(value, type)
        and type(value).__hash__ is None
    )


@contextmanager
def _dataclass_defaults_as_factories() -> Iterator[None]:
    original_get_field = dataclasses._get_field  # type: ignore[attr-defined]

    def get_field(cls, a_name, a_type, default_kw_only):
        default = cls.__dict__.get(a_name, dataclasses.MISSING)
        if cls.__module__.startswith("lava.") and _is_unhashable_dataclass_instance(default):
            setattr(
                cls,
                a_name,
                dataclasses.field(default_factory=functools.partial(copy.deepcopy, default)),
            )
            patched_fields.append(f"{cls.__module__}.{cls.__qualname__}.{a_name}")
        return original_get_field(cls, a_name, a_type, default_kw_only)

    dataclasses._get_field = get_field  # type: ignore[attr-defined]
    try:
        yield
    finally:
        dataclasses._get_field = original_get_field  # type: ignore[attr-defined]


def import_lava(with_dl: bool = False) -> None:
    """Import Lava (and lava-dl when ``with_dl``) with the 3.11 patch applied.

    Safe to call many times and from several threads; raises ImportError when
    Lava is not installed.
    """
    names = LAVA_MODULES + (LAVA_DL_MODULES if with_dl else ())
    with _lock, _dataclass_defaults_as_factories(), _quiet_import():
        for name in names:
            importlib.import_module(name)


@contextmanager
def _quiet_import() -> Iterator[None]:
    """lava-dl prints a notice about an optional Prophesee toolbox to stdout, and
    torch logs a missing CUDA runtime while slayer loads its extensions; neither
    concerns a CPU user. Both are kept out of the tool's output."""
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        cpp_logger.setLevel(level)


@functools.lru_cache(maxsize=None)
def lava_status(with_dl: bool = True) -> str:
    """'ok' when Lava imports, else the one-line reason it does not."""
    try:
        import_lava(with_dl=with_dl)
    except Exception as exc:  # report, never raise: used by `slt-deploy info`
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return "ok"
