"""Event data (data stage): generated neuromorphic digits and tonic's DVS sets,
turned into event frames for the ``events`` encoding.

Units everywhere: event time stamps ``t`` in microseconds (us), pixel
coordinates ``x`` (column) and ``y`` (row) in sensor pixels, polarity ``p``
1 = ON (brighter), 0 = OFF (darker). Events are numpy structured arrays, one
per recording, sorted by ``t`` -- tonic's format. Sensor sizes are tonic's
``(width, height, polarities)``. A frame is the number of events per pixel and
polarity in one time bin; a sample is ``T`` frames, float32 ``[T, 2, H, W]``
(channel 0 = OFF, 1 = ON, as tonic's ``ToFrame`` stacks them).

Data sets (registered with :func:`slt_deploy.data.splits.register_loader`; each
takes the number of frames ``T``, default :data:`DEFAULT_FRAMES` = 10, the
paper's; training asks for the recipe's latency):

* ``ndigits`` -- **neuromorphic digits**, generated here without any
  download: scikit-learn's 1,797 digits seen by a simulated event camera the
  way N-MNIST was recorded (:func:`neuromorphic_digits`), 34x34x2 like
  N-MNIST; ``ndigits48`` is the same at 48x48x2, the input size of the
  paper's VGGSNN. Same split and labels as ``digits`` (1,257 train, 180
  calibration, 360 test). Frames: T equal time bins over the 300 ms
  recording. Training augmentation: random crop (zero padding 2 px).
* ``dvsgesture`` (11 classes), ``cifar10dvs`` (10), ``nmnist`` (10) -- tonic's
  data sets with the paper's preprocessing (below). They are downloaded only
  when asked (``slt-deploy train --data NAME --download`` or
  :func:`download_data`); without a copy on disk loading them is a
  :class:`~slt_deploy.core.errors.UserError` that says how to download.

The paper's DVS preprocessing (SLT paper, "Datasets"; the code it follows for
DVS-CIFAR10, Duan et al. 2022): events -> T frames, each frame resized from
128x128 to 48x48 (bilinear, antialiased: torchvision's ``Resize`` on tensors),
and for training random crop (48 with 4 px zero padding) then random
horizontal flip. Frames are tonic's ``ToFrame(n_time_bins=T)``: T equal time
bins from the first to the last event of a recording. Flipping DVS-Gesture
mirrors the gesture, so the flip also swaps the labels of mirrored classes
(right-hand wave <-> left-hand wave, right arm clockwise <-> left arm
counter-clockwise, right arm counter-clockwise <-> left arm clockwise); left
unswapped, a flipped right-hand wave would be taught as a right-hand wave
while looking like a left-hand one. N-MNIST keeps its 34x34 frames and gets a
random crop (2 px) but no flip (a mirrored digit is not that digit).

Splits: ``test`` is tonic's test set (DVS-Gesture, N-MNIST); CIFAR10-DVS has
none, so ``test`` is a fixed stratified 10 % of it (1,000 recordings, as the
9:1 split of TET). ``calibration`` is a fixed stratified 10 % held out of the
rest, ``train`` what remains (all with ``random_state=0``, on recordings
sorted by file path, so every machine gets the same split).

Disk: ``data_root()`` (``$SLT_DEPLOY_DATA``, else
``$XDG_CACHE_HOME/slt-deploy``, else ``~/.cache/slt-deploy``) holds, per data
set, tonic's download (``<root>/<name>/<TonicClass>/``) and the preprocessed
frames of each split and T (``<root>/<name>/frames-T<T>-<split>.pt``, float16,
written atomically). Once the frames of a split are cached the raw data is not
needed. Memory: a split is held as float32, e.g. 1.5 GB for CIFAR10-DVS's
training split at T = 10 and 5 GB for N-MNIST's. Tensors of a loaded split are
shared with an in-process cache: do not modify them in place.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track
from threadpoolctl import threadpool_limits

from ..core.errors import UserError
from ..core.files import atomic_path
from .splits import SPLITS, Split, _digits_arrays, register_loader

EVENT_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
"""tonic's event dtype for N-MNIST (``tonic.datasets.NMNIST.dtype``): x, y in
pixels, t in microseconds, p in {0 = OFF, 1 = ON}."""

NMNIST_SENSOR_SIZE = (34, 34, 2)
DEFAULT_FRAMES = 10
"""Frames per sample when none are asked for: the paper's T for DVS data."""

