"""Fault injection at the file-system level, for tests/tasks/test_reliability.py.

``faults(root)`` counts every file-system event under ``root`` — a file opened for writing,
a temporary file or directory made, a rename, a removal, an fsync, a safetensors write — and can
stop the process at the k-th one: ``kill_at=k`` raises :class:`Killed` (a BaseException, so no
``except Exception`` of the code under test catches it) *before* the event happens, as a
``kill -9`` would; ``enospc_at=k`` raises ``OSError(ENOSPC)`` at the k-th event that writes.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import os
import shutil
import tempfile
from pathlib import Path

import birnn.train.checkpoint as checkpoint


class Killed(BaseException):
    """The process died here (raised before the event it names)."""


class _Counter:
    def __init__(self, root, kill_at, enospc_at):
        self.root = str(Path(root).resolve())
        self.kill_at, self.enospc_at = kill_at, enospc_at
        self.events, self.writes = [], 0

    def inside(self, path) -> bool:
        if path is None or isinstance(path, int):
            return path is None
        return str(Path(os.fspath(path)).resolve()).startswith(self.root)

    def event(self, what: str, path=None, writes: bool = False) -> None:
        if not self.inside(path):
            return
        self.events.append(f"{what} {path}")
        if self.kill_at is not None and len(self.events) == self.kill_at:
            raise Killed(f"killed before event {len(self.events)}: {what} {path}")
        if writes:
            self.writes += 1
            if self.enospc_at is not None and self.writes == self.enospc_at:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


@contextlib.contextmanager
def faults(root, *, kill_at=None, enospc_at=None):
    """Count (and maybe interrupt) the file-system events under ``root`` within the block."""
    c = _Counter(root, kill_at, enospc_at)
    real = dict(replace=os.replace, rename=os.rename, mkdir=os.mkdir, unlink=os.unlink, remove=os.remove,
                rmdir=os.rmdir, rmtree=shutil.rmtree, mkstemp=tempfile.mkstemp, mkdtemp=tempfile.mkdtemp,
                fsync=os.fsync, open=builtins.open, io_open=io.open, os_open=os.open, save_file=checkpoint.save_file)

    def opener(fn):
        def wrapped(file, mode="r", *args, **kwargs):
            if not isinstance(file, int) and any(m in mode for m in "wax+"):
                c.event("open", file, writes=True)
            return fn(file, mode, *args, **kwargs)
        return wrapped

    def os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            c.event("os.open", path, writes=True)
        return real["os_open"](path, flags, *args, **kwargs)

    def two(name):
        def wrapped(src, dst, *args, **kwargs):
            c.event(name, dst)
            return real[name](src, dst, *args, **kwargs)
        return wrapped

    def one(name, writes=False):
        def wrapped(path, *args, **kwargs):
            if not (name == "mkdir" and os.path.exists(path)):  # mkdir of what exists changes nothing
                c.event(name, path, writes=writes)
            return real[name](path, *args, **kwargs)
        return wrapped

    def made(name):
        def wrapped(*args, dir=None, **kwargs):
            c.event(name, dir, writes=True) if dir is not None else None
            return real[name](*args, dir=dir, **kwargs)
        return wrapped

    def fsync(fd):
        c.event("fsync", None)
        return real["fsync"](fd)

    def save_file(tensors, path, *args, **kwargs):
        c.event("save_file", path, writes=True)
        return real["save_file"](tensors, path, *args, **kwargs)

    patches = [(os, "replace", two("replace")), (os, "rename", two("rename")), (os, "mkdir", one("mkdir", True)),
               (os, "unlink", one("unlink")), (os, "remove", one("remove")), (os, "rmdir", one("rmdir")),
               (shutil, "rmtree", one("rmtree")), (tempfile, "mkstemp", made("mkstemp")),
               (tempfile, "mkdtemp", made("mkdtemp")), (os, "fsync", fsync), (builtins, "open", opener(real["open"])),
               (io, "open", opener(real["io_open"])), (os, "open", os_open), (checkpoint, "save_file", save_file)]
    originals = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, fn in patches:
        setattr(module, name, fn)
    try:
        yield c
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)
