"""Data: the embedded digits, generated and downloaded event data sets
(tonic frames), and the encodings that turn samples into per-step inputs."""

from . import events  # registers the event data sets (ndigits, dvsgesture, ...) with load_split
from .events import download_data, neuromorphic_digits
from .splits import (ENCODINGS, EVAL_SEED, SPLITS, Split, check_encoding, encode, evaluation_inputs, load_split,
                     register_loader)

__all__ = ["ENCODINGS", "EVAL_SEED", "SPLITS", "Split", "check_encoding", "download_data", "encode",
           "evaluation_inputs", "events", "load_split", "neuromorphic_digits", "register_loader"]
