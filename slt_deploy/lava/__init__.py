"""The Lava stage: a deployment plan as one Lava process
(:mod:`.process`: the per-layer graph and the fused model as its two
behaviours), the runner that feeds it samples with per-sample latencies
(:mod:`.network`), fixed-point quantisation (:mod:`.quantise`), the watchdog
around every Lava call, the Loihi 2 readiness of the per-layer graph
(:mod:`.loihi2`), and lava-dl's netx peer path (:mod:`.netx`, imported
on its own: it loads lava-dl). Importing this package imports Lava (through
:mod:`slt_deploy.core.compat`)."""

from .network import LAVA_MODES, LavaNetwork, run_config
from .quantise import QuantisedPlan

__all__ = ["LAVA_MODES", "LavaNetwork", "QuantisedPlan", "run_config"]
