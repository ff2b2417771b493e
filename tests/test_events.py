"""Event data: the neuromorphic-digits generator, frames through tonic, the
`ndigits` data set, an SLT run on it that exports to NIR and runs on Lava,
and tonic's DVS sets (refused without --download, preprocessed like the
paper's, loaded from a stand-in copy on disk) -- all without a network."""

import os

import numpy as np
import pytest
import torch
import tonic
from sklearn.datasets import load_digits

from conftest import assert_one_line_error, run_cli
from slt_deploy.data.splits import load_split
from slt_deploy.core.errors import UserError
from slt_deploy.data.events import (
    DVSGESTURE_MIRROR, EVENT_DTYPE, TONIC_SETS, EventsToFrames, RandomCropFlip, download_data,
    neuromorphic_digits, preprocessing)

DIGITS = load_digits().images / 16.0
DURATION_US = 300_000  # three saccades of 100 ms


@pytest.fixture
def offline(monkeypatch):
    """Any attempt of tonic to download fails the test."""
    import tonic.dataset
    import tonic.download_utils

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(tonic.download_utils, "download_url", no_network)
    monkeypatch.setattr(tonic.download_utils, "download_and_extract_archive", no_network)
    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", no_network)


def counts_per_pixel(events, shape=(34, 34)):
    counts = np.zeros(shape, dtype=int)
    np.add.at(counts, (events["y"], events["x"]), 1)
    return counts


# --------------------------------------------------------------------------- generator


def test_generated_events_are_tonic_style_sorted_and_deterministic():
    recordings = neuromorphic_digits(DIGITS[:6])
    assert EVENT_DTYPE == tonic.datasets.NMNIST.dtype
    assert len(recordings) == 6
    for events in recordings:
        assert events.dtype == tonic.datasets.NMNIST.dtype
        assert 2_000 < len(events) < 10_000  # N-MNIST-like: thousands of events per digit
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["t"].min() >= 0 and events["t"].max() < DURATION_US
        assert 0 <= events["x"].min() and events["x"].max() < 34
        assert 0 <= events["y"].min() and events["y"].max() < 34
        assert set(np.unique(events["p"])) == {0, 1}
    again = neuromorphic_digits(DIGITS[:6])
    assert all(np.array_equal(a, b) for a, b in zip(recordings, again))
    other_seed = neuromorphic_digits(DIGITS[:6], seed=1)
    assert not np.array_equal(other_seed[0], recordings[0])
    assert abs(len(other_seed[0]) - len(recordings[0])) < 0.1 * len(recordings[0])
    with pytest.raises(UserError, match="in \\[0, 1\\]"):
        neuromorphic_digits(DIGITS[:1] * 16)
    with pytest.raises(UserError, match="sensor size"):
        neuromorphic_digits(DIGITS[:1], (34, 34, 1))


def test_events_come_from_motion_at_the_edges():
    # a still image gives nothing at all; a blank screen gives nothing either
    assert len(neuromorphic_digits(DIGITS[:3], amplitude=0.0)[0]) == 0
    assert len(neuromorphic_digits(np.zeros((1, 8, 8)))[0]) == 0
    # a bright square: its 8x8 box spans sensor px 1.5..25.5, the square source
    # columns/rows 2..5, full intensity between sensor px 9 and 18 before moving
    square = np.zeros((1, 8, 8))
    square[0, 2:6, 2:6] = 1.0
    events = neuromorphic_digits(square)[0]
    counts = counts_per_pixel(events)
    on, off = counts_per_pixel(events[events["p"] == 1]), counts_per_pixel(events[events["p"] == 0])
    assert on.sum() > 500 and off.sum() > 500
    assert counts[16:18, 16:18].sum() == 0  # inside the square at every position of the saccades
    assert counts[:5, :].sum() == 0 and counts[:, :5].sum() == 0  # never reached by an edge
    assert counts[29:, :].sum() == 0 and counts[:, 29:].sum() == 0
    assert (counts[17, 6:15] > 0).all() and (counts[6:15, 17] > 0).all()  # swept by the left/top edges
    # the saccade towards larger x: ON events where the (bright) square arrives, OFF where it leaves
    first = events[events["t"] < 100_000]
    assert first[first["p"] == 1]["x"].mean() > first[first["p"] == 0]["x"].mean()


