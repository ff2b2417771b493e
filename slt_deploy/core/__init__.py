"""What every stage uses: the one-line user error, atomic files, latency
checks, the one result type of a simulation run, processes that share a
job (:mod:`.parallel`: ``--nproc``, torchrun), the Python 3.11 compat
layer for Lava and the environment report."""

from .errors import RunFailure, UserError
from .latency import MAX_LATENCY, check_latencies, check_latency
from .result import Simulation

__version__ = "0.1.0"

__all__ = ["MAX_LATENCY", "RunFailure", "Simulation", "UserError", "__version__", "check_latencies", "check_latency"]
