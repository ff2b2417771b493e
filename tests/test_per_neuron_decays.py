"""Per-neuron time constants (learned tau) on Lava.

Lava's LIF holds one ``du`` and one ``dv`` per process; a trained network
often has one time constant per neuron. The per-layer graph runs such a
population on :class:`~slt_deploy.lava.process.DeployedLIFReset` (Var
shapes of the population, Lava's own LIFReset arithmetic). Checked here:

* against Lava's own stock ``LIFReset`` run as one process per neuron (what a
  Lava user would have to build), float and bit-accurate: the same u, v and
  spikes at every step, periodic resets included;
* whole graphs (LIF, CubaLIF with a recurrent edge, conv with per-channel and
  per-neuron tau): Lava float == fused == the NIR reference; Lava fixed ==
  a replay of the quantised integers with :func:`slt_deploy.neuron.lif_step_fixed`.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from graphs import DT, graph
from slt_deploy.core.compat import import_lava
from slt_deploy.core.errors import UserError
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.lava.quantise import QuantisedPlan
from slt_deploy.neuron import FixedNeuronParameters, lif_step_fixed
from slt_deploy.simulation import simulate

pytestmark = pytest.mark.filterwarnings("ignore:Cannot import module:UserWarning")

N = 5


def _run_lava(build, steps: int, tag: str):
    """Run ``build()`` -> (first process, {name: (process, sink)}) for ``steps``
    single steps on ``tag``; returns {name: (u, v, spikes)} each [steps, n]."""
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    anchor, neurons = build()
    trace = {name: ([], []) for name in neurons}
    try:
        for _ in range(steps):
            anchor.run(condition=RunSteps(num_steps=1), run_cfg=Loihi2SimCfg(select_tag=tag))
            for name, (neuron, _) in neurons.items():
                trace[name][0].append(np.asarray(neuron.u.get(), dtype=np.float64).ravel().copy())
                trace[name][1].append(np.asarray(neuron.v.get(), dtype=np.float64).ravel().copy())
        spikes = {name: np.asarray(sink.data.get(), dtype=np.float64).reshape(-1, steps).T
                  for name, (_, sink) in neurons.items()}
    finally:
        anchor.stop()
    return {name: (np.array(u), np.array(v), spikes[name]) for name, (u, v) in trace.items()}


@pytest.mark.parametrize("tag", ["floating_pt", "fixed_pt"])
def test_deployed_lif_equals_stock_lif_run_one_process_per_neuron(tag, no_leaks):
    import_lava()
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIFReset

    from slt_deploy.lava.process import DeployedLIFReset

    steps, rng = 14, np.random.default_rng(3)
    spikes_in = (rng.random((4, steps)) < 0.5).astype(float)
    if tag == "floating_pt":
        weights = rng.normal(0.4, 0.5, (N, 4))
        du, dv, bias, vth = np.linspace(0.2, 1.0, N), np.linspace(0.05, 0.6, N), np.linspace(-0.05, 0.1, N), 1.0
    else:
        weights = rng.integers(-60, 120, (N, 4)) * 2  # even: Lava truncates mixed-sign weights to even values
        du, dv, bias, vth = np.array([0, 400, 1500, 3000, 4095]), np.array([100, 900, 2048, 3500, 4000]), \
            np.array([-30, 0, 20, 45, 90]), 300
    common = dict(vth=vth, reset_interval=6, reset_offset=2)

    def deployed():
        source = Source(data=spikes_in)
        dense = Dense(weights=weights)
        neuron = DeployedLIFReset(shape=(N,), du=du, dv=dv, bias_mant=bias, **common)
        sink = Sink(shape=(N,), buffer=steps)
        source.s_out.connect(dense.s_in)
        dense.a_out.connect(neuron.a_in)
        neuron.s_out.connect(sink.a_in)
        return neuron, {"all": (neuron, sink)}

    def stock():
        source = Source(data=spikes_in)
        neurons = {}
        for i in range(N):
            dense = Dense(weights=weights[i : i + 1])
            neuron = LIFReset(shape=(1,), du=du[i], dv=dv[i], bias_mant=bias[i], **common)
            sink = Sink(shape=(1,), buffer=steps)
            source.s_out.connect(dense.s_in)
            dense.a_out.connect(neuron.a_in)
            neuron.s_out.connect(sink.a_in)
            neurons[i] = (neuron, sink)
        return source, neurons

    ours = _run_lava(deployed, steps, tag)["all"]
    theirs = _run_lava(stock, steps, tag)
    for what, index in (("u", 0), ("v", 1), ("spikes", 2)):
        expected = np.concatenate([theirs[i][index] for i in range(N)], axis=1)
        assert np.array_equal(ours[index], expected), what
    assert 0 < ours[2].sum() < ours[2].size
    assert len(np.unique(ours[1][-1])) > 1


def test_lava_declares_one_decay_per_lif_process():
    """Why DeployedLIFReset exists: Lava 0.10's LIF declares du and dv with
    shape (1,). A per-neuron array still runs on the CPU simulator (the model
    broadcasts it), but the Var no longer matches its data: reading it back
    fails (IndexError) and leaves the runtime unable to stop (measured; not
    run here, it would leave processes behind)."""
    import_lava()
    from lava.proc.lif.process import LIFReset

    from slt_deploy.lava.process import DeployedLIFReset

    decays = np.linspace(0.1, 0.5, N)
    assert LIFReset(shape=(N,), du=decays, dv=decays).dv.shape == (1,)
    ours = DeployedLIFReset(shape=(N,), du=decays, dv=decays)
    assert ours.du.shape == ours.dv.shape == (N,) and np.array_equal(ours.dv.init, decays)


# --------------------------------------------------------------------------- whole graphs


def _io(in_shape, out_shape):
    return {"input": nir.Input(input_type={"input": np.array(in_shape)}),
            "output": nir.Output(output_type={"output": np.array(out_shape)})}


def _lif(tau, shape, threshold=1.0):
    ones = np.ones(shape)
    return nir.LIF(tau=np.broadcast_to(np.asarray(tau, dtype=np.float64), shape) * ones, r=ones.copy(),
                   v_leak=np.zeros(shape), v_threshold=threshold * ones, v_reset=np.zeros(shape))


def _cuba(tau_syn, tau_mem, shape):
    ones = np.ones(shape)
    return nir.CubaLIF(tau_syn=np.asarray(tau_syn) * ones, tau_mem=np.asarray(tau_mem) * ones, r=ones.copy(),
                       v_leak=np.zeros(shape), v_threshold=ones * 0.6, v_reset=np.zeros(shape), w_in=ones.copy())


def _dense_graph():
    """input -> Affine -> LIF (tau per neuron) -> Affine -> CubaLIF (tau_syn, tau_mem per neuron, recurrent) -> out."""
    rng = np.random.default_rng(11)
    nodes = {**_io((6,), (N,)),
             "a": nir.Affine(weight=rng.normal(0.6, 0.8, (N, 6)) * 3, bias=np.full(N, 0.05)),
             "lif": _lif(np.linspace(1.2e-3, 8e-3, N), (N,)),
             "b": nir.Affine(weight=rng.normal(0.5, 0.7, (N, N)), bias=np.zeros(N)),
             "cuba": _cuba(np.linspace(1.5e-3, 5e-3, N), np.linspace(6e-3, 2e-3, N), (N,)),
             "rec": nir.Linear(weight=rng.normal(0.0, 0.3, (N, N))),
             "read": nir.Linear(weight=np.eye(N))}
    edges = [("input", "a"), ("a", "lif"), ("lif", "b"), ("b", "cuba"), ("cuba", "rec"), ("rec", "cuba"),
             ("cuba", "read"), ("read", "output")]
    return graph(nodes, edges)


def _conv_graph(per_neuron: bool):
    """input (2, 6, 6) -> Conv2d -> LIF with tau per channel, or per neuron -> SumPool -> Flatten -> Affine -> LIF."""
    rng = np.random.default_rng(12)
    shape = (3, 6, 6)
    tau = rng.uniform(1.2e-3, 8e-3, shape) if per_neuron else np.linspace(1.2e-3, 8e-3, 3).reshape(3, 1, 1)
    nodes = {**_io((2, 6, 6), (4,)),
             "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0.3, 0.6, (3, 2, 3, 3)), stride=1,
                                padding=1, dilation=1, groups=1, bias=np.zeros(3)),
             "lif": _lif(tau, shape),
             "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array((3, 3, 3))}, start_dim=0, end_dim=-1),
             "fc": nir.Affine(weight=rng.normal(0.0, 0.4, (4, 27)), bias=np.zeros(4)),
             "out": _lif(np.linspace(2e-3, 6e-3, 4), (4,))}
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "out"),
             ("out", "output")]
    return graph(nodes, edges)


def _assert_exact_in_float(g, x, latencies):
    reference = simulate(g, "torch", x, latencies, dt=DT, record_spikes=True)
    lava = simulate(g, "lava-float", x, latencies, dt=DT, record_spikes=True, capacity=2)  # several Lava runs
    fused = simulate(g, "lava-fused", x, latencies, dt=DT, record_spikes=True)
    for name, spikes in lava.spikes.items():
        assert np.array_equal(spikes, reference.spikes[name]), name
        assert np.array_equal(fused.spikes[name], spikes), name
        assert 0 < spikes.sum() < spikes.size / 2, name
    assert np.abs(lava.outputs - reference.outputs).max() <= 1e-9


def test_per_neuron_time_constants_of_dense_and_recurrent_populations_run_exactly(no_leaks):
    g = _dense_graph()
    plan = plan_deployment(g, DT)
    assert plan.populations["lif"].per_neuron_decays and plan.populations["cuba"].per_neuron_decays
    assert np.ndim(plan.populations["lif"].du) == 0  # a LIF has no current memory: du = 1 for every neuron
    x = (np.random.default_rng(1).random((4, 8, 6)) < 0.4).astype(float)
    _assert_exact_in_float(g, x, np.array([8, 3, 8, 5]))


@pytest.mark.parametrize("per_neuron", [False, True])
def test_conv_populations_with_per_channel_or_per_neuron_tau(per_neuron, no_leaks):
    """tau per channel: the convolution stays a convolution (its kernel takes
    the per-channel gain dt/tau); per neuron within a channel: the synapses
    become a dense matrix, which can carry a gain per neuron."""
    g = _conv_graph(per_neuron)
    kinds = {p.target: p.kind for p in plan_deployment(g, DT).projections}
    assert kinds["lif"] == ("dense" if per_neuron else "conv")
    x = (np.random.default_rng(2).random((3, 6, 2, 6, 6)) < 0.4).astype(float)
    _assert_exact_in_float(g, x, np.array([6, 4, 6]))


def test_a_conv_too_big_for_dense_with_per_neuron_tau_is_refused_by_name(monkeypatch):
    monkeypatch.setattr("slt_deploy.deploy.plan.DENSE_LIMIT", 100)
    with pytest.raises(UserError, match="input -> lif would need a dense matrix .*varies within a channel, which a convolution's shared kernel"):
        plan_deployment(_conv_graph(True), DT)


def _replay_fixed(quantised: QuantisedPlan, x: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """input -> dense projections -> populations on integers, one sample,
    each projection one step late (Lava's Dense), with lif_step_fixed and
    the quantiser's integers; spikes per population [steps + depth, n]."""
    plan = quantised.plan
    order = sorted(plan.neuron_populations, key=lambda p: p.depth)
    total = steps + max(p.depth for p in order)
    state = {p.name: (np.zeros(p.size, dtype=np.int64), np.zeros(p.size, dtype=np.int64)) for p in order}
    out = {p.name: np.zeros(p.size) for p in order}
    out[plan.input_name] = np.zeros(int(np.prod(plan.populations[plan.input_name].shape)))
    spikes = {p.name: np.zeros((total, p.size)) for p in order}
    frames = quantised.input_frames(x.reshape(x.shape[0], -1))
    for n in range(total):
        delivered = {p.name: np.zeros(p.size, dtype=np.int64) for p in order}
        for projection in plan.projections:
            if projection.target in delivered:
                effective = quantised.projections[quantised._key(projection)].effective
                delivered[projection.target] += np.rint(effective @ out[projection.source]).astype(np.int64)
        for p in order:
            q = quantised.populations[p.name]
            parameters = FixedNeuronParameters(du=q.du, dv=q.dv, vth=q.vth, bias_mant=q.bias_mant, bias_exp=q.bias_exp)
            fired, state[p.name] = lif_step_fixed(delivered[p.name], state[p.name], parameters)
            out[p.name] = fired.astype(np.float64)
            spikes[p.name][n] = out[p.name]
        out[plan.input_name] = frames[n] if n < steps else np.zeros_like(out[plan.input_name])
    return {p.name: spikes[p.name][p.depth : p.depth + steps] for p in order}


def test_lava_fixed_runs_per_neuron_decays_as_the_integer_neuron_contract(no_leaks):
    """lava-fixed on a LIF chain with a decay per neuron == the quantiser's
    integers replayed with lif_step_fixed (Lava's bit-accurate arithmetic,
    pinned in test_neuron against PyLifModelBitAcc), spike for spike."""
    rng = np.random.default_rng(5)
    nodes = {**_io((6,), (N,)), "a": nir.Affine(weight=rng.normal(0.6, 0.8, (N, 6)) * 3, bias=np.full(N, 0.05)),
             "lif": _lif(np.linspace(1.2e-3, 8e-3, N), (N,)),
             "b": nir.Linear(weight=rng.normal(0.5, 0.7, (N, N)) * 2), "out": _lif(np.linspace(5e-3, 1.5e-3, N), (N,))}
    g = graph(nodes, [("input", "a"), ("a", "lif"), ("lif", "b"), ("b", "out"), ("out", "output")])
    x = (rng.random((1, 10, 6)) < 0.5).astype(float)
    fixed = simulate(g, "lava-fixed", x, dt=DT, record_spikes=True)
    quantised = QuantisedPlan(plan_deployment(g, DT))
    assert np.ndim(quantised.populations["lif"].dv) == 1 and len(np.unique(quantised.populations["lif"].dv)) == N
    replay = _replay_fixed(quantised, x[0], 10)
    for name in ("lif", "out"):
        assert np.array_equal(fixed.spikes[name][0], replay[name]), name
        assert 0 < replay[name].sum() < replay[name].size, name
    rows = {row["layer"]: row for row in fixed.quantisation}
    assert rows["lif"]["dv"].endswith("per neuron")


def test_inspect_shows_decays_per_neuron():
    from slt_deploy.cli.graphs import describe_graph

    rows = {row["node"]: row for row in describe_graph(_dense_graph(), DT)["nodes"]}
    assert rows["lif"]["lava"].startswith("population (depth 1): du 1, dv 0.125..0.8333 (per neuron)")
    assert "du 0.2..0.6667 (per neuron), dv 0.1667..0.5 (per neuron)" in rows["cuba"]["lava"]


def test_loihi2_refuses_what_only_the_cpu_model_runs():
    from slt_deploy.lava.network import LavaNetwork

    with pytest.raises(UserError, match="population 'lif' has per-neuron time constants: .*lava-float or lava-fixed"):
        LavaNetwork(plan_deployment(_dense_graph(), DT), 4, mode="loihi2", quantised=object())
