"""The run lock: one process at a time trains, fine-tunes or exports in a run directory.

`hold(run, command)` takes an exclusive flock on <run>/lock and writes the holder (pid, host,
command, start time) into it; a second process gets one line naming the holder. The kernel
drops a flock when its process dies, so the lock of a killed process is free at once; its
leftover text is how the next holder knows it takes over a stale lock.

Holding is per process and nests: `occi run` holds the lock for the whole run and its stages
(`occi train` inside it) hold it again without waiting on themselves. Children started while
it is held (torchrun and its ranks, an `occi` subprocess on the same run) inherit
OCCI_RUN_LOCK and do not take it again. Only rank 0 of an srun launch takes it (every task
runs the same `occi train`). Commands whose shares run side by side as SLURM array tasks
(corpora phases, data, eval, distill) do not lock (occi/pipeline.py: Stage.exclusive).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from occi.errors import OcciError, warn
from occi.rundir import RunDir

ENVIRONMENT = "OCCI_RUN_LOCK"
"""The lock file a parent process holds; its children work under it."""

_held: dict[str, tuple[int, int]] = {}
"""lock path -> (open file descriptor, nesting depth) of the locks this process holds."""


def holder(run: RunDir | Path | str) -> dict | None:
    """Who holds (or last held, when it died) the run's lock, as written into it; None: nobody."""
    try:
        text = RunDir.of(run).lock.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def describe(info: dict | None) -> str:
    if not info:
        return "another process (it wrote nothing into the lock file)"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('command')}, since {started})"


def _inherited(path: str) -> bool:
    return os.environ.get(ENVIRONMENT) == path


def _not_rank_zero() -> bool:
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0") if int(os.environ.get("SLURM_NTASKS", "1")) > 1
                          else "0")
    return rank != "0"


@contextmanager
def hold(run: RunDir | Path | str, command: str) -> Iterator[None]:
    """Holds the run's lock for the block; OcciError naming the holder when another process has it."""
    run = RunDir.of(run)
    run.root.mkdir(parents=True, exist_ok=True)
    path = str(run.lock.resolve())
    if path in _held:
        fd, depth = _held[path]
        _held[path] = (fd, depth + 1)
        try:
            yield
        finally:
            _held[path] = (fd, _held[path][1] - 1)
        return
    if _inherited(path) or _not_rank_zero():
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OcciError(f"{run.root} is in use by {describe(holder(run))}: one process at a time may work on a "
                        f"run; wait for it to finish, or stop it (its lock is {path})") from None
    except OSError as err:  # a file system mounted without lock support (Lustre without -o flock)
        os.close(fd)
        warn(f"{path}: this file system cannot lock files ({err.strerror}); the run is not protected "
             "against a second process working on it")
        yield
        return
    try:
        stale = holder(run)
        if stale:
            warn(f"{path}: taking over the lock of {describe(stale)}, which is no longer running")
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "argv": " ".join(sys.argv), "started": time.time()}
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        os.fsync(fd)
        _held[path] = (fd, 1)
        previous = os.environ.get(ENVIRONMENT)
        os.environ[ENVIRONMENT] = path
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(ENVIRONMENT, None)
            else:
                os.environ[ENVIRONMENT] = previous
            del _held[path]
            os.ftruncate(fd, 0)  # released cleanly: the next holder takes over nothing
    finally:
        os.close(fd)  # closing the descriptor releases the flock
