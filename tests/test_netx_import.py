"""``slt-deploy import``: lava-dl netx networks as NIR graphs that run on
``lava-fixed`` exactly as lava-dl's own ``netx.hdf5.Network`` runs them."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
import torch

from conftest import FIXTURES, assert_one_line_error, run_cli
from netx_networks import make_network, set_neuron_type, slayer_spikes, spikes
from slt_deploy.core.errors import UserError
from slt_deploy.ir.export import export_model
from slt_deploy.ir.netxfile import read_netx
from slt_deploy.ir.nirfile import read_graph, write_graph
from slt_deploy.lava.netx import NetxFileRunner
from slt_deploy.simulation import simulate

TUTORIAL = FIXTURES / "lava-dl" / "netx_mnist.net"
STEPS = 6


def _netx_spikes(path, shape, x):
    with NetxFileRunner(path, shape, x.shape[1], capacity=len(x)) as runner:
        return runner.run(x)


def _assert_same_spikes(theirs: dict, ours, names=None):
    assert list(theirs) == list(names or theirs)
    for name, value in theirs.items():
        assert value.sum() > 0, f"{name} never fires: the comparison would prove nothing"
        assert np.array_equal(value, ours.spikes[name]), (name, value.sum(), ours.spikes[name].sum())


@pytest.mark.parametrize("kind, neuron_type", [("dense", None), ("dense", "LOIHI"), ("conv", None),
                                               ("learned", None)])
def test_imported_network_on_lava_fixed_is_netx_step_for_step(kind, neuron_type, tmp_path, no_leaks):
    """Every layer's spikes and the output, per step, across back-to-back samples: as netx on Lava."""
    path = tmp_path / f"{kind}.net"
    shape, _ = make_network(kind, path)
    if neuron_type:
        set_neuron_type(path, 1, neuron_type)
    graph = read_netx(path)
    x = spikes(shape, 3, STEPS)
    theirs = _netx_spikes(path, shape, x)
    names = [n for n in graph.nodes if n.endswith("_neuron")]
    for backend in ("lava-fixed", "lava-fused-fixed"):
        ours = simulate(graph, backend, x, record_spikes=True)
        _assert_same_spikes(theirs, ours, names)
        assert np.array_equal(ours.outputs, theirs[list(theirs)[-1]]), backend


def test_decays_per_neuron_and_per_channel_are_imported_as_written(tmp_path):
    """slayer's shared_param=False: iDecay/vDecay arrays, one per conv channel
    and one per dense neuron, become per-neuron time constants in NIR and
    per-neuron 12-bit decays in the fixed-point metadata."""
    path = tmp_path / "learned.net"
    make_network("learned", path)
    with h5py.File(path) as handle:
        conv_decay = np.asarray(handle["layer/1/neuron/iDecay"][()])
        dense_decay = np.asarray(handle["layer/3/neuron/vDecay"][()])
    assert conv_decay.shape == (4,) and len(np.unique(conv_decay)) == 4 and dense_decay.shape == (12,)
    graph = read_netx(path)
    conv = graph.nodes["L1_neuron"]
    assert isinstance(conv, type(graph.nodes["L3_neuron"])) and np.asarray(conv.tau_syn).shape == (4, 4, 4)
    assert np.allclose(np.asarray(conv.tau_syn)[:, 0, 0], 1e-3 * 4096 / conv_decay)
    assert np.allclose(np.asarray(graph.nodes["L3_neuron"].tau_mem), 1e-3 * 4096 / dense_decay)
    fixed = json.loads(graph.metadata["fixed_point_json"])["populations"]
    assert fixed["L1_neuron"]["du"] == [int(d) - 1 for d in np.repeat(conv_decay, 16)]
    assert fixed["L3_neuron"]["dv"] == [int(d) for d in dense_decay]
    assert type(graph.nodes["L4_neuron"]).__name__ == "LIF"  # iDecay 4096 for every neuron


def test_per_neuron_decays_in_the_metadata_must_match_the_population(tmp_path):
    path = tmp_path / "learned.net"
    make_network("learned", path)
    graph = read_netx(path)
    spec = json.loads(graph.metadata["fixed_point_json"])
    spec["populations"]["L3_neuron"]["dv"] = spec["populations"]["L3_neuron"]["dv"][:-1]
    graph.metadata["fixed_point_json"] = json.dumps(spec)
    with pytest.raises(UserError, match=re.escape("population 'L3_neuron' needs an integer dv (or 12 of them")):
        simulate(graph, "lava-fixed", spikes((2, 8, 8), 1, 2))


