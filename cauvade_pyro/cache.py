r"""Shared cache files that several processes may need at once: one builds, the others wait and load.

Members of a family share trained models through files in ``cache_dir`` (the shared image model and the cVAE,
the latent-response base, the effectiveness judge, the FID feature net). Members started together on a fresh
cache (a Hydra multirun through joblib, submitit or Ray) must agree on who trains each of them.
:func:`load_or_build` does, for a cache file ``path``:

1. ``path`` exists: load it (no lock; files are only ever written by an atomic rename, so a reader sees
   either no file or a complete one);
2. otherwise take an exclusive OS file lock on ``path.lock`` (``filelock``: ``fcntl.flock`` on Unix,
   ``msvcrt.locking`` on Windows), waiting for whoever holds it;
3. under the lock, check again: if the holder before us wrote ``path``, load it; else build it (the builder
   writes ``path`` atomically, and may resume from its own ``.partial`` training state) and return it.

So exactly one process trains each model and every process returns the same file's contents. The lock is
held by an open file descriptor, so the kernel releases it when the holder dies, killed or not: a process
killed mid-training never blocks the next one, which takes the lock and resumes from the ``.partial`` state.
On a cluster, ``cache_dir`` must be on a file system with working POSIX locks (local disks, NFSv4, Lustre and
GPFS with locking enabled).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, TypeVar

from filelock import FileLock, Timeout

__all__ = ["cache_lock", "load_or_build", "lock_path"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file guarding the cache file ``path``: ``<path>.lock`` beside it.

    >>> lock_path("/cache/image_models/image-0123.pt").name
    'image-0123.pt.lock'
    """
    path = Path(path)
    return path.with_name(path.name + ".lock")


def cache_lock(path: str | os.PathLike[str], timeout: float = -1) -> FileLock:
    """An exclusive inter-process lock for the cache file ``path`` (use as ``with cache_lock(path): ...``).

    ``timeout`` in seconds; -1 waits for as long as it takes (a holder that dies releases it). Creates the
    parent folder of ``path``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with cache_lock(Path(folder) / "model.pt") as lock:
    ...         lock.is_locked
    True
    """
    lock_file = lock_path(path)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_file), timeout=timeout)


def load_or_build(
    path: str | os.PathLike[str],
    load: Callable[[Path], T],
    build: Callable[[], T],
    timeout: float = -1,
) -> tuple[T, bool]:
    """``(load(path), False)`` when the cache file exists, else ``(build(), True)`` for exactly one process.

    ``build`` must write ``path`` atomically (temporary file + ``os.replace``) before it returns. Concurrent
    callers for the same ``path`` wait on ``<path>.lock`` while one of them builds, then load what it wrote.
    ``timeout`` (seconds, -1 = forever) bounds the wait; a :class:`filelock.Timeout` is raised past it.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "answer.txt"
    ...     build = lambda: (path.write_text("42"), 42)[1]
    ...     load = lambda p: int(p.read_text())
    ...     load_or_build(path, load, build), load_or_build(path, load, build)
    ((42, True), (42, False))
    """
    path = Path(path)
    if path.is_file():
        return load(path), False
    lock = cache_lock(path, timeout=timeout)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish %s", path)
        lock.acquire(timeout=timeout)
    try:
        if path.is_file():  # the process we waited for built it
            return load(path), False
        value = build()
        if not path.is_file():
            raise RuntimeError(f"{path}: the builder returned without writing the cache file")
        return value, True
    finally:
        lock.release()
