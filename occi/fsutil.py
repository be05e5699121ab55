"""Atomic writes and completion markers: what makes every stage safe to kill and re-run.

A file is written under a temporary name in the same folder and renamed into place, so a
reader sees the old content or the new one, never half of it. A stage (or a shard of one)
is complete when its marker file exists; the marker is written last.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renamed onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> Path:
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: Path, data: Any) -> Path:
    """Writes `data` as indented JSON to `path` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yields an empty temporary folder beside `path`; it replaces `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def is_done(folder: Path) -> bool:
    """True when `folder` holds a completion marker."""
    return (Path(folder) / "_DONE").exists()


def mark_done(folder: Path, info: dict | None = None) -> None:
    """Writes the completion marker of `folder` (last, after everything else in it)."""
    atomic_write_json(Path(folder) / "_DONE", info or {})


def remove_stale_temporaries(folder: Path) -> None:
    """Deletes temporary files and folders a killed process left behind in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for item in folder.glob(".*.tmp"):
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
