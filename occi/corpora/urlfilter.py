"""The `url_filter` step: drop documents whose URL is on a domain/URL blocklist or opt-out list.

A list of millions of domains would take gigabytes as a Python set in every worker. Instead each
list is compiled once (per run, before the filter phase) into a sorted array of 64-bit hashes of
its entries, saved as .npy; every worker memory-maps it, so the operating system shares one copy
(8 bytes an entry) and a look-up is a binary search. Two different entries share a hash with
probability about n²/2⁶⁵ (1e-7 for 2 million entries), a false drop of one document at worst.

An entry without "/" is a domain: it matches the host and every subdomain of it (a UT1 `domains`
file, or a list of publishers that reserved their rights). An entry with a path is a URL prefix:
it matches URLs whose host/path starts with it at a "/" boundary (UT1's `urls` files).
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import xxhash

from occi.corpora.config import UrlListConfig
from occi.corpora.document import Document
from occi.errors import OcciError
from occi.fsutil import atomic_path, atomic_write_json


def entry_hash(entry: str) -> int:
    return xxhash.xxh3_64_intdigest(entry.encode("utf-8"))


def normalize_entry(line: str) -> str | None:
    """A list line as a key: lower-case host (without scheme, www., port) plus its path, or None."""
    entry = line.strip()
    if not entry or entry.startswith("#"):
        return None
    if "://" in entry:
        entry = entry.split("://", 1)[1]
    entry = entry.lstrip("*.").rstrip("/")
    host, _, path = entry.partition("/")
    host = host.split(":", 1)[0].lower().removeprefix("www.")
    if not host:
        return None
    return f"{host}/{path}" if path else host


def url_keys(url: str) -> list[str]:
    """The keys a URL matches: its host, every parent domain, and host/path prefixes at each '/'."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = (parts.hostname or "").lower().removeprefix("www.")
    except ValueError:
        return []
    if not host:
        return []
    labels = host.split(".")
    keys = [".".join(labels[i:]) for i in range(len(labels))]
    path = parts.path.strip("/")
    if path:
        segments = path.split("/")
        keys += [host + "/" + "/".join(segments[:i]) for i in range(1, len(segments) + 1)]
    return keys


@dataclass(frozen=True)
class CompiledList:
    name: str
    """The list's name (drops counted as url_filter/<name>)."""
    kind: str
    """blocklist or optout."""
    path: str
    """The list file as given in the recipe."""
    entries: int
    """Distinct entries in the list."""
    hashes_file: Path
    """The sorted hash array (.npy), memory-mapped by every worker."""


def compile_lists(lists: list[UrlListConfig], base_dir: str, folder: Path) -> list[CompiledList]:
    """Each list's sorted hash array in `folder` (built once; a re-run reuses it)."""
    compiled = []
    for entry in lists:
        source = Path(base_dir, entry.path)
        if not source.is_file():
            raise OcciError(f"url_filter.lists[{entry.name}].path: {source} is not a file; give a list of domains "
                            "or URLs, one a line")
        target = folder / f"{entry.name}.npy"
        info_file = folder / f"{entry.name}.json"
        stamp = {"path": str(source), "size": source.stat().st_size, "mtime_ns": source.stat().st_mtime_ns}
        info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else None
        if not (target.exists() and info and info.get("stamp") == stamp):
            hashes = _hash_file(source)
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, hashes)
            info = {"stamp": stamp, "entries": int(len(hashes))}
            atomic_write_json(info_file, info)
        compiled.append(CompiledList(entry.name, entry.kind, entry.path, info["entries"], target))
    return compiled


def _hash_file(source: Path) -> np.ndarray:
    opener = gzip.open if source.read_bytes()[:2] == b"\x1f\x8b" else open
    chunks, chunk = [], []
    with opener(source, "rt", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            key = normalize_entry(line)
            if key is not None:
                chunk.append(entry_hash(key))
                if len(chunk) >= 1_000_000:
                    chunks.append(np.unique(np.array(chunk, dtype=np.uint64)))
                    chunk = []
    chunks.append(np.array(chunk, dtype=np.uint64))
    return np.unique(np.concatenate(chunks))


class UrlFilter:
    """Drops a document whose URL (metadata `url`) matches one of the lists; the first list wins."""

    step = "url_filter"

    def __init__(self, compiled: list[CompiledList]):
        self.lists = [(entry.name, np.load(entry.hashes_file, mmap_mode="r")) for entry in compiled]

    def filter(self, doc: Document) -> str | None:
        url = doc.metadata.get("url")
        if not url or not self.lists:
            return None
        keys = np.array([entry_hash(key) for key in url_keys(str(url))], dtype=np.uint64)
        if not len(keys):
            return None
        for name, hashes in self.lists:
            if len(hashes):
                where = np.searchsorted(hashes, keys)
                if np.any(hashes[np.minimum(where, len(hashes) - 1)] == keys):
                    return name
        return None
