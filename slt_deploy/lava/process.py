"""The deployed network as ONE Lava process with two behaviours.

:class:`DeployedNetwork` is a Lava process whose interface is three Vars:
``frames`` (the input, [lanes x inputs, ring]) and ``outputs`` ([lanes x
outputs, ring]), plus, for the fused model, ``spikes`` (every recorded
population's spikes, concatenated, [lanes x neurons, ring]), ``operations``
(per projection, the synapses its source's spikes drove -- effective and
structural, as :mod:`slt_deploy.energy.counts` defines them; an analog input layer
reports its MACs -- [lanes x projections x 2, ring]) and ``firing`` (spikes
per population, [lanes x populations, ring]); rows are lane by lane, and
column ``(n - 1) % ring`` holds Lava time step n. Lava moves a Var between
processes one element at a time, so the fused model keeps these arrays in
shared memory that the host reads and writes directly
(:mod:`slt_deploy.lava.shared`); the per-layer graph uses the Vars. Lava picks its behaviour by tag, as it does for its own
processes:

* the **per-layer graph** (:class:`PerLayerModel`, a SubProcessModel,
  ``select_sub_proc_model=True``): a RingBuffer source, one ``LIFReset`` per
  population, one ``Dense``/``Conv``/``DelayDense`` per projection and
  RingBuffer sinks -- what maps onto Loihi cores, and runs bit-accurate with
  ``select_tag="fixed_pt"``. It runs one sample at a time (``lanes = 1``).
* the **fused CPU model** (:class:`PyFusedModel`, ``select_tag="fused"``): the
  whole network in one OS process with NumPy, all layers in one step and
  ``lanes`` samples side by side -- no per-layer synchronisation.

The per-layer graph keeps each population's spikes in its own RingBuffer
sink, aliased to the Vars ``spikes_<i>`` (in the order of
:func:`recorded_populations`); the fused model has one ``spikes`` Var with
all populations concatenated in that order.

Both behaviours produce bit-identical spikes and outputs in float: they
share the arithmetic of every synapse (:mod:`slt_deploy.deploy.synapses`: one stacked matrix product per layer, which gives each
lane exactly what a single-sample product gives) and replay Lava's LIF and
port arithmetic in the same order, pipeline delays included. For that, the
float per-layer graph runs Lava's Dense/DelayDense/Conv *processes* with the
float models in this module (selected through ``exception_proc_model_map``);
Lava's own float Conv model loops over channel pairs with scipy and sums in
another order. Fixed point uses Lava's stock bit-accurate models.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np

from ..core.compat import import_lava
from ..deploy.plan import DeployPlan, Population, Projection
from ..deploy.synapses import ConvKernel, dense_current, dense_of, fanout
from ..neuron import FixedNeuronParameters, lif_step, lif_step_fixed, wrap_signed

import_lava()

# Lava's compiler looks for process models by executing every module of this
# folder as a loose file; our relative imports fail there, and it warns once
# per module. The models are found in this module all the same, so the
# warnings about DeployedNetwork are noise on the user's terminal.
warnings.filterwarnings("ignore", message=r"Cannot import module .* when searching ProcessModels for "
                        r"Process '(DeployedNetwork|DeployedLIFReset)'", category=UserWarning)

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.model.sub.model import AbstractSubProcessModel  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.conv.process import Conv  # noqa: E402
from lava.proc.dense.process import Dense, DelayDense  # noqa: E402
from lava.proc.io.sink import RingBuffer as Sink  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat  # noqa: E402
from lava.proc.lif.process import LIFReset  # noqa: E402
from .shared import attach

# --------------------------------------------------------------------------- weight layout


def lava_conv_weight(weight: np.ndarray) -> np.ndarray:
    """torch [C_out, C_in, kh, kw] (correlation) -> Lava [C_out, kx, ky, C_in] (convolution)."""
    return np.ascontiguousarray(np.asarray(weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def torch_conv_weight(weight: np.ndarray) -> np.ndarray:
    """The inverse of :func:`lava_conv_weight`."""
    return np.ascontiguousarray(np.asarray(weight).transpose(0, 3, 2, 1)[:, :, ::-1, ::-1])


def _flat(shape) -> tuple[int]:
    return (int(np.prod(shape)),)


# --------------------------------------------------------------------------- the process


def recorded_populations(plan: DeployPlan) -> list[Population]:
    """Populations that run as Lava LIF processes and whose spikes are recorded, in order."""
    host = plan.output_population if _host_output(plan) else None
    return [p for p in plan.neuron_populations if p.name != host]


def _host_output(plan: DeployPlan) -> bool:
    return plan.output_population is not None and not plan.populations[plan.output_population].spiking


def output_size(plan: DeployPlan) -> int:
    return int(np.prod(plan.output_shape))


class DeployedNetwork(AbstractProcess):
    """A deployment plan as one Lava process (see the module docstring).

    plan: the :class:`~slt_deploy.deploy.plan.DeployPlan`; period: Lava steps per
    sample (T + pipeline depth); capacity: samples per lane in the ring;
    lanes: samples side by side (fused behaviour only); quantised: integer
    parameters for fixed point (per-layer behaviour only)."""

    def __init__(self, *, plan: DeployPlan, period: int, capacity: int, lanes: int = 1,
                 record_spikes: bool = True, quantised=None, fused: bool = False, buffers: dict | None = None,
                 name: str | None = None):
        super().__init__(plan=plan, period=period, capacity=capacity, lanes=lanes, record_spikes=record_spikes,
                         quantised=quantised, buffers=buffers, name=name)
        ring = capacity * period
        inputs = int(np.prod(plan.populations[plan.input_name].shape))
        if fused:  # the data lives in shared memory (see fused_buffer_shapes); the Vars mark the interface
            for var in ("frames", "outputs", "spikes", "operations", "firing"):
                setattr(self, var, Var(shape=(1,), init=0))
        else:
            self.frames = Var(shape=(lanes * inputs, ring), init=0)
            self.outputs = Var(shape=(lanes * output_size(plan), ring), init=0)  # the per-layer graph keeps its spikes in one sink per population
            for index, population in enumerate(recorded_populations(plan)):
                setattr(self, f"spikes_{index}", Var(shape=(population.size, ring), init=0))


def fused_buffer_shapes(plan: DeployPlan, period: int, capacity: int, lanes: int,
                        record_spikes: bool) -> dict[str, tuple[int, int]]:
    """Shapes of the fused model's shared arrays ([lanes x rows, ring]):
    frames, outputs, the live counters -- per projection the synapses driven
    (effective, structural), per population the spikes -- and, when
    recorded, every spike."""
    ring = capacity * period
    populations = recorded_populations(plan)
    shapes = {
        "frames": (lanes * int(np.prod(plan.populations[plan.input_name].shape)), ring),
        "outputs": (lanes * output_size(plan), ring),
        "operations": (lanes * len(plan.projections) * 2, ring),
        "firing": (lanes * len(populations), ring),
    }
    if record_spikes:
        shapes["spikes"] = (lanes * sum(p.size for p in populations), ring)
    return shapes


# --------------------------------------------------------------------------- populations Lava's LIFReset cannot run


class DeployedLIFReset(LIFReset):
    """``LIFReset`` for the two kinds of population that Lava's own cannot run.

    * **Per-neuron decays** (learned time constants): Lava's LIF declares
      ``du`` and ``dv`` with shape (1,), one per process; an array of one per
      neuron still runs, but the Var no longer matches its data: reading it
      back fails and the runtime then cannot stop (docs/lava-behaviours.md
      §5; the shape is pinned in tests). Here they are Vars of the
      population's shape, and the models below are Lava's
      float and bit-accurate LIFReset models with array decays: the same
      operations element by element, so a population with equal decays
      gives exactly what ``LIFReset`` gives.
    * **The target of a recurrent edge** (``silent_before_reset``): between
      samples a population keeps running (on its bias, on the tail of the
      previous sample, and before the first sample reaches it). A spike at
      the step just before its periodic reset would come back through the
      recurrent synapses *at* the reset step -- Lava adds that step's input
      after zeroing u and v -- while NIR's back edge carries zero into a
      sample's first step. So these neurons stay silent at that step (see
      :func:`silent_before_reset`); nothing else can tell: every forward
      projection delivers that step's spikes before its target's own reset,
      and the step is no sample's logical step.

    ``du``, ``dv``: scalars or arrays of ``shape`` (float units for the float
    model, 12-bit integers for the bit-accurate one)."""

    def __init__(self, *, shape: tuple[int, ...], du, dv, silent_before_reset: bool = False, **kwargs):
        super().__init__(shape=shape, du=0, dv=0, **kwargs)
        self.du = Var(shape=shape, init=np.broadcast_to(np.asarray(du), shape).copy())
        self.dv = Var(shape=shape, init=np.broadcast_to(np.asarray(dv), shape).copy())
        self.proc_params["silent_before_reset"] = bool(silent_before_reset)


def needs_deployed_lif(population: Population, recurrent: set[str], parameters: dict | None = None) -> bool:
    """Whether ``population`` runs on :class:`DeployedLIFReset` rather than Lava's ``LIFReset``: decays
    per neuron (in the plan, or in the integer ``parameters`` it is given) or a recurrent edge into it."""
    per_neuron = parameters is not None and (np.ndim(parameters["du"]) > 0 or np.ndim(parameters["dv"]) > 0)
    return population.per_neuron_decays or per_neuron or population.name in recurrent


def silent_before_reset(n: int, period: int, reset_offset: int) -> bool:
    """Whether Lava step ``n`` is the last one before a reset at ``reset_offset`` (mod ``period``)."""
    return (n + 1) % period == reset_offset % period


def recurrent_targets(plan: DeployPlan) -> set[str]:
    return {p.target for p in plan.projections if p.recurrent}


class _SilentBeforeReset:
    """Spikes as the parent model's, none at the step before a reset when the process asks for it."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.silent_before_reset = proc_params["silent_before_reset"]

    def spiking_activation(self):
        spikes = super().spiking_activation()
        if self.silent_before_reset and silent_before_reset(self.time_step, self.reset_interval, self.reset_offset):
            return np.zeros_like(spikes)
        return spikes


