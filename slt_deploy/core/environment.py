"""What the toolchain runs on: package versions, Lava's import status, Loihi 2."""

from __future__ import annotations

import platform
from importlib import metadata

from .compat import import_lava, lava_status

PACKAGES = ("torch", "norse", "nir", "nirtorch", "lava-nc", "lava-dl", "tonic", "numpy")


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def loihi2_available() -> bool:
    """True only when Lava's own check finds the Loihi 2 compiler and board."""
    import_lava()
    from lava.utils.system import Loihi2  # Lava only for this check

    return bool(Loihi2.is_loihi2_available)


def environment_report() -> dict[str, str]:
    report = {"python": platform.python_version()}
    report.update({name: package_version(name) for name in PACKAGES})
    status = lava_status(with_dl=True)
    report["lava imports"] = "yes" if status == "ok" else f"no ({status})"
    if status == "ok":
        try:
            report["loihi 2"] = "available" if loihi2_available() else "not available (Lava CPU simulator only)"
        except Exception as exc:  # the check itself failing means: not available
            report["loihi 2"] = f"not available ({type(exc).__name__}: {exc})"
    else:
        report["loihi 2"] = "unknown (Lava does not import)"
    return report
