"""The intermediate representation: NIR graphs -- export from trained models,
reading and writing .nir files, analysis (supported nodes, shapes, order)
and the float64 reference interpreter."""

from .export import export_model
from .graph import FlatGraph, analyse
from .nirfile import graph_dt, read_graph, write_graph
from .reference import ReferenceNetwork

__all__ = ["FlatGraph", "ReferenceNetwork", "analyse", "export_model", "graph_dt", "read_graph",
           "write_graph"]
