"""The synapse maths every simulator of a deployment plan shares: one
sample's current through a dense or convolutional projection (the exact
products the Lava behaviours make, so that float results are bit-identical
across them), a projection as a dense matrix, and each source neuron's
fan-out (the synapses its spike drives -- what SOP counting prices).

Shapes are NIR's (C, H, W), flattened in C order; conv weights are torch's
[C_out, C_in/groups, kh, kw] (correlation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .plan import Projection


def dense_current(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Synaptic current of one sample: weight [N_out, N_in], x [N_in] -> [N_out].

    Both behaviours make exactly this call per sample and step: a BLAS
    product's rounding can depend on how many columns it is given, so the
    fused model does not batch samples into one product."""
    return weight @ np.ascontiguousarray(x, dtype=np.float64)


@dataclass
class ConvKernel:
    """A 2-D convolution as one gather and one stacked matrix product per group.

    Shapes are NIR's (C, H, W), flattened in C order; weight is torch's
    [C_out, C_in/groups, kh, kw] (correlation)."""

    matrices: np.ndarray  # [groups, C_out/groups, K]
    gather: np.ndarray  # [groups, K, positions] indices into the input with a trailing zero

    @classmethod
    def build(cls, weight, in_shape, stride, padding, dilation, groups) -> "ConvKernel":
        weight = np.asarray(weight, dtype=np.float64)
        c_out, c_group, kh, kw = weight.shape
        channels, height, width = in_shape
        out_h = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        out_w = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        zero = channels * height * width
        c, a, b = np.meshgrid(np.arange(c_group), np.arange(kh), np.arange(kw), indexing="ij")
        y, x = np.meshgrid(np.arange(out_h), np.arange(out_w), indexing="ij")
        rows = y.ravel()[None, :] * stride[0] - padding[0] + a.ravel()[:, None] * dilation[0]
        cols = x.ravel()[None, :] * stride[1] - padding[1] + b.ravel()[:, None] * dilation[1]
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        gathers = []
        for g in range(groups):
            channel = (g * c_group + c.ravel())[:, None]
            index = (channel * height + rows) * width + cols
            gathers.append(np.where(inside, index, zero))
        matrices = weight.reshape(groups, c_out // groups, c_group * kh * kw)
        return cls(matrices, np.stack(gathers))

    def current(self, x: np.ndarray) -> np.ndarray:
        """One sample: x [C*H*W] -> [C_out*H'*W'] (C order); one BLAS product per group."""
        padded = np.concatenate([np.asarray(x, dtype=np.float64).ravel(), [0.0]])
        parts = [self.matrices[g] @ padded[self.gather[g]] for g in range(len(self.matrices))]
        return np.concatenate(parts, axis=0).ravel()

    @classmethod
    def of(cls, projection: Projection) -> "ConvKernel":
        return cls.build(projection.weight, projection.conv_input_shape, projection.stride, projection.padding,
                         projection.dilation, projection.groups)


def dense_of(projection: Projection) -> np.ndarray:
    """A projection as its dense matrix [N_t, N_s] (a conv through its kernel)."""
    if projection.kind == "dense":
        return np.asarray(projection.weight, dtype=np.float64)
    size = int(np.prod(projection.source_shape))
    kernel = ConvKernel.of(projection)
    return np.stack([kernel.current(column) for column in np.eye(size)], axis=1)


def fanout(projection: Projection, effective: bool) -> np.ndarray:
    """Synapses driven by each source neuron in this layer: int64 [*source_shape]."""
    if projection.kind == "dense":
        weight = np.asarray(projection.weight)
        support = weight != 0 if effective else np.ones(weight.shape, dtype=bool)
        return support.sum(axis=0).astype(np.int64).reshape(projection.source_shape)
    weight = torch.as_tensor(np.asarray(projection.weight))
    support = (weight != 0).double() if effective else torch.ones_like(weight, dtype=torch.float64)
    out_shape = (1, *projection.conv_output_shape)
    counts = torch.nn.grad.conv2d_input(
        (1, *projection.conv_input_shape), support, torch.ones(out_shape, dtype=torch.float64),
        stride=projection.stride, padding=projection.padding, dilation=projection.dilation,
        groups=projection.groups,
    )
    return np.rint(counts.numpy()).astype(np.int64).reshape(projection.source_shape)
