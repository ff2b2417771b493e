"""Make the sinabs fixtures in tests/fixtures/sinabs/ (foreign NIR graphs + a SOP cross-check).

sinabs (SynSense) pins ``nir<=1.0.4`` and so cannot live in the project's
environment (nir 1.0.8). The fixtures are therefore made in a separate,
throw-away venv outside the repository, and checked against norse in the
project venv afterwards. Nothing here is imported by the package or the tests.

Recreate the sinabs venv (exact pins used for the committed files)
------------------------------------------------------------------
::

    python3 -m venv /tmp/sinabs-venv
    /tmp/sinabs-venv/bin/pip install torch==2.13.0        # the local CPU wheel (+cpu)
    /tmp/sinabs-venv/bin/pip install sinabs==3.1.3 nir==1.0.4 nirtorch==2.0.2 \\
        numpy==2.4.6 h5py==3.16.0 samna==0.48.6 matplotlib==3.11.2 pbr==7.1.3

(``torch==2.13.0`` resolves to ``2.13.0+cpu`` from the wheel on this machine's
disk; pip must not pull a CUDA build. samna, matplotlib and pbr are sinabs'
declared dependencies and are not used here.)

Two steps, run from the repository root::

    /tmp/sinabs-venv/bin/python scripts/make_sinabs_fixtures.py --out tests/fixtures/sinabs
    .venv/bin/python scripts/make_sinabs_fixtures.py --out tests/fixtures/sinabs --verify-norse

The first step (sinabs venv) builds the models, simulates them in sinabs,
exports them with sinabs' own NIR exporter (``sinabs.to_nir`` ->
``nirtorch.extract_nir_graph``), re-reads every file with nir 1.0.4 and writes
all files below. The second step (project venv: nir 1.0.8, norse 1.1.0) loads
each .nir file with ``nir.read``, builds ``norse.torch.from_nir(graph, dt=...)``,
runs it per sample and per step on unbatched inputs, compares the output with
sinabs' spike for spike and records the result under ``"norse_check"`` in
fixtures.json. Everything is seeded (seed 20240521) and deterministic.

Files
-----
fixtures.json
    Versions (sinabs, nir, nirtorch, torch, numpy), per graph: node names and
    types, input/output shapes, the sinabs neuron configuration, firing
    statistics, the ``dt`` a NIR simulator must use to reproduce sinabs step by
    step and why, and (after step two) the norse comparison.
sinabs_mlp.nir
    Linear(16->12) -> LIF(tau_mem=4 steps, norm_input=True) -> Linear(12->5) -> IAF,
    exported as Input, Affine, LIF, Affine, IF, Output (nodes "0".."3").
sinabs_mlp_io.npz
    ``input`` [4, 12, 16] Bernoulli(0.3) spikes; ``sinabs_output`` [4, 12, 5]
    sinabs' spikes of the last layer; ``layer_<node>`` spikes of every spiking
    layer [4, 12, *shape]; ``sinabs_output_default_neuron`` the same weights
    run with sinabs' *default* neuron (MultiSpike + MembraneSubtract), which the
    NIR file cannot distinguish (see fixtures.json "exporter_losses").
sinabs_cnn.nir
    Input 2x8x8: Conv2d(2->4, k3, pad 1) -> IAF -> SumPool2d(2) ->
    Conv2d(4->6, k3, stride 2, pad 1) -> IAF -> Flatten -> Linear(24->5) -> IAF
    (all pieces exported as specified: Conv2d, IF, SumPool2d, Flatten, Affine).
    One repair was needed: sinabs 3.1.3's exporter leaves ``Conv2d.input_shape`` and
    ``Flatten.input_type`` as None, on which nir 1.0.4's ``nir.write`` fails
    ("TypeError: One of data, shape or dtype must be specified") and which nir
    1.0.4's ``infer_types`` cannot fill past a SumPool2d. The script fills in
    just those shapes from the model's real activations (no parameter changes)
    and lists each change under "exporter_fixups" in fixtures.json / synops.json.
sinabs_cnn_io.npz
    As for the MLP, shapes [4, 12, 2, 8, 8] in and [4, 12, 5] out (C, H, W order).
synops_model.nir
    Input 2x8x8: Conv2d(2->4, k3, pad 2, dilation 2) -> IAF -> SumPool2d(2) ->
    Conv2d(4->6, k3, stride 2, pad 1) -> IAF -> Flatten -> Linear(24->5) -> IAF,
    with about 30 % of the weights of each synaptic layer set exactly to zero,
    so "structural" and "effective" SOP differ. (A grouped conv was tried and dropped:
    nir.Conv2d types a grouped conv with in_channels/groups input channels and nir
    1.0.8's nir.read then refuses the graph; sinabs' grouped fan-out map is instead
    checked against exact loops, see synops.json "connection_map_checks".)
synops_io.npz
    ``input`` [4, 12, 2, 8, 8]; ``layer_1`` [4, 12, 4, 8, 8], ``layer_2`` (the
    SumPool output, spike counts) [4, 12, 4, 4, 4], ``layer_4`` [4, 12, 6, 2, 2],
    ``layer_7`` [4, 12, 5]: spike trains as sinabs computed them. Also the
    reference fan-out maps ``fanout_structural_<node>`` / ``fanout_effective_<node>``
    (int32, per element of synaptic layer <node>'s input: node 0 [2, 8, 8], node 3
    [4, 4, 4] at the pooled positions and ``..._3_fused`` [4, 8, 8] per layer-1 neuron
    with the SumPool2d fused in, node 6 [24]) computed by independent loops here.
synops.json
    What sinabs' counters report (``SNNAnalyzer`` per layer and total, batch and
    per sample; the ``sinabs.hooks`` synops hooks; ``SynOpCounter``, which is not
    applicable to spiking models), the exact reference counts under the
    project's SOP definition (structural and effective, per layer, per sample),
    their comparison, and the method by which sinabs counts, with source quotes.
synops_method.md
    The same explanation of sinabs' counting method as prose, with the quoted
    source lines.

Neuron configuration. sinabs' default spiking neuron (``MultiSpike``: several
spikes per step, ``floor(v/theta)``; ``MembraneSubtract``: subtract theta)
differs from NIR's IF/LIF (one spike, reset to v_reset = 0). sinabs' exporter
writes only the threshold (and tau) and silently drops ``spike_fn``/``reset_fn``.
The fixture models therefore use ``SingleSpike`` + ``MembraneReset(0)``, the
sinabs configuration that NIR's IF/LIF describe; the default-neuron output is
kept beside it to show what the NIR file loses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

SEED = 20240521
SAMPLES = 4
STEPS = 12
P_SPIKE = 0.3
TAU_MEM = 4.0  # sinabs LIF tau_mem, in time steps
TARGET_RATE = 0.15  # calibrated mean spikes per neuron per step, every spiking layer
ZERO_FRACTION = 0.3  # synops model: fraction of weights set to exactly 0


# --------------------------------------------------------------------------- io


def _atomic_write(path: Path, write, suffix: str) -> None:
    """``write(tmp)`` into a temporary beside ``path``, then renamed onto it:
    an interrupted run never leaves a half-written fixture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), ".tmp")


