"""birnn.train: the training loop, metrics, checkpoints, distributed set-up."""

from .checkpoint import CheckpointError, load_checkpoint, load_config, load_weights, save_checkpoint
from .distributed import init_from_env
from .loop import Trainer, TrainingDiverged
from .settings import PRECISIONS, TrainConfig, precision
from .metrics import accuracy, bio_spans, class_report, confusion_matrix, entity_report, macro_f1, mae, rmse, span_f1

__all__ = ["CheckpointError", "PRECISIONS", "TrainConfig", "Trainer", "TrainingDiverged", "accuracy", "bio_spans",
           "class_report", "confusion_matrix", "entity_report", "init_from_env", "load_checkpoint", "load_config", "load_weights", "macro_f1", "mae", "rmse",
           "precision", "save_checkpoint", "span_f1"]
