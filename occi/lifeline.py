"""Processes that die with the process that started them.

A training rank detached from its launcher goes on writing the run's checkpoints beside the
next launch. On Linux the kernel can signal a process when its parent ends
(prctl(PR_SET_PDEATHSIG)): `occi train` asks it for torchrun (`child_setup`, run in the child
before torchrun starts), and every rank ends with torchrun (`die_with_parent`), so a SIGKILL to
`occi train` ends torchrun, and torchrun's end ends the ranks and their helper processes.
Elsewhere this does nothing.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGKILL, poll_seconds: float = 0.5) -> bool:
    """Makes this process end when its parent ends; exits at once when the parent already ended
    (the process was handed to init or a subreaper). Returns False where that cannot be arranged.

    A process leading its own process group (torchrun starts every rank in a new session) takes
    the group with it: a thread watches the parent and sends `signum` to the whole group, so the
    helpers a rank started (megatron's checkpoint writer keeps a multiprocessing manager process)
    end too. Any other process asks the kernel for `signum` when its parent ends."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    if parent == 1:
        os._exit(1)
    if os.getpgid(0) == os.getpid():
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(poll_seconds)
            os.killpg(os.getpid(), signum)

        threading.Thread(target=watch, name="occi-lifeline", daemon=True).start()
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent ended before the request
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
