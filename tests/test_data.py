"""Default data: the digits split and the encodings."""

import torch

import pytest

from slt_deploy.data.splits import EVAL_SEED, encode, evaluation_inputs, load_split
from slt_deploy.core.errors import UserError


def test_digits_split_is_fixed_disjoint_and_stratified():
    splits = {name: load_split("digits", name) for name in ("train", "calibration", "test")}
    assert {name: len(s) for name, s in splits.items()} == {"train": 1257, "calibration": 180, "test": 360}
    rows = {name: {tuple(x.tolist()) for x in s.inputs} for name, s in splits.items()}
    # digits has a few duplicate images; the splits are disjoint by index, near-disjoint by content
    assert len(rows["train"] & rows["test"]) < 5
    for s in splits.values():
        counts = torch.bincount(s.labels, minlength=10).float()
        assert counts.min() / counts.max() > 0.85
        assert s.inputs.min() >= 0 and s.inputs.max() <= 1
    again = load_split("digits", "test")
    assert torch.equal(again.inputs, splits["test"].inputs)


def test_reshape_to_model_input():
    assert load_split("digits", "test", (1, 8, 8)).inputs.shape == (360, 1, 8, 8)
    with pytest.raises(UserError, match="shape"):
        load_split("digits", "test", (3, 32, 32))
    with pytest.raises(UserError, match="unknown dataset"):
        load_split("mnist", "test")


def test_direct_encoding_is_constant_and_rate_encoding_is_bernoulli():
    images = load_split("digits", "train").inputs[:200]
    direct = encode(images, 5, "direct")
    assert direct.shape == (5, 200, 64) and all(torch.equal(direct[t], images) for t in range(5))
    rate = encode(images, 400, "rate", torch.Generator().manual_seed(0))
    assert set(rate.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(rate.mean(0), images, atol=0.1)  # spike probability = intensity
    assert not torch.equal(rate[0], rate[1])  # a fresh frame every step


def test_evaluation_encoding_is_seeded():
    test = load_split("digits", "test")
    a, b = evaluation_inputs(test, 8, "rate"), evaluation_inputs(test, 8, "rate")
    assert torch.equal(a, b)
    assert torch.equal(a, encode(test.inputs, 8, "rate", torch.Generator().manual_seed(EVAL_SEED)))
    with pytest.raises(UserError, match="does not apply"):
        evaluation_inputs(test, 8, "events")
