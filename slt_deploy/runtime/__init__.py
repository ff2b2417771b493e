"""The runtime controller: budgets, latency policies, engines that run one
inference step by step, and the evaluation against the hull and the oracle."""

from .controller import (MEASURES, POLICIES, Budget, Controller, EnergyProfile, make_policy, run_mission)

__all__ = ["Budget", "Controller", "EnergyProfile", "MEASURES", "POLICIES", "make_policy", "run_mission"]
