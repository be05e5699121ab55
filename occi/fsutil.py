"""Atomic writes and completion markers: what makes every stage safe to kill and re-run.

A file is written under a temporary name in the same folder and renamed into place, so a
reader sees the old content or the new one, never half of it. The temporary file (0600) or
folder (0700), and whatever was written into it, gets the permissions a plain write would give
under the process's umask before it is renamed, so a run on a shared project file system stays
readable by the group. A stage (or a shard of one)
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


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status):
    setting it to read it back would briefly apply another mask to the files of other threads."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plain_permissions(path: Path) -> None:
    """Gives `path` the mode a plain write would have under the umask (0666 or 0777 less it)."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~current_umask())


def share_as_umask_allows(path: Path) -> None:
    """Opens `path` (and, for a folder, everything in it) to the group and others as far as the
    umask allows, with the owner's read/write/execute bits: a library that wrote a file through its
    own temporary file (safetensors does) leaves it 0600."""
    umask = current_umask()
    for item in [Path(path), *(Path(path).rglob("*") if Path(path).is_dir() else [])]:
        if item.is_symlink():
            continue
        mode = item.stat().st_mode & 0o7777
        owner = mode & 0o700
        wanted = mode | ((owner >> 3 | owner >> 6) & ~umask & 0o077)
        if wanted != mode:
            os.chmod(item, wanted)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renamed onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    plain_permissions(tmp)
    try:
        yield Path(tmp)
        share_as_umask_allows(Path(tmp))
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
    plain_permissions(tmp)
    try:
        yield tmp
        share_as_umask_allows(tmp)
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
