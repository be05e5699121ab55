"""Size and sha256 of the files `occi fetch` put into the cache, and the check a run makes
before it trusts them.

The hub gives a sha256 for files stored with LFS and a git blob id for the others; a downloaded
file is compared with whichever it gives. A file is hashed again only when its size or
modification time differ from what the manifest recorded (a truncated file is caught by its size
alone), so checking a cache of many gigabytes that nobody touched costs a `stat` per file.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from occi.errors import OcciError

_CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: str | Path) -> str:
    """The id git (and the hub, for files not in LFS) gives a file's content."""
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def record(path: str | Path, **extra) -> dict:
    """A manifest file entry: path, bytes, sha256 and the modification time they were taken at."""
    stat = os.stat(path)
    return {"path": str(path), "bytes": stat.st_size, "sha256": sha256_of(path), "mtime_ns": stat.st_mtime_ns, **extra}


def mismatch(path: str | Path, expected: dict) -> str | None:
    """How a downloaded file differs from the hub's metadata ({bytes, sha256 or blob_id}), or None."""
    size = os.path.getsize(path)
    if expected.get("bytes") and size != expected["bytes"]:
        return f"{size:,} bytes where the hub has {expected['bytes']:,}"
    if expected.get("sha256") and sha256_of(path) != expected["sha256"]:
        return "its sha256 differs from the hub's"
    if not expected.get("sha256") and expected.get("blob_id") and git_blob_id(path) != expected["blob_id"]:
        return "its git blob id differs from the hub's"
    return None


def problem(entry: dict) -> str | None:
    """What is wrong with a recorded file now (gone, truncated, changed), or None."""
    path = entry["path"]
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path} is gone from the cache"
    if "sha256" not in entry:  # a local file standing in for a hub one: only its presence counts
        return None
    if stat.st_size != entry["bytes"]:
        return f"{path} has {stat.st_size:,} bytes, {entry['bytes']:,} were fetched (truncated or changed)"
    if stat.st_mtime_ns != entry.get("mtime_ns") and sha256_of(path) != entry["sha256"]:
        return f"{path} is corrupted (its sha256 differs from the fetched file's)"
    return None


def verified(path: str | Path, expected: dict, what: str) -> None:
    """Raises one line naming the file when it is not what the hub says it is."""
    found = mismatch(path, expected)
    if found:
        raise OcciError(f"{what}: the downloaded {path} is not the hub's file ({found}); "
                        "run `occi fetch` again to download it anew")
