"""Which occi made each stage of a run: its version and git commit, one line per stage run.

Recorded into <run>/provenance.jsonl when a stage starts (by one process per launch), read by the
card's lineage. Recorded then rather than read at card time, because the code that made a model is
the code that ran its stages, not whatever is checked out when the card is written.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@functools.cache
def occi_version() -> tuple[str, str]:
    """(occi's version, its git commit, "+ uncommitted changes" when the checkout differs, or why unknown)."""
    try:
        number = version("occi")
    except PackageNotFoundError:
        number = "not installed"
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return number, "not known (occi is not run from a git checkout)"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return number, "not known (git did not answer)"
    return number, commit + (" + uncommitted changes" if dirty else "")


def record(path: Path, stage: str) -> None:
    """Appends this stage's line (one process per launch: rank 0, or a process outside torchrun/srun)."""
    if os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) != "0":
        return
    number, commit = occi_version()
    line = json.dumps({"stage": stage, "occi": number, "commit": commit, "time": time.time()}) + "\n"
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def read(path: Path) -> list[dict]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
