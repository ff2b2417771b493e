"""The Lava stage: NIR graphs as Lava process graphs (builder, run
configurations, quantisation) and the Python 3.11 compat layer for Lava."""
