"""The .venv-vllm that `make test` makes in the background (scripts/install-vllm.sh): whether it is
still being made, and waiting for it before a test that needs it."""
from __future__ import annotations

import fcntl
import time
from pathlib import Path

import pytest

VENV = Path(__file__).resolve().parents[1] / ".venv-vllm"
"""The checkout's .venv-vllm (occi/chat/vllm_backend.py's); tests/test_longest_first.py points it elsewhere."""
WAIT_S = 1800
"""How long a test waits for the background pip before failing (it takes 3-5 min on 2 cores)."""
NEEDS_IT = {"test_vllm.py"}
"""The test files that run vLLM from .venv-vllm."""


def _lock() -> Path:
    return VENV / "install.lock"


def _log() -> Path:
    return VENV / "install.log"


def _installed() -> Path:
    return VENV / "installed"


def _free() -> bool:
    """True when nobody holds the install lock (or there is none: a venv made by hand, or none)."""
    try:
        with open(_lock()) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
    except FileNotFoundError:
        return True


def being_made() -> bool:
    """True while scripts/install-vllm.sh is making .venv-vllm."""
    return not _installed().exists() and not _free()


def wait(limit_s: float = WAIT_S) -> None:
    """Returns once nobody is making .venv-vllm, or after limit_s (check() then says so)."""
    deadline = time.monotonic() + limit_s
    while being_made() and time.monotonic() < deadline:
        time.sleep(1)


def check() -> None:
    """Fails the test, naming the log, when .venv-vllm is still being made or its making failed. A
    .venv-vllm made without the script (no lock file), or none at all, is left to the test."""
    if _installed().exists() or not _lock().exists():
        return
    if not _free():
        pytest.fail(f"{VENV} is still being made after {WAIT_S} s of waiting: see {_log()}")
    lines = [line for line in _log().read_text(errors="replace").splitlines() if line.strip()] if _log().exists() else []
    pytest.fail(f"making {VENV} failed ({lines[-1][:300] if lines else 'no log'}): see {_log()}, and make it "
                "again with `bash scripts/install-vllm.sh`")
