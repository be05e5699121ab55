"""Processes that die with the process that started them.

A training rank detached from its launcher goes on writing the run's checkpoints beside the
next launch. On Linux the kernel can signal a process when its parent ends
(prctl(PR_SET_PDEATHSIG)): `occi train` asks it for torchrun (`child_setup`, run in the child
before torchrun starts) and every rank asks it for itself (`die_with_parent`), so a SIGKILL to
`occi train` ends torchrun, and torchrun's end ends the ranks. Elsewhere this does nothing.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Asks the kernel to send `signum` to this process when its parent ends; exits at once when
    the parent already ended before the request (the process was handed to init or a
    subreaper). Returns False where the kernel offers no such request."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent == 1 or os.getppid() != parent:
        os._exit(1)
    return True


def child_setup(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the child dies with this process."""
    if not sys.platform.startswith("linux"):
        return None
    launcher = os.getpid()

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != launcher:  # the launcher ended between fork and prctl
            os._exit(1)

    return setup
