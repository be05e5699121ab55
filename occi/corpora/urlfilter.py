"""The `url_filter` step: drop documents whose URL is on a domain/URL blocklist or opt-out list.

A list of millions of domains would take gigabytes as a Python set in every worker. Instead each
list is compiled (vectorised, block by block: Arrow reads and normalises the lines, a numba loop
hashes them) into a sorted array of 64-bit hashes of its entries, saved as .npy in a cache folder
under the SHA-256 of the list's content, so later runs with the same list only read it; every
worker memory-maps it, so the operating system shares one copy (8 bytes an entry), and a look-up
hashes the URL's keys and binary-searches them in one compiled pass. Two different entries share a
hash with probability about n²/2⁶⁵ (1e-7 for 2 million entries), a false drop of one document at worst.

An entry without "/" is a domain: it matches the host and every subdomain of it (a UT1 `domains`
file, or a list of publishers that reserved their rights). An entry with a path is a URL prefix:
it matches URLs whose host/path starts with it at a "/" boundary (UT1's `urls` files).
"""
from __future__ import annotations

import gzip
import hashlib
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


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def _finish_hash(h: np.uint64) -> np.uint64:
    """murmur3's finaliser (spreads the bits of FNV-1a)."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB93FE53EC1A9)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True)
def _fnv(h: np.uint64, data, start: int, stop: int) -> np.uint64:
    """FNV-1a from state `h` over data[start:stop] (bytes)."""
    for j in range(start, stop):
        h = (h ^ np.uint64(data[j])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def _hash_strings(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """FNV-1a over each string's UTF-8 bytes, then murmur3's finaliser."""
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    for i in range(len(offsets) - 1):
        out[i] = _finish_hash(_fnv(_FNV_OFFSET, data, offsets[i], offsets[i + 1]))
    return out


@njit(cache=True, nogil=True)
def _in_sorted(hashes: np.ndarray, key: np.uint64) -> bool:
    low, high = 0, len(hashes)
    while low < high:
        middle = (low + high) >> 1
        if hashes[middle] < key:
            low = middle + 1
        else:
            high = middle
    return low < len(hashes) and hashes[low] == key


@njit(cache=True, nogil=True)
def _listed(host: bytes, path: bytes, hashes: np.ndarray) -> bool:
    """Whether one of url_keys' keys, hashed as _hash_strings does, is in `hashes` (sorted): the
    host and each parent domain (the host from after each '.'), then host/path up to each '/' of
    the path (stripped of its outer '/') and host/path whole. One FNV pass serves every path prefix."""
    start = 0
    while True:
        if _in_sorted(hashes, _finish_hash(_fnv(_FNV_OFFSET, host, start, len(host)))):
            return True
        while start < len(host) and host[start] != 46:  # "."
            start += 1
        if start == len(host):
            break
        start += 1
    if len(path) == 0:
        return False
    h = (_fnv(_FNV_OFFSET, host, 0, len(host)) ^ np.uint64(47)) * _FNV_PRIME  # host + "/"
    for j in range(len(path)):
        if path[j] == 47 and _in_sorted(hashes, _finish_hash(h)):
            return True
        h = (h ^ np.uint64(path[j])) * _FNV_PRIME
    return _in_sorted(hashes, _finish_hash(h))


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


def url_parts(url: str) -> tuple[str, str] | None:
    """A URL's host (lower case, without www.) and its path without the outer '/', or None."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        host = (parts.hostname or "").lower().removeprefix("www.")
    except ValueError:
        return None
    return (host, parts.path.strip("/")) if host else None


def url_keys(url: str) -> list[str]:
    """The keys a URL matches: its host, every parent domain, and host/path prefixes at each '/'.
    (The reference for `_listed`, which looks the same keys up in one compiled pass.)"""
    found = url_parts(url)
    if found is None:
        return []
    host, path = found
    labels = host.split(".")
    keys = [".".join(labels[i:]) for i in range(len(labels))]
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


FORMAT = b"occi url list v1\n"
"""Hashed before a list file's content to name its compiled array: change it whenever
normalize_entry, _normalize_entries or _hash_strings change, so no run reads an older array."""
DEFAULT_CACHE = Path.home() / ".cache" / "occi" / "url_lists"
"""Where compiled lists are kept when url_filter.cache_dir is not given."""


def cache_folder(cache_dir: str | None) -> Path:
    """The folder compiled lists are kept in (url_filter.cache_dir, or the default)."""
    return Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE


def compile_lists(lists: list[UrlListConfig], base_dir: str, folder: Path) -> list[CompiledList]:
    """Each list's sorted hash array in `folder`, named by the SHA-256 of the list file's bytes:
    compiled once, then read by every later run whose list has the same content. A changed list
    file has another name, so its old array is never read (size and time stamps are not trusted)."""
    compiled = []
    for entry in lists:
        source = Path(base_dir, entry.path)
        if not source.is_file():
            raise OcciError(f"url_filter.lists[{entry.name}].path: {source} is not a file; give a list of domains "
                            "or URLs, one a line")
        digest = _digest(source)
        target = folder / f"{digest}.npy"
        info_file = folder / f"{digest}.json"  # written after the array: the pair is complete when it exists
        if target.exists() and info_file.exists():
            info = json.loads(info_file.read_text(encoding="utf-8"))
        else:
            hashes = _hash_file(source)
            info = {"source": str(source), "entries": int(len(hashes))}
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp:
                    with open(tmp, "wb") as handle:
                        np.save(handle, hashes)
                atomic_write_json(info_file, info)
            except OSError as error:
                raise OcciError(f"url_filter.cache_dir: cannot write the compiled list {entry.name!r} to {folder} "
                                f"({error.strerror}); give a writable folder") from error
        compiled.append(CompiledList(entry.name, entry.kind, entry.path, info["entries"], target))
    return compiled


def _digest(source: Path) -> str:
    """SHA-256 of FORMAT and the file's bytes (as stored: a .gz list is hashed compressed)."""
    digest = hashlib.sha256(FORMAT)
    with open(source, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_file(source: Path) -> np.ndarray:
    """The sorted, distinct hashes of a list file's keys. Arrow's streaming CSV reader reads it as
    one column, 16 MB at a time: each block is normalised and hashed on its own, so memory holds
    one block and the hashes (4.5 million UT1 domains: 36 MB; read whole, the file took 0.8 GB)."""
    with open(source, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    parts = []
    with (gzip.open(source, "rb") if compressed else open(source, "rb")) as handle:
        reader = csv.open_csv(handle, read_options=csv.ReadOptions(column_names=["line"], block_size=1 << 24),
                              parse_options=csv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False,
                                                             newlines_in_values=False, ignore_empty_lines=True,
                                                             invalid_row_handler=lambda row: "skip"),
                              convert_options=csv.ConvertOptions(column_types={"line": pa.string()}))
        for batch in reader:
            keys = _normalize_entries(batch.column(0)).cast(pa.large_string())
            if len(keys):
                data = np.frombuffer(keys.buffers()[2], dtype=np.uint8)
                offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset:keys.offset + len(keys) + 1]
                parts.append(_hash_strings(data, offsets))
    hashes = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
    pa.default_memory_pool().release_unused()  # the blocks' memory goes back to the system, not to the pool
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
        found = url_parts(str(url))
        if found is None:
            return None
        host, path = found[0].encode("utf-8"), found[1].encode("utf-8")
        for name, hashes in self.lists:
            if len(hashes) and _listed(host, path, hashes):
                return name
        return None