@implements(proc=DeployedLIFReset, protocol=LoihiProtocol)
class DeployedLIFResetModelFloat(_SilentBeforeReset, PyLifResetModelFloat):
    """Lava's float LIFReset model (tag floating_pt) with per-neuron decays."""

    implements_process = None  # set by @implements: the parent implements LIFReset
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=DeployedLIFReset, protocol=LoihiProtocol)
class DeployedLIFResetModelBitAcc(_SilentBeforeReset, PyLifResetModelBitAcc):
    """Lava's bit-accurate LIFReset model (tag fixed_pt) with per-neuron 12-bit decays."""

    implements_process = None
    du: np.ndarray = LavaPyType(np.ndarray, np.uint16, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.uint16, precision=12)


# --------------------------------------------------------------------------- per-layer behaviour


@dataclass
class PerLayerGraph:
    """Handles on the processes of a per-layer graph."""

    source: AbstractProcess
    neurons: dict[str, AbstractProcess]
    spike_sinks: dict[str, AbstractProcess]  # per recorded population; sub-process name "spike_sink_<i>"
    output_sink: AbstractProcess


def build_per_layer(plan: DeployPlan, period: int, capacity: int, quantised, owner,
                    frames: np.ndarray | None = None) -> PerLayerGraph:
    """Create and connect the per-layer Lava graph of ``plan``; every process
    is also set as an attribute of ``owner`` (Lava finds a SubProcessModel's
    sub processes among its attributes). Ring buffers hold ``capacity``
    periods; Var shapes are those of :class:`DeployedNetwork` with lanes = 1;
    ``frames`` is the source's initial content (zeros by default)."""
    ring = capacity * period
    inputs = int(np.prod(plan.populations[plan.input_name].shape))
    source = Source(data=np.zeros((inputs, ring)) if frames is None else np.asarray(frames, dtype=np.float64))
    source.name = "input_source"  # RingBuffer takes no name argument
    owner.source = source
    ports = {plan.input_name: source.s_out}
    conv_views = {}  # one reshape/transpose view per (population, shape): Lava mixes up several
    neurons, spike_sinks = {}, {}
    recurrent = recurrent_targets(plan)
    for index, population in enumerate(recorded_populations(plan)):
        if quantised is not None:
            parameters = quantised.population_parameters(population.name)
        else:
            parameters = dict(du=population.du, dv=population.dv, vth=population.vth,
                              bias_mant=population.bias.ravel().astype(np.float64), bias_exp=0)
        if needs_deployed_lif(population, recurrent, parameters):
            process = partial(DeployedLIFReset, silent_before_reset=population.name in recurrent)
        else:
            process = LIFReset
        neuron = process(shape=_flat(population.shape), reset_interval=period,
                         reset_offset=(1 + population.depth) % period, name=population.name, **parameters)
        setattr(owner, f"neuron_{index}", neuron)
        neurons[population.name] = neuron
        ports[population.name] = neuron.s_out
        sink = Sink(shape=(population.size,), buffer=ring)
        sink.name = f"{population.name}_spike_sink"
        setattr(owner, f"spike_sink_{index}", sink)
        neuron.s_out.connect(sink.a_in)
        spike_sinks[population.name] = sink
    output_sink = Sink(shape=(output_size(plan),), buffer=ring)
    output_sink.name = "output_sink"
    owner.output_sink = output_sink
    if plan.output_population is not None and not _host_output(plan):
        neurons[plan.output_population].s_out.connect(output_sink.a_in)
    recorded_targets = {plan.output_name} | ({plan.output_population} if _host_output(plan) else set())
    for index, projection in enumerate(plan.projections):
        synapse = _synapse(plan, projection, quantised)
        setattr(owner, f"synapse_{index}", synapse)
        port = ports[projection.source]
        if projection.kind == "conv" and projection.delay == 0:
            key = (projection.source, tuple(projection.conv_input_shape))
            if key not in conv_views:
                c, h, w = projection.conv_input_shape
                conv_views[key] = port.reshape((c, h, w)).transpose((2, 1, 0))
            port = conv_views[key]
        port.connect(synapse.s_in)
        target = output_sink.a_in if projection.target in recorded_targets else neurons[projection.target].a_in
        out = synapse.a_out
        if projection.kind == "conv" and projection.delay == 0:
            out = out.transpose((2, 1, 0)).reshape(target.shape)
        out.connect(target)
    return PerLayerGraph(source, neurons, spike_sinks, output_sink)