def test_the_lava_dl_tutorial_network_imports_and_runs_as_netx(tmp_path, no_leaks):
    """The trained netx MNIST tutorial network, through the command line and back from the .nir file."""
    nir_path = tmp_path / "mnist.nir"
    result = run_cli("import", TUTORIAL, "-o", nir_path)
    assert result.returncode == 0, result.stderr
    graph = read_graph(nir_path)
    x = spikes((784,), 2, STEPS, seed=3)
    theirs = _netx_spikes(TUTORIAL, (784,), x)
    fixed = simulate(graph, "lava-fixed", x, record_spikes=True)
    _assert_same_spikes(theirs, fixed, ["L0_neuron", "L1_neuron", "L2_neuron"])
    fused = simulate(graph, "lava-fused-fixed", x, record_spikes=True)
    _assert_same_spikes(theirs, fused, ["L0_neuron", "L1_neuron", "L2_neuron"])
    assert np.array_equal(fused.outputs, fixed.outputs)
    # the float backends run the graph as NIR defines it: the same as each other
    floating = simulate(graph, "lava-float", x, record_spikes=True)
    reference = simulate(graph, "torch", x, record_spikes=True)
    for name in theirs:
        assert np.array_equal(floating.spikes[name], reference.spikes[name])
    assert [type(graph.nodes[n]).__name__ for n in ("L0_dense", "L0_neuron")] == ["Linear", "CubaLIF"]


def test_pooling_layers_netx_cannot_run_match_slayer(tmp_path, no_leaks):
    """netx 0.6.0 refuses pool layers; lava-fixed gives what slayer's own forward pass gives."""
    path = tmp_path / "pool.net"
    shape, blocks = make_network("pool", path)
    x = spikes(shape, 2, STEPS)
    with pytest.raises(NotImplementedError):
        _netx_spikes(path, shape, x)
    ours = simulate(read_netx(path), "lava-fixed", x, record_spikes=True)
    slayer_out = slayer_spikes(blocks, x)
    _assert_same_spikes({"L1_neuron": slayer_out[1], "L2_neuron": slayer_out[2], "L4_neuron": slayer_out[4]}, ours)


def test_an_average_readout_is_the_mean_over_output_groups(tmp_path):
    """slayer's average block (the mean of each group of outputs; its own
    export_hdf5 cannot write it, so the layer is added as netx reads it)."""
    path = tmp_path / "average.net"
    make_network("dense", path)
    with h5py.File(path, "r+") as handle:
        layer = handle.create_group("layer/3")
        layer["type"] = np.array([b"average"], dtype="S10")
        layer["shape"] = np.array([1])
    graph = read_netx(path)
    assert type(graph.nodes["L3_average"]).__name__ == "Linear"
    x = spikes((20,), 3, STEPS)
    result = simulate(graph, "torch", x, record_spikes=True)
    last = result.spikes["L2_neuron"]  # 5 neurons, one group
    assert last.sum() > 0 and np.allclose(result.outputs[..., 0], last.mean(-1))
    with h5py.File(path, "r+") as handle:
        handle["layer/3/shape"][...] = [3]  # 5 values cannot be split into 3 groups
    with pytest.raises(UserError, match="5 values cannot be averaged into 3 outputs"):
        read_netx(path)


def test_import_compare_reports_netx_fixed_and_float_side_by_side(tmp_path, no_leaks):
    path = tmp_path / "dense.net"
    make_network("dense", path)
    result = run_cli("import", path, "-o", tmp_path / "dense.nir", "--compare", "2", "--latency", "4")
    assert result.returncode == 0, result.stderr
    # rows: population | netx | lava-fixed | float | fixed vs netx | float vs fixed
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines() if "_neuron" in line and line.count("│") == 7]
    assert [row[0] for row in rows] == ["L0_neuron", "L1_neuron", "L2_neuron"], result.stdout
    assert all(row[1] == row[2] and int(row[1]) > 0 and row[4] == "0" for row in rows), result.stdout


def test_export_of_a_slayer_model_and_import_of_its_export_hdf5_run_identically(tmp_path):
    """Our NIR export of a slayer network and slayer's own export_hdf5 of it,
    imported: the same spikes in every layer; the readout differs only by
    slayer's scale (x64, mantissas) and the float bias export_hdf5 does not write."""
    from slt_deploy.models.slayer import SCALE, build_slayer_model
    from slt_deploy.models.zoo import load_recipe

    torch.manual_seed(0)
    model = build_slayer_model(load_recipe("digits-mlp")).eval()
    for stage in model.stages:  # a trained-looking bias (MeanOnlyBatchNorm's running mean)
        stage.block.neuron.norm.running_mean.uniform_(-0.3, 0.3)
    with torch.no_grad():  # a first pass sets the shapes export_hdf5 writes
        model(torch.zeros(2, 1, 64))
    path = tmp_path / "mlp.net"
    with h5py.File(path, "w") as handle:
        layers = handle.create_group("layer")
        for index, stage in enumerate(model.stages):
            stage.block.export_hdf5(layers.create_group(str(index)))
        model.readout.block.export_hdf5(layers.create_group(str(len(model.stages))))
    exported = export_model(model.double())
    imported = read_netx(path)
    x = spikes((64,), 8, 8, seed=1)
    ours = simulate(exported, "torch", x, record_spikes=True)
    theirs = simulate(imported, "torch", x, record_spikes=True)
    for index, name in enumerate(model.spiking_layer_names()):
        assert ours.spikes[name].sum() > 0
        assert np.array_equal(ours.spikes[name], theirs.spikes[f"L{index}_neuron"]), name
    bias = model.readout.bias.detach().double().numpy()
    assert np.allclose(theirs.outputs / SCALE + bias, ours.outputs, atol=1e-9)