SACCADES = 3
CALIBRATION_FRACTION = 0.1
CIFAR10DVS_TEST_FRACTION = 0.1
FRAMES_CACHE_VERSION = 1


# --------------------------------------------------------------------------- generator


def _saccade_offsets(times_us: np.ndarray, amplitude: float, saccade_us: int) -> np.ndarray:
    """Image displacement (dx, dy) in pixels at ``times_us``: N-MNIST's triangle
    (0, 0) -> (A/2, A) -> (A, 0) -> (0, 0), one straight saccade of
    ``saccade_us`` per side at constant speed. Returns [len(times), 2]."""
    corners = np.array([[0.0, 0.0], [amplitude / 2, amplitude], [amplitude, 0.0], [0.0, 0.0]])
    phase = np.clip(np.asarray(times_us, dtype=np.float64) / saccade_us, 0.0, SACCADES)
    side = np.minimum(phase.astype(int), SACCADES - 1)
    along = (phase - side)[:, None]
    return corners[side] * (1.0 - along) + corners[side + 1] * along


def _interpolation(coordinates: np.ndarray, samples: int, scale: float) -> np.ndarray:
    """Linear-interpolation weights [len(coordinates), samples]: the value at
    ``coordinates`` (pixels from the digit box's edge) of an image whose
    samples lie at (i + 0.5) * scale; zero beyond half a sample outside."""
    centres = (np.arange(samples) + 0.5) * scale
    return np.maximum(0.0, 1.0 - np.abs(coordinates[:, None] - centres[None, :]) / scale)


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 2:  # [N, h*w], square
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise UserError(f"images of {images.shape[1]} pixels are not square: give [N, height, width]")
        images = images.reshape(len(images), side, side)
    if images.ndim != 3 or 0 in images.shape:
        raise UserError(f"images must be [N, height, width] (or [N, pixels]), got shape {list(images.shape)}")
    if not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1:
        raise UserError("image intensities must lie in [0, 1]")
    return images


