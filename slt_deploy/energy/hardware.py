"""Hardware energy costs: picojoules per synaptic operation (SOP), per
multiply-accumulate (MAC) and per neuron update of one chip (or reference),
read from the top-level ``hardware/`` folder (TOML, a ``[profile]`` section
with the provenance and an ``[energy]`` section with the costs). Energies are
in picojoules per operation in the files and reported in millijoules (mJ):
energy = SOP x E_SOP + MAC x E_MAC (+ neuron updates x E_update).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UserError
from ..core.files import read_toml

HARDWARE_DIR = Path(__file__).resolve().parents[2] / "hardware"
EVIDENCE_KINDS = ("measured", "simulated", "simulated minimum", "whole-chip average", "estimated")
PJ_PER_MJ = 1e9
MAX_PJ = 1e6  # 1 uJ per operation: far above any chip; larger values are typos (or overflow the sums)
PROFILE_KEYS = {"name", "description", "source", "process_node", "precision", "evidence", "notes"}


@dataclass(frozen=True)
class Hardware:
    """Energy per operation of one chip (or reference), with its provenance.

    sop_pj / mac_pj / neuron_update_pj: picojoules per operation (None: the
    profile has no such term)."""

    name: str
    description: str
    source: str
    process_node: str
    precision: str
    evidence: str
    sop_pj: float | None
    mac_pj: float | None = None
    neuron_update_pj: float | None = None
    notes: str = ""
    terms: dict[str, str] = field(default_factory=dict)  # term -> its own source, when it differs

    def energy_mj(self, sop, mac=0, neuron_updates=0):
        """Energy in mJ of the given operation counts (arrays broadcast)."""
        mac = np.asarray(mac)
        if np.any(mac > 0) and self.mac_pj is None:
            raise UserError(
                f"hardware profile '{self.name}' has no MAC energy, but the model's first layer takes analog "
                "input (MACs): choose a profile with mac_pj"
            )
        total = np.asarray(sop, dtype=np.float64) * (self.sop_pj or 0.0)
        total = total + mac * (self.mac_pj or 0.0)
        if self.neuron_update_pj is not None:
            total = total + np.asarray(neuron_updates, dtype=np.float64) * self.neuron_update_pj
        return total / PJ_PER_MJ

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def available_hardware() -> list[str]:
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.toml") if "profile" in read_toml(p, "hardware profile"))


def load_hardware(name_or_path: str) -> Hardware:
    """A hardware profile by name (``hardware/<name>.toml``) or path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = HARDWARE_DIR / f"{name_or_path}.toml"
        if Path(name_or_path).name != name_or_path or name_or_path.startswith(".") or not path.is_file():
            raise UserError(
                f"unknown hardware profile '{name_or_path}': choose one of {', '.join(available_hardware())}"
            )
    data = read_toml(path, "hardware profile")
    section = data.get("profile")
    energy = data.get("energy")
    if not isinstance(section, dict) or not isinstance(energy, dict):
        raise UserError(f"hardware profile {path} needs [profile] and [energy] sections")
    for key in ("name", "source", "process_node", "precision", "evidence"):
        if not str(section.get(key, "")).strip():
            raise UserError(f"hardware profile {path}: '{key}' is missing (every profile states its source)")
    unknown = (set(data) - {"profile", "energy", "sources"}) | {f"profile.{k}" for k in set(section) - PROFILE_KEYS}
    if unknown:
        raise UserError(f"hardware profile {path}: unknown sections or keys {sorted(unknown)}")
    sources = data.get("sources", {})
    for key, value in list(section.items()) + [(f"sources.{k}", v) for k, v in
                                               (sources.items() if isinstance(sources, dict) else [])]:
        if not isinstance(value, str):
            raise UserError(f"hardware profile {path}: '{key}' must be a string, got {value!r}"[:300])
    if not isinstance(sources, dict) or set(sources) - {"sop_pj", "mac_pj", "neuron_update_pj"}:
        raise UserError(f"hardware profile {path}: [sources] names the source of sop_pj, mac_pj or neuron_update_pj")
    if section["evidence"] not in EVIDENCE_KINDS:
        raise UserError(f"hardware profile {path}: evidence must be one of {', '.join(EVIDENCE_KINDS)}")
    unknown = set(energy) - {"sop_pj", "mac_pj", "neuron_update_pj"}
    if unknown:
        raise UserError(f"hardware profile {path}: unknown energy terms {sorted(unknown)}")
    if "sop_pj" not in energy and "mac_pj" not in energy:
        raise UserError(f"hardware profile {path}: give at least sop_pj or mac_pj")
    values = {}
    for key in ("sop_pj", "mac_pj", "neuron_update_pj"):
        if key in energy:
            value = energy[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_PJ:  # not NaN
                raise UserError(f"hardware profile {path}: {key} must be a non-negative number of picojoules "
                                f"(at most {MAX_PJ:g}), got {value!r}"[:300])
            values[key] = float(value)
    if section["evidence"] == "whole-chip average" and len(values) > 1:
        raise UserError(
            f"hardware profile {path}: a whole-chip average cannot be mixed with per-operation terms"
        )
    return Hardware(
        name=str(section["name"]), description=str(section.get("description", "")),
        source=str(section["source"]), process_node=str(section["process_node"]),
        precision=str(section["precision"]), evidence=str(section["evidence"]),
        notes=str(section.get("notes", "")), terms={str(k): str(v) for k, v in data.get("sources", {}).items()},
        **values,
    )
