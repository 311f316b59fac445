"""Run a Triton kernel's grid under the interpreter with every program in its own thread, at once.

Triton's interpreter (``TRITON_INTERPRET=1``) runs programs one after another, so a kernel whose
programs meet at a barrier can only be run there with one program per group. Here every program
gets a thread and its own program id, so the fused kernels run with the GPU's grid plan — several
programs per barrier group, several batch tiles — and their cross-program parts (the barrier, the
exchange areas and their parity, the layer norms' merged moments, the resident backward's shares
of dh) execute for real on CPU. Threads interleave at the GIL's switch points; a kernel that read
a slot before its writers had passed the barrier would read stale numbers.

Built on the interpreter's own pieces (``GridExecutor``'s argument handling), so it is tied to
the pinned Triton (3.6.0); ``threaded_programs()`` is a context manager.
"""

import contextlib
import inspect
import sys
import threading

from triton.runtime import interpreter as interp

_local = threading.local()
SWITCH = 5e-4


def _grid_idx(self):
    return getattr(_local, "idx", None)


def _set_grid_idx(self, value):
    _local.idx = value


def _run_threaded(self, *args_dev, **kwargs):
    argspec = inspect.getfullargspec(self.fn)
    kwargs = {k: v for k, v in kwargs.items() if k in argspec.args}
    args_hst, kwargs_hst = self._init_args_hst(args_dev, kwargs)
    patch_scope = interp._patch_lang(self.fn)
    try:
        args = inspect.getcallargs(self.fn, *args_hst, **kwargs_hst)
        args = {name: arg if name in self.constexprs else interp._implicit_cvt(arg) for name, arg in args.items()}
        grid = self.grid(args) if callable(self.grid) else self.grid
        grid = tuple(grid) + (1,) * (3 - len(grid))
        assert grid[1:] == (1, 1), "one-dimensional grids only"
        interp.interpreter_builder.set_grid_dim(*grid)
        errors = []

        def program(x):
            try:
                interp.interpreter_builder.set_grid_idx(x, 0, 0)
                self.fn(**args)
            except BaseException as e:  # reported by the caller
                errors.append(e)

        threads = [threading.Thread(target=program, args=(x,), daemon=True) for x in range(grid[0])]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        if any(t.is_alive() for t in threads):
            raise TimeoutError(f"{sum(t.is_alive() for t in threads)} of {grid[0]} programs still waiting: "
                               "a barrier that never completes")
        if errors:
            raise errors[0]
    finally:
        patch_scope.restore()
    self._restore_args_dev(args_dev, args_hst, kwargs, kwargs_hst)


@contextlib.contextmanager
def threaded_programs():
    """Within the block, interpreted kernel launches run all programs concurrently."""
    builder_cls = type(interp.interpreter_builder)
    saved_call = interp.GridExecutor.__call__
    had_attr = "grid_idx" in builder_cls.__dict__
    saved_attr = builder_cls.__dict__.get("grid_idx")
    builder_cls.grid_idx = property(_grid_idx, _set_grid_idx)
    interp.GridExecutor.__call__ = _run_threaded
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH)  # programs spinning at a barrier hand over sooner
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        interp.GridExecutor.__call__ = saved_call
        if had_attr:
            builder_cls.grid_idx = saved_attr
        else:
            del builder_cls.grid_idx
