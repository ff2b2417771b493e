"""Export to NIR: the file follows the standard (norse's own importer
simulates it like our model) and reads back unchanged."""

import json

import nir
import numpy as np
import pytest
import torch

from slt_deploy.ir.export import export_model
from slt_deploy.ir.nirfile import read_graph, write_graph
from slt_deploy.ir.reference import ReferenceNetwork
from slt_deploy.models import build_model, load_recipe


def randomised_model(name: str, seed: int = 0):
    """A model with random weights and non-trivial BatchNorm statistics (so
    that folding is exercised), in eval mode, float64."""
    torch.manual_seed(seed)
    model = build_model(load_recipe(name))
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.5)
    return model.eval().double()


def assert_graphs_equal(a, b):
    assert sorted(a.nodes) == sorted(b.nodes)  # HDF5 stores groups by name
    assert sorted(a.edges) == sorted(b.edges)
    for name in a.nodes:
        left, right = a.nodes[name], b.nodes[name]
        assert type(left) is type(right), name
        for key, value in vars(left).items():
            if key in ("input_type", "output_type", "metadata"):
                continue
            other = getattr(right, key)
            assert np.array_equal(np.asarray(value), np.asarray(other)), (name, key)
    decoded = {k: v.decode() if isinstance(v, bytes) else v for k, v in b.metadata.items()}
    assert a.metadata == decoded


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_write_then_read_gives_the_same_graph(name, tmp_path):
    graph = export_model(randomised_model(name), profile={"accuracy": [0.5, 0.9]})
    path = write_graph(graph, tmp_path / "model.nir")
    back = read_graph(path)
    assert_graphs_equal(graph, back)
    # and nir's own reader agrees
    assert_graphs_equal(graph, nir.read(path))
    assert not list(tmp_path.glob(".*.tmp"))


def test_metadata_holds_the_deployment_facts():
    graph = export_model(randomised_model("digits-mlp"), profile={"accuracy": [0.5]})
    meta = graph.metadata
    assert meta["dt"] == 1e-3 and meta["beta"] == 0.5 and meta["threshold"] == 1.0
    assert meta["latency_T"] == 8 and meta["method"] == "slt" and meta["loss"] == "tet"
    assert meta["input_kind"] == "spikes" and meta["encoding"] == "rate"
    assert json.loads(meta["accuracy_profile_json"]) == {"accuracy": [0.5]}
    assert json.loads(meta["recipe_json"])["name"] == "digits-mlp"
    assert all(isinstance(v, (str, int, float)) for v in meta.values())  # nothing pickled


def test_lif_nodes_follow_the_contract_mapping():
    graph = export_model(randomised_model("digits-mlp"))
    lif = graph.nodes["l0_linear_lif"]
    assert np.all(lif.tau == 2e-3) and np.all(lif.r == 1.0) and np.all(lif.v_leak == 0.0)
    assert np.all(lif.v_threshold == 1.0) and np.all(lif.v_reset == 0.0)
    assert isinstance(graph.nodes["readout"], nir.Affine) and isinstance(graph.nodes["output"], nir.Output)


def _norse_simulation(graph, x):
    """norse's own importer, one unbatched sample at a time (NIR shapes exclude the batch)."""
    import norse.torch as norse

    module = norse.from_nir(graph, dt=graph.metadata["dt"]).double()
    outputs = []
    for sample in x:
        state, steps = None, []
        for frame in sample:
            y, state = module(frame, state)
            steps.append(y)
        outputs.append(torch.stack(steps))
    return torch.stack(outputs)


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_norse_simulates_the_exported_file_like_our_model(name, tmp_path):
    model = randomised_model(name)
    path = write_graph(export_model(model), tmp_path / "model.nir")
    x = (torch.rand(4, 8, *model.recipe.input_shape, generator=torch.Generator().manual_seed(1)) > 0.6).double()
    record = {}
    with torch.no_grad():
        ours = model(x.transpose(0, 1), record=record).transpose(0, 1)
    assert 0.01 < float(np.mean([r.mean() for r in record.values()])) < 0.5  # neurons do spike
    theirs = _norse_simulation(nir.read(path), x)
    assert float((ours - theirs).abs().max()) <= 1e-5


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn", "resnet19"])
def test_reference_simulation_equals_the_model(name):
    """Our NIR interpreter (the torch backend) reproduces the training model:
    identical spikes in every layer, outputs within 1e-9 (float64)."""
    model = randomised_model(name)
    batch = 1 if name == "resnet19" else 4
    x = (torch.rand(3 if name == "resnet19" else 8, batch, *model.recipe.input_shape,
                    generator=torch.Generator().manual_seed(2)) > 0.5).double()
    record = {}
    with torch.no_grad():
        ours = model(x, record=record)
    simulation = ReferenceNetwork(export_model(model), 1e-3).run(x.transpose(0, 1))
    assert sorted(simulation.spikes) == sorted(record)
    for key, spikes in record.items():
        assert np.array_equal(simulation.spikes[key].swapaxes(0, 1), spikes.numpy()), key
    assert float(np.abs(simulation.outputs.swapaxes(0, 1) - ours.numpy()).max()) <= 1e-9
