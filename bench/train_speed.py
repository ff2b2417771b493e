"""Epoch time of fixed-latency vs SLT training of the same model, side by side.

SLT runs t ~ U{1..T} steps per batch instead of T, so the expected speed-up
of an epoch is T / E[t] = 2T / (T + 1) (1.78 at T = 8) when the cost of a
batch is proportional to its steps; the paper measured 1.67-1.69x on
CIFAR-10 with a GPU. Fixed and SLT epochs are interleaved (A B A B ...) so
that both see the same machine load; the ratio of the medians is printed.

    python bench/train_speed.py [--models digits-mlp,digits-cnn,vggsnn] [--epochs 5]

Digits models train on the digits training split; other recipes on
generated Bernoulli frames of their input shape (speed does not depend on
the data's content).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from slt_deploy.data.splits import load_split
from slt_deploy.training.slt import new_run, train_one_epoch, with_settings
from slt_deploy.models.zoo import load_recipe


def training_data(recipe, samples: int):
    if recipe.dataset == "digits":
        data = load_split("digits", "train", recipe.input_shape)
        return data.inputs, data.labels, recipe.encoding
    generator = torch.Generator().manual_seed(0)
    T = recipe.train.latency
    frames = (torch.rand(samples, T, *recipe.input_shape, generator=generator) < 0.1).float()
    labels = torch.randint(0, recipe.classes, (samples,), generator=generator)
    return frames, labels, "events"


def bench_model(name: str, epochs: int, samples: int, batch_size: int | None) -> dict:
    base = load_recipe(name)
    inputs, labels, encoding = training_data(base, samples)
    runs = {}
    for method in ("fixed", "slt"):
        recipe = with_settings(base, method=method, encoding=encoding, epochs=epochs, batch_size=batch_size)
        runs[method] = new_run(recipe, check_data=False)
    seconds = {"fixed": [], "slt": []}
    for _ in range(epochs):
        for method in ("fixed", "slt"):
            started = time.perf_counter()
            train_one_epoch(runs[method], inputs, labels)
            seconds[method].append(time.perf_counter() - started)
    T = base.train.latency
    fixed, slt = statistics.median(seconds["fixed"]), statistics.median(seconds["slt"])
    mean_t = statistics.mean(h["mean_latency"] for h in runs["slt"].history)
    return {
        "model": name,
        "T": T,
        "fixed_s": fixed,
        "slt_s": slt,
        "ratio": fixed / slt,
        "expected": 2 * T / (T + 1),
        "slt_mean_t": mean_t,
        "ratio_of_steps": T / mean_t,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits-mlp,digits-cnn,vggsnn")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per method (interleaved)")
    parser.add_argument("--samples", type=int, default=64, help="generated samples for non-digits recipes")
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':<12} {'T':>3} {'fixed s/epoch':>14} {'SLT s/epoch':>12} {'speed-up':>9} "
          f"{'T/mean t':>9} {'2T/(T+1)':>9}")
    for name in args.models.split(","):
        batch = args.batch_size or (16 if name not in ("digits-mlp", "digits-cnn") else None)
        r = bench_model(name, args.epochs, args.samples, batch)
        print(f"{r['model']:<12} {r['T']:>3} {r['fixed_s']:>14.3f} {r['slt_s']:>12.3f} {r['ratio']:>8.2f}x "
              f"{r['ratio_of_steps']:>8.2f}x {r['expected']:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
