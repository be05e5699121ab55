"""The `url_filter` step: drop documents whose URL is on a domain/URL blocklist or opt-out list.

A list of millions of domains would take gigabytes as a Python set in every worker. Instead each
list is compiled once (per run, before the filter phase, vectorised: Arrow reads and normalises
the lines, a numba loop hashes them) into a sorted array of 64-bit hashes of its entries, saved as .npy; every worker memory-maps it, so the operating system shares one copy
(8 bytes an entry) and a look-up is a binary search. Two different entries share a hash with
probability about n²/2⁶⁵ (1e-7 for 2 million entries), a false drop of one document at worst.

An entry without "/" is a domain: it matches the host and every subdomain of it (a UT1 `domains`
file, or a list of publishers that reserved their rights). An entry with a path is a URL prefix:
it matches URLs whose host/path starts with it at a "/" boundary (UT1's `urls` files).
"""
from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit
from pyarrow import csv

from occi.corpora.config import UrlListConfig
from occi.corpora.document import Document
from occi.errors import OcciError
from occi.fsutil import atomic_path, atomic_write_json


@njit(cache=True, nogil=True)
def _hash_strings(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """FNV-1a over each string's UTF-8 bytes, then murmur3's finaliser (spreads the bits)."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for i in range(len(offsets) - 1):
        h = np.uint64(0xCBF29CE484222325)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB93FE53EC1A9)
        h ^= h >> np.uint64(33)
        out[i] = h
    return out


def key_hashes(keys: list[str]) -> np.ndarray:
    """The 64-bit hashes of list keys (the same function compiles the lists)."""
    encoded = [key.encode("utf-8") for key in keys]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return _hash_strings(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)


def normalize_entry(line: str) -> str | None:
    """A list line as a key: lower-case host (without scheme, www., port) plus its path, or None.
    (The reference for `_normalize_entries`, which does the same to a whole list at once.)"""
    entry = line.strip()
    if not entry or entry.startswith("#"):
        return None
    entry = re.sub(_SCHEME, "", entry)
    entry = re.sub(r"^[*.]+", "", entry)
    entry = re.sub(r"/+$", "", entry)
    host, _, path = entry.partition("/")
    host = re.sub(r"^www\.", "", re.sub(r":.*$", "", host.lower()))
    if not host:
        return None
    return f"{host}/{path}" if path else host


_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]*://"


def _normalize_entries(lines: pa.Array) -> pa.Array:
    """normalize_entry on every line, vectorised with Arrow's compute functions. Lines that are
    already keys (lower case; no scheme, port, www., leading dot or trailing slash: nearly all of a
    UT1 list) are taken as they are; only the others go through the regular expressions."""
    entries = pc.utf8_trim_whitespace(lines)
    entries = entries.filter(pc.and_(pc.invert(pc.starts_with(entries, "#")), pc.not_equal(entries, "")))
    irregular = pc.or_(
        pc.or_(pc.match_substring(entries, ":"), pc.not_equal(pc.utf8_lower(entries), entries)),
        pc.or_(pc.or_(pc.starts_with(entries, "www."), pc.starts_with(entries, "*")),
               pc.or_(pc.starts_with(entries, "."), pc.ends_with(entries, "/"))))
    plain = entries.filter(pc.invert(irregular))
    odd = entries.filter(irregular)
    odd = pc.replace_substring_regex(odd, _SCHEME, "")
    odd = pc.replace_substring_regex(odd, r"^[*.]+", "")
    odd = pc.replace_substring_regex(odd, r"/+$", "")
    parts = pc.extract_regex(odd, r"^(?P<host>[^/]*)(?P<path>(?:/.*)?)$")
    host = pc.utf8_lower(parts.field("host"))
    host = pc.replace_substring_regex(pc.replace_substring_regex(host, r":.*$", ""), r"^www\.", "")
    odd = pc.binary_join_element_wise(host, parts.field("path"), "").filter(pc.not_equal(host, ""))
    return pa.concat_arrays([plain, odd])


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
    """The sorted, distinct hashes of a list file's keys (read by Arrow's multi-threaded CSV reader
    as one column: 4.5 million UT1 domains in a few seconds)."""
    with open(source, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    with (gzip.open(source, "rb") if compressed else open(source, "rb")) as handle:
        table = csv.read_csv(handle, read_options=csv.ReadOptions(column_names=["line"]),
                             parse_options=csv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False,
                                                            newlines_in_values=False, ignore_empty_lines=True,
                                                            invalid_row_handler=lambda row: "skip"),
                             convert_options=csv.ConvertOptions(column_types={"line": pa.string()}))
    keys = _normalize_entries(table.column("line").combine_chunks()).cast(pa.large_string())
    data = np.frombuffer(keys.buffers()[2], dtype=np.uint8) if len(keys) else np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset:keys.offset + len(keys) + 1]
    hashes = np.sort(_hash_strings(data, offsets))
    return hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))] if len(hashes) else hashes


class UrlFilter:
    """Drops a document whose URL (metadata `url`) matches one of the lists; the first list wins."""

    step = "url_filter"

    def __init__(self, compiled: list[CompiledList]):
        self.lists = [(entry.name, np.load(entry.hashes_file, mmap_mode="r")) for entry in compiled]

    def filter(self, doc: Document) -> str | None:
        url = doc.metadata.get("url")
        if not url or not self.lists:
            return None
        found = url_keys(str(url))
        if not found:
            return None
        keys = key_hashes(found)
        for name, hashes in self.lists:
            if len(hashes):
                where = np.searchsorted(hashes, keys)
                if np.any(hashes[np.minimum(where, len(hashes) - 1)] == keys):
                    return name
        return None
