"""lava-dl networks the tests make: slayer blocks with random weights,
written by slayer's own ``export_hdf5`` (the file a lava-dl user has)."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from slt_deploy.core.compat import import_lava

import_lava(with_dl=True)
from lava.lib.dl import slayer  # noqa: E402

cuba = slayer.block.cuba


def neuron(current_decay=0.25, voltage_decay=0.03, threshold=1.25) -> dict:
    """slayer CUBA neuron parameters (fixed, not learned)."""
    return dict(threshold=threshold, current_decay=current_decay, voltage_decay=voltage_decay, requires_grad=False)


def learned_neuron(current_decay=(0.1, 0.7), voltage_decay=(0.02, 0.3), threshold=1.25) -> dict:
    """slayer CUBA neuron with ``shared_param=False``: decays drawn per neuron
    (dense) or per channel (conv) from [min, max], as a network that learns
    them starts; ``export_hdf5`` then writes iDecay and vDecay arrays."""
    return dict(threshold=threshold, current_decay=list(current_decay), voltage_decay=list(voltage_decay),
                requires_grad=False, shared_param=False)


NETWORKS = {
    # input neuron (LIF: current decay 1), CUBA dense layers, one of them LIF-like
    "dense": ((20,), lambda: [cuba.Input(neuron(1.0, 0.5, 0.5), delay_shift=False),
                              cuba.Dense(neuron(), 20, 30, weight_scale=4, delay_shift=False),
                              cuba.Dense(neuron(1.0, 0.1), 30, 5, weight_scale=4, delay_shift=False)]),
    # convolutions with stride, padding, groups, then flatten and dense
    "conv": ((2, 8, 8), lambda: [cuba.Input(None, delay_shift=False),
                                 cuba.Conv(neuron(), 2, 4, 3, stride=2, padding=1, weight_scale=4, delay_shift=False),
                                 cuba.Conv(neuron(0.5, 0.2), 4, 4, 3, padding=1, groups=2, weight_scale=4,
                                           delay_shift=False),
                                 cuba.Flatten(),
                                 cuba.Dense(neuron(), 64, 6, weight_scale=4, delay_shift=False)]),
    # a conv with dilation, a pooling layer (netx cannot run it), dense
    "pool": ((2, 8, 8), lambda: [cuba.Input(None, delay_shift=False),
                                 cuba.Conv(neuron(), 2, 4, 3, padding=2, dilation=2, weight_scale=4,
                                           delay_shift=False),
                                 cuba.Pool(neuron(1.0, 0.5, 0.5), 2, delay_shift=False),
                                 cuba.Flatten(),
                                 cuba.Dense(neuron(), 64, 6, weight_scale=4, delay_shift=False)]),
    # decays per channel (conv) and per neuron (dense): slayer's shared_param=False
    "learned": ((2, 8, 8), lambda: [cuba.Input(None, delay_shift=False),
                                    cuba.Conv(learned_neuron(), 2, 4, 3, stride=2, padding=1, weight_scale=4,
                                              delay_shift=False),
                                    cuba.Flatten(),
                                    cuba.Dense(learned_neuron(), 64, 12, weight_scale=4, delay_shift=False),
                                    cuba.Dense(learned_neuron((1.0, 1.0)), 12, 5, weight_scale=4,
                                               delay_shift=False)]),
    # on digits (8 x 8 = 64 inputs, 10 classes): for profile, control and report
    "digits": ((64,), lambda: [cuba.Input(None, delay_shift=False),
                               cuba.Dense(neuron(1.0, 0.5, 0.5), 64, 40, weight_scale=4, delay_shift=False),
                               cuba.Dense(neuron(1.0, 0.5, 0.5), 40, 10, weight_scale=4, delay_shift=False)]),
}


def make_network(kind: str, path, seed: int = 0):
    """Write the slayer network ``kind`` to ``path`` with ``export_hdf5``;
    returns (input shape (C, H, W) or (N,), the slayer blocks in eval mode)."""
    shape, blocks = NETWORKS[kind]
    torch.manual_seed(seed)
    blocks = blocks()
    network = torch.nn.Sequential(*blocks).eval()
    with torch.no_grad():  # a first pass sets the shapes export_hdf5 writes
        network(torch.zeros(1, *shape, 2))
    with h5py.File(path, "w") as handle:
        layers = handle.create_group("layer")
        for index, block in enumerate(blocks):
            block.export_hdf5(layers.create_group(str(index)))
    return shape, blocks


def slayer_spikes(blocks, x: np.ndarray) -> list[np.ndarray]:
    """slayer's own forward pass: spikes [N, steps, *shape] after every block."""
    h = torch.as_tensor(np.moveaxis(x, 1, -1), dtype=torch.float32)
    out = []
    with torch.no_grad():
        for block in blocks:
            h = block(h)
            out.append(np.moveaxis(h.numpy().astype(np.float64), -1, 1))
    return out


def spikes(shape, samples: int, steps: int, seed: int = 0, rate: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random((samples, steps, *shape)) < rate).astype(np.float64)


def set_neuron_type(path, layer: int, kind: str) -> None:
    """Rewrite layer ``layer``'s neuron type (e.g. LOIHI, SDNN) in place."""
    with h5py.File(path, "r+") as handle:
        del handle[f"layer/{layer}/neuron/type"]
        handle[f"layer/{layer}/neuron/type"] = kind
