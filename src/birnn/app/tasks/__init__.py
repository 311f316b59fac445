"""The task layer's tasks: ``classify`` (text or series inputs), ``tag`` and ``forecast``, each
one :class:`~birnn.app.tasks.task.Task` that owns its formats, encoder, model, metrics, monitor,
prediction and display (:mod:`.classify`, :mod:`.tag`, :mod:`.forecast`), and the lifecycle
that drives any of them (:mod:`.lifecycle`: build, train, load, predict, score). The command
line, :mod:`birnn.runs` and :class:`birnn.TrainedModel` compose these; so do the quality
benchmarks. A run directory written here loads back with :func:`load_run` for evaluation and
prediction with the same preprocessing.
"""

from .task import KINDS, Run, Task, task_of
from .classify import SeriesClassification, TextClassification, series_patch, text_input
from .forecast import Forecasting
from .labels import check_known_labels
from .lifecycle import (MIN_STEPS, SMALL_DEV, TASKS, WEIGHTS, batches_of, build_run, check_labels, class_breakdown,
                        class_scores, default_monitor, encode_all, evaluate_run, load_run, mean_loss, monitorable, predict_format,
                        predict_records, predictions, read_for_evaluation, read_for_prediction,
                        resolved_model_options, score, selection_defaults, split_records, task_for, train_run)
from .presets import PRESETS
from .tag import Tagging, tagger_crf

PREDICT_FORMATS = {kind: (t.formats, t.formats_said) for kind, t in KINDS.items()}  # what predict reads, per kind

__all__ = ["KINDS", "MIN_STEPS", "PREDICT_FORMATS", "PRESETS", "SMALL_DEV", "TASKS", "WEIGHTS", "Forecasting", "Run",
           "SeriesClassification", "Tagging", "Task", "TextClassification", "batches_of", "build_run",
           "check_known_labels", "check_labels", "class_breakdown", "class_scores", "default_monitor", "encode_all", "evaluate_run",
           "load_run", "mean_loss", "monitorable", "predict_format", "predict_records", "predictions",
           "read_for_evaluation", "read_for_prediction", "resolved_model_options", "score", "selection_defaults",
           "series_patch", "split_records", "tagger_crf", "task_for", "task_of", "text_input", "train_run"]
