"""birnn: multi-layer, bidirectional recurrent networks on PyTorch, correct by construction.

The public API, nothing else. See README.md and docs/ for a guide.
"""

from .batch import SequenceBatch, lengths_from_mask, mask_from_lengths, reverse_valid
from .bidirectional import Bidirectional
from .bridge import bridge
from .dispatch import Decision
from .driver import Recurrent, TorchCell
from .layers import GRU, LSTM, RNN, RecurrentLayer
from .linear_cells import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell
from .output import RecurrentOutput
from .regularization import EmbeddingDropout, VariationalDropout

__version__ = "0.1.0"


def _register_quantization() -> None:
    from .backends.quantized import register_with_torch  # torch's own quantize_dynamic then quantizes birnn's layers

    register_with_torch(LSTM, GRU, RNN)


_register_quantization()

# Module paths users have written whose modules now live elsewhere: the same module objects
# under the old names (``from birnn.quantized import quantize_dynamic``, ``birnn.cpu_kernel
# .unavailable()``, ``birnn.kernels.KernelConfig``, ``birnn.tasks``, ``birnn.cli``). The
# backends' are imported with birnn (they are anyway); the task layer's (birnn.app) when used.
MOVED = {"quantized": "backends.quantized", "cpu_kernel": "backends.packed.cpu_kernel", "kernels": "backends.fused",
         **{name: f"app.{name}" for name in ("tasks", "runs", "pretrained", "config", "run_options", "report",
                                              "export", "plots", "flags", "cli")}}
EAGER = ("quantized", "cpu_kernel", "kernels")


class _Moved:
    """Imports of ``birnn.OLD[.sub]`` give the module ``birnn.NEW[.sub]`` itself (one module
    object under both names, never a second copy of it)."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        import importlib.util

        head, _, rest = fullname.partition(".")
        old, _, sub = rest.partition(".")
        if head != __name__ or old not in MOVED:
            return None
        target = f"{__name__}.{MOVED[old]}" + (f".{sub}" if sub else "")
        return importlib.util.spec_from_loader(fullname, _Moved, origin=target)

    @staticmethod
    def create_module(spec):
        import importlib

        return importlib.import_module(spec.origin)

    @staticmethod
    def exec_module(module) -> None:
        pass


def _alias_moved() -> None:
    import importlib
    import sys

    for old in EAGER:
        module = importlib.import_module(f"{__name__}.{MOVED[old]}")
        sys.modules[f"{__name__}.{old}"] = module
        globals()[old] = module
    sys.meta_path.insert(0, _Moved)


_alias_moved()

_TRAINED = ("TrainedModel", "fit", "load")  # the task layer's Python API (birnn.app.pretrained), imported when used


def __getattr__(name: str):
    if name in _TRAINED:
        from .app import pretrained

        return getattr(pretrained, name)
    raise AttributeError(f"module 'birnn' has no attribute {name!r}")

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "Bidirectional",
    "Decision",
    "EmbeddingDropout",
    "Recurrent",
    "RecurrentLayer",
    "RecurrentOutput",
    "SequenceBatch",
    "TorchCell",
    "TrainedModel",
    "VariationalDropout",
    "bridge",
    "fit",
    "lengths_from_mask",
    "load",
    "mask_from_lengths",
    "reverse_valid",
    "__version__",
]