def test_frames_through_tonic_count_every_event():
    recordings = neuromorphic_digits(DIGITS[:4])
    to_frames = EventsToFrames((34, 34, 2), 10, DURATION_US)
    for events in recordings:
        frames = to_frames(events)
        assert frames.shape == (10, 2, 34, 34) and frames.dtype == torch.float32
        assert frames.sum() == len(events)
        for p in (0, 1):
            assert frames[:, p].sum() == (events["p"] == p).sum()
        for k in range(10):  # bin k: 30 ms from k * 30 ms
            in_bin = (events["t"] >= k * 30_000) & (events["t"] < (k + 1) * 30_000)
            assert frames[k].sum() == in_bin.sum()
        assert torch.equal(frames[:, 1].sum(0), torch.from_numpy(counts_per_pixel(events[events["p"] == 1])).float())
    # pinned: tonic 1.7's n_time_bins drops the events at and after t0 + T * floor((t_last - t0) / T)
    events = recordings[0]
    n_time_bins = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_time_bins=10)(events)
    t0, width = events["t"][0], (events["t"][-1] - events["t"][0]) // 10
    assert n_time_bins.shape == (10, 2, 34, 34)
    assert n_time_bins.sum() == (events["t"] < t0 + 10 * width).sum() < len(events)
    assert EventsToFrames((34, 34, 2), 10)(events).sum() == n_time_bins.sum()
    assert EventsToFrames((34, 34, 2), 7)(events[:0]).shape == (7, 2, 34, 34)


# --------------------------------------------------------------------------- ndigits


def test_ndigits_has_the_digits_split_as_event_frames():
    for split, size in (("train", 1257), ("calibration", 180), ("test", 360)):
        data = load_split("ndigits", split, (2, 34, 34))
        digits = load_split("digits", split)
        assert len(data) == size and torch.equal(data.labels, digits.labels)
        assert data.inputs.shape == (size, 10, 2, 34, 34) and data.inputs.dtype == torch.float32
        assert data.encodings == ("events",) and data.classes == 10
        assert (data.inputs >= 0).all() and torch.equal(data.inputs, data.inputs.round())
        assert data.inputs.sum(dim=(1, 2, 3, 4)).min() > 2_000  # events per digit
    with pytest.raises(UserError, match="shape"):
        load_split("ndigits", "test", (2, 48, 48))
    with pytest.raises(UserError, match="frames per sample"):
        load_split("ndigits", "test", frames=0)


def test_generated_digits_fit_the_papers_vggsnn():
    from slt_deploy.models import build_model, load_recipe

    recipe = load_recipe("vggsnn")
    width, height = recipe.input_shape[2], recipe.input_shape[1]
    to_frames = EventsToFrames((width, height, 2), recipe.train.latency, DURATION_US)
    events = neuromorphic_digits(DIGITS[:1], (width, height, 2))[0]
    frames = to_frames(events)
    assert frames.shape == (10, *recipe.input_shape) and frames.sum() == len(events)
    torch.manual_seed(0)
    model = build_model(recipe).eval()
    with torch.no_grad():
        outputs = model(frames[:1].unsqueeze(1))  # t = 1, one sample
    assert outputs.shape == (1, 1, 10) and torch.isfinite(outputs).all()


def test_slt_on_ndigits_trains_exports_and_runs_on_lava(tmp_path, no_leaks):
    from slt_deploy.simulation import simulate
    from slt_deploy.data.splits import evaluation_inputs
    from slt_deploy.training.evaluation import latency_profile
    from slt_deploy.ir.export import export_model
    from slt_deploy.training.slt import new_run, train, with_settings
    from slt_deploy.models.zoo import load_recipe

    recipe = with_settings(load_recipe("ndigits-cnn"), epochs=1)
    assert (recipe.dataset, recipe.encoding, recipe.train.latency) == ("ndigits", "events", 10)
    run = new_run(recipe)
    checkpoint = train(run, tmp_path / "ndigits.pt")
    assert checkpoint.is_file() and run.epoch == 1 and 1 <= run.history[0]["mean_latency"] <= 10
    test = load_split("ndigits", "test", recipe.input_shape, frames=10)
    profile = latency_profile(run.model, test, 10, "events")
    assert max(profile.accuracy) > 0.15  # chance is 0.10; one epoch already learns
    # export to NIR and run a few test samples on Lava's float simulator: same outputs as torch
    model = run.model.double().eval()
    x = evaluation_inputs(test, 10, "events")[:, :3].double()
    with torch.no_grad():
        expected = model(x)
    graph = export_model(model)
    latencies = [10, 4, 7]
    result = simulate(graph, "lava-float", x.transpose(0, 1).numpy(), latencies)
    for k, t in enumerate(latencies):
        assert np.abs(result.outputs[k, :t] - expected[:t, k].numpy()).max() <= 1e-5