def _write_json(path: Path, obj) -> None:
    _atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _write_npz(path: Path, **arrays) -> None:
    _atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), ".npz")


def _write_nir(path: Path, graph) -> None:
    import nir

    _atomic_write(path, lambda tmp: nir.write(tmp, graph), ".nir")


# ------------------------------------------------------------- sinabs models


def _neuron(kind: str, batch: int, n: int | None = None, default_neuron: bool = False):
    """A squeezed sinabs neuron layer: input/output (batch*steps, *shape)."""
    import torch
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, MembraneSubtract, MultiSpike, SingleSpike

    spike_fn = MultiSpike if default_neuron else SingleSpike
    reset_fn = MembraneSubtract() if default_neuron else MembraneReset(reset_value=0.0)
    if kind == "iaf":
        return sl.IAFSqueeze(batch_size=batch, spike_fn=spike_fn, reset_fn=reset_fn)
    if kind == "lif":
        # Per-neuron tensors: sinabs' exporter asserts tau and threshold have one shape,
        # and writes them verbatim (a scalar tau would give a 0-d nir.LIF).
        return sl.LIFSqueeze(
            tau_mem=torch.full((n,), TAU_MEM),
            spike_threshold=torch.ones(n),
            batch_size=batch,
            spike_fn=spike_fn,
            reset_fn=reset_fn,
            norm_input=True,  # sinabs' default for LIF
        )
    raise ValueError(kind)


def _mlp(batch: int, default_neuron: bool = False):
    import torch.nn as nn

    return nn.Sequential(
        nn.Linear(16, 12),
        _neuron("lif", batch, 12, default_neuron),
        nn.Linear(12, 5),
        _neuron("iaf", batch, default_neuron=default_neuron),
    )


def _cnn(batch: int, default_neuron: bool = False):
    import torch.nn as nn
    import sinabs.layers as sl

    return nn.Sequential(
        nn.Conv2d(2, 4, kernel_size=3, padding=1),
        _neuron("iaf", batch, default_neuron=default_neuron),
        sl.SumPool2d(2),
        nn.Conv2d(4, 6, kernel_size=3, stride=2, padding=1),
        _neuron("iaf", batch, default_neuron=default_neuron),
        nn.Flatten(),
        nn.Linear(24, 5),
        _neuron("iaf", batch, default_neuron=default_neuron),
    )


def _synops_model(batch: int, default_neuron: bool = False):
    import torch.nn as nn
    import sinabs.layers as sl

    return nn.Sequential(
        nn.Conv2d(2, 4, kernel_size=3, padding=2, dilation=2),
        _neuron("iaf", batch, default_neuron=default_neuron),
        sl.SumPool2d(2),
        # groups=1: a grouped Conv2d cannot go through NIR (see NIR_GROUPS_ISSUE); sinabs'
        # handling of groups is checked separately in _connection_map_checks().
        nn.Conv2d(4, 6, kernel_size=3, stride=2, padding=1),
        _neuron("iaf", batch, default_neuron=default_neuron),
        nn.Flatten(),
        nn.Linear(24, 5),
        _neuron("iaf", batch, default_neuron=default_neuron),
    )


NIR_GROUPS_ISSUE = (
    "A grouped Conv2d cannot round-trip through NIR here: nir.Conv2d computes its input type "
    "as [weight.shape[1], *input_shape], i.e. in_channels/groups channels (nir 1.0.4 and "
    "1.0.8 alike), so the node after e.g. a 4-channel SumPool2d claims 2 input channels; "
    "nir 1.0.8's nir.read then raises 'ValueError: Type inference error: type mismatch: "
    "2.output: [[4 4 4]] -> 3.input: [[2 4 4]]' (NIRGraph.__init__ runs infer_types). "
    "Measured with a first version of this fixture that had groups=2 in conv 3. The synops "
    "model therefore uses groups=1; sinabs' fan-out map for grouped (and dilated, strided, "
    "non-square) convs is compared with the exact loop count in 'connection_map_checks'."
)


def _connection_map_checks() -> list[dict]:
    """Compare sinabs' conv fan-out map (transposed conv of ones) with explicit loops."""
    import torch
    import torch.nn as nn
    from sinabs.hooks import conv_connection_map

    cases = [
        dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2, in_hw=(4, 4)),
        dict(in_channels=2, out_channels=4, kernel_size=3, stride=1, padding=2, dilation=2, in_hw=(8, 8)),
        dict(in_channels=4, out_channels=8, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0),
             dilation=(1, 2), groups=4, in_hw=(5, 7)),
        dict(in_channels=3, out_channels=3, kernel_size=3, stride=3, padding=0, in_hw=(8, 8)),
    ]
    res = []
    for c in cases:
        c = dict(c)
        hw = c.pop("in_hw")
        layer = nn.Conv2d(**c, bias=False)
        in_shape = (c["in_channels"], *hw)
        with torch.no_grad():
            out_shape = layer(torch.zeros(1, *in_shape)).shape[1:]
        sinabs_map = conv_connection_map(layer, torch.Size(in_shape), out_shape).numpy()[0]
        ours = _conv_fanout(np.ones(layer.weight.shape), in_shape, layer.stride, layer.padding,
                            layer.dilation, layer.groups, effective=False)
        res.append({
            "conv": {k: (list(v) if isinstance(v, tuple) else v) for k, v in c.items()},
            "input_shape": list(in_shape),
            "output_shape": list(out_shape),
            "sinabs_map_equals_exact_fanout": bool(np.array_equal(sinabs_map, ours)),
            "total_synapses_sinabs": float(sinabs_map.sum()),
            "total_synapses_exact": int(ours.sum()),
            "fanout_min_max": [int(ours.min()), int(ours.max())],
        })
    return res


def _synaptic_indices(model):
    import torch.nn as nn

    return [i for i, m in enumerate(model) if isinstance(m, (nn.Conv2d, nn.Linear))]


def _spiking_indices(model):
    import sinabs.layers as sl

    return [i for i, m in enumerate(model) if isinstance(m, sl.StatefulLayer)]