def neuromorphic_digits(
    images: np.ndarray,
    sensor_size: tuple[int, int, int] = NMNIST_SENSOR_SIZE,
    *,
    amplitude: float | None = None,
    saccade_us: int = 100_000,
    step_us: int = 1_000,
    threshold: float = 0.3,
    mismatch: float = 0.03,
    background: float = 0.15,
    seed: int = 0,
    transform=None,
) -> list:
    """Event recordings of still images seen by a moving event camera, the way
    N-MNIST was recorded (Orchard et al. 2015): one list entry per image, a
    structured array of dtype :data:`EVENT_DTYPE` sorted by ``t`` (us) --
    or ``transform(events)`` when a transform is given (as tonic's data sets
    take one, e.g. :class:`EventsToFrames`; the events of a few images at a
    time are then all that is held in memory).

    Scene: each image (``images`` [N, h, w] or [N, h*w], ink intensity in
    [0, 1], e.g. scikit-learn's digits / 16) is shown on a screen of luminance
    ``background + (1 - background) * ink`` (relative to full ink), upsampled
    by linear interpolation into a square box so that the box, its blur
    margin and the motion fill the sensor (24 px on N-MNIST's 34x34). The
    image moves along three straight saccades of ``saccade_us`` each,
    (0, 0) -> (A/2, A) -> (A, 0) -> (0, 0) px (N-MNIST's triangle; A =
    ``amplitude``, default 7/34 of the sensor's smaller side, i.e. N-MNIST's
    7 px), sampled every ``step_us``; a recording lasts 3 * ``saccade_us``.

    Sensor: every pixel is a change detector on log luminance. It keeps a
    reference level and emits an ON event each time the log luminance rises
    ``threshold`` above it (an OFF event when it falls ``threshold`` below),
    moving the reference by one threshold per event -- a change of k
    thresholds gives k events. Event times are interpolated linearly within
    a step (us resolution). Thresholds have a fixed per-pixel, per-polarity
    mismatch (relative standard deviation ``mismatch``), and each recording
    starts with every reference at a random level inside its dead band, so a
    still image gives no events at all: events come only from motion.

    Randomness (mismatch, start levels) comes from ``seed``: the same images
    and seed give the same events. Work is vectorised over images and pixels:
    the 1,797 digits take a few seconds at 34x34."""
    images = _as_images(images)
    width, height, polarities = (int(s) for s in sensor_size)
    if polarities != 2 or width < 4 or height < 4:
        raise UserError(f"sensor size must be (width, height, 2) with sides >= 4, got {tuple(sensor_size)}")
    if step_us < 1 or saccade_us < step_us or saccade_us % step_us:
        raise UserError(f"saccade_us ({saccade_us}) must be a positive multiple of step_us ({step_us})")
    if threshold <= 0 or not 0 <= mismatch < 0.5 or not 0 < background < 1:
        raise UserError("need threshold > 0, 0 <= mismatch < 0.5 and 0 < background < 1")
    n, rows, cols = images.shape
    side = min(width, height)
    amplitude = 7.0 * side / 34.0 if amplitude is None else float(amplitude)
    # box of the image plus half a sample of blur on each side plus the motion fills the sensor
    box = (side - amplitude) * max(rows, cols) / (max(rows, cols) + 1.0)
    if amplitude < 0 or box <= 0:
        raise UserError(f"saccade amplitude {amplitude} px leaves no room for the image on a {side} px sensor")
    scale = box / max(rows, cols)
    x0, y0 = (width - box - amplitude) / 2, (height - box - amplitude) / 2

    rng = np.random.default_rng(seed)
    spread = np.clip(1.0 + mismatch * rng.standard_normal((2, height, 1, width)), 0.5, None)
    threshold_off, threshold_on = (threshold * spread).astype(np.float32)  # [H, 1, W] each

    steps = SACCADES * saccade_us // step_us
    offsets = _saccade_offsets(np.arange(steps + 1) * float(step_us), amplitude, saccade_us)
    along_x = [_interpolation(np.arange(width) + 0.5 - x0 - dx, cols, scale).T.astype(np.float32)
               for dx in offsets[:, 0]]
    along_y = [_interpolation(np.arange(height) + 0.5 - y0 - dy, rows, scale).astype(np.float32)
               for dy in offsets[:, 1]]
    # log luminance above the background's, so that "no image" interpolates to the background
    contrast = (np.log(background + (1.0 - background) * images) - np.log(background)).astype(np.float32)

    recordings: list = []
    with threadpool_limits(1, "blas"):  # tiny matrix products: BLAS threads would only contend
        for start in range(0, n, 128):  # 128 images at a time keep the per-step arrays in cache
            part = contrast[start : start + 128]
            start_level = rng.uniform(size=part.shape[:1] + (height, width)).astype(np.float32)
            found = _detect(part, start_level, along_x, along_y, threshold_on, threshold_off)
            for events in _expand(found, len(part), step_us, steps * step_us):
                recordings.append(events if transform is None else transform(events))
    return recordings