def _synapse(plan: DeployPlan, projection: Projection, quantised):
    graded = 24 if plan.populations[projection.source].is_input else 0
    weights, extra = (None, {}) if quantised is None else quantised.projection_weights(projection)
    if projection.kind == "conv" and projection.delay == 0:
        c, h, w = projection.conv_input_shape
        return Conv(weight=lava_conv_weight(projection.weight if weights is None else weights),
                    input_shape=(w, h, c), padding=projection.padding[::-1], stride=projection.stride[::-1],
                    dilation=projection.dilation[::-1], groups=projection.groups, num_message_bits=graded,
                    name=projection.name, **extra)
    matrix = dense_of(projection) if weights is None else weights
    if projection.delay > 0:
        return DelayDense(weights=matrix, delays=int(projection.delay), num_message_bits=graded,
                          name=projection.name, **extra)
    return Dense(weights=matrix, num_message_bits=graded, name=projection.name, **extra)


@implements(proc=DeployedNetwork, protocol=LoihiProtocol)
class PerLayerModel(AbstractSubProcessModel):
    """The per-layer Lava graph behaviour (:func:`build_per_layer`), its ring
    buffers aliased to the process's Vars."""

    def __init__(self, proc: DeployedNetwork):
        params = proc.proc_params
        if params["lanes"] != 1 or not params["record_spikes"]:
            raise ValueError("the per-layer graph runs one sample at a time and records spikes (lanes = 1)")
        # the sub-graph is built when Lava compiles: the parent's Var holds the first input
        graph = build_per_layer(params["plan"], params["period"], params["capacity"], params["quantised"], self,
                                frames=np.asarray(proc.vars.frames.init))
        proc.vars.frames.alias(graph.source.vars.data)
        proc.vars.outputs.alias(graph.output_sink.vars.data)
        for index, population in enumerate(recorded_populations(params["plan"])):
            getattr(proc.vars, f"spikes_{index}").alias(graph.spike_sinks[population.name].vars.data)