def _init_weights(model, gen, zero_fraction: float = 0.0) -> None:
    """Seeded init: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights with a positive
    mean so that gain calibration can drive every layer; small biases."""
    import torch

    for i in _synaptic_indices(model):
        layer = model[i]
        w = layer.weight
        fan_in = w[0].numel()
        bound = 1.0 / math.sqrt(fan_in)
        new = (torch.rand(w.shape, generator=gen) * 2 - 1) * bound + 0.35 * bound
        if zero_fraction:
            mask = torch.rand(w.shape, generator=gen) < zero_fraction
            new[mask] = 0.0
        layer.weight.data = new.float()
        if layer.bias is not None:
            layer.bias.data = ((torch.rand(layer.bias.shape, generator=gen) * 2 - 1) * 0.05 * bound).float()


def _run(model, x):
    """Run a squeezed sinabs model on x [samples, steps, *shape]; states reset first
    (each batch element is one sample, so samples never share state).
    Returns the output [samples, steps, *out] and every layer's output by index."""
    import torch
    import sinabs

    sinabs.reset_states(model)
    s, t = x.shape[:2]
    h = x.reshape(s * t, *x.shape[2:])
    outs = {}
    with torch.no_grad():
        for i, layer in enumerate(model):
            h = layer(h)
            outs[i] = h.reshape(s, t, *h.shape[1:]).clone()
    return h.reshape(s, t, *h.shape[1:]), outs


def _calibrate(model, x, target: float = TARGET_RATE) -> dict:
    """Scale each synaptic layer (weights and bias) in order so that the spiking layer
    after it fires at about `target` spikes per neuron per step for input x. Gains are
    found by bisection and rounded to 4 significant digits, so the result is exact and
    reproducible. Returns {layer index: gain}."""
    import torch

    syn = _synaptic_indices(model)
    spk = _spiking_indices(model)
    gains = {}
    for i in syn:
        j = min(k for k in spk if k > i)
        w0 = model[i].weight.data.clone()
        b0 = model[i].bias.data.clone() if model[i].bias is not None else None

        def rate(g):
            model[i].weight.data = (w0 * g).float()
            if b0 is not None:
                model[i].bias.data = (b0 * g).float()
            _, outs = _run(model, x)
            return float(outs[j].mean())

        lo, hi = 0.01, 1.0
        while rate(hi) < target and hi < 1e4:
            hi *= 2
        for _ in range(40):
            mid = math.sqrt(lo * hi)
            if rate(mid) < target:
                lo = mid
            else:
                hi = mid
        g = float(f"{hi:.4g}")
        rate(g)  # leaves the layer scaled by the rounded gain
        gains[str(i)] = g
    return gains


def _firing_stats(model, outs) -> dict:
    stats = {}
    for j in _spiking_indices(model):
        s = outs[j].numpy()
        ever = (s.sum(axis=1) > 0)  # [samples, *shape]
        stats[str(j)] = {
            "shape": list(s.shape[2:]),
            "spikes_per_neuron_per_step": round(float(s.mean()), 6),
            "fraction_of_neurons_firing_at_least_once_per_sample": round(float(ever.mean()), 6),
            "fraction_of_neurons_never_firing_in_any_sample": round(float((~ever.any(axis=0)).mean()), 6),
            "max_spikes_in_one_step": float(s.max()),
        }
    return stats


def _nir_summary(graph) -> dict:
    nodes = {}
    for name, node in graph.nodes.items():
        d = {"type": type(node).__name__}
        for key in ("input_type", "output_type"):
            t = getattr(node, key, None)
            if t:
                d[key] = {k: np.asarray(v).tolist() for k, v in t.items()}
        for key in ("stride", "padding", "dilation", "groups", "kernel_size", "start_dim", "end_dim"):
            if hasattr(node, key):
                v = getattr(node, key)
                d[key] = np.asarray(v).tolist() if not isinstance(v, (int, str)) else v
        for key in ("tau", "v_threshold", "r", "v_leak"):
            if hasattr(node, key):
                v = np.asarray(getattr(node, key), dtype=np.float64)
                d[key] = {"shape": list(v.shape), "unique": sorted(set(np.round(v.ravel(), 7).tolist()))}
        if hasattr(node, "weight"):
            d["weight_shape"] = list(np.asarray(node.weight).shape)
        nodes[name] = d
    return {
        "nodes": nodes,
        "edges": sorted(list(e) for e in graph.edges),
        "node_types": sorted({v["type"] for v in nodes.values()}),
    }


WRITE_FAILURE = (
    "sinabs 3.1.3's exporter builds nir.Conv2d(input_shape=None, ...) and "
    "nir.Flatten(input_type=None, ...); nir 1.0.4's nir.write then fails with "
    "'TypeError: One of data, shape or dtype must be specified' (h5py cannot store None), "
    "and nir 1.0.4's graph.infer_types() cannot repair it (it leaves SumPool2d's output type "
    "None, so the conv after a SumPool2d still has no input shape)."
)


def _fill_missing_shapes(graph, model, x) -> list[str]:
    """Fill in the shapes sinabs' exporter leaves as None, from the model's real activations.

    Only shapes are added: every parameter is taken unchanged from the exported node.
    Conv2d nodes get input_shape = (H, W) of their input; Flatten nodes get input_type =
    their unbatched input shape. Returns a description of each change."""
    import nir
    import torch

    s, t = x.shape[:2]
    h = x.reshape(s * t, *x.shape[2:])
    in_shapes = {}
    with torch.no_grad():
        for i, layer in enumerate(model):
            in_shapes[str(i)] = tuple(h.shape[1:])
            h = layer(h)
    sinabs_reset(model)
    fixes = []
    for name, node in list(graph.nodes.items()):
        if isinstance(node, nir.Conv2d) and node.input_shape is None:
            shape = in_shapes[name]
            graph.nodes[name] = nir.Conv2d(
                input_shape=tuple(int(v) for v in shape[1:]),
                weight=node.weight, stride=node.stride, padding=node.padding,
                dilation=node.dilation, groups=node.groups, bias=node.bias,
            )
            fixes.append(f"node {name} (Conv2d): input_shape None -> {list(shape[1:])}")
        elif isinstance(node, nir.Flatten) and (node.input_type is None or node.input_type.get("input") is None):
            shape = in_shapes[name]
            graph.nodes[name] = nir.Flatten(
                input_type={"input": np.array(shape)}, start_dim=node.start_dim, end_dim=node.end_dim
            )
            fixes.append(f"node {name} (Flatten): input_type None -> {list(shape)}")
    return fixes


def sinabs_reset(model) -> None:
    import sinabs

    sinabs.reset_states(model)


