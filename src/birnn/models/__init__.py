"""birnn.models: task models built on birnn stacks."""

from .classifier import POOLINGS, SequenceClassifier
from .crf import CRF
from .forecaster import Forecaster
from .heads import AttentionPooling, mlp
from .stack import LayerSpec, RecurrentStack
from .chars import CharWordEncoder
from .tagger import SequenceTagger

MODELS = {"SequenceClassifier": SequenceClassifier, "SequenceTagger": SequenceTagger, "Forecaster": Forecaster}

__all__ = ["CRF", "MODELS", "POOLINGS", "AttentionPooling", "CharWordEncoder", "Forecaster", "LayerSpec",
           "RecurrentStack", "SequenceClassifier", "SequenceTagger", "mlp"]