def test_augmented_event_training_resumes_bit_for_bit(tmp_path):
    from dataclasses import replace

    from slt_deploy.training.checkpoint import load_checkpoint
    from slt_deploy.training.slt import new_run, resume_run, train, train_one_epoch, with_settings
    from slt_deploy.models.zoo import load_recipe

    tiny = ({"type": "conv", "channels": 4, "kernel": 3, "stride": 2}, {"type": "avgpool", "kernel": 4},
            {"type": "flatten"})
    recipe = replace(with_settings(load_recipe("ndigits-cnn"), epochs=2), layers=tiny)
    straight = new_run(recipe)
    train(straight, tmp_path / "straight.pt")
    interrupted = new_run(recipe)
    train(interrupted, tmp_path / "resumed.pt", stop_after_epochs=1)
    assert load_checkpoint(tmp_path / "resumed.pt")["epoch"] == 1
    resumed = resume_run(tmp_path / "resumed.pt")
    train(resumed, tmp_path / "resumed.pt")
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    # the crop augmentation is part of training: without it the same first epoch ends elsewhere
    data = load_split("ndigits", "train", recipe.input_shape, frames=10)
    plain = new_run(recipe)
    train_one_epoch(plain, data.inputs, data.labels)
    assert not torch.equal(plain.model.readout.weight, interrupted.model.readout.weight)


# --------------------------------------------------------------------------- tonic's DVS sets


@pytest.mark.parametrize("name", sorted(TONIC_SETS))
def test_dvs_sets_are_not_downloaded_unless_asked(name, tmp_path, monkeypatch, offline):
    monkeypatch.setenv("SLT_DEPLOY_DATA", str(tmp_path))
    for split in ("train", "test"):
        with pytest.raises(UserError, match="--download") as error:
            load_split(name, split)
        assert "\n" not in str(error.value) and name in str(error.value)
    assert not any(files for _, _, files in os.walk(tmp_path))  # nothing written, nothing fetched


def test_download_is_only_for_tonic_sets_and_the_cli_refuses_in_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="needs no download"):
        download_data("ndigits")
    monkeypatch.setenv("SLT_DEPLOY_DATA", str(tmp_path))
    result = run_cli("train", "--model", "vggsnn-gesture", "--epochs", "1", "-o", tmp_path / "g.pt")
    assert_one_line_error(result, "dvsgesture", "--download")
    result = run_cli("train", "--model", "ndigits-cnn", "--download", "-o", tmp_path / "n.pt")
    assert_one_line_error(result, "needs no download")
    assert not (tmp_path / "g.pt").exists() and not (tmp_path / "n.pt").exists()


