"""Energy: synaptic operations (SOP) counted one way for every simulation
backend, hardware energy costs (TOML), and the per-latency profile of a
deployed model."""

from .counts import OperationCounts, count_operations, counted_run
from .hardware import Hardware, available_hardware, load_hardware
from .profile import profile_model, store_in_graph

__all__ = ["Hardware", "OperationCounts", "available_hardware", "count_operations", "counted_run", "load_hardware",
           "profile_model", "store_in_graph"]
