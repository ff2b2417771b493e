"""The lava-dl peer path: a deployment plan as a lava-dl ``slayer`` network,
exported with slayer's own ``export_hdf5`` and loaded as a ``netx`` Lava
network (fixed point only: netx has no float models).

This is the route lava-dl users take from slayer to Lava; it runs the same
weights as our own Lava graph (:mod:`slt_deploy.lava.network`) so the two
can be compared side by side (``bench/lava_sim.py``).

Neuron mapping (slayer ``neuron/cuba.py``, Lava ``proc/lif/models.py``).
slayer's CUBA neuron with ``scale = S`` keeps its states as integers
``x_int = x * (S << 6)`` and, per step::

    u_int = (u_int * (4096 - iDecay)) >>0 12 + (W_mant @ s) << 6
    v_int = (v_int * (4096 - vDecay)) >>0 12 + u_int + (b_mant << 6)
    spike if v_int >= (vThMant << 6) + 0.01, i.e. v_int > vThMant << 6; v_int <- 0

(``>>0`` rounds toward zero) with 8-bit weight mantissas ``W_mant = w * S``
(slayer's ``quantize_8bit``: even integers in [-256, 254]), ``vThMant =
vth * S`` and a bias mantissa ``b_mant = b * S`` carried by the neuron's
``norm`` (``MeanOnlyBatchNorm``: bias = -running mean, quantised the same
way). That is bit for bit what Lava's fixed-point LIF computes with netx's
parameters (``du = iDecay - 1`` plus Lava's one-bit current-decay offset,
``dv = vDecay``, ``bias_exp = 6``, activations and threshold shifted by 6
bits). Our float population (``u = a_in`` i.e. du = 1; ``v = (1 - dv) v + u
+ bias``; spike ``v > vth``; reset to 0) becomes ``current_decay = 1``,
``voltage_decay = dv`` (0.5 for beta = 0.5), ``threshold = vth`` and the
plan's float weights and biases (Lava float units) as they are. One scale
S per block, the largest power of two for which the block's weights and
biases fit the 8-bit range (S only sets the fixed-point resolution: the
neuron equation is unchanged when weights, bias and threshold scale
together; powers of two keep slayer's float arithmetic exact).

Readout. Our models' output layer does not spike: O[t] = W x[t] + b and the
prediction at latency t is argmax of the mean of O over steps 1..t. On
netx it is slayer's non-spiking ``Affine`` block (``dynamics=True``: a CUBA
neuron whose threshold is exported as the maximum, so it never fires) with
``current_decay = 1`` and ``voltage_decay = 0``: a perfect integrator whose
voltage after step t is ``sum_{s<=t} W x[s]`` exactly (integers). By
default a Lava ``Monitor`` probes that voltage every step of the run (no
round trip per sample; :class:`NetxRunner` ``readout="voltage"``);
per-step outputs are its differences, plus the plan's ``output_bias``
added on the host (as our Lava graph does). ``readout="current"`` reads the
same numbers from a ring-buffer sink on the readout block's synaptic output
instead (cheaper: no Monitor; bench/lava_sim.py measures both). The
readout scale is the largest power of two for which the voltage cannot
saturate (24 bits) within ``max_latency`` steps even if every input neuron
fired at every step. Spike counts were rejected: at T = 8 a spiking readout
could count at most 8 levels per class.

Timing. Every netx block delays by one step (Lava's Dense/Conv send what
they received the step before), so block i (0-based) sees a sample's step
1 at Lava step ``start + 1 + i``. Each sample gets ``P = max_latency +
blocks`` steps; netx's ``reset_interval = P`` with ``reset_offset = 1``
zeroes block i at step ``2 + i`` of the period (``LIFReset``) -- the same
schedule as our graph -- so samples run back to back in one long run.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import torch

from ..core.compat import import_lava
from ..core.errors import UserError
from ..core.files import atomic_path
from ..core.latency import check_latencies, check_latency
from ..core.result import Simulation
from ..deploy.plan import DeployPlan, Population, Projection
from ..ir.netxfile import NETX_INPUT_WEIGHT
from ..neuron import ACT_SHIFT, DECAY_UNITY, lif_step, netx_neuron_params
from .watchdog import WatchedRuntime, default_step_seconds

import_lava(with_dl=True)  # Lava and lava-dl are imported only through the Python 3.11 compat layer
from lava.lib.dl import netx, slayer  # noqa: E402
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.io.sink import RingBuffer as Sink  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402

WEIGHT_MANT_MAX = 254
"""Largest |8-bit mantissa| slayer's ``quantize_8bit`` keeps for both signs (it clips to [-256, 254])."""
V_LIMIT = 2**23 - 1
"""Lava's fixed-point voltage saturates at 24 bits (signed)."""