# --------------------------------------------------------------------------- float synapse models


class _CanonicalDenseFloat(PyLoihiProcessModel):
    """Dense, float: the current as one matrix product (see :func:`dense_current`)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def run_spk(self):
        self.a_out.send(self.a_buff)
        self.a_buff = dense_current(self.weights, self.s_in.recv())


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("canonical_float")
class CanonicalDenseModel(_CanonicalDenseFloat):
    pass


@implements(proc=DelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("canonical_float")
class CanonicalDelayDenseModel(PyLoihiProcessModel):
    """DelayDense with one delay for every synapse, float: the current of step
    n is sent at step n + 1 + delay (Lava's own float semantics)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    delays: np.ndarray = LavaPyType(np.ndarray, int)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def run_spk(self):
        self.a_out.send(self.a_buff[:, 0].copy())
        current = dense_current(self.weights, self.s_in.recv())
        delay = int(np.max(self.delays))
        self.a_buff[:, :-1] = self.a_buff[:, 1:].copy()
        self.a_buff[:, -1] = 0.0
        self.a_buff[:, delay] = current


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("canonical_float")
class CanonicalConvModel(PyLoihiProcessModel):
    """Conv, float: the same convolution as Lava's, computed by :class:`ConvKernel`."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buf: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)
    kernel_size: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    stride: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    padding: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    dilation: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    groups: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=8)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=5)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    num_weight_bits: np.ndarray = LavaPyType(np.ndarray, np.int8, precision=5)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.kernel = None

    def run_spk(self):
        x_size, y_size, channels = self.s_in.shape
        if self.kernel is None:
            self.kernel = ConvKernel.build(torch_conv_weight(self.weight), (channels, y_size, x_size),
                                           tuple(int(v) for v in self.stride[::-1]),
                                           tuple(int(v) for v in self.padding[::-1]),
                                           tuple(int(v) for v in self.dilation[::-1]), int(self.groups[0]))
        self.a_out.send(self.a_buf)
        spikes = np.asarray(self.s_in.recv(), dtype=np.float64).transpose(2, 1, 0).ravel()
        out_x, out_y, out_c = self.a_out.shape
        current = self.kernel.current(spikes).reshape(out_c, out_y, out_x)
        self.a_buf = current.transpose(2, 1, 0)


CANONICAL_FLOAT_MODELS = {Dense: CanonicalDenseModel, DelayDense: CanonicalDelayDenseModel, Conv: CanonicalConvModel}


# --------------------------------------------------------------------------- fused behaviour


class FusedSimulator:
    """The per-layer graph's float arithmetic, all layers and ``lanes`` samples
    at once, one Lava time step per :meth:`step`."""

    def __init__(self, plan: DeployPlan, period: int, lanes: int, record_spikes: bool):
        self.plan, self.period, self.lanes, self.record_spikes = plan, period, lanes, record_spikes
        self.fanouts = [(fanout(p, True).ravel().astype(np.float64), fanout(p, False).ravel().astype(np.float64))
                        for p in plan.projections]
        self.analog = plan.input_kind == "analog"
        self.populations = recorded_populations(plan)
        self.host = plan.output_population if _host_output(plan) else None
        self.state = {p.name: self._rest(p) for p in self.populations}
        self.outputs_of = {p.name: np.zeros((lanes, p.size)) for p in self.populations}
        # what each projection delivers at the coming steps (a delay line, oldest first)
        self.lines = [[np.zeros((lanes, int(np.prod(p.target_shape))))] * (p.delay + 1) for p in plan.projections]
        self.recorded_targets = {plan.output_name} | ({self.host} if self.host else set())
        self.recurrent = recurrent_targets(plan)
        self._build_arithmetic()

    # ---------------------------------------------------------------- the arithmetic (float: Lava's float models)

    def _build_arithmetic(self) -> None:
        self.neurons = {p.name: p.neuron for p in self.populations}
        self.kernels = [ConvKernel.of(p) if p.kind == "conv" and p.delay == 0 else dense_of(p)
                        for p in self.plan.projections]

    def _rest(self, population: Population):
        """(u, v) at rest, [lanes, neurons]."""
        return np.zeros((self.lanes, population.size)), np.zeros((self.lanes, population.size))

    def _sum(self, currents: list[np.ndarray], size: int) -> np.ndarray:
        """What an InPort makes of the currents of its connections."""
        total = np.zeros((self.lanes, size))
        for current in currents:
            total = total + current
        return total

    def _neuron_step(self, population: Population, a_in: np.ndarray, state):
        """(spikes 0/1 [lanes, n], state after the step) of one population."""
        return lif_step(a_in, state, self.neurons[population.name])

    def _currents(self, index: int, source: np.ndarray) -> np.ndarray:
        """Projection ``index``'s synaptic current for the source values [lanes, n_source]."""
        kernel = self.kernels[index]
        apply = kernel.current if isinstance(kernel, ConvKernel) else partial(dense_current, kernel)
        # A lane with no input this step (an empty lane, the pipeline filling) gets
        # zero current without a product: the same values (0.0 == -0.0), much cheaper.
        current = np.zeros((self.lanes, self.lines[index][-1].shape[1]))
        for lane in np.flatnonzero(source.any(axis=1)):
            current[lane] = apply(source[lane])
        return current

    # ---------------------------------------------------------------- one step

    def step(self, n: int, frames: np.ndarray, outputs: np.ndarray, spikes: np.ndarray,
             operations: np.ndarray | None = None, firing: np.ndarray | None = None) -> None:
        """One Lava time step n (1-based); the arrays are the process's Vars
        ([lanes x rows, ring]), written in place."""
        lanes = self.lanes
        frames = frames.reshape(lanes, -1, frames.shape[-1])
        outputs = outputs.reshape(lanes, -1, outputs.shape[-1])
        spikes = spikes.reshape(lanes, -1, spikes.shape[-1])
        plan, column = self.plan, (n - 1) % frames.shape[2]
        delivered = [line[0] for line in self.lines]
        for population in self.populations:
            a_in = self._sum([current for projection, current in zip(plan.projections, delivered)
                              if projection.target == population.name], population.size)
            state = self.state[population.name]
            if n % self.period == (1 + population.depth) % self.period:
                state = self._rest(population)
            fired, self.state[population.name] = self._neuron_step(population, a_in, state)
            if population.name in self.recurrent and silent_before_reset(n, self.period, 1 + population.depth):
                # as DeployedLIFReset; its v is zeroed by the reset at the next step either way
                fired = np.zeros_like(fired)
            self.outputs_of[population.name] = fired
        recorded = [current for projection, current in zip(plan.projections, delivered)
                    if projection.target in self.recorded_targets]
        if plan.output_population is not None and self.host is None:
            recorded.append(self.outputs_of[plan.output_population])
        outputs[:, :, column] = self._sum(recorded, outputs.shape[1])
        if self.record_spikes:
            spikes[:, :, column] = np.concatenate([self.outputs_of[p.name] for p in self.populations], axis=1)
        if firing is not None:
            firing.reshape(lanes, -1, firing.shape[-1])[:, :, column] = np.stack(
                [self.outputs_of[p.name].sum(1) for p in self.populations], axis=1)
        if operations is not None:
            counts = operations.reshape(lanes, len(plan.projections), 2, operations.shape[-1])
            for index, projection in enumerate(plan.projections):
                effective, structural = self.fanouts[index]
                if projection.source == plan.input_name:
                    activity = np.ones_like(frames[:, :, column]) if self.analog else frames[:, :, column]
                else:
                    activity = self.outputs_of[projection.source]
                counts[:, index, 0, column] = activity @ effective
                counts[:, index, 1, column] = activity @ structural
        for index, projection in enumerate(plan.projections):
            source = frames[:, :, column] if projection.source == plan.input_name else self.outputs_of[projection.source]
            self.lines[index] = self.lines[index][1:] + [self._currents(index, source)]


class FusedFixedSimulator(FusedSimulator):
    """The per-layer fixed-point graph's integer arithmetic, fused as
    :class:`FusedSimulator` fuses the float one: Lava's bit-accurate models
    as ``build_per_layer`` configures them, step for step.

    * ``Dense``/``DelayDense`` (``PyDenseModelBitAcc``): the weights Lava
      keeps -- its own ``clip_weights`` and ``truncate_weights`` on the
      arguments the per-layer graph passes (mixed-sign weights become even)
      -- times the spikes, shifted by ``weight_exp``;
    * ``Conv`` (``PyConvModelFixed``): the integer kernel (``weight_exp`` is
      ignored) and its output wrapped to 24 bits (``signed_clamp``);
    * ports carry int32 (Lava's fixed-point OutPorts), an InPort sums its
      connections;
    * ``LIFReset``/``DeployedLIFReset`` (``PyLifResetModelBitAcc``):
      :func:`slt_deploy.neuron.lif_step_fixed` with the quantised integers.

    Integer products are computed in float64 (exact below 2^53, which 8-bit
    weights times 24-bit messages over any layer this tool builds stay
    under): a dense projection's for all lanes in one product per step, a
    convolution's with the float model's gather-and-BLAS kernel lane by lane
    (faster than one batched float64 convolution)."""

    def __init__(self, plan: DeployPlan, period: int, lanes: int, record_spikes: bool, quantised):
        self.quantised = quantised
        super().__init__(plan, period, lanes, record_spikes)

    def _build_arithmetic(self) -> None:
        from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

        q = self.quantised
        self.neurons = {}
        for population in self.populations:
            p = q.population_parameters(population.name)
            self.neurons[population.name] = FixedNeuronParameters(du=p["du"], dv=p["dv"], vth=p["vth"],
                                                                  bias_mant=p["bias_mant"], bias_exp=p["bias_exp"])
        self.kernels, self.shifts = [], []
        for projection in self.plan.projections:
            weights, extra = q.projection_weights(projection)
            if projection.kind == "conv" and projection.delay == 0:  # Conv keeps its integers, no exponent
                integer = np.asarray(weights, dtype=np.int32).astype(np.float64)
                kernel = ConvKernel.build(integer, projection.conv_input_shape, projection.stride, projection.padding,
                                          projection.dilation, projection.groups)
                self.kernels.append(("conv", kernel, projection))
                self.shifts.append(0)
                continue
            sign_mode = extra.get("sign_mode") or determine_sign_mode(weights)
            kept = truncate_weights(clip_weights(np.asarray(weights), sign_mode, num_bits=8), sign_mode,
                                    extra.get("num_weight_bits", 8))
            self.kernels.append(("dense", np.asarray(kept, dtype=np.float64).T.copy(), projection))
            self.shifts.append(int(extra.get("weight_exp", 0)))

    def _rest(self, population: Population):
        return (np.zeros((self.lanes, population.size), dtype=np.int64),
                np.zeros((self.lanes, population.size), dtype=np.int64))

    def _sum(self, currents: list[np.ndarray], size: int) -> np.ndarray:
        total = np.zeros((self.lanes, size), dtype=np.int64)
        for current in currents:
            total = total + current
        return wrap_signed(total, 32)

    def _neuron_step(self, population: Population, a_in: np.ndarray, state):
        fired, state = lif_step_fixed(a_in, state, self.neurons[population.name])
        return fired.astype(np.float64), state

    def _currents(self, index: int, source: np.ndarray) -> np.ndarray:
        kind, weight, projection = self.kernels[index]
        if kind == "conv":  # the float model's gather and BLAS product, lane by lane (exact on integers)
            out = np.zeros((self.lanes, self.lines[index][-1].shape[1]))
            for lane in np.flatnonzero(source.any(axis=1)):
                out[lane] = weight.current(source[lane])
            return wrap_signed(wrap_signed(np.rint(out), 24), 32)
        accumulated = np.rint(np.asarray(source, dtype=np.float64) @ weight).astype(np.int64)
        if self.plan.populations[projection.source].is_input:  # graded messages: an int32 dot product
            accumulated = wrap_signed(accumulated, 32)
        shift = self.shifts[index]
        shifted = np.left_shift(accumulated, shift) if shift > 0 else np.right_shift(accumulated, -shift)
        return wrap_signed(shifted, 32)


class _FusedModel(PyLoihiProcessModel):
    """A fused CPU behaviour: one OS process, NumPy, all lanes at once; the
    interface arrays live in shared memory (:mod:`slt_deploy.lava.shared`)."""

    frames: np.ndarray = LavaPyType(np.ndarray, float)
    outputs: np.ndarray = LavaPyType(np.ndarray, float)
    spikes: np.ndarray = LavaPyType(np.ndarray, float)
    operations: np.ndarray = LavaPyType(np.ndarray, float)
    firing: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.simulator = self._simulator(proc_params)
        self._blocks, self.buffers = attach(proc_params["buffers"])

    def _simulator(self, proc_params) -> FusedSimulator:
        raise NotImplementedError

    def run_spk(self):
        b = self.buffers
        spikes = b.get("spikes", np.zeros((self.simulator.lanes, 1)))
        self.simulator.step(self.time_step, b["frames"], b["outputs"], spikes, b["operations"], b["firing"])


@implements(proc=DeployedNetwork, protocol=LoihiProtocol)
@requires(CPU)
@tag("fused")
class PyFusedModel(_FusedModel):
    """The fused float behaviour (tag ``fused``): the per-layer float graph's arithmetic."""

    def _simulator(self, proc_params) -> FusedSimulator:
        if proc_params["quantised"] is not None:
            raise ValueError("the fused float model takes no quantised plan")
        return FusedSimulator(proc_params["plan"], proc_params["period"], proc_params["lanes"],
                              proc_params["record_spikes"])


@implements(proc=DeployedNetwork, protocol=LoihiProtocol)
@requires(CPU)
@tag("fused_fixed")
class PyFusedFixedModel(_FusedModel):
    """The fused bit-accurate behaviour (tag ``fused_fixed``): the per-layer fixed-point graph's integers."""

    def _simulator(self, proc_params) -> FusedSimulator:
        if proc_params["quantised"] is None:
            raise ValueError("the fused fixed-point model needs a quantised plan")
        return FusedFixedSimulator(proc_params["plan"], proc_params["period"], proc_params["lanes"],
                                   proc_params["record_spikes"], proc_params["quantised"])
