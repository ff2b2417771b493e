"""slt-deploy: Stochastic Latency Training, NIR export, Lava deployment and
energy-budgeted latency control for spiking neural networks.

The Python API -- every name below is one of the pipeline stages' public
functions, imported on first use (``import slt_deploy`` itself is cheap)::

    import slt_deploy as sd

    run = sd.new_run(sd.with_settings(sd.load_recipe("digits-mlp"), epochs=2))
    sd.train(run, "runs/mlp.pt")                               # SLT on norse
    graph = sd.export_model(run.model.double())                # NIR
    x, labels = sd.graph_stream(graph, "digits", "test")[:2]   # encoded test split
    result = sd.simulate(graph, "lava-fused", x)               # or torch, lava-float, lava-fixed, lava-fused-fixed

See the README's "Python API" section for the whole pipeline.
"""

from __future__ import annotations

import importlib

from .core import __version__

API = {
    # models and training
    "load_recipe": "models", "build_model": "models", "Recipe": "models",
    "new_run": "training", "resume_run": "training", "train": "training", "with_settings": "training",
    "load_checkpoint": "training", "model_from_checkpoint": "training", "latency_profile": "training",
    "load_split": "data", "evaluation_inputs": "data",
    # the graph and its simulation
    "export_model": "ir", "read_graph": "ir", "write_graph": "ir",
    "plan_for_graph": "deploy",
    "Session": "simulation", "simulate": "simulation", "load_plan": "simulation", "BACKENDS": "simulation",
    "predictions": "readout", "accuracy_per_latency": "readout",
    # energy and the runtime controller
    "graph_stream": "energy.profile", "profile_model": "energy", "store_in_graph": "energy",
    "load_hardware": "energy", "count_operations": "energy",
    "Budget": "runtime", "Controller": "runtime", "EnergyProfile": "runtime", "make_policy": "runtime",
    "run_mission": "runtime", "LavaEngine": "runtime.controller", "TorchEngine": "runtime.controller",
}
"""Public name -> the module of ``slt_deploy`` that defines it."""

__all__ = sorted(API) + ["__version__"]


def __getattr__(name: str):
    if name not in API:
        raise AttributeError(f"module 'slt_deploy' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"{__name__}.{API[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
