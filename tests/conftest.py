"""Shared helpers: torch.nn twins of birnn layers and comparison of results."""

import os
import sys

import pytest
import torch

# the benchmark scripts (loaded by some tests) import their shared harness by name, as they do when run
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

if not torch.cuda.is_available():
    # Triton reads TRITON_INTERPRET when it is first imported, and some test modules import it
    # indirectly (PyTorch's module_db, torch.compile): set it once, before any of them, so the
    # fused kernels run under the interpreter on CPU machines (tests/kernels/test_kernels.py)
    os.environ["TRITON_INTERPRET"] = "1"

import birnn  # noqa: E402

# a script run in its own process by test_kernels.py (it needs the real Triton compiler, not the interpreter),
# and test_kernels.py's helpers that run a grid's programs in threads and round to bfloat16 as the GPU
# does (they need Triton's interpreter), and the layouts the kernel tests convert between
collect_ignore = ["kernels/kernel_compile.py", "kernels/threaded_grid.py", "kernels/interpreter_rounding.py",
                  "kernels/orders.py"]

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
PATHS = ["torch", "torch-chunked", "torch-packed", "reference"]


def make_pair(mode, input_size, hidden_size, *, dtype=torch.float64, seed=0, **kw):
    """A torch.nn layer and a birnn layer with the same weights (loaded torch -> birnn)."""
    extras = {k: kw.pop(k) for k in list(kw) if k in birnn.options.LayerOptions.names()}
    torch.manual_seed(seed)
    if mode.startswith("RNN"):
        nl = "tanh" if mode == "RNN_TANH" else "relu"
        ref = torch.nn.RNN(input_size, hidden_size, nonlinearity=nl, dtype=dtype, **kw)
        ours = birnn.RNN(input_size, hidden_size, nonlinearity=nl, dtype=dtype, **kw, **extras)
    else:
        ref = getattr(torch.nn, mode)(input_size, hidden_size, dtype=dtype, **kw)
        ours = getattr(birnn, mode)(input_size, hidden_size, dtype=dtype, **kw, **extras)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)


def flat_hidden(hidden):
    return list(hidden) if isinstance(hidden, tuple) else [hidden]


def random_lengths(B, T, generator=None, low=0):
    lengths = torch.randint(max(low, 1), T + 1, (B,), generator=generator)
    lengths[0] = T  # keep one full sequence so the padded length is T
    return lengths


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def poisoned(fn):
    """``fn`` (a kernel call, ``birnn.backends.fused.recurrent.layer_forward`` or ``layer_backward``) with
    every buffer the kernels write starting as NaN, so that whatever they leave unwritten shows."""
    import functools

    from birnn.backends.fused import recurrent

    @functools.wraps(fn)
    def call(*args, **kwargs):
        real = recurrent._written
        recurrent._written = lambda shape, zero=False, **kw: torch.full(shape, float("nan"), **kw)
        try:
            return fn(*args, **kwargs)
        finally:
            recurrent._written = real

    return call