def _check_nir_roundtrip(path: Path, model) -> dict:
    """nir.read (this venv's nir) and compare every weight with the torch model."""
    import nir
    import torch.nn as nn

    g = nir.read(str(path))
    n_checked = 0
    for i, layer in enumerate(model):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            node = g.nodes[str(i)]
            assert np.array_equal(np.asarray(node.weight), layer.weight.detach().numpy()), i
            assert np.array_equal(np.asarray(node.bias), layer.bias.detach().numpy()), i
            n_checked += 1
    return {"nir_read_ok": True, "nir_version": nir.__version__, "synaptic_layers_equal": n_checked}


# --------------------------------------------------------- reference SOP count


def _conv_fanout(w: np.ndarray, in_shape, stride, padding, dilation, groups, effective: bool) -> np.ndarray:
    """Exact fan-out of each input element of a Conv2d by explicit loops: the number of
    (output neuron, kernel tap) pairs it feeds, counting only nonzero weights if
    `effective`. Independent of torch/sinabs (which use a transposed convolution)."""
    c_out, c_in_g, kh, kw = w.shape
    c_in, h, wd = in_shape
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out_per_group = c_out // groups
    fan = np.zeros(in_shape, dtype=np.int64)
    for co in range(c_out):
        g = co // out_per_group
        for ci_local in range(c_in_g):
            ci = g * c_in_g + ci_local
            for ky in range(kh):
                for kx in range(kw):
                    if effective and w[co, ci_local, ky, kx] == 0:
                        continue
                    for oy in range(oh):
                        iy = oy * stride[0] - padding[0] + ky * dilation[0]
                        if not 0 <= iy < h:
                            continue
                        for ox in range(ow):
                            ix = ox * stride[1] - padding[1] + kx * dilation[1]
                            if 0 <= ix < wd:
                                fan[ci, iy, ix] += 1
    return fan


def _fuse_sumpool(fan_after_pool: np.ndarray, pre_shape, k: int, s: int) -> np.ndarray:
    """Fan-out of each neuron *before* a SumPool2d(k, stride s, no padding) fused into the
    following synaptic layer: the sum of the fan-outs of the pooled positions it feeds."""
    fused = np.zeros(pre_shape, dtype=np.int64)
    c, ph, pw = fan_after_pool.shape
    for py in range(ph):
        for px in range(pw):
            fused[:, py * s : py * s + k, px * s : px * s + k] += fan_after_pool[:, py : py + 1, px : px + 1]
    return fused


# ------------------------------------------------------------- sinabs synops