def test_dvs_preprocessing_of_a_128x128_stream_gives_48x48_frames():
    """Generated 128x128 recordings stand in for DVS-Gesture / CIFAR10-DVS ones."""
    recordings = neuromorphic_digits(DIGITS[:2], (128, 128, 2))
    for name in ("dvsgesture", "cifar10dvs"):
        transform = preprocessing(TONIC_SETS[name], 10)
        frames = transform(recordings[0])
        assert frames.shape == (10, 2, 48, 48) and frames.dtype == torch.float32
        full = EventsToFrames((128, 128, 2), 10)(recordings[0])
        # resizing averages: the mean count per pixel is kept
        assert frames.sum().item() == pytest.approx(full.sum().item() * (48 / 128) ** 2, rel=0.01)
    nmnist = preprocessing(TONIC_SETS["nmnist"], 10)(neuromorphic_digits(DIGITS[:1])[0])
    assert nmnist.shape == (10, 2, 34, 34)

    batch = torch.stack([preprocessing(TONIC_SETS["dvsgesture"], 10)(events) for events in recordings] * 4)
    labels = torch.tensor([1, 3, 4, 0, 2, 6, 5, 9])
    augment = TONIC_SETS["dvsgesture"].augment
    out, new_labels = augment(batch, labels, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape == (8, 10, 2, 48, 48)
    again, _ = augment(batch, labels, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    padded = torch.nn.functional.pad(batch, (4, 4, 4, 4))
    flips = 0
    for b in range(8):  # a 48x48 window of the 4 px padded sample, flipped or not, same for all frames
        windows = [(i, j) for i in range(9) for j in range(9)]
        plain = [w for w in windows if torch.equal(out[b], padded[b, ..., w[0]: w[0] + 48, w[1]: w[1] + 48])]
        mirrored = [w for w in windows
                    if torch.equal(out[b], padded[b, ..., w[0]: w[0] + 48, w[1]: w[1] + 48].flip(-1))]
        assert plain or mirrored
        if mirrored and not plain:
            flips += 1
            assert new_labels[b] == DVSGESTURE_MIRROR[labels[b]]
        else:
            assert new_labels[b] == labels[b]
    assert 0 < flips < 8
    assert DVSGESTURE_MIRROR[1] == 2 and DVSGESTURE_MIRROR[3] == 6 and DVSGESTURE_MIRROR[4] == 5
    assert sorted(DVSGESTURE_MIRROR) == list(range(11))
    crop_only = RandomCropFlip(padding=2, flip=False)
    out, same_labels = crop_only(batch, labels, torch.Generator().manual_seed(1))
    assert torch.equal(same_labels, labels) and out.shape == batch.shape


def fake_dvsgesture(root, users=10):
    """A stand-in for tonic's DVS-Gesture copy: its layout, with generated recordings
    (columns x, y, p, t in ms, as tonic's files) of 11 classes per user."""
    base = root / "dvsgesture" / "DVSGesture"
    rng = np.random.default_rng(0)
    for part, first_user in (("ibmGestureTrain", 1), ("ibmGestureTest", 24)):
        (base / f"{part}.tar.gz").parent.mkdir(parents=True, exist_ok=True)
        (base / f"{part}.tar.gz").write_bytes(b"")  # tonic checks that the archive is present
        for user in range(first_user, first_user + users):
            folder = base / part / f"user{user:02d}_led"
            folder.mkdir(parents=True)
            for label in range(11):
                n = 400
                events = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n),
                                   rng.integers(0, 2, n), np.sort(rng.integers(0, 6_000, n))], axis=1)
                np.save(folder / f"{label}.npy", events.astype(np.int64))


def test_dvsgesture_from_disk_through_tonic(tmp_path, monkeypatch, offline):
    from slt_deploy.data import events as events_module
    from slt_deploy.training.slt import new_run, with_settings
    from slt_deploy.models.zoo import load_recipe

    monkeypatch.setenv("SLT_DEPLOY_DATA", str(tmp_path))
    fake_dvsgesture(tmp_path)
    splits = {split: load_split("dvsgesture", split, (2, 48, 48), frames=10)
              for split in ("train", "calibration", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 99, "calibration": 11, "test": 110}
    assert sorted(splits["calibration"].labels.tolist()) == list(range(11))  # stratified
    for data in splits.values():
        assert data.inputs.shape[1:] == (10, 2, 48, 48) and data.classes == 11
        assert data.encodings == ("events",) and data.augment is TONIC_SETS["dvsgesture"].augment
        assert (data.inputs.sum(dim=(1, 2, 3, 4)) > 0).all()
    cached = sorted(p.name for p in (tmp_path / "dvsgesture").glob("*.pt"))
    assert cached == ["frames-T10-calibration.pt", "frames-T10-test.pt", "frames-T10-train.pt"]
    eight = load_split("dvsgesture", "test", frames=8)  # T = 8: the same recordings in 8 bins
    assert eight.inputs.shape == (110, 8, 2, 48, 48) and (tmp_path / "dvsgesture" / "frames-T8-test.pt").is_file()
    assert torch.equal(eight.labels, splits["test"].labels)
    # the frames cache is enough once written: remove the recordings, load again
    for npy in (tmp_path / "dvsgesture" / "DVSGesture").rglob("*.npy"):
        npy.unlink()
    events_module._tonic_split.cache_clear()
    again = load_split("dvsgesture", "test", frames=10)
    assert torch.equal(again.inputs, splits["test"].inputs) and torch.equal(again.labels, splits["test"].labels)
    # the 10-class VGGSNN (DVS-CIFAR10) cannot train on the 11 gestures
    with pytest.raises(UserError, match="11 classes"):
        new_run(with_settings(load_recipe("vggsnn"), dataset="dvsgesture"))