# --------------------------------------------------------------------------- plan -> slayer


@dataclass
class NetxIO:
    """How to feed and read the netx network of a plan.

    ``input_shape``: NIR (C, H, W) or (N,) of one time step; ``lava_input_shape``:
    the same in Lava's (x, y, c) order; ``scales``: slayer neuron ``scale`` S of
    each block (weight, bias, threshold mantissa = float value x S);
    ``readout_scale``: readout voltage integer / this = float output (S_out << 6);
    ``output_bias``: float, added per step on the host; ``blocks``: synaptic
    layers = pipeline delay (steps); ``period``: steps per sample (max_latency
    + blocks); ``quantised``: the plan with slayer's quantised weights and
    biases (float units) -- what the netx network computes exactly."""

    path: Path
    input_shape: tuple[int, ...]
    lava_input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    scales: list[int]
    readout_scale: float
    output_bias: np.ndarray
    blocks: int
    max_latency: int
    quantised: DeployPlan

    @property
    def period(self) -> int:
        return self.max_latency + self.blocks


def _chain(plan: DeployPlan) -> list[Projection]:
    """The plan's projections as one feed-forward chain input -> ... -> output,
    or a UserError naming what netx's sequential format cannot express."""
    if plan.input_kind != "spikes":
        raise UserError(f"netx path: input kind '{plan.input_kind}' is not supported; binary spike input only")
    if plan.output_population is not None:
        raise UserError("netx path: the output must be a dense readout into the Output node")
    chain, current = [], plan.input_name
    for _ in range(len(plan.projections)):
        outgoing = [p for p in plan.projections if p.source == current]
        if len(outgoing) != 1:
            raise UserError(f"netx path: population '{current}' must feed exactly one projection (a chain)")
        projection = outgoing[0]
        if projection.recurrent or projection.delay or len(plan.into(projection.target)) != 1:
            raise UserError(f"netx path: projection '{projection.name}' is recurrent, delayed or a fan-in")
        chain.append(projection)
        current = projection.target
    if current != plan.output_name or len(chain) != len(plan.projections):
        raise UserError("netx path: the plan is not a single chain from input to output")
    if chain[-1].kind != "dense":
        raise UserError("netx path: the readout must be a dense projection")
    for projection in chain[:-1]:
        population = plan.populations[projection.target]
        if population.per_neuron_decays:
            raise UserError(f"netx path: population '{population.name}' has per-neuron time constants; "
                            "a netx layer's neuron has one decay per layer")
        if population.du != 1.0 or not population.spiking or not 0 <= population.dv <= 1:
            raise UserError(f"netx path: population '{population.name}' needs du = 1, 0 <= dv <= 1 and spikes")
        per_channel = population.bias.reshape(population.shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise UserError(f"netx path: the bias of '{population.name}' varies within a channel")
    return chain


def _power_of_two_scale(limit: float) -> int:
    """Largest power of two S with limit * S <= 254 (8-bit mantissas)."""
    return 2 ** math.floor(math.log2(WEIGHT_MANT_MAX / max(limit, 1e-12)))


def _quantise(values: np.ndarray, scale: int) -> np.ndarray:
    """slayer's ``quantize_8bit`` (step 2/S, clipped to [-256, 254]/S), in float64."""
    return np.clip(np.round(values * scale / 2) * 2, -256, 254) / scale


def _row_abs_sum(projection: Projection) -> float:
    """Largest synaptic input one target neuron can get in one step (every source spiking), float units."""
    weight = np.abs(projection.weight)
    return float(weight.reshape(weight.shape[0], -1).sum(1).max())


def _check_range(name: str, row_sum: float, bias: float, dv: float, scale: int, max_latency: int) -> None:
    """Refuse a block whose current or voltage could leave Lava's 24 bits (u
    wraps around, v saturates; slayer's integers do neither): worst case
    |u| = row_sum and |v| <= min(1/dv, T) (row_sum + |bias|), times S << 6."""
    steps = min(1 / dv, max_latency) if dv > 0 else max_latency
    worst = steps * (row_sum + abs(bias)) * scale * 2**ACT_SHIFT
    if worst > V_LIMIT:
        raise UserError(f"netx path: block '{name}' could reach |v| = {worst:.3g} > 2**23 in fixed point "
                        f"(slayer scale {scale})")


def _neuron_params(population: Population | None, scale: int) -> dict:
    """slayer CUBA parameters of a block (:func:`slt_deploy.neuron.netx_neuron_params`); None: the readout."""
    if population is None:
        return netx_neuron_params(None, scale)
    return netx_neuron_params(population.neuron, scale, norm=slayer.neuron.norm.MeanOnlyBatchNorm)


class SlayerChain(torch.nn.Module):
    """A plan as a sequence of lava-dl slayer blocks (CUBA Input, Conv/Dense,
    Flatten, Affine readout). ``forward(x)``: spikes [N, *input_shape, T] ->
    readout voltage [N, classes, T] (float; cumulative sum of W x over steps;
    no output bias). Synaptic delays are off (``delay_shift=False``): step t
    of every block is the logical step t, like our reference."""

    def __init__(self, blocks: list[torch.nn.Module]):
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def export_hdf5(self, path: str | os.PathLike) -> None:
        """slayer's network format: one group per block, written by the block's own ``export_hdf5``."""
        with h5py.File(path, "w") as handle:
            layers = handle.create_group("layer")
            for i, block in enumerate(self.blocks):
                block.export_hdf5(layers.create_group(f"{i}"))


def slayer_chain(plan: DeployPlan, max_latency: int) -> tuple[SlayerChain, list[int], float, DeployPlan]:
    """(slayer network, per-block scales S, readout scale, quantised plan) of ``plan``."""
    chain = _chain(plan)
    input_shape = plan.populations[plan.input_name].shape
    blocks: list[torch.nn.Module] = [slayer.block.cuba.Input(neuron_params=None, delay_shift=False)]
    scales, projections, populations = [], [], dict(plan.populations)
    for projection in chain[:-1]:
        population = plan.populations[projection.target]
        channel_bias = population.bias.reshape(population.shape[0], -1)[:, 0]
        scale = _power_of_two_scale(max(np.abs(projection.weight).max(), np.abs(channel_bias).max()))
        _check_range(population.name, _row_abs_sum(projection), np.abs(channel_bias).max(), population.dv, scale,
                     max_latency)
        params = _neuron_params(population, scale)
        if projection.kind == "conv":
            c_out, c_in, kh, kw = projection.weight.shape
            block = slayer.block.cuba.Conv(params, c_in * projection.groups, c_out, (kh, kw),
                                           stride=projection.stride, padding=projection.padding,
                                           dilation=projection.dilation, groups=projection.groups,
                                           delay_shift=False)
            block.synapse.weight.data = torch.tensor(projection.weight, dtype=torch.float32)[..., None]
        else:
            if len(projection.source_shape) > 1:
                blocks.append(slayer.block.cuba.Flatten())
            n_out, n_in = projection.weight.shape
            block = slayer.block.cuba.Dense(params, n_in, n_out, delay_shift=False)
            block.synapse.weight.data = torch.tensor(projection.weight, dtype=torch.float32).reshape(n_out, n_in, 1, 1, 1)
        norm = block.neuron.norm
        norm.num_features = len(channel_bias)
        norm.running_mean = torch.tensor(-channel_bias, dtype=torch.float32)
        blocks.append(block)
        scales.append(scale)
        # what slayer keeps: bias = -quantize_8bit(running mean), decays in 1/4096, threshold in 1/S
        quantised_bias = -_quantise(-channel_bias, scale)
        populations[population.name] = replace(
            population,
            bias=np.repeat(quantised_bias, population.size // len(channel_bias)).reshape(population.shape),
            du=round(population.du * DECAY_UNITY) / DECAY_UNITY,
            dv=round(population.dv * DECAY_UNITY) / DECAY_UNITY,
            vth=int(population.vth * scale) / scale)
        projections.append(replace(projection, weight=_quantise(projection.weight, scale)))
    readout = chain[-1]
    if len(readout.source_shape) > 1:
        blocks.append(slayer.block.cuba.Flatten())
    n_out, n_in = readout.weight.shape
    worst = max(max_latency * _row_abs_sum(readout), 1e-12)  # |readout voltage| bound, float units
    scale = min(_power_of_two_scale(np.abs(readout.weight).max()),
                2 ** math.floor(math.log2(V_LIMIT / (worst * 2**ACT_SHIFT))))
    block = slayer.block.cuba.Affine(_neuron_params(None, scale), n_in, n_out)
    block.synapse.weight.data = torch.tensor(readout.weight, dtype=torch.float32).reshape(n_out, n_in, 1, 1, 1)
    blocks.append(block)
    scales.append(scale)
    projections.append(replace(readout, weight=_quantise(readout.weight, scale)))
    network = SlayerChain(blocks).eval()
    with torch.no_grad():  # a first pass sets the shapes that export_hdf5 writes
        network(torch.zeros(1, *input_shape, 1))
    return network, scales, float(scale << ACT_SHIFT), replace(plan, projections=projections, populations=populations)


def netx_network_for(plan: DeployPlan, path: str | os.PathLike, max_latency: int = 8):
    """The netx Lava network of ``plan`` (see :func:`slt_deploy.simulation.load_plan`
    for a checkpoint or a .nir file) with the same weights, via slayer: writes slayer's HDF5
    network description to ``path`` and loads it with
    ``lava.lib.dl.netx.hdf5.Network`` (LIFReset every ``max_latency + blocks``
    steps). Returns (netx network, :class:`NetxIO`)."""
    max_latency = check_latency(max_latency)
    network, scales, readout_scale, quantised = slayer_chain(plan, max_latency)
    path = Path(path)
    with atomic_path(path) as tmp:
        network.export_hdf5(tmp)
    blocks = len(scales)
    input_shape = tuple(plan.populations[plan.input_name].shape)
    io = NetxIO(path=path, input_shape=input_shape, lava_input_shape=input_shape[::-1],
                output_shape=tuple(plan.output_shape), scales=scales, readout_scale=readout_scale,
                output_bias=np.asarray(plan.output_bias, dtype=np.float64), blocks=blocks,
                max_latency=int(max_latency), quantised=quantised)
    net = netx.hdf5.Network(net_config=str(path), reset_interval=io.period, reset_offset=1)
    # netx keeps the HDF5 file open for the network's lifetime (its NetDict never
    # closes it); every value has been copied out by now, so close it here.
    net.net_config.f.close()
    if len(net) != blocks:
        raise RuntimeError(f"netx built {len(net)} blocks from {path}, expected {blocks}")
    return net, io


def chain_forward(plan: DeployPlan, inputs: np.ndarray) -> Simulation:
    """Float64 simulation of a chain plan in logical steps, with Lava's float
    LIF (u = u (1 - du) + input; v = v (1 - dv) + u + bias; spike v > vth;
    reset to 0): inputs [N, steps, *input_shape] -> outputs [N, steps, classes].
    On the original plan it is our reference. On ``NetxIO.quantised`` it is
    what slayer and netx compute, exactly as long as their integer decay
    (rounding toward zero) does not round: with dv = 1/2 and even 8-bit
    mantissas shifted by 6 bits (multiples of 2**7), for the first 8 steps
    after a reset; later, v may differ by 1/(S << 6) per step."""
    chain = _chain(plan)
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
    samples, steps = x.shape[:2]
    state = {p.target: (torch.zeros(samples, *p.target_shape, dtype=torch.float64),) * 2 for p in chain[:-1]}
    neurons = {p.target: replace(plan.populations[p.target].neuron, bias=torch.as_tensor(plan.populations[p.target].bias))
               for p in chain[:-1]}
    outputs = []
    for step in range(steps):
        value = x[:, step]
        for projection in chain[:-1]:
            value, state[projection.target] = lif_step(projection.apply(value), state[projection.target],
                                                       neurons[projection.target])
        outputs.append(chain[-1].apply(value) + torch.as_tensor(plan.output_bias))
    return Simulation(torch.stack(outputs, 1).numpy(), plan=plan)


def slayer_outputs(plan: DeployPlan, inputs: np.ndarray, max_latency: int = 8) -> Simulation:
    """slayer's own forward pass of the netx network's blocks on ``inputs``
    [N, steps, *input_shape] (spikes): per-step outputs [N, steps, classes]
    (float: differences of the readout voltage plus the output bias)."""
    network, _, _, _ = slayer_chain(plan, max_latency)
    x = torch.as_tensor(np.moveaxis(np.asarray(inputs, dtype=np.float32), 1, -1))
    with torch.no_grad():
        voltage = network(x).numpy().astype(np.float64)  # [N, classes, T]
    per_step = np.diff(voltage, axis=-1, prepend=0.0)
    return Simulation(np.moveaxis(per_step, -1, 1) + np.asarray(plan.output_bias, dtype=np.float64), plan=plan)


# --------------------------------------------------------------------------- running on Lava


def _checked_inputs(inputs, shape: tuple[int, ...], max_latency: int) -> np.ndarray:
    """``inputs`` as float64 [samples, steps, *shape] with steps <= ``max_latency``; a UserError otherwise."""
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != tuple(shape):
        raise UserError(f"input must have shape [samples, steps, {', '.join(map(str, shape))}], got {list(x.shape)}")
    if x.shape[1] > max_latency:
        raise UserError(f"{x.shape[1]} steps exceed the network's maximum latency {max_latency}")
    return x


def check_binary_spikes(x: np.ndarray) -> None:
    """Refuse input that netx cannot pass on as slayer and our graph do: netx's
    Input block is a spiking neuron, at most one spike per step, so an event
    count of 2 reaches the network as 1 (docs/lava-behaviours.md §9)."""
    if not np.isin(x, (0.0, 1.0)).all():
        raise UserError("netx's Input block is a spiking neuron: it sends at most one spike per step, so event "
                        f"counts > 1 (here up to {x.max():g}) would not reach the network as they reach slayer "
                        "and our graph; give binary spikes, or compare on lava-fixed")


class _SourceDriven(WatchedRuntime):
    """A netx network driven by a ring-buffer ``source`` (its runtime is the
    source's); ``close()`` stops it. A context manager."""

    label = "netx network"
    source: Source
    started: bool

    def _runtime(self):
        return self.source.runtime

    def close(self) -> None:
        """Stop the Lava runtime (frees its OS processes and shared memory)."""
        if self.started and not self.closed:
            try:
                self._guarded(self.source.stop, 0, "stop", watch_processes=False)
            finally:
                self.closed = True
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NetxRunner(_SourceDriven):
    """Runs samples through a netx network on Lava's fixed-point simulator
    (``Loihi2SimCfg(select_tag="fixed_pt")``), back to back in long runs of
    up to ``capacity`` samples (the input ring buffer holds ``capacity *
    period`` steps).

    ``readout``:

    * ``"voltage"`` (default): a Lava ``Monitor`` probes the readout
      integrator's voltage every step. A Monitor cannot wrap around, so
      ``lifetime`` (default ``capacity``) bounds the samples this runner takes.
    * ``"current"``: a ring-buffer sink records the readout block's synaptic
      output (``layers[-1].synapse.a_out``, integers ``W_mant @ s``): what the
      integrator adds up, without the Monitor's per-step management phase.
      No lifetime bound. Both give the same outputs (tests check it).

    One runner per network (it connects its input and readout processes to
    it). Use as a context manager: the Lava runtime is stopped in
    ``close()``. Watchdog as in :class:`~slt_deploy.lava.network.LavaNetwork`: a run may
    take ``startup_seconds`` (first run) + ``step_seconds`` per step (by
    default growing with the network's size, as there)."""

    def __init__(self, network, io: NetxIO, capacity: int = 16, readout: str = "voltage",
                 lifetime: int | None = None, step_seconds: float | None = None, startup_seconds: float = 120.0,
                 round_trip_seconds: float = 30.0):
        if readout not in ("voltage", "current"):
            raise UserError(f"netx readout must be 'voltage' or 'current', got '{readout}'")
        self.network, self.io, self.readout = network, io, readout
        self.capacity = int(capacity)
        self.lifetime = int(lifetime or capacity) if readout == "voltage" else None
        self.buffer = self.capacity * io.period
        self.source = Source(data=np.zeros(io.lava_input_shape + (self.buffer,)))
        self.source.s_out.connect(network.inp)
        readout_block = network.layers[-1]
        if readout == "voltage":
            self.neuron = readout_block.neuron
            self.monitor = Monitor()
            self.monitor.probe(target=self.neuron.v, num_steps=self.lifetime * io.period)
            self.scale = io.readout_scale  # voltage integer -> float
        else:
            self.sink = Sink(shape=readout_block.synapse.a_out.shape, buffer=self.buffer)
            readout_block.synapse.a_out.connect(self.sink.a_in)
            self.scale = io.readout_scale / 2**ACT_SHIFT  # a_out is not yet shifted by 6 bits
        self.run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
        if step_seconds is None:
            step_seconds = default_step_seconds(io.quantised, 1, fixed_point_conv=True)
        self.step_seconds, self.startup_seconds = step_seconds, startup_seconds
        self.round_trip_seconds = round_trip_seconds
        self.steps_run = 0
        self.started = self.closed = False

    def run(self, inputs, latencies=None) -> Simulation:
        """Outputs [N, max_latency, classes] (float, per logical step, zero
        after each sample's latency) of spikes [N, steps, *input_shape]."""
        if self.closed:
            raise RuntimeError("the netx runner was closed")
        io = self.io
        x = _checked_inputs(inputs, io.input_shape, io.max_latency)
        check_binary_spikes(x)
        samples, steps = x.shape[:2]
        latencies = check_latencies(latencies, samples, steps)
        if self.lifetime is not None and self.steps_run + samples * io.period > self.lifetime * io.period:
            raise UserError(f"this netx runner's Monitor holds {self.lifetime} samples; "
                            f"{self.steps_run // io.period} already ran")
        outputs = np.zeros((samples, io.max_latency, *io.output_shape))
        for start in range(0, samples, self.capacity):
            chunk = slice(start, min(samples, start + self.capacity))
            outputs[chunk] = self._run_chunk(x[chunk], latencies[chunk])
        return Simulation(outputs, plan=io.quantised)

    def _run_chunk(self, x: np.ndarray, latencies: np.ndarray) -> np.ndarray:
        io = self.io
        offset = self.steps_run % self.buffer  # ring column of this chunk's first step
        data = np.zeros(io.lava_input_shape + (self.buffer,))
        to_lava = tuple(range(len(io.input_shape), 0, -1)) + (0,)  # [t, C, H, W] -> [W, H, C, t]
        for k, t in enumerate(latencies):
            columns = (offset + k * io.period + np.arange(t)) % self.buffer
            data[..., columns] = x[k, :t].transpose(to_lava)
        if self.started:
            self._guarded(lambda: self.source.data.set(data), 0, "input update")
        else:
            self.source.data.init = data
        run_steps = len(latencies) * io.period
        startup = 0 if self.started else self.startup_seconds
        self.started = True
        self._guarded(lambda: self.source.run(condition=RunSteps(num_steps=run_steps), run_cfg=self.run_cfg),
                      startup + run_steps * self.step_seconds, f"run of {run_steps} steps")
        if self.readout == "voltage":
            recorded = self._guarded(self.monitor.get_data, 0, "read of the readout voltage")
            recorded = np.asarray(recorded[self.neuron.name]["v"], dtype=np.float64)  # [lifetime steps, classes]
            first, length = self.steps_run, None
        else:
            recorded = self._guarded(self.sink.data.get, 0, "read of the readout current")
            recorded = np.asarray(recorded, dtype=np.float64).T  # [buffer, classes]
            first, length = offset, self.buffer
        outputs = np.zeros((len(latencies), io.max_latency, *io.output_shape))
        for k, t in enumerate(latencies):
            # input step j of sample k is sent at Lava step n = first + k P + j + 1 and
            # reaches block i (0-based) at step n + 1 + i; the records keep step n in
            # row n - 1, so the readout (block `blocks - 1`) is in row first + k P + j + blocks
            rows = first + k * io.period + io.blocks + np.arange(t)
            values = recorded[rows % length if length else rows] / self.scale
            if self.readout == "voltage":  # cumulative sum of W x -> per-step W x
                values = np.diff(values, axis=0, prepend=0.0)
            outputs[k, :t] = values.reshape(t, *io.output_shape) + io.output_bias
        self.steps_run += run_steps
        return outputs



def run_netx(plan: DeployPlan, inputs, latencies=None, path: str | os.PathLike | None = None,
             max_latency: int = 8) -> Simulation:
    """Build the netx network of ``plan``, run ``inputs`` [N, steps, *shape]
    through it on Lava fixed point, stop it, and return the run (outputs [N, max_latency, classes])."""
    with tempfile.TemporaryDirectory() as tmp:
        network, io = netx_network_for(plan, path or Path(tmp) / "network.net", max_latency)
        with NetxRunner(network, io, capacity=max(1, len(inputs))) as runner:
            return runner.run(inputs, latencies)


# --------------------------------------------------------------------------- any netx file, as lava-dl runs it


class NetxFileRunner(_SourceDriven):
    """A netx network file run exactly as lava-dl loads it
    (``netx.hdf5.Network`` on ``Loihi2SimCfg(select_tag="fixed_pt")``), with
    a ring-buffer sink on every block's spikes: the peer that ``slt-deploy
    import`` is checked against.

    Timing (lava-dl 0.6.0): a source frame sent at Lava step n reaches block k
    (0-based) at step n + k when the file's input layer has a neuron (that
    block has no synapse in front), else n + k + 1. Samples run back to back,
    ``period`` steps each; netx's ``reset_interval = period`` with
    ``reset_offset`` 0 or 1 zeroes every block when its sample's first frame
    arrives. ``names``: the imported graph's population names of the blocks
    (``L<i>_neuron``, by file layer index). Use as a context manager."""

    def __init__(self, path: str | os.PathLike, input_shape: tuple[int, ...], max_latency: int,
                 capacity: int = 16, step_seconds: float = 1.0, startup_seconds: float = 120.0,
                 round_trip_seconds: float = 30.0):
        with h5py.File(path, "r") as handle:
            layers = handle["layer"]
            with_neuron = sorted(int(i) for i in layers if "neuron" in layers[i])
            first = layers["0"]
            self.input_neuron = bool(with_neuron) and with_neuron[0] == 0 and b"input" in first["type"][()].ravel()[0]
            self.input_weight = int(np.ravel(first["weight"][()])[0]) if self.input_neuron and "weight" in first \
                else NETX_INPUT_WEIGHT
        self.max_latency = check_latency(max_latency)
        self.period = self.max_latency + len(with_neuron) + 1  # the deepest block's last step stays in its period
        self.network = netx.hdf5.Network(net_config=str(path), reset_interval=self.period,
                                         reset_offset=0 if self.input_neuron else 1)
        self.network.net_config.f.close()
        self.names = [f"L{i}_neuron" for i in with_neuron][:len(self.network.layers)]
        self.input_shape = tuple(input_shape)
        self.capacity = int(capacity)
        self.buffer = self.capacity * self.period
        self.source = Source(data=np.zeros(self.input_shape[::-1] + (self.buffer,)))
        # netx does not connect its input port to an input layer's neuron: drive the neuron itself
        self.source.s_out.connect(self.network.layers[0].neuron.a_in if self.input_neuron else self.network.inp)
        self.sinks = []
        for layer in self.network.layers:
            sink = Sink(shape=layer.out.shape, buffer=self.buffer)
            layer.out.connect(sink.a_in)
            self.sinks.append(sink)
        self.run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
        self.step_seconds, self.startup_seconds = step_seconds, startup_seconds
        self.round_trip_seconds = round_trip_seconds
        self.steps_run = 0
        self.started = self.closed = False

    def run(self, inputs) -> dict[str, np.ndarray]:
        """Spikes of every block, [N, steps, *shape (C, H, W) or (N,)] per
        logical step, for spikes ``inputs`` [N, steps, *input_shape]."""
        x = _checked_inputs(inputs, self.input_shape, self.max_latency)
        samples = x.shape[0]
        spikes = {name: [] for name in self.names}
        for start in range(0, samples, self.capacity):
            for name, value in self._run_chunk(x[start: start + self.capacity]).items():
                spikes[name].append(value)
        return {name: np.concatenate(value) for name, value in spikes.items()}

    def _run_chunk(self, x: np.ndarray) -> dict[str, np.ndarray]:
        samples, steps = x.shape[:2]
        data = np.zeros(self.input_shape[::-1] + (self.buffer,))
        to_lava = tuple(range(len(self.input_shape), 0, -1)) + (0,)  # [t, C, H, W] -> [W, H, C, t]
        gain = self.input_weight if self.input_neuron else 1
        for k in range(samples):
            data[..., k * self.period + np.arange(steps)] = gain * x[k].transpose(to_lava)
        if self.started:
            self._guarded(lambda: self.source.data.set(data), 0, "input update")
        else:
            self.source.data.init = data
        startup = 0 if self.started else self.startup_seconds
        self.started = True
        run_steps = self.buffer  # whole periods: the ring columns of sample k start at k * period
        self._guarded(lambda: self.source.run(condition=RunSteps(num_steps=run_steps), run_cfg=self.run_cfg),
                      startup + run_steps * self.step_seconds, f"run of {run_steps} steps")
        result = {}
        for k_block, (name, sink) in enumerate(zip(self.names, self.sinks)):
            recorded = np.asarray(self._guarded(sink.data.get, 0, f"read of {name}'s spikes"), dtype=np.float64)
            shape = recorded.shape[:-1]
            delay = k_block + (0 if self.input_neuron else 1)
            per_sample = []
            for k in range(samples):
                columns = k * self.period + delay + np.arange(steps)
                frames = recorded[..., columns]  # [W, H, C, steps] or [N, steps]
                frames = np.moveaxis(frames, -1, 0).transpose((0,) + tuple(range(len(shape), 0, -1)))
                per_sample.append(frames)
            result[name] = np.stack(per_sample)
        self.steps_run += run_steps
        return result

