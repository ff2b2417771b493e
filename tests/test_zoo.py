"""Model zoo: recipes build, the big paper models train one step, and one pass
at T gives the predictions of every latency t <= T."""

import pytest
import torch

from slt_deploy.core.errors import UserError
from slt_deploy.training.slt import loss_function, with_settings
from slt_deploy.models import available_models, build_model, load_recipe
from slt_deploy.readout import predictions_per_latency


def test_shipped_recipes():
    assert {"digits-mlp", "digits-cnn", "vggsnn", "resnet19"} <= set(available_models())
    vgg, resnet = load_recipe("vggsnn"), load_recipe("resnet19")
    assert vgg.input_shape == (2, 48, 48) and vgg.train.latency == 10
    assert (vgg.train.lr, vgg.train.batch_size, vgg.train.lam) == (1e-3, 64, 1e-4)  # Table 1, DVS column
    assert resnet.input_shape == (3, 32, 32) and resnet.train.latency == 8
    assert (resnet.train.lr, resnet.train.batch_size, resnet.train.lam) == (0.01, 256, 0.05)  # Table 1, CIFAR
    for recipe in (vgg, resnet):
        assert recipe.neuron.beta == 0.5 and recipe.neuron.threshold == 1.0
        assert recipe.train.epochs == 300 and recipe.train.scheduler == "cosine"


@pytest.mark.parametrize("name, layers", [("digits-mlp", 2), ("digits-cnn", 2)])
def test_digits_models_shapes_and_spikes(name, layers):
    model = build_model(load_recipe(name)).eval()
    x = torch.rand(5, 3, *model.recipe.input_shape)
    record = {}
    outputs = model(x, record=record)
    assert outputs.shape == (5, 3, 10)
    assert len(record) == layers
    for spikes in record.values():
        assert spikes.shape[:2] == (5, 3)
        assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_wrong_input_shape_is_a_user_error():
    model = build_model(load_recipe("digits-cnn"))
    with pytest.raises(UserError, match="takes input"):
        model(torch.rand(2, 3, 64))


@pytest.mark.parametrize("name, steps, batch", [("vggsnn", 2, 2), ("resnet19", 2, 2)])
def test_paper_models_build_train_one_step_and_run_forward(name, steps, batch):
    torch.manual_seed(0)
    recipe = load_recipe(name)
    model = build_model(recipe)
    x = (torch.rand(steps, batch, *recipe.input_shape) > 0.8).float()
    labels = torch.tensor([1, 3])
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.train.lr)
    before = model.readout.weight.detach().clone()
    loss = loss_function("tet", recipe.train.lam)(model(x), labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.readout.weight)
    model.eval()
    record = {}
    with torch.no_grad():
        outputs = model(x, record=record)
    assert outputs.shape == (steps, batch, recipe.classes)
    expected_layers = 8 if name == "vggsnn" else 1 + 2 * 8 + 1
    assert len(record) == expected_layers


def test_one_pass_at_T_equals_separate_runs_at_every_t():
    torch.manual_seed(0)
    model = build_model(load_recipe("digits-cnn")).eval()
    x = (torch.rand(8, 16, 1, 8, 8) > 0.5).float()
    with torch.no_grad():
        all_t = predictions_per_latency(model(x), axis=0)
        for t in range(1, 9):
            separate = model(x[:t]).mean(0).argmax(-1)
            assert torch.equal(all_t[t - 1], separate)


def test_state_carries_over_between_pieces_of_a_sequence():
    torch.manual_seed(0)
    model = build_model(load_recipe("digits-mlp")).eval()
    x = (torch.rand(8, 4, 64) > 0.5).float()
    with torch.no_grad():
        whole = model(x)
        state = {}
        pieces = torch.cat([model(x[:3], state), model(x[3:], state)])
    assert torch.allclose(whole, pieces)


def test_bad_recipes(tmp_path):
    with pytest.raises(UserError, match="unknown model"):
        load_recipe("no-such-model")
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname="x"\ninput_shape=[64]\nclasses=10\nlayers=[{type="lstm"}]\n')
    with pytest.raises(UserError, match="unknown layer type"):
        build_model(load_recipe(str(bad)))
    bad.write_text("[model\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_recipe(str(bad))


def test_with_settings_leaves_recipe_defaults_when_none():
    recipe = load_recipe("digits-mlp")
    assert with_settings(recipe, method=None, epochs=None) == recipe
    assert with_settings(recipe, epochs=3).train.epochs == 3
