"""Checkpoints: one ``.pt`` file per training run, written atomically.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and
dicts -- nothing that needs pickled classes -- so it is always read with
``torch.load(weights_only=True)``: a checkpoint received from someone else
cannot run code on load.

Keys: ``format``, ``recipe`` (plain dict, the settings actually used),
``model`` (state dict), ``optimizer``, ``scheduler``, ``rng`` (generator
states), ``epoch`` (epochs completed), ``history`` (per-epoch records).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..core.errors import UserError
from ..core.files import atomic_path, require_file
from ..models import Recipe, SpikingNetwork, build_model, recipe_from_dict

FORMAT = "slt-deploy/checkpoint-v1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (which must carry ``recipe`` and ``model``) atomically."""
    payload = {"format": FORMAT, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint safely (weights only); one-line errors for a missing,
    corrupt, foreign or code-carrying file."""
    path = require_file(path, "checkpoint")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; anything else is not ours
        raise UserError(f"checkpoint {path} is corrupt or not a torch file (not a zip archive)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False; name what was refused instead
        lines = [line for line in str(exc).splitlines() if line.strip() and "weights_only" not in line]
        reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line),
                      lines[0] if lines else "not plain data")
        raise UserError(f"checkpoint {path} was refused by the safe loader (weights_only): it holds code or "
                        f"objects, not plain data ({reason.strip()[:200]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, MemoryError) as exc:  # a text or random file fails deep inside the unpickler
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"checkpoint {path} is corrupt or not a torch file: {reason}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not an slt-deploy checkpoint (format {FORMAT})")
    for key in ("recipe", "model"):
        if key not in data:
            raise UserError(f"checkpoint {path} has no '{key}' entry")
    return data


def model_from_checkpoint(
    checkpoint: dict[str, Any], source: str = "checkpoint", recipe: Recipe | None = None
) -> SpikingNetwork:
    """The network stored in ``checkpoint``, in eval mode.

    With ``recipe``, the checkpoint must have been trained from that recipe's
    architecture; a checkpoint of another model is a one-line error."""
    stored = recipe_from_dict(checkpoint["recipe"])
    if recipe is not None and (
        recipe.layers != stored.layers
        or tuple(recipe.input_shape) != tuple(stored.input_shape)
        or recipe.classes != stored.classes
    ):
        raise UserError(f"{source} holds model '{stored.name}', not '{recipe.name}' (different architecture)")
    model = build_model(stored)
    try:
        model.load_state_dict(checkpoint["model"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise UserError(f"{source} does not fit model '{stored.name}': {reason}") from None
    return model.eval()
