"""A full disk said in one line: which file could not be written, how much it needs, what is free.

Writers report a full disk in their own ways: Python raises OSError(ENOSPC), often without a file
name; numpy's `tofile` (which gguf-py uses) raises "131072 requested and 51440 written" with no
errno; safetensors (Rust) raises its own error type with "No space left on device (os error 28)"
in the text. `reporting_full_disk` recognises the three around a write and raises one OcciError.
"""
from __future__ import annotations

import errno
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from occi.errors import OcciError

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "StorageFull", "os error 28")
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")  # numpy's tofile


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged writer on the filesystem holding `path` (or its nearest
    existing parent)."""
    return shutil.disk_usage(_existing(path)).free


def is_full_disk(err: BaseException, folder: Path) -> bool:
    """True when `err`, raised while writing into `folder`, comes from a full disk (or quota)."""
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return True
    text = str(err)
    if any(part in text for part in _FULL_TEXTS):
        return True
    short = _SHORT_WRITE.search(text)  # a short write is a full disk when the rest would not fit
    return bool(short) and free_bytes(folder) < int(short.group(1)) - int(short.group(2))


def size_text(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} bytes"


def full_disk_error(target: Path, needed: int | None = None, partial_bytes: int = 0) -> OcciError:
    """The one line: `target` could not be written, what it needs, what is free once the partial
    write (`partial_bytes`, deleted when the write is abandoned) is gone."""
    target = Path(target)
    free = free_bytes(target.parent) + partial_bytes
    need = f"it needs about {size_text(needed)} and " if needed else ""
    return OcciError(f"{target}: no space left on the device: {need}{size_text(free)} is free in "
                     f"{_existing(target.parent)}; free some space or put the run directory on a larger disk")


@contextmanager
def reporting_full_disk(target: Path, partial: Path | None = None, needed: int | None = None) -> Iterator[None]:
    """Around the writing of `target` (a file or a folder) into `partial` (its temporary name):
    a full disk raises full_disk_error naming the file that was being written."""
    target = Path(target)
    try:
        yield
    except OcciError:
        raise
    except Exception as err:
        if not is_full_disk(err, target.parent):
            raise
        raise full_disk_error(_file_being_written(target, partial, err), needed, _size(partial)) from None


def _file_being_written(target: Path, partial: Path | None, err: BaseException) -> Path:
    """The file the failed write was writing, under its final name: the error's own file name;
    for safetensors' error (which names none, and deletes its partial file) the weights; else
    the newest file of a partial folder; else `target`."""
    filename = getattr(err, "filename", None)
    if partial is not None and partial.is_dir():
        if filename and Path(filename).is_relative_to(partial):
            return target / Path(filename).relative_to(partial)
        if type(err).__module__.startswith("safetensors"):
            shards = sorted(partial.glob("*.safetensors"), key=lambda f: f.stat().st_mtime_ns)
            return target / (shards[-1].name if shards else "model.safetensors")
        files = [f for f in partial.rglob("*") if f.is_file()]
        if files:
            return target / max(files, key=lambda f: f.stat().st_mtime_ns).relative_to(partial)
    return target


def _size(partial: Path | None) -> int:
    if partial is None or not partial.exists():
        return 0
    if partial.is_file():
        return partial.stat().st_size
    return sum(f.stat().st_size for f in partial.rglob("*") if f.is_file())


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