def _detect(contrast, start_level, along_x, along_y, threshold_on, threshold_off) -> list[tuple]:
    """The change detectors of every pixel of m recordings, step by step.

    contrast [m, rows, cols]: log luminance of each image above the
    background; start_level [m, H, W] in [0, 1): where each reference starts
    in its dead band. Returns per step and polarity the detections (image,
    row, column, polarity, event count, step, change before the step, rise
    within the step, threshold), changes signed so that they grow."""
    m, rows, cols = contrast.shape
    height, width = along_y[0].shape[0], along_x[0].shape[1]
    flat = np.ascontiguousarray(contrast.transpose(1, 0, 2)).reshape(rows, m * cols)

    def log_luminance(k: int) -> np.ndarray:  # [H, m, W]: image rows, then columns, interpolated
        return ((along_y[k] @ flat).reshape(height * m, cols) @ along_x[k]).reshape(height, m, width)

    previous = log_luminance(0)
    start_level = start_level.transpose(1, 0, 2)
    reference = previous - (threshold_on * start_level - threshold_off * (1.0 - start_level))
    found = []
    for k in range(1, len(along_x)):
        current = log_luminance(k)
        change = current - reference
        for polarity, sign, thresholds in ((1, 1.0, threshold_on), (0, -1.0, threshold_off)):
            hits = np.flatnonzero(change >= thresholds if polarity else change <= -thresholds)
            if len(hits) == 0:
                continue
            y, rest = np.divmod(hits, m * width)
            s, x = np.divmod(rest, width)
            level = thresholds[y, 0, x]
            count = np.floor(sign * change[y, s, x] / level)
            before = sign * (previous[y, s, x] - reference[y, s, x])
            rise = sign * (current[y, s, x] - previous[y, s, x])
            reference[y, s, x] += sign * count * level
            found.append((s, y, x, polarity, count.astype(np.int64), k, before, rise, level))
        previous = current
    return found


