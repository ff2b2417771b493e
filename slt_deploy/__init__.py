"""slt-deploy: Stochastic Latency Training, NIR export, Lava deployment and
energy-budgeted latency control for spiking neural networks."""

__version__ = "0.1.0"
