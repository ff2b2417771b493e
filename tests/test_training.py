"""SLT (Algorithm 1), its losses (Eqs. 4-5, 12) and reproducible training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slt_deploy.training.checkpoint import load_checkpoint, save_checkpoint
from slt_deploy.core.errors import UserError
from slt_deploy.training.slt import (
    LatencySampler, new_run, resume_run, sdt_loss, slt_tet_step_weights, tet_loss, train, train_one_epoch,
    with_settings)
from slt_deploy.models.zoo import load_recipe


def test_slt_sampler_is_uniform_on_1_to_T():
    T, draws = 8, 40_000
    sampler = LatencySampler(T, "slt", torch.Generator().manual_seed(1))
    counts = np.bincount([sampler() for _ in range(draws)], minlength=T + 1)
    assert counts[0] == 0 and counts.sum() == draws and len(counts) == T + 1
    expected = draws / T
    chi2 = float(((counts[1:] - expected) ** 2 / expected).sum())
    assert chi2 < 24.3  # chi-square, 7 degrees of freedom, p = 0.001


def test_fixed_sampler_always_gives_T_and_bad_T_is_refused():
    sampler = LatencySampler(5, "fixed", torch.Generator())
    assert {sampler() for _ in range(50)} == {5}
    with pytest.raises(UserError):
        LatencySampler(0, "slt", torch.Generator())


def test_sdt_and_tet_losses_follow_eqs_4_and_5():
    torch.manual_seed(0)
    outputs, labels = torch.randn(6, 4, 10, dtype=torch.float64), torch.randint(0, 10, (4,))
    # Eq. 4: CE of the mean output over time
    assert torch.allclose(sdt_loss(outputs, labels), F.cross_entropy(outputs.mean(0), labels))
    # Eq. 5: mean over time of the per-step CE
    per_step = torch.stack([F.cross_entropy(outputs[t], labels) for t in range(6)]).mean()
    assert torch.allclose(tet_loss(outputs, labels, 0.0), per_step)
    # TET's regulariser: (1 - lambda) L_TET + lambda MSE(O, 1)
    lam = 0.05
    mse = ((outputs - 1.0) ** 2).mean()
    assert torch.allclose(tet_loss(outputs, labels, lam), (1 - lam) * per_step + lam * mse)
    # Lemma 1 (Deng et al. 2022, Lemma 4.1): TET upper-bounds SDT
    assert tet_loss(outputs, labels) >= sdt_loss(outputs, labels)


def test_c_of_t_matches_eq_12_numerically():
    T = 8
    c = slt_tet_step_weights(T)
    assert c.sum() == pytest.approx(1.0)
    assert c[0] == pytest.approx(sum(1 / i for i in range(1, T + 1)) / T)
    assert np.all(np.diff(c) < 0)  # heavier weights on low latencies than TET's uniform 1/T
    # E_t[L_TET(t)] with t ~ U{1..T} equals sum_t c(t) CE(O[t], y), for arbitrary outputs
    torch.manual_seed(3)
    outputs, labels = torch.randn(T, 16, 10, dtype=torch.float64), torch.randint(0, 10, (16,))
    expected_loss = torch.stack([tet_loss(outputs[:t], labels) for t in range(1, T + 1)]).mean()
    per_step_ce = torch.stack([F.cross_entropy(outputs[t], labels) for t in range(T)])
    assert torch.allclose(expected_loss, (torch.as_tensor(c) * per_step_ce).sum())
    # ... and the per-step weights of the sampled SLT-TET gradient converge to c(t)
    sampler = LatencySampler(T, "slt", torch.Generator().manual_seed(0))
    weights = np.zeros(T)
    draws = 20_000
    for _ in range(draws):
        t = sampler()
        weights[:t] += 1.0 / t  # L_TET(t) puts 1/t on each of steps 1..t
    assert np.allclose(weights / draws, c, atol=0.01)


class StepRecorder(torch.nn.Module):
    """Wraps a model and records the number of time steps of every forward pass."""

    def __init__(self, model):
        super().__init__()
        self.model, self.steps = model, []

    def forward(self, x, *args, **kwargs):
        self.steps.append(x.shape[0])
        return self.model(x, *args, **kwargs)


def test_slt_runs_exactly_the_sampled_latency_per_batch():
    recipe = with_settings(load_recipe("digits-mlp"), epochs=1, batch_size=128, method="slt")
    run = new_run(recipe)
    run.model = StepRecorder(run.model)
    expected = LatencySampler(8, "slt", torch.Generator().set_state(run.generators.latency.get_state()))
    from slt_deploy.data.splits import load_split

    data = load_split("digits", "train", recipe.input_shape)
    train_one_epoch(run, data.inputs, data.labels)
    assert run.model.steps == [expected() for _ in run.model.steps]
    assert len(run.model.steps) == -(-len(data) // 128)
    assert run.history[-1]["mean_latency"] == pytest.approx(np.mean(run.model.steps))

    fixed = new_run(with_settings(recipe, method="fixed"))
    fixed.model = StepRecorder(fixed.model)
    train_one_epoch(fixed, data.inputs, data.labels)
    assert set(fixed.model.steps) == {8}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_is_reproducible_and_resume_is_bit_for_bit(tmp_path):
    recipe = with_settings(load_recipe("digits-cnn"), epochs=4, batch_size=128)
    straight = new_run(recipe)
    train(straight, tmp_path / "straight.pt")

    again = new_run(recipe)
    train(again, tmp_path / "again.pt")
    for key, value in _weights(straight.model).items():
        assert torch.equal(value, again.model.state_dict()[key]), key

    interrupted = new_run(recipe)
    train(interrupted, tmp_path / "resumed.pt", stop_after_epochs=2)
    assert load_checkpoint(tmp_path / "resumed.pt")["epoch"] == 2
    resumed = resume_run(tmp_path / "resumed.pt")
    train(resumed, tmp_path / "resumed.pt")
    assert resumed.epoch == 4
    for key, value in _weights(straight.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_different_seeds_give_different_models():
    recipe = with_settings(load_recipe("digits-mlp"), epochs=1)
    a, b = new_run(recipe), new_run(with_settings(recipe, seed=1))
    assert not torch.equal(a.model.readout.weight, b.model.readout.weight)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"latency": 0}, "latency T must be >= 1"),
        ({"method": "random"}, "unknown method"),
        ({"loss": "mse"}, "unknown loss"),
        ({"loss": "sdt", "lam": 0.1}, "does not apply"),
        ({"lam": 2.0}, "lambda must lie"),
    ],
)
def test_bad_settings_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        new_run(with_settings(load_recipe("digits-mlp"), **overrides))


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    recipe = with_settings(load_recipe("digits-mlp"), epochs=1)
    run = new_run(recipe)
    path = save_checkpoint(tmp_path / "a.pt", run.state())
    # loads with the safe loader, no pickled classes inside
    data = torch.load(path, weights_only=True)
    assert data["recipe"]["name"] == "digits-mlp"
    assert not list(tmp_path.glob(".*tmp"))
