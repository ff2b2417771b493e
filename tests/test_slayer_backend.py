"""The lava-dl (slayer) training backend (slt_deploy.models.slayer).

A short SLT training of digits-mlp (CLI, ``--backend lava-dl``, 2 epochs) and
digits-cnn (Python API, 2 epochs); the trained models go through our NIR
exporter to our Lava float graph, and through lava-dl's own path (slayer
``export_hdf5`` -> netx -> Lava fixed point, slt_deploy.lava.netx).

Measured here (seeded: the numbers repeat; 360 rate-encoded test samples, T = 8):

* slayer's forward vs our float64 contract on slayer's quantised W_q, b_q (each
  layer fed the same input spikes): MLP identical spikes in every layer; CNN
  identical in the first layer and 4 of 1,474,560 neuron-steps different in
  the layer after the 2x2 pooling (3 neurons), where slayer's membrane (a grid
  of 2^-12, its decay rounded toward zero) fell on the other side of theta:
  the float membrane was theta + 0.5 * 2^-12, theta + 0.25 * 2^-12 (twice).
  Tolerance: at a neuron's first differing step the float membrane lies within
  2^-12 / (1 - beta) of theta; at most 1e-4 of the neuron-steps differ.
* the NIR export on our Lava float graph vs slayer's forward (32 samples):
  identical spikes in every layer; outputs within 1.1e-7 (MLP) and 3.7e-8
  (CNN) -- slayer's float32 sums; tolerance 1e-5 wherever all spikes agree.
* lava-dl's own path (slayer ``export_hdf5`` -> netx -> Lava fixed point) vs
  ours: MLP -- netx holds exactly the trained weights (block scales 128, 256,
  readout 512; nothing requantised), outputs equal slayer's and our Lava float
  graph's within 1.1e-7, same predictions, same accuracy (79.7 %). CNN -- netx
  fuses the 2x2 pooling into the next convolution (weights W_q / 4) and must
  requantise them at its block scale, capped by that block's bias of 1.06
  (S = 128: step 1/64, max change 1/128): 83.3 % same class as ours after 2
  epochs (96.7 % after 10), accuracy 57.8 % (netx) vs 51.9 % (ours).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slt_deploy.readout import predictions
from slt_deploy.simulation import load_plan, simulate
from slt_deploy.training.checkpoint import load_checkpoint, model_from_checkpoint
from slt_deploy.data.splits import evaluation_inputs, load_split
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.core.errors import UserError
from slt_deploy.training.evaluation import latency_profile
from slt_deploy.ir.export import export_model
from slt_deploy.ir.nirfile import graph_dt, read_graph, write_graph
from slt_deploy.models.slayer import SlayerNetwork, SlayerSpikingLayer, neuron_params
from slt_deploy.training.slt import new_run, resume_run, train, with_settings
from slt_deploy.models.zoo import AvgPool, Flatten, load_recipe, recipe_from_dict
from conftest import ROOT, assert_one_line_error, run_cli

T = 8
LAVA_SAMPLES = 32
STATE_STEP = 2.0**-12  # slayer's membrane grid 1/(S << 6) with S = 64


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """digits-mlp trained 2 epochs through the CLI with --backend lava-dl, and its NIR
    export (what ``slt-deploy export`` writes: export_model of the double model)."""
    folder = tmp_path_factory.mktemp("slayer-mlp")
    checkpoint, graph = folder / "mlp.pt", folder / "mlp.nir"
    result = run_cli("train", "--model", "digits-mlp", "--backend", "lava-dl", "--epochs", "2", "-o", checkpoint)
    assert result.returncode == 0, result.stderr
    write_graph(export_model(model_from_checkpoint(load_checkpoint(checkpoint)).double()), graph)
    return checkpoint, graph


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """digits-cnn trained 2 epochs through the Python API, and its NIR export."""
    folder = tmp_path_factory.mktemp("slayer-cnn")
    checkpoint = folder / "cnn.pt"
    run = new_run(with_settings(load_recipe("digits-cnn"), framework="lava-dl", epochs=2))
    train(run, checkpoint)
    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    return checkpoint, export_model(model.double())


def _trained(which, request):
    checkpoint, graph = request.getfixturevalue(which)
    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    graph = read_graph(graph) if not hasattr(graph, "nodes") else graph
    test = load_split("digits", "test", model.recipe.input_shape)
    x = evaluation_inputs(test, T, "rate")  # [T, 360, *shape], seeded
    return checkpoint, model, graph, x, test.labels.numpy()


def _slayer_forward(model, x):
    record: dict = {}
    with torch.no_grad():
        outputs = model(x, record=record)
    return outputs.transpose(0, 1).double().numpy(), {k: v.transpose(0, 1).numpy() for k, v in record.items()}


# --------------------------------------------------------------------------- the neuron


def test_slayer_cuba_block_is_the_contract_neuron_with_strict_threshold():
    """One Dense block: v <- beta v + W_q s + b_q, spike iff v > theta (v == theta does not spike), reset to 0."""
    recipe = with_settings(load_recipe("digits-mlp"), framework="lava-dl")
    layer = SlayerNetwork(recipe).stages[0]
    block = layer.block
    with torch.no_grad():
        block.synapse.weight.zero_()
        block.synapse.weight[0, 0] = 1.0    # input 0 -> neuron 0: exactly theta
        block.synapse.weight[1, 1] = 0.5    # input 1 -> neuron 1: 0.5 per step
        block.synapse.weight[2, 0] = 1.03   # quantised to 1.03125 (step 2/64) -> just above theta
    layer.eval()  # running mean 0: b_q = 0
    x = torch.zeros(4, 1, 64)
    x[0, 0, 0] = 1.0
    x[:, 0, 1] = 1.0
    spikes = layer(x, {}, None, "l0")[:, 0]
    assert spikes[:, 0].tolist() == [0, 0, 0, 0]  # v = 1.0 = theta, then 0.5, 0.25, ...: never > theta
    # neuron 1: v = 0.5, 0.75, 0.875, 0.9375 (beta = 1/2): below theta at every step
    assert spikes[:, 1].tolist() == [0, 0, 0, 0]
    assert spikes[:, 2].tolist() == [1, 0, 0, 0]  # 1.03125 > 1: spike, reset to 0 (not 0.03125)
    assert float(layer.quantised_weight()[2, 0]) == 1.03125
    # neuron 1 again with 0.53125 (mantissa 34): 0.53125, 0.796875, 0.9296875, 0.99609375, 1.029296875 -> step 5
    with torch.no_grad():
        block.synapse.weight[1, 1] = 0.53125
    y = torch.zeros(6, 1, 64)
    y[:, 0, 1] = 1.0
    assert layer(y, {}, None, "l0")[:, 0, 1].tolist() == [0, 0, 0, 0, 1, 0]
    # slayer's surrogate as configured: peak 1/gamma at theta and area 1 (the triangle's)
    v = torch.tensor([[[1.0, 1.5, 3.0]]], requires_grad=True)
    block.neuron.spike(v).sum().backward()
    gamma = recipe.neuron.surrogate_width
    expected = np.exp(-2 * np.abs(np.array([1.0, 1.5, 3.0]) - 1.0) / gamma) / gamma
    assert np.allclose(v.grad.numpy().ravel(), expected, rtol=1e-3)


def test_parameters_slayer_cannot_hold_are_refused():
    recipe = load_recipe("digits-mlp")
    with pytest.raises(UserError, match="threshold 0.7 is not a multiple of 1/64"):
        neuron_params(type(recipe.neuron)(beta=0.5, threshold=0.7))
    with pytest.raises(UserError, match="1 - beta"):
        neuron_params(type(recipe.neuron)(beta=0.3, threshold=1.0))
    with pytest.raises(UserError, match="unknown training framework 'sinabs'"):
        new_run(with_settings(recipe, framework="sinabs"), check_data=False)


# --------------------------------------------------------------------------- training, checkpoints


def test_cli_trains_a_lava_dl_checkpoint_that_evaluates_and_exports(mlp):
    checkpoint, graph_path = mlp
    stored = load_checkpoint(checkpoint)
    assert stored["recipe"]["train"]["backend"] == "lava-dl" and stored["epoch"] == 2
    model = model_from_checkpoint(stored, str(checkpoint))
    assert isinstance(model, SlayerNetwork) and model.recipe.framework == "lava-dl"
    profile = latency_profile(model, load_split("digits", "test", (64,)), T, "rate")
    assert profile.accuracy[-1] >= 0.6 and profile.accuracy[-1] >= profile.accuracy[0]  # measured 79.7 %, 54.2 % at t=1
    graph = read_graph(graph_path)
    assert {"l0_linear_syn", "l0_linear_lif", "l1_linear_syn", "l1_linear_lif", "readout", "output"} <= set(graph.nodes)
    assert graph.metadata["beta"] == 0.5 and graph.metadata["latency_T"] == T
    lif = graph.nodes["l0_linear_lif"]
    assert np.allclose(lif.tau, 1e-3 / 0.5) and np.all(lif.r == 1) and np.all(lif.v_threshold == 1.0)
    # the NIR weights are slayer's quantised weights x 1/(1 - beta): even 8-bit mantissas at S = 64
    layer = model.double().stages[0]  # quantised in float64, as the exporter does
    weight = graph.nodes["l0_linear_syn"].weight
    assert np.array_equal(weight, layer.quantised_weight().detach().double().numpy() * 2.0)
    mantissa = weight * 0.5 * 64
    assert np.array_equal(mantissa, np.round(mantissa)) and np.all(mantissa % 2 == 0)
    assert np.abs(mantissa).max() <= 256
    bias = graph.nodes["l0_linear_syn"].bias
    assert np.array_equal(bias, -2.0 * layer.block.neuron.quantize_8bit(layer.block.neuron.norm.running_mean)
                          .double().numpy())
    assert np.abs(bias).max() > 0  # the MeanOnlyBatchNorm bias is carried


def test_resume_is_bit_for_bit_and_old_checkpoints_stay_norse(tmp_path):
    recipe = with_settings(load_recipe("digits-mlp"), framework="lava-dl", epochs=2)
    straight, split = tmp_path / "straight.pt", tmp_path / "split.pt"
    train(new_run(recipe), straight)
    train(new_run(recipe), split, stop_after_epochs=1)
    train(resume_run(split), split)
    a, b = load_checkpoint(straight)["model"], load_checkpoint(split)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a checkpoint written before the backend setting existed loads as norse
    shipped = load_checkpoint(ROOT / "models" / "digits-mlp-slt.pt")
    assert "backend" not in shipped["recipe"]["train"]
    assert recipe_from_dict(shipped["recipe"]).framework == "norse"
    assert not isinstance(model_from_checkpoint(shipped), SlayerNetwork)


# --------------------------------------------------------------------------- slayer vs the contract


def _float_contract(model, x, record):
    """Per spiking layer, our float64 neuron on slayer's quantised W_q, b_q, fed the
    *same* input spikes slayer's layer got: {name: (spikes, membrane before reset)} [t, B, ...]."""
    p = model.recipe.neuron
    result, value = {}, x.double()
    for name, stage in zip(model.stage_names, model.stages):
        if isinstance(stage, SlayerSpikingLayer):
            weight = stage.quantised_weight().detach().double()
            bias = stage.quantised_bias().detach().double()
            flat = value.flatten(0, 1)
            if weight.dim() == 4:
                synapse = stage.block.synapse
                current = F.conv2d(flat, weight, bias, synapse.stride[:2], synapse.padding[:2],
                                   synapse.dilation[:2], synapse.groups)
            else:
                current = flat @ weight.T + bias
            current = current.unflatten(0, value.shape[:2])
            v, spikes, membranes = torch.zeros_like(current[0]), [], []
            for step in current:
                v = p.beta * v + step
                s = (v > p.threshold).double()
                spikes.append(s)
                membranes.append(v)
                v = v * (1 - s)
            result[f"{name}_lif"] = (torch.stack(spikes).numpy(), torch.stack(membranes).numpy())
            value = record[f"{name}_lif"].double()  # the next layer gets slayer's spikes
        elif isinstance(stage, (AvgPool, Flatten)):
            value = stage(value, {}, None, name)
        else:
            raise TypeError(type(stage))
    return result


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_slayer_forward_is_the_contract_within_slayers_membrane_grid(which, request):
    _, model, _, x, _ = _trained(which, request)
    record: dict = {}
    with torch.no_grad():
        model(x, record=record)
    reference = _float_contract(model, x, record)
    theta, beta = model.recipe.neuron.threshold, model.recipe.neuron.beta
    bound = STATE_STEP / (1 - beta)
    for index, (name, (spikes, membrane)) in enumerate(reference.items()):
        theirs = record[name].numpy()
        differ = spikes != theirs
        assert theirs.sum() > 0.01 * theirs.size, name  # the layer is active
        if which == "mlp" or index == 0:  # fed by unpooled spikes: slayer's membrane arithmetic is exact
            assert not differ.any(), (name, int(differ.sum()))
            continue
        assert differ.mean() <= 1e-4, (name, int(differ.sum()))  # measured 4 of 1,474,560 (CNN, after pooling)
        first = differ.argmax(0)  # first differing step of every neuron
        neurons = np.nonzero(differ.any(0))
        v_first = membrane[(first[neurons],) + neurons]
        assert np.all(np.abs(v_first - theta) <= bound), (name, v_first)


