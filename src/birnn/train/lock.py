"""One process at a time per run directory: ``RUN/.lock`` holds the owner's pid.

The lock is an exclusive ``flock`` on that file, so the kernel releases it when the owner dies,
however it dies (``kill -9`` included): a live owner's run is refused with its pid, a dead
owner's lock is simply taken over. The pid in the file is for the message only.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> with run_lock(d):
...     with run_lock(d):
...         pass
Traceback (most recent call last):
birnn.train.lock.RunLocked: ... is in use by process ... (its .lock); wait for it to end, or use another --out
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

__all__ = ["RunLocked", "run_lock"]


class RunLocked(RuntimeError):
    """Another live process owns the run directory."""


@contextlib.contextmanager
def run_lock(run_dir) -> Iterator[Path]:
    """Hold ``run_dir``'s lock for the block (the directory is created if needed)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise RunLocked(f"{run_dir} is in use by process {owner} (its .lock); wait for it to end, "
                            "or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock
