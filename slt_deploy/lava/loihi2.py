"""Loihi 2 readiness of the per-layer graph, checked without the chip.

Lava runs a process on Loihi 2 through a process model for the chip (an
``NcProcessModel``), which Intel ships in its ``lava-loihi`` extension, not
in open-source lava-nc; a Python process model runs on the host CPU only.
What can be checked here is what the per-layer graph is made of: every Lava
process it creates (the same :func:`~slt_deploy.lava.process.build_per_layer`
the simulator runs, on the fixed-point plan Loihi 2 would get), each either

* a **stock** Lava process that runs on Loihi 2's neurocores (``LIFReset``,
  ``Dense``, ``DelayDense``, ``Conv``: the processes lava-dl's netx builds
  for Loihi 2);
* a stock process that stays on the **host** (the ``RingBuffer`` source and
  sinks), joined to the chip through Lava's embedded-IO adapters
  (``lava.proc.embedded_io.spike.PyToNxAdapter`` / ``NxToPyAdapter``, in
  lava-loihi), as ``lava.networks.gradedvecnetwork`` does for ``loihi2=True``;
* a **custom** process of ours with a Python model only
  (``DeployedLIFReset``), which has no Loihi 2 implementation;

plus what runs on the host without being a Lava process (a non-spiking
readout) and parameters that the CPU workaround of a Lava 0.10 defect
changes (conv weights given as ``mantissa << exponent``). docs/loihi2.md
says what a Loihi 2 user does about each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from ..deploy.plan import DeployPlan
from .process import _host_output, build_per_layer, DeployedLIFReset, recurrent_targets

NEUROCORE, HOST, NONE = "neurocore", "host CPU", "none"


@dataclass
class ReadinessRow:
    """One kind of piece of the per-layer graph: a Lava process class (or host work)."""

    piece: str  # the Lava class as module.Class, or a description of host work
    stock: bool  # a process of lava-nc itself
    runs_on: str  # NEUROCORE, HOST or NONE (no Loihi 2 implementation)
    names: list[str] = field(default_factory=list)  # the graph's processes / populations of this kind
    action: str = ""  # what a Loihi 2 user must do; empty when nothing

    @property
    def ready(self) -> bool:
        return self.runs_on != NONE

    def to_dict(self) -> dict:
        return {"piece": self.piece, "stock": self.stock, "runs_on": self.runs_on, "count": len(self.names),
                "names": self.names, "action": self.action, "ready": self.ready}


STOCK_ON_CHIP = {"lava.proc.lif.process.LIFReset", "lava.proc.lif.process.LIF", "lava.proc.dense.process.Dense",
                 "lava.proc.dense.process.DelayDense", "lava.proc.conv.process.Conv"}
"""Stock processes that netx builds for Loihi 2's neurocores."""
STOCK_ON_HOST = {
    "lava.proc.io.source.RingBuffer": "connect its s_out to the chip through "
                                      "lava.proc.embedded_io.spike.PyToNxAdapter (lava-loihi)",
    "lava.proc.io.sink.RingBuffer": "feed its a_in from the chip through "
                                    "lava.proc.embedded_io.spike.NxToPyAdapter (lava-loihi)",
}


def _class_name(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def readiness(plan: DeployPlan, quantised) -> list[ReadinessRow]:
    """Every piece of ``plan``'s per-layer fixed-point graph (``quantised``: its
    :class:`~slt_deploy.lava.quantise.QuantisedPlan`) and whether it runs on Loihi 2."""
    from lava.magma.compiler.compiler_graphs import find_processes  # what Lava's compiler would compile

    depth = max([plan.output_depth] + [p.depth for p in plan.populations.values()])
    graph = build_per_layer(plan, period=depth + 2, capacity=1, quantised=quantised, owner=SimpleNamespace())
    rows: dict[str, ReadinessRow] = {}
    recurrent = recurrent_targets(plan)
    for process in sorted(find_processes(graph.source), key=lambda process: process.id):  # creation order
        piece = _class_name(type(process))
        if piece not in rows:
            if isinstance(process, DeployedLIFReset):
                rows[piece] = ReadinessRow(piece, False, NONE)
            elif piece in STOCK_ON_CHIP:
                rows[piece] = ReadinessRow(piece, True, NEUROCORE)
            elif piece in STOCK_ON_HOST:
                rows[piece] = ReadinessRow(piece, True, HOST, action=STOCK_ON_HOST[piece])
            else:  # a process this table does not know: not claimed ready
                rows[piece] = ReadinessRow(piece, piece.startswith("lava.proc."), NONE,
                                           action="no Loihi 2 model known to slt-deploy")
        rows[piece].names.append(process.name)
    custom = rows.get(_class_name(DeployedLIFReset))
    if custom is not None:
        reasons = []
        for name in custom.names:
            why = [what for what, holds in (("a recurrent edge (silent before its reset)", name in recurrent),
                                            ("per-neuron time constants", name not in recurrent
                                             or plan.populations[name].per_neuron_decays)) if holds]
            reasons.append(f"{name}: {' and '.join(why)}")
        custom.action = ("no NcProcessModel: " + "; ".join(reasons) + " -- write one in lava-loihi, or "
                         "retrain with one time constant per layer / reset the state between samples "
                         "from the host (docs/loihi2.md)")
    extra = []
    if _host_output(plan):
        extra.append(ReadinessRow(
            f"host readout ({plan.populations[plan.output_population].nir_kind} '{plan.output_population}')", False,
            HOST, [plan.output_population],
            "read the synaptic current Lava delivers to the output sink and integrate it on the host "
            "(slt_deploy.lava.network does this); a Loihi 2 LIF sends spikes, not v"))
    shifted = [f"{p.name} (weight_exp {quantised.of_projection(p).weight_exp})" for p in plan.projections
               if p.kind == "conv" and p.delay == 0 and quantised.of_projection(p).weight_exp > 0]
    if shifted:
        extra.append(ReadinessRow(
            "Conv weights given as mantissa << weight_exp", True, NEUROCORE, shifted,
            "Lava 0.10's CPU Conv ignores weight_exp, so these get shifted integers wider than 8 bits; "
            "on Loihi 2 give Conv the 8-bit mantissas (weights >> weight_exp) and weight_exp"))
    return list(rows.values()) + extra