def _expand(found: list, m: int, step_us: int, duration_us: int) -> list[np.ndarray]:
    """Per-step detections (image, pixel, polarity, count, ...) -> per-image
    events sorted by time.

    The j-th of k events in a step fires when the change since the step's
    start reaches j thresholds above the level before it, its time
    interpolated linearly within the step; times lie in [0, duration_us)."""
    if not found:
        return [np.empty(0, EVENT_DTYPE) for _ in range(m)]
    lengths = [len(f[0]) for f in found]
    s, y, x, count, before, rise, level = (np.concatenate([f[i] for f in found]) for i in (0, 1, 2, 4, 6, 7, 8))
    p = np.repeat([f[3] for f in found], lengths)
    k = np.repeat([f[5] for f in found], lengths)
    which = np.repeat(np.arange(len(s)), count)
    j = np.arange(len(which)) - np.repeat(np.cumsum(count) - count, count) + 1
    fraction = np.clip((j * level[which] - before[which]) / rise[which], 0.0, 1.0)
    t = np.minimum(np.floor((k[which] - 1 + fraction) * step_us).astype(np.int64), duration_us - 1)
    image = s[which]
    # by image (a radix sort of small ints), then by time: detections come in step
    # order, so each image's times are then out of order only within a step, which
    # a stable sort of the nearly sorted keys fixes quickly
    order = np.argsort(image.astype(np.int16), kind="stable")
    order = order[np.argsort((image * np.int64(duration_us) + t)[order], kind="stable")]
    source = which[order]
    events = np.empty(len(which), EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x[source], y[source], t[order], p[source]
    return np.split(events, np.cumsum(np.bincount(image, minlength=m))[:-1])


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class EventsToFrames:
    """Events -> float32 frames [frames, P, H, W] with tonic's ``ToFrame``: the
    number of events per pixel and polarity in each of ``frames`` time bins.

    Without ``duration_us``: ``ToFrame(n_time_bins=frames)``, equal bins from
    the first to the last event (tonic 1.7 cuts the bin width to whole us
    and drops the events at or after ``first + frames * width``, the last
    event always among them). With ``duration_us`` (recordings of known
    length that start at t = 0): ``ToFrame(time_window=w, start_time=0,
    end_time=frames * w)`` with w = ceil(duration_us / frames), so that
    every event of the recording is counted. A recording without events
    gives zero frames."""

    sensor_size: tuple[int, int, int]
    frames: int = DEFAULT_FRAMES
    duration_us: int | None = None

    def __call__(self, events: np.ndarray) -> torch.Tensor:
        from tonic.transforms import ToFrame  # tonic only when frames are made

        width, height, polarities = self.sensor_size
        if len(events) == 0:
            return torch.zeros(self.frames, polarities, height, width)
        if self.duration_us is None:
            to_frame = ToFrame(sensor_size=tuple(self.sensor_size), n_time_bins=self.frames)
        else:
            window = -(-int(self.duration_us) // self.frames)
            to_frame = ToFrame(sensor_size=tuple(self.sensor_size), time_window=window,
                               start_time=0, end_time=window * self.frames)
        frames = to_frame(events)
        if frames.shape != (self.frames, polarities, height, width):
            raise UserError(f"recording gave frames of shape {list(frames.shape)}, expected "
                            f"{[self.frames, polarities, height, width]}")
        return torch.from_numpy(frames.astype(np.float32))


@dataclass(frozen=True)
class ResizeFrames:
    """Frames [T, P, H, W] -> [T, P, size, size]: bilinear, antialiased (what
    torchvision's ``Resize((size, size))`` does to a tensor) -- the paper's
    "each frame resized from 128x128 to 48x48". Values are interpolated
    event counts."""

    size: int = 48

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return F.interpolate(frames.float(), size=(self.size, self.size), mode="bilinear",
                             align_corners=False, antialias=True)


@dataclass(frozen=True)
class RandomCropFlip:
    """Training augmentation of a batch of samples [B, T, P, H, W] (one draw per
    sample, the same for all its frames): random crop back to H x W after
    ``padding`` px of zero padding, then, if ``flip``, a horizontal flip with
    probability 1/2. ``mirror_labels[c]`` is the class a flipped sample of
    class c shows (None: flips keep labels). Draws come from ``generator``
    (training passes its seeded, checkpointed stream)."""

    padding: int = 4
    flip: bool = True
    mirror_labels: tuple[int, ...] | None = None

    def __call__(self, frames: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        batch, height, width = frames.shape[0], frames.shape[-2], frames.shape[-1]
        if self.padding > 0:
            padded = F.pad(frames, (self.padding,) * 4)
            corners = torch.randint(0, 2 * self.padding + 1, (batch, 2), generator=generator).tolist()
            frames = torch.stack([padded[b, ..., i : i + height, j : j + width] for b, (i, j) in enumerate(corners)])
        if self.flip:
            flipped = torch.rand(batch, generator=generator) < 0.5
            frames = torch.where(flipped.view(batch, *[1] * (frames.dim() - 1)), frames.flip(-1), frames)
            if self.mirror_labels is not None:
                labels = torch.where(flipped, torch.tensor(self.mirror_labels)[labels], labels)
        return frames, labels


# --------------------------------------------------------------------------- ndigits

NDIGITS_SENSORS = {"ndigits": NMNIST_SENSOR_SIZE, "ndigits48": (48, 48, 2)}
NDIGITS_SEED = 0
NDIGITS_DURATION_US = SACCADES * 100_000
NDIGITS_AUGMENT = RandomCropFlip(padding=2, flip=False)


def _check_frames(frames: int) -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise UserError(f"frames per sample must be a positive integer, got {frames!r}")
    return int(frames)


@lru_cache(maxsize=2)
def _ndigits_frames(name: str, frames: int) -> dict[str, torch.Tensor]:
    """Frames of every digits split, generated once per process and T."""
    inputs, _ = _digits_arrays()
    images = np.concatenate([inputs[split] for split in SPLITS]).reshape(-1, 8, 8)
    sensor = NDIGITS_SENSORS[name]
    to_frames = EventsToFrames(sensor, frames, NDIGITS_DURATION_US)
    stacked = torch.stack(neuromorphic_digits(images, sensor, seed=NDIGITS_SEED, transform=to_frames))
    sizes = np.cumsum([0] + [len(inputs[split]) for split in SPLITS])
    return {split: stacked[sizes[i] : sizes[i + 1]] for i, split in enumerate(SPLITS)}


def _ndigits_loader(name: str):
    def load(split: str, frames: int = DEFAULT_FRAMES) -> Split:
        _, labels = _digits_arrays()
        inputs = _ndigits_frames(name, _check_frames(frames))[split]
        return Split(name, split, inputs, torch.from_numpy(labels[split].copy()), 10, ("events",), NDIGITS_AUGMENT)

    return load


# --------------------------------------------------------------------------- tonic data sets

# DVS-Gesture classes (tonic order): 0 clap, 1 right hand wave, 2 left hand wave,
# 3 right arm cw, 4 right arm ccw, 5 left arm cw, 6 left arm ccw, 7 arm roll,
# 8 air drums, 9 air guitar, 10 other. Mirrored: 1<->2, 3<->6, 4<->5.
DVSGESTURE_MIRROR = (0, 2, 1, 6, 5, 4, 3, 7, 8, 9, 10)


@dataclass(frozen=True)
class TonicSet:
    """One of tonic's data sets and its preprocessing here."""

    name: str
    tonic_class: str
    classes: int
    sensor_size: tuple[int, int, int]
    resize: int | None
    augment: RandomCropFlip
    has_test_split: bool

    def frame_shape(self) -> tuple[int, int, int]:
        width, height, polarities = self.sensor_size
        return (polarities, self.resize or height, self.resize or width)


TONIC_SETS = {
    "dvsgesture": TonicSet("dvsgesture", "DVSGesture", 11, (128, 128, 2), 48,
                           RandomCropFlip(4, True, DVSGESTURE_MIRROR), True),
    "cifar10dvs": TonicSet("cifar10dvs", "CIFAR10DVS", 10, (128, 128, 2), 48, RandomCropFlip(4, True), False),
    "nmnist": TonicSet("nmnist", "NMNIST", 10, NMNIST_SENSOR_SIZE, None, RandomCropFlip(2, False), True),
}


def data_root() -> Path:
    """Where event data sets live: ``$SLT_DEPLOY_DATA``, else
    ``$XDG_CACHE_HOME/slt-deploy``, else ``~/.cache/slt-deploy``."""
    if os.environ.get("SLT_DEPLOY_DATA"):
        return Path(os.environ["SLT_DEPLOY_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "slt-deploy"


def preprocessing(spec: TonicSet, frames: int = DEFAULT_FRAMES):
    """The paper's evaluation-time preprocessing of one recording: events ->
    ``frames`` frames (tonic ToFrame) -> resized to 48x48 for the 128x128
    sets. A tonic ``Compose``; returns float32 [frames, 2, H, W]."""
    from tonic.transforms import Compose  # tonic only for its data sets

    steps = [EventsToFrames(spec.sensor_size, _check_frames(frames))]
    if spec.resize is not None:
        steps.append(ResizeFrames(spec.resize))
    return Compose(steps)


def _open_tonic(spec: TonicSet, train: bool | None, download: bool):
    """tonic's data set object. Unless ``download``, a missing copy raises a
    UserError where tonic would start downloading (tonic's own check of
    what is on disk decides)."""
    import tonic.datasets  # tonic only for its data sets

    folder = data_root() / spec.name
    cls = getattr(tonic.datasets, spec.tonic_class)
    if not download:

        def refuse(self) -> None:
            raise UserError(
                f"dataset {spec.name} is not on disk in {folder} and is downloaded only when asked: "
                f"add --download to `slt-deploy train --data {spec.name}` (tonic fetches {spec.tonic_class}), "
                "or set SLT_DEPLOY_DATA to a folder that holds it"
            )

        cls = type(cls.__name__, (cls,), {"download": refuse})  # same name: same folder as tonic's
    kwargs = {} if train is None else {"train": train}
    try:
        return cls(save_to=str(folder), **kwargs)
    except (OSError, RuntimeError) as exc:  # network errors, failed checksums
        raise UserError(f"could not get {spec.name} into {folder}: {exc}") from None


def download_data(name: str) -> Path:
    """Download tonic's copy of an event data set (all of its parts) into
    ``data_root()/name``; nothing happens for parts already there."""
    if name not in TONIC_SETS:
        raise UserError(f"--download fetches {', '.join(TONIC_SETS)}; dataset '{name}' needs no download")
    spec = TONIC_SETS[name]
    for train in (True, False) if spec.has_test_split else (None,):
        _open_tonic(spec, train, download=True)
    return data_root() / name


def _held_out(labels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (kept, held out): a stratified ``fraction`` held out, fixed."""
    from sklearn.model_selection import train_test_split  # scikit-learn only to split recordings

    positions = np.arange(len(labels))
    kept, held = train_test_split(positions, test_size=fraction, stratify=labels, random_state=0)
    return np.sort(kept), np.sort(held)


def _recordings(spec: TonicSet, split: str):
    """(tonic data set, indices of the split's recordings in it); never downloads."""
    part = None if not spec.has_test_split else split != "test"
    dataset = _open_tonic(spec, part, download=False)
    order = np.array(sorted(range(len(dataset.data)), key=lambda i: str(dataset.data[i])), dtype=np.int64)
    labels = np.asarray(dataset.targets, dtype=np.int64)[order]
    if spec.has_test_split:
        if split == "test":
            return dataset, order
        train, calibration = _held_out(labels, CALIBRATION_FRACTION)
    else:
        rest, test = _held_out(labels, CIFAR10DVS_TEST_FRACTION)
        if split == "test":
            return dataset, order[test]
        train, calibration = _held_out(labels[rest], CALIBRATION_FRACTION)
        train, calibration = rest[train], rest[calibration]
    return dataset, order[train if split == "train" else calibration]


def _preprocess(spec: TonicSet, split: str, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    dataset, indices = _recordings(spec, split)
    transform = preprocessing(spec, frames)
    inputs = torch.empty(len(indices), frames, *spec.frame_shape())
    labels = torch.empty(len(indices), dtype=torch.int64)
    steps = track(enumerate(indices.tolist()), total=len(indices), transient=True,
                  description=f"{spec.name} {split}: events -> {frames} frames",
                  disable=not sys.stderr.isatty())
    for position, index in steps:
        events, label = dataset[index]
        inputs[position] = transform(events)
        labels[position] = int(label)
    return inputs, labels


@lru_cache(maxsize=1)
def _tonic_split(name: str, split: str, frames: int, root: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of a split: from the frame cache, else preprocessed and
    cached (float16 on disk; the same rounded values are returned either way)."""
    spec = TONIC_SETS[name]
    path = Path(root) / spec.name / f"frames-T{frames}-{split}.pt"
    if path.is_file():
        try:
            cached = torch.load(path, weights_only=True)
            if cached.get("version") == FRAMES_CACHE_VERSION:
                return cached["inputs"].float(), cached["labels"]
        except (OSError, RuntimeError, EOFError, AttributeError) as exc:
            raise UserError(f"frame cache {path} is unreadable ({exc}): delete it to rebuild it") from None
    inputs, labels = _preprocess(spec, split, frames)
    with atomic_path(path) as tmp:
        torch.save({"version": FRAMES_CACHE_VERSION, "inputs": inputs.half(), "labels": labels}, tmp)
    return inputs.half().float(), labels


def _tonic_loader(name: str):
    def load(split: str, frames: int = DEFAULT_FRAMES) -> Split:
        spec = TONIC_SETS[name]
        inputs, labels = _tonic_split(name, split, _check_frames(frames), str(data_root()))
        return Split(name, split, inputs, labels, spec.classes, ("events",), spec.augment)

    return load


for _name in NDIGITS_SENSORS:
    register_loader(_name, _ndigits_loader(_name), frames=True)
for _name in TONIC_SETS:
    register_loader(_name, _tonic_loader(_name), frames=True)

__all__ = [
    "EVENT_DTYPE",
    "DEFAULT_FRAMES",
    "NMNIST_SENSOR_SIZE",
    "neuromorphic_digits",
    "EventsToFrames",
    "ResizeFrames",
    "RandomCropFlip",
    "TONIC_SETS",
    "preprocessing",
    "data_root",
    "download_data",
]
