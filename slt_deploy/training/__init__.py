"""Training: SLT (Algorithm 1 of the paper) and the fixed-latency baseline,
data-parallel processes, checkpoints and per-latency evaluation."""

from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .evaluation import AccuracyProfile, latency_profile
from .slt import LOSSES, METHODS, TrainingRun, new_run, resume_run, train, with_settings

__all__ = ["AccuracyProfile", "LOSSES", "METHODS", "TrainingRun", "latency_profile", "load_checkpoint",
           "model_from_checkpoint", "new_run", "resume_run", "save_checkpoint", "train", "with_settings"]