# --------------------------------------------------------------------------- our NIR on Lava float, and netx


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_nir_export_on_our_lava_float_graph_equals_slayer(which, request, no_leaks):
    _, model, graph, x, labels = _trained(which, request)
    x = x[:, :LAVA_SAMPLES]
    ours, spikes = _slayer_forward(model, x)
    lava = simulate(graph, "lava-float", x.transpose(0, 1).double().numpy(), record_spikes=True)
    agree = np.ones(LAVA_SAMPLES, dtype=bool)
    for name, theirs in spikes.items():
        differ = lava.spikes[name] != theirs
        assert differ.mean() <= 1e-4, (name, int(differ.sum()))
        if which == "mlp" or name == "l0_conv_lif":
            assert not differ.any(), name
        agree &= ~differ.reshape(LAVA_SAMPLES, -1).any(1)
    assert agree.mean() >= 0.9
    # where every spike agrees, the outputs are slayer's within float32 rounding
    assert np.abs(lava.outputs[agree] - ours[agree]).max() <= 1e-5
    latencies = np.full(LAVA_SAMPLES, T)
    assert np.mean(predictions(lava.outputs, latencies) == predictions(ours, latencies)) >= 31 / 32


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_lava_dl_netx_path_against_ours(which, request, tmp_path, no_leaks):
    """slayer export_hdf5 -> netx -> Lava fixed point for the trained model vs
    our path. netx runs 32 samples on Lava and equals, to the last bit, a
    float64 simulation of the plan it holds (chain_forward), which then
    stands in for netx on all 360 test samples."""
    from slt_deploy.lava.netx import NetxRunner, chain_forward, netx_network_for

    checkpoint, model, graph, x, labels = _trained(which, request)
    xs = x.transpose(0, 1).double().numpy()
    plan = plan_deployment(graph, graph_dt(graph, None), "spikes")
    network, io = netx_network_for(load_plan(checkpoint), tmp_path / "model.net", T)  # slayer export_hdf5 -> netx
    requantised = [np.abs(a.weight - b.weight).max() for a, b in zip(plan.projections, io.quantised.projections)]
    with NetxRunner(network, io, capacity=LAVA_SAMPLES, readout="current") as runner:
        netx = runner.run(xs[:LAVA_SAMPLES]).outputs
    netx_all = chain_forward(io.quantised, xs).outputs
    assert np.abs(netx - netx_all[:LAVA_SAMPLES]).max() <= 1e-9  # netx computes exactly its quantised plan
    ours = simulate(graph, "lava-float", xs[:LAVA_SAMPLES]).outputs  # our NIR on our Lava float graph
    slayer, _ = _slayer_forward(model, x)  # equals ours (previous test), on all 360 samples
    latencies = np.full(len(xs), T)
    netx_predicted, slayer_predicted = predictions(netx_all, latencies), predictions(slayer, latencies)
    accuracy_netx, accuracy_slayer = np.mean(netx_predicted == labels), np.mean(slayer_predicted == labels)
    if which == "mlp":
        # netx holds exactly the weights slayer trained: slayer's outputs, our Lava float outputs
        assert max(requantised) == 0.0
        assert np.abs(netx_all - slayer).max() <= 1e-5 and np.abs(netx - ours).max() <= 1e-5
        assert np.array_equal(netx_predicted, slayer_predicted) and accuracy_netx == accuracy_slayer
    else:
        # netx fuses the 2x2 pooling into the next convolution (W_q / 4, on a grid of
        # 2^-7) and requantises it at its block scale, capped by the bias (measured S = 128)
        assert requantised[0] == 0.0 and 0 < requantised[1] <= 1 / io.scales[1] and requantised[2] == 0.0
        assert np.abs(netx - ours).max() > 1e-3  # so the outputs differ ...
        assert np.mean(netx_predicted == slayer_predicted) >= 0.75  # ... measured 83.3 % same class
        assert abs(accuracy_netx - accuracy_slayer) <= 0.08  # measured 57.8 % (netx) vs 51.9 % (ours)
    assert accuracy_slayer >= 0.45  # 2 epochs; measured 79.7 % (MLP), 51.9 % (CNN)


# --------------------------------------------------------------------------- bad input


def test_unsupported_layer_and_multi_process_training_are_one_line_errors(tmp_path):
    recipe = (ROOT / "models" / "digits-cnn.toml").read_text().replace(
        '{ type = "conv", channels = 32, kernel = 3, padding = 1 },',
        '{ type = "residual", channels = 16 },')
    assert "residual" in recipe
    path = tmp_path / "digits-res.toml"
    path.write_text(recipe)
    result = run_cli("train", "--model", path, "--backend", "lava-dl", "--epochs", "1", "-o", tmp_path / "r.pt")
    assert_one_line_error(result, "layer 2 (residual) is not supported by the lava-dl backend")
    result = run_cli("train", "--backend", "lava-dl", "--nproc", "2", "--epochs", "1", "-o", tmp_path / "n.pt")
    assert_one_line_error(result, "lava-dl backend trains on one process")
    assert not list(tmp_path.glob("*.pt"))