def _sinabs_synops(build, weights_from, x, steps: int) -> dict:
    """Run the sinabs counters on a model built by `build(batch)` with the weights of
    `weights_from`. Batch run (all samples) and one run per sample (batch 1)."""
    import torch
    import sinabs
    import sinabs.hooks
    import sinabs.synopcounter

    def fresh(batch):
        m = build(batch)
        for i in _synaptic_indices(m):
            m[i].weight.data = weights_from[i].weight.data.clone()
            m[i].bias.data = weights_from[i].bias.data.clone()
        return m

    def tval(v):
        return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)

    def analyzer_run(xb):
        m = fresh(xb.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            an = sinabs.synopcounter.SNNAnalyzer(m, dt=1.0)
        _run(m, xb)
        layer = an.get_layer_statistics()
        model = an.get_model_statistics()
        out = {
            "per_layer": {
                k: {
                    "synops": tval(v["synops"]),
                    "num_timesteps": int(v["num_timesteps"]),
                    "SynOps/s (dt=1 ms)": tval(v["SynOps/s"]),
                }
                for k, v in layer["parameter"].items()
            },
            "total_synops": tval(model["synops"]),
            "firing_rate": tval(model["firing_rate"]),
            "n_spiking_neurons": tval(model["n_spiking_neurons"]),
        }
        for h in an.handles:
            h.remove()
        return out

    def hooks_run(xb):
        m = fresh(xb.shape[0])
        sinabs.hooks.register_synops_hooks(m, dt=None)
        s, t = xb.shape[:2]
        sinabs.reset_states(m)
        with torch.no_grad():
            m(xb.reshape(s * t, *xb.shape[2:]))
        return {
            "synops_per_timestep": {str(k): tval(v) for k, v in m.hook_data["synops_per_timestep"].items()},
            "layer_synops_per_timestep": {
                str(i): tval(m[i].hook_data["layer_synops_per_timestep"]) for i in _synaptic_indices(m)
            },
            "total_synops_per_timestep": tval(m.hook_data["total_synops_per_timestep"]),
        }

    result = {
        "SNNAnalyzer": {
            "batch": analyzer_run(x),
            "per_sample": [analyzer_run(x[s : s + 1]) for s in range(x.shape[0])],
        },
        "hooks": {
            "batch": hooks_run(x),
            "per_sample": [hooks_run(x[s : s + 1]) for s in range(x.shape[0])],
        },
    }
    # SynOpCounter counts only NeuromorphicReLU modules (analog CNNs): on a spiking model
    # it raises. Record exactly what it says.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            sinabs.SynOpCounter(fresh(x.shape[0]).modules())
        result["SynOpCounter"] = {"applicable": True}
    except Exception as exc:  # noqa: BLE001 - recorded, not hidden
        result["SynOpCounter"] = {
            "applicable": False,
            "error": f"{type(exc).__name__}: {exc}",
            "why": "SynOpCounter collects only sinabs.layers.NeuromorphicReLU modules with fanout > 0 "
            "(an analog ReLU used to train CNNs before conversion); a spiking model has none.",
        }
    return result


# ------------------------------------------------------------------- method


def _source_quotes() -> list[dict]:
    """Quote the lines of the installed sinabs that define how it counts synops."""
    import inspect
    import sinabs.hooks
    import sinabs.layers.neuromorphic_relu
    import sinabs.synopcounter

    wanted = [
        (sinabs.synopcounter, "def synops_hook", 0, 52),
        (sinabs.synopcounter, "    def _setup_hooks", 0, 33),
        (sinabs.synopcounter, "            if isinstance(module, torch.nn.AvgPool2d):", 0, 37),
        (sinabs.synopcounter, "    def __init__(self, modules, sum_activations=True):", 0, 23),
        (sinabs.layers.neuromorphic_relu, "        self.activity =", 0, 1),
        (sinabs.hooks, "    deconvolve = nn.ConvTranspose2d(", 0, 22),
        (sinabs.hooks, "    data = get_hook_data_dict(module)\n    input_ = _extract_single_input(input_)\n    if (", 0, 14),
        (sinabs.hooks, "    # Mean is across batches and timesteps\n    synops = input_.mean(0)", 0, 3),
        (sinabs.hooks, "        scale_factors = []\n        for lyr_idx, lyr in enumerate(module):", 0, 35),
    ]
    quotes = []
    for mod, start, skip, n in wanted:
        path = inspect.getsourcefile(mod)
        text = Path(path).read_text().splitlines()
        first = start.split("\n")[0]
        hits = [k for k, line in enumerate(text) if line.startswith(first) and
                "\n".join(text[k : k + start.count("\n") + 1]).startswith(start)]
        if not hits:
            raise RuntimeError(f"source line not found in {path}: {start!r}")
        k = hits[0] + skip
        rel = path[path.index("site-packages/") + len("site-packages/") :]
        quotes.append({"file": rel, "lines": f"{k + 1}-{k + n}", "source": "\n".join(text[k : k + n])})
    return quotes


METHOD = {
    "summary": (
        "sinabs counts, for every nn.Conv2d and nn.Linear layer (including the first one), "
        "sum over the layer's INPUT tensor of (input value x structural fan-out of that input "
        "element). The input value is used as a count (a graded / multi-spike value k counts k "
        "times; an analog value is multiplied in as-is). Conv fan-out is exact per input "
        "element: a map made once by a ConvTranspose2d with all-ones weights and the layer's "
        "kernel_size, stride, padding, dilation and groups, applied to an all-ones output, so "
        "conv borders, stride, dilation and groups are all honoured. Linear fan-out is "
        "out_features for every input. Weights are never looked at: zero weights are counted "
        "(the count is 'structural' in our terms; sinabs has no 'effective' count). No "
        "spiking-neuron layer and no pooling layer is counted itself. Only nn.Conv2d and nn.Linear "
        "are counted (no Conv1d, no recurrent weights); the hooks API sees only the direct "
        "children of an nn.Sequential."
    ),
    "normalisation": {
        "SNNAnalyzer (sinabs.synopcounter, deprecated in 3.1.3)": (
            "With squeezed layers (IAFSqueeze etc.; the hook looks for any SqueezeMixin layer "
            "and takes (batch_size, num_timesteps) of the LAST one) the input (B*T, ...) is "
            "reshaped to (B, T, ...), SUMMED over time and AVERAGED over the batch: "
            "'synops' = SOP per sample over all T steps (mean over samples). 'SynOps/s' = "
            "synops / num_timesteps / dt * 1000 (dt in ms). get_model_statistics()['synops'] "
            "sums the layers. Without squeezed layers a Linear fed (B, T, N) is also summed over "
            "T and averaged over B, but a Conv2d fed (B*T, C, H, W) gets num_timesteps = 0 and "
            "is averaged over all B*T rows (per step), so the two layers would be on different "
            "scales; and a Conv2d with a 5-d input cannot run at all."
        ),
        "sinabs.hooks.register_synops_hooks (the API sinabs 3.1.3 recommends)": (
            "'layer_synops_per_timestep' = (input * connection_map).mean(0).sum() for conv and "
            "input.mean(0).sum() * out_features for linear: the mean over dim 0. With squeezed "
            "(B*T, ...) inputs that is SOP per sample per step (mean over samples and steps); "
            "multiply by T for a per-sample total. Caveat from the source: a Linear fed an "
            "unsqueezed (B, T, N) input is averaged over B only and summed over T, so its "
            "'per_timestep' is then really per sample. 'total_synops_per_timestep' sums the "
            "layers of the Sequential."
        ),
        "SynOpCounter": (
            "Not a spiking counter: it gathers NeuromorphicReLU modules (fanout > 0) and "
            "reports each one's activity = output.sum() / len(output) * fanout, i.e. the summed "
            "(quantised) activation per batch element times ONE user-given scalar fan-out (no "
            "borders, no stride), counted at the emitting layer (so the first layer's input is "
            "never counted). On a spiking model it raises ValueError('No NeuromorphicReLU found "
            "in module list.')."
        ),
    },
    "pooling": (
        "Neither counter counts pooling itself. sinabs.layers.SumPool2d is torch's LPPool2d "
        "with p = 1: it sums the spikes of each window, and the next conv/linear layer "
        "multiplies that summed count by the fan-out of the pooled position. So with "
        "SumPool2d each presynaptic spike is charged the fan-out of the pooled position it "
        "falls into: exactly our 'pooling fused into the following layer' rule when kernel == "
        "stride (each presynaptic neuron reaches each postsynaptic one by one path; neurons in "
        "the floor-cut border of an odd-sized map drive nothing, in both). With overlapping "
        "windows sinabs charges a spike once per window it falls in, which is more than a fused "
        "kernel that merges the paths into one synapse would have. nn.AvgPool2d divides by the window size, so both counters "
        "multiply the next weight layer's count by kernel_size**2 (warning if kernel != "
        "stride); in the hooks API the factor is reset after every layer with a weight."
    ),
    "first_layer": (
        "Counted: the hook is on the weight layer and sees its input, whatever it is (binary "
        "spikes here). A direct-encoded (analog) input would be counted as value x fan-out, "
        "where our project counts MACs instead."
    ),
    "per_sample_or_batch": (
        "Both spiking counters report batch means (the hooks API additionally a mean over "
        "steps); neither reports a per-sample vector. synops.json therefore also holds runs "
        "with batch size 1, one per sample."
    ),
    "difference_from_project_SOP": (
        "For binary spikes, SumPool2d and conv/linear layers, sinabs' count equals our "
        "STRUCTURAL SOP exactly (per sample: SNNAnalyzer 'synops'; per sample per step: "
        "hooks 'synops_per_timestep'), including the first layer, conv borders, stride, "
        "dilation and groups. It never equals our EFFECTIVE SOP when a weight is zero. It "
        "would differ from ours for graded inputs (multi-spike neurons, analog first layer: "
        "value-weighted), for AvgPool (its kernel_size**2 factor), and for a batch mean vs "
        "our per-sample numbers."
    ),
}


# --------------------------------------------------------------- generation


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("sinabs", "nir", "nirtorch", "torch", "numpy", "h5py", "samna"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _dt_notes(kind: str) -> dict:
    alpha = math.exp(-1.0 / TAU_MEM)
    dt_lif = TAU_MEM * (1.0 - alpha)
    notes = {
        "IF": (
            "sinabs IAF: v <- v + I each step (alpha = 1, no time constant; exported as "
            "nir.IF(r = 1, v_threshold)). Per step and dt-independent: NIR's IF is "
            "integrated as v <- v + r*I per step (norse ignores dt for IF). Any dt works."
        ),
    }
    if kind == "mlp":
        notes["LIF"] = (
            "sinabs LIF (norm_input=True, its default, tau_mem in STEPS): alpha = "
            "exp(-1/tau_mem); v <- alpha*v + (1 - alpha)*I. The exporter writes "
            "nir.LIF(tau = tau_mem, r = 1, v_leak = 0, v_threshold) and drops norm_input. "
            "Forward Euler of tau dv/dt = (v_leak - v) + r*I with step dt gives "
            "v <- (1 - dt/tau) v + (dt/tau) I, so it equals sinabs exactly when "
            "dt/tau = 1 - exp(-1/tau), i.e. dt = tau*(1 - exp(-1/tau)) = "
            f"{dt_lif:.9f} for tau = {TAU_MEM} (one dt for the whole graph, so all sinabs "
            "taus must be equal, as here). dt = 1 (the 'natural' step) does NOT match: it "
            f"gives decay 1 - 1/tau = {1 - 1 / TAU_MEM} instead of {alpha:.7f} and input gain "
            f"{1 / TAU_MEM} instead of {1 - alpha:.7f}. If the sinabs LIF had norm_input=False "
            "(v <- alpha v + I; also what sinabs.from_nir builds) no Euler dt matches: decay "
            "and input gain cannot both hold. Exact-ODE simulators (exp(-dt/tau) decay) would "
            "match norm_input=True at dt = 1."
        )
        notes["dt"] = dt_lif
    else:
        notes["dt"] = 1.0
    return notes


EXPORTER_LOSSES = [
    "spike_fn: sinabs' default MultiSpike emits floor(v/theta) spikes per step (graded); NIR "
    "IF/LIF emit at most one. The fixtures use SingleSpike.",
    "reset_fn: sinabs' default MembraneSubtract subtracts theta; NIR IF/LIF reset to v_reset "
    "(0). The fixtures use MembraneReset(0). norse has reset_subtract for LIF only (its IAF "
    "ignores reset_method), and nothing for MultiSpike.",
    "threshold test: sinabs spikes when v >= theta (SingleSpike: v - theta >= 0); norse "
    "when v > theta (heaviside(v - theta) with 0 -> 0). They differ only if v == theta "
    "exactly; with the random float weights used here that never happened (see the norse "
    "check).",
    "norm_input of LIF is not written (see dt notes).",
    "min_v_mem (a floor on v) is not written; the fixtures use none (sinabs.from_nir "
    "re-imports IF with min_v_mem = -v_threshold).",
    "a grouped Conv2d is exported, but its NIR input type is wrong (see synops.json "
    "'nir_grouped_conv_issue'); no fixture graph has one.",
    "nir.LIF tau and v_threshold are written with the torch shapes as given: a scalar tau_mem "
    "gives a 0-d node; the fixtures pass per-neuron tensors of shape (12,).",
]


def generate(out: Path) -> None:
    import torch
    import sinabs

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    fixtures = {
        "generator": "scripts/make_sinabs_fixtures.py",
        "seed": SEED,
        "versions": _versions(),
        "samples": SAMPLES,
        "steps": STEPS,
        "input": f"Bernoulli({P_SPIKE}) spikes, float32, [samples, steps, *input_shape] in NIR's "
        "unbatched shape order (C, H, W for images)",
        "how_sinabs_was_run": "squeezed layers (IAFSqueeze/LIFSqueeze, batch_size = samples): "
        "input reshaped to (samples*steps, *shape); one batch element per sample, states reset "
        "before the run, so samples never share state.",
        "neuron": "sinabs SingleSpike + MembraneReset(reset_value=0), threshold 1.0, no "
        "min_v_mem (the configuration NIR's IF/LIF describe)",
        "exporter": "sinabs.to_nir(model, sample_data) -> nirtorch.extract_nir_graph("
        "ignore_dims=[0]); the node names are the indices in the nn.Sequential",
        "exporter_losses": EXPORTER_LOSSES,
        "graphs": {},
    }

    graphs = {"sinabs_mlp": (_mlp, (16,)), "sinabs_cnn": (_cnn, (2, 8, 8))}
    for name, (build, in_shape) in graphs.items():
        model = build(SAMPLES)
        _init_weights(model, gen)
        x = (torch.rand((SAMPLES, STEPS, *in_shape), generator=gen) < P_SPIKE).float()
        gains = _calibrate(model, x)
        y, outs = _run(model, x)

        default = build(SAMPLES, default_neuron=True)
        for i in _synaptic_indices(model):
            default[i].weight.data = model[i].weight.data.clone()
            default[i].bias.data = model[i].bias.data.clone()
        y_default, _ = _run(default, x)

        _run(model, x)  # leave states shaped for the exporter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            graph = sinabs.to_nir(model, x.reshape(SAMPLES * STEPS, *in_shape))
        fixes = _fill_missing_shapes(graph, model, x)
        path = out / f"{name}.nir"
        _write_nir(path, graph)
        check = _check_nir_roundtrip(path, model)

        arrays = {
            "input": x.numpy().astype(np.float32),
            "sinabs_output": y.numpy().astype(np.float32),
            "sinabs_output_default_neuron": y_default.numpy().astype(np.float32),
        }
        for j in _spiking_indices(model):
            arrays[f"layer_{j}"] = outs[j].numpy().astype(np.float32)
        _write_npz(out / f"{name}_io.npz", **arrays)

        kind = "mlp" if name.endswith("mlp") else "cnn"
        fixtures["graphs"][name] = {
            "nir_file": f"{name}.nir",
            "io_file": f"{name}_io.npz",
            "sinabs_model": [repr(m).replace("\n", " ") for m in model],
            "input_shape": list(in_shape),
            "output_shape": list(y.shape[2:]),
            "nir": _nir_summary(graph),
            "nir_read_in_sinabs_venv": check,
            "exporter_fixups": {"needed_because": WRITE_FAILURE, "changes": fixes} if fixes else [],
            "calibration_gains": gains,
            "firing": _firing_stats(model, outs),
            "default_neuron_output_differs_in_spikes": int((y_default != y).sum()),
            "default_neuron_output_max": float(y_default.max()),
            "dt": _dt_notes(kind),
        }
        print(f"{name}: rates", {k: v["spikes_per_neuron_per_step"] for k, v in fixtures["graphs"][name]["firing"].items()})

    # ---------------------------------------------------------- synops fixture
    model = _synops_model(SAMPLES)
    _init_weights(model, gen, zero_fraction=ZERO_FRACTION)
    x = (torch.rand((SAMPLES, STEPS, 2, 8, 8), generator=gen) < P_SPIKE).float()
    gains = _calibrate(model, x)
    y, outs = _run(model, x)
    _run(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graph = sinabs.to_nir(model, x.reshape(SAMPLES * STEPS, 2, 8, 8))
    fixes = _fill_missing_shapes(graph, model, x)
    path = out / "synops_model.nir"
    _write_nir(path, graph)
    check = _check_nir_roundtrip(path, model)

    sinabs_counts = _sinabs_synops(_synops_model, model, x, STEPS)

    # Reference: exact per-sample SOP under the project's definition.
    conv1, conv2, lin = model[0], model[3], model[6]
    fan = {}
    for eff in (False, True):
        key = "effective" if eff else "structural"
        w1 = conv1.weight.detach().numpy()
        w2 = conv2.weight.detach().numpy()
        wl = lin.weight.detach().numpy()
        f0 = _conv_fanout(w1, (2, 8, 8), conv1.stride, conv1.padding, conv1.dilation, conv1.groups, eff)
        f3_pooled = _conv_fanout(w2, (4, 4, 4), conv2.stride, conv2.padding, conv2.dilation, conv2.groups, eff)
        f3_fused = _fuse_sumpool(f3_pooled, (4, 8, 8), 2, 2)
        f6 = (wl != 0).sum(axis=0).astype(np.int64) if eff else np.full(wl.shape[1], wl.shape[0], np.int64)
        fan[key] = {"0": f0, "3": f3_pooled, "3_fused": f3_fused, "6": f6}

    inputs = {"0": x.numpy(), "3": outs[1].numpy(), "6": outs[5].numpy()}  # presynaptic spikes
    ref = {}
    for key in ("structural", "effective"):
        per_layer = {}
        for lyr, spikes in inputs.items():
            f = fan[key]["3_fused"] if lyr == "3" else fan[key][lyr]
            per_step = (spikes * f).reshape(SAMPLES, STEPS, -1).sum(-1)  # [samples, steps]
            per_layer[lyr] = {
                "per_sample_per_step": per_step.astype(np.int64).tolist(),
                "per_sample": per_step.sum(1).astype(np.int64).tolist(),
                "mean_per_sample": float(per_step.sum(1).mean()),
                "mean_per_sample_per_step": float(per_step.mean()),
            }
        tot = sum(np.asarray(v["per_sample"]) for v in per_layer.values())
        ref[key] = {
            "per_layer": per_layer,
            "total_per_sample": tot.astype(np.int64).tolist(),
            "total_mean_per_sample": float(tot.mean()),
        }
    # pooled-position view must agree with the fused view
    pooled = outs[2].numpy()
    alt = (pooled * fan["structural"]["3"]).reshape(SAMPLES, -1).sum(-1)
    assert np.array_equal(alt.astype(np.int64), np.asarray(ref["structural"]["per_layer"]["3"]["per_sample"]))

    an_b = sinabs_counts["SNNAnalyzer"]["batch"]["per_layer"]
    hk_b = sinabs_counts["hooks"]["batch"]["synops_per_timestep"]
    comparison = {}
    for lyr in ("0", "3", "6"):
        s = ref["structural"]["per_layer"][lyr]
        e = ref["effective"]["per_layer"][lyr]
        comparison[lyr] = {
            "sinabs_SNNAnalyzer_synops (mean per sample, all steps)": an_b[lyr]["synops"],
            "sinabs_hooks_synops_per_timestep x steps": hk_b[lyr] * STEPS,
            "reference_structural_mean_per_sample": s["mean_per_sample"],
            "reference_effective_mean_per_sample": e["mean_per_sample"],
            "SNNAnalyzer_per_sample": [p["per_layer"][lyr]["synops"] for p in sinabs_counts["SNNAnalyzer"]["per_sample"]],
            "reference_structural_per_sample": s["per_sample"],
            "SNNAnalyzer_equals_structural_per_sample": bool(np.allclose(
                [p["per_layer"][lyr]["synops"] for p in sinabs_counts["SNNAnalyzer"]["per_sample"]],
                s["per_sample"], rtol=0, atol=1e-3)),
            "hooks_equal_structural_per_sample": bool(np.allclose(
                [p["synops_per_timestep"][lyr] * STEPS for p in sinabs_counts["hooks"]["per_sample"]],
                s["per_sample"], rtol=1e-6, atol=1e-3)),
        }
    comparison["total"] = {
        "sinabs_SNNAnalyzer_total_synops": sinabs_counts["SNNAnalyzer"]["batch"]["total_synops"],
        "sinabs_hooks_total_synops_per_timestep x steps": sinabs_counts["hooks"]["batch"]["total_synops_per_timestep"] * STEPS,
        "reference_structural_total_mean_per_sample": ref["structural"]["total_mean_per_sample"],
        "reference_effective_total_mean_per_sample": ref["effective"]["total_mean_per_sample"],
    }

    arrays = {"input": x.numpy().astype(np.float32)}
    for j in (1, 2, 4, 7):
        arrays[f"layer_{j}"] = outs[j].numpy().astype(np.float32)
    for key in ("structural", "effective"):
        for lyr in ("0", "3", "3_fused", "6"):
            arrays[f"fanout_{key}_{lyr}"] = fan[key][lyr].astype(np.int32)
    _write_npz(out / "synops_io.npz", **arrays)

    quotes = _source_quotes()
    synops = {
        "generator": "scripts/make_sinabs_fixtures.py",
        "seed": SEED,
        "versions": fixtures["versions"],
        "model": [repr(m).replace("\n", " ") for m in model],
        "nir_file": "synops_model.nir",
        "io_file": "synops_io.npz",
        "nir": _nir_summary(graph),
        "nir_read_in_sinabs_venv": check,
        "exporter_fixups": {"needed_because": WRITE_FAILURE, "changes": fixes},
        "samples": SAMPLES,
        "steps": STEPS,
        "zero_weights": {str(i): int((model[i].weight == 0).sum()) for i in _synaptic_indices(model)},
        "weights": {str(i): int(model[i].weight.numel()) for i in _synaptic_indices(model)},
        "calibration_gains": gains,
        "firing": _firing_stats(model, outs),
        "layer_names": {"0": "conv1 (input: the input spikes)", "3": "conv2 (input: SumPool2d "
                        "of layer 1 spikes; presynaptic neurons = layer 1, pool fused)",
                        "6": "linear (input: flattened layer 4 spikes)"},
        "sinabs": sinabs_counts,
        "reference_exact": {
            "definition": "for each synaptic layer fed by spikes, for each step, for each "
            "presynaptic neuron that spiked, the number of synapses it drives in that layer "
            "(exact, with conv borders, stride, dilation, groups), after pooling fused into the "
            "following layer; structural = every synapse, effective = nonzero weights only. "
            "Computed here by explicit loops (no transposed convolution).",
            **ref,
        },
        "comparison": comparison,
        "connection_map_checks": _connection_map_checks(),
        "nir_grouped_conv_issue": NIR_GROUPS_ISSUE,
        "method": {**METHOD, "source_quotes": quotes},
    }
    _write_json(out / "synops.json", synops)
    _write_method_md(out / "synops_method.md", quotes, comparison)

    fixtures["synops"] = {"nir_file": "synops_model.nir", "io_file": "synops_io.npz",
                          "json": "synops.json", "method": "synops_method.md",
                          "nir": {"node_types": _nir_summary(graph)["node_types"]},
                          "dt": _dt_notes("cnn")}
    _write_json(out / "fixtures.json", fixtures)
    print("synops comparison:", json.dumps(comparison, indent=1)[:2000])


def _write_method_md(path: Path, quotes, comparison) -> None:
    lines = [
        "# How sinabs counts synaptic operations (sinabs 3.1.3)",
        "",
        "Written by `scripts/make_sinabs_fixtures.py` from the installed sinabs source. "
        "Numbers for the fixture model are in `synops.json`.",
        "",
        "## Summary",
        "",
        METHOD["summary"],
        "",
        "## Normalisation (per sample, per step, per batch)",
        "",
    ]
    for k, v in METHOD["normalisation"].items():
        lines += [f"- **{k}**: {v}", ""]
    for title, key in (("Pooling", "pooling"), ("First layer", "first_layer"),
                       ("Per sample or per batch", "per_sample_or_batch"),
                       ("Difference from the project's SOP", "difference_from_project_SOP")):
        lines += [f"## {title}", "", METHOD[key], ""]
    lines += ["## Fixture model: sinabs vs exact reference (mean per sample over all steps)", "",
              "| layer | SNNAnalyzer | hooks x steps | ours structural | ours effective |",
              "| --- | --- | --- | --- | --- |"]
    for lyr in ("0", "3", "6"):
        c = comparison[lyr]
        lines.append(
            f"| {lyr} | {c['sinabs_SNNAnalyzer_synops (mean per sample, all steps)']:.4f} | "
            f"{c['sinabs_hooks_synops_per_timestep x steps']:.4f} | "
            f"{c['reference_structural_mean_per_sample']:.4f} | {c['reference_effective_mean_per_sample']:.4f} |")
    t = comparison["total"]
    lines += [f"| total | {t['sinabs_SNNAnalyzer_total_synops']:.4f} | "
              f"{t['sinabs_hooks_total_synops_per_timestep x steps']:.4f} | "
              f"{t['reference_structural_total_mean_per_sample']:.4f} | "
              f"{t['reference_effective_total_mean_per_sample']:.4f} |", ""]
    lines += ["## Source quotes", ""]
    for q in quotes:
        lines += [f"`{q['file']}` lines {q['lines']}:", "", "```python", q["source"], "```", ""]
    _atomic_write_bytes(path, "\n".join(lines).encode())


# ------------------------------------------------------------ norse check


def verify_norse(out: Path) -> None:
    """Run in the PROJECT venv (nir 1.0.8, norse 1.1.0): load each .nir, build norse's
    from_nir module, run it per sample and per step on unbatched inputs, compare."""
    import importlib.metadata as md
    import logging

    import nir
    import norse.torch
    import torch

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    fx_path = out / "fixtures.json"
    fixtures = json.loads(fx_path.read_text())

    def run(graph, dt, x):
        module = norse.torch.from_nir(graph, dt=dt)
        res = []
        with torch.no_grad():
            for s in range(x.shape[0]):
                state = None
                steps = []
                for t in range(x.shape[1]):
                    y, state = module(torch.from_numpy(x[s, t]), state)
                    steps.append(y.numpy())
                res.append(np.stack(steps))
        return np.stack(res).astype(np.float32)

    cases = [(name, g["nir_file"], g["io_file"], "sinabs_output", g["dt"]["dt"])
             for name, g in fixtures["graphs"].items()]
    cases.append(("synops_model", "synops_model.nir", "synops_io.npz", "layer_7", fixtures["synops"]["dt"]["dt"]))
    check = {"versions": {p: md.version(p) for p in ("nir", "nirtorch", "norse", "torch", "numpy")},
             "how": "nir.read(file); norse.torch.from_nir(graph, dt=dt); per sample a fresh "
             "state; per step module(x[s, t], state) with x[s, t] of shape input_shape "
             "(unbatched: NIR Flatten dims exclude the batch)",
             "results": {}}
    for name, nir_file, io_file, key, dt in cases:
        graph = nir.read(str(out / nir_file))
        io = np.load(out / io_file)
        x, ref = io["input"], io[key]
        y = run(graph, dt, x)
        r = {"dt": dt, "node_types": sorted({type(n).__name__ for n in graph.nodes.values()}),
             "output_shape": list(y.shape[2:]), "compared_with": key,
             "spikes_in_sinabs_output": int(ref.sum()), "spikes_in_norse_output": int(y.sum()),
             "mismatching_elements": int((y != ref).sum()), "total_elements": int(ref.size),
             "equal_spike_for_spike": bool(np.array_equal(y, ref))}
        if "sinabs_output_default_neuron" in io.files:
            d = io["sinabs_output_default_neuron"]
            r["vs_sinabs_default_neuron"] = {
                "mismatching_elements": int((y != d).sum()),
                "equal": bool(np.array_equal(y, d)),
                "why": "the NIR file cannot say MultiSpike/MembraneSubtract; norse's IF/LIF "
                "emit one spike and reset to 0",
            }
        if name == "sinabs_mlp":
            y1 = run(graph, 1.0, x)
            r["with_dt_1"] = {"mismatching_elements": int((y1 != ref).sum()),
                              "equal": bool(np.array_equal(y1, ref)),
                              "why": "Euler with dt = 1 decays by 1 - 1/tau and scales the "
                              "input by 1/tau; sinabs (norm_input=True) uses exp(-1/tau) and "
                              "1 - exp(-1/tau)"}
        if not r["equal_spike_for_spike"]:
            r["reason"] = "UNEXPLAINED: investigate"  # filled by hand if it ever happens
        check["results"][name] = r
        print(name, {k: r[k] for k in ("dt", "mismatching_elements", "equal_spike_for_spike")})
    fixtures["norse_check"] = check
    _write_json(fx_path, fixtures)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder, e.g. tests/fixtures/sinabs")
    ap.add_argument("--verify-norse", action="store_true",
                    help="step two, in the project venv: compare norse.from_nir with sinabs' output")
    args = ap.parse_args(argv)
    if args.verify_norse:
        verify_norse(args.out)
    else:
        generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