def test_profile_control_and_report_work_on_an_imported_network(tmp_path, no_leaks):
    net, graph = tmp_path / "digits.net", tmp_path / "digits.nir"
    make_network("digits", net)
    assert run_cli("import", net, "-o", graph).returncode == 0
    result = run_cli("profile", graph, "--latency", "4", "--samples", "40", "-o", tmp_path / "profile.json")
    assert result.returncode == 0, result.stderr
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert profile["latency"] == [1, 2, 3, 4] and min(profile["sop"]["mean"]) > 0
    result = run_cli("control", graph, "--policy", "static", "--battery-mj", "1e-3", "--inferences", "10",
                     "--samples", "10", "--no-evaluate", "-o", tmp_path / "control")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "control" / "mission.json").read_text())
    result = run_cli("report", tmp_path / "profile.json", "-o", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "report.md").exists()


# --------------------------------------------------------------------------- refused by name


def _mutate(path, change):
    with h5py.File(path, "r+") as handle:
        change(handle)


def _replace(key, value):
    def change(handle):
        del handle[key]
        handle[key] = value
    return change


@pytest.mark.parametrize("change, fragment", [
    (lambda p: set_neuron_type(p, 1, "SDNN"), "sigma-delta"),
    (lambda p: set_neuron_type(p, 2, "ALIF"), "adaptive LIF"),
    (lambda p: set_neuron_type(p, 1, "RF_PHASE"), "resonate-and-fire"),
    (lambda p: _mutate(p, _replace("layer/1/neuron/refDelay", 3)), "refractory delay of 3 steps"),
    (lambda p: _mutate(p, lambda h: h.create_dataset("layer/2/delay", data=np.arange(5))), "axonal delays"),
    (lambda p: _mutate(p, _replace("layer/1/type", np.array([b"concat"], dtype="S10"))), "type 'concat'"),
    (lambda p: _mutate(p, _replace("layer/2/neuron/iDecay", np.arange(1, 8))), "'iDecay' holds 7 values"),
    (lambda p: _mutate(p, _replace("layer/2/neuron/vThMant", np.array([80, 81]))), "'vThMant' must be one integer"),
    (lambda p: _mutate(p, _replace("layer/1/weight", np.full((30, 20), 1.5))), "must hold integers"),
    (lambda p: _mutate(p, _replace("layer/2/weight", np.ones((5, 7)))), "does not take the 30 values"),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "is not"),
    (lambda p: p.write_text("not a network\n"), "not HDF5"),
    (lambda p: _mutate(p, lambda h: h.move("layer", "node")), "no 'layer' group"),
])
def test_bad_netx_files_are_one_line_errors(change, fragment, tmp_path):
    path = tmp_path / "net.net"
    make_network("dense", path)
    change(path)
    with pytest.raises(UserError, match=re.escape(fragment)) as error:
        read_netx(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_bad_netx_files_through_the_command_line_exit_2_and_write_nothing(tmp_path):
    path, output = tmp_path / "net.net", tmp_path / "out.nir"
    for change, fragment in [(lambda p: set_neuron_type(p, 1, "SDNN"), "sigma-delta"),
                             (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "net.net")]:
        make_network("dense", path)
        change(path)
        assert_one_line_error(run_cli("import", path, "-o", output), fragment)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["net.net"]


def test_a_nir_file_is_not_a_netx_network(tmp_path):
    path = tmp_path / "graph.nir"
    write_graph(read_netx(TUTORIAL), path)
    with pytest.raises(UserError, match="no 'layer' group"):
        read_netx(path)


def test_a_conv_first_file_without_input_layer_needs_the_input_shape(tmp_path):
    path = tmp_path / "conv.net"
    make_network("conv", path)
    with h5py.File(path, "r+") as handle:  # drop the input layer: layers 1..4 become 0..3
        del handle["layer/0"]
        for index in range(1, 5):
            handle.move(f"layer/{index}", f"layer/{index - 1}")
    with pytest.raises(UserError, match="give it with --input-shape"):
        read_netx(path)
    graph = read_netx(path, input_shape=(2, 8, 8))
    assert tuple(graph.nodes["input"].input_type["input"]) == (2, 8, 8)
