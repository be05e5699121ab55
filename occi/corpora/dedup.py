"""Deduplication within a language, across all shards: exact and MinHash LSH.

Per document (in the shard workers): a 128-bit hash of the normalised text, and the MinHash
signature of its word n-grams reduced to one 64-bit hash per LSH band. Per language: the first
document with a given exact hash is kept; then documents sharing any band hash are joined into
clusters and the first document of each cluster is kept. "First" is the order of the shard plan,
so the result does not depend on workers. The corpus is deduplicated in array phases with
bounded memory (dedup_stages.py); `find_duplicates` here is the same rule over all of a
language's documents in one process, the reference the staged version is tested against.
"""
from __future__ import annotations

import threading

import numpy as np
import xxhash
from numba import njit

from occi.corpora.config import DedupConfig
from occi.corpora.kernels import code_points, is_space, word_characters

_MERSENNE = np.uint64((1 << 61) - 1)


def exact_key(text: str) -> bytes:
    """128-bit hash of the text lower-cased with whitespace collapsed: of the UTF-8 bytes of
    " ".join(text.lower().split())."""
    lowered = _lowered(text)
    collapsed, surrogate = _collapsed_utf8(code_points(lowered))
    if surrogate:  # not UTF-8: raise as the plain version does
        lowered.encode("utf-8")
    return xxhash.xxh3_128_digest(collapsed)


def _lowered(text: str) -> str:
    """text.lower(), the last text's kept per thread as code_points keeps its array: the exact key
    and the MinHash of a kept document then share one lower-cased copy and its code points."""
    last = getattr(_last, "pair", None)
    if last is None or last[0] is not text:
        last = _last.pair = (text, text.lower())
    return last[1]


_last = threading.local()


class MinHasher:
    """Band hashes of a text's word n-gram MinHash signature."""

    def __init__(self, cfg: DedupConfig):
        self.n = cfg.ngram_size
        self.bands, self.rows = cfg.bands, cfg.rows
        rng = np.random.default_rng(cfg.seed)
        size = cfg.bands * cfg.rows
        self.a = rng.integers(1, 1 << 32, size=size, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 32, size=size, dtype=np.uint64)

    def shingles(self, text: str) -> np.ndarray:
        """32-bit hashes of the word n-grams (one n-gram of all words for short texts)."""
        return _shingles(code_points(_lowered(text)), word_characters(), self.n)

    def band_hashes(self, text: str) -> np.ndarray:
        """One uint64 per band."""
        signature = _signature(self.shingles(text), self.a, self.b)
        rows = signature.reshape(self.bands, self.rows)
        return np.array([xxhash.xxh3_64_intdigest(row.tobytes()) for row in rows], dtype=np.uint64)


# The MinHash kernels (numba). Words are the runs of `\w` characters of the lower-cased text, as
# re.findall(r"\w+") finds them (kernels.word_characters); every word is hashed with xxh32 of its
# UTF-8 bytes (seed 0, as xxhash.xxh32_intdigest), n hashes are combined into a shingle, and the
# signature is the minima of the shingles' permutations. tests/test_dedup.py checks them against
# xxhash and the plain numpy version on random and adversarial texts.

_PRIME32_1 = np.uint64(0x9E3779B1)
_PRIME32_2 = np.uint64(0x85EBCA77)
_PRIME32_3 = np.uint64(0xC2B2AE3D)
_PRIME32_4 = np.uint64(0x27D4EB2F)
_PRIME32_5 = np.uint64(0x165667B1)
_LOW32 = np.uint64(0xFFFFFFFF)


@njit(cache=True, nogil=True)
def _rotl32(value, bits):
    return ((value << np.uint64(bits)) | (value >> np.uint64(32 - bits))) & _LOW32


@njit(cache=True, nogil=True)
def _read32(data, at):
    """Four bytes, little-endian."""
    return (np.uint64(data[at]) | np.uint64(data[at + 1]) << np.uint64(8) | np.uint64(data[at + 2]) << np.uint64(16)
            | np.uint64(data[at + 3]) << np.uint64(24))


@njit(cache=True, nogil=True)
def _xxh32_round(lane, data, at):
    return _rotl32((lane + _read32(data, at) * _PRIME32_2) & _LOW32, 13) * _PRIME32_1 & _LOW32


@njit(cache=True, nogil=True)
def _xxh32(data, start, end):
    """xxHash32 with seed 0 of data[start:end] (32-bit arithmetic kept in uint64, masked)."""
    at = start
    if end - start >= 16:
        v1 = (_PRIME32_1 + _PRIME32_2) & _LOW32
        v2 = _PRIME32_2
        v3 = np.uint64(0)
        v4 = (np.uint64(1 << 32) - _PRIME32_1) & _LOW32
        while at + 16 <= end:
            v1 = _xxh32_round(v1, data, at)
            v2 = _xxh32_round(v2, data, at + 4)
            v3 = _xxh32_round(v3, data, at + 8)
            v4 = _xxh32_round(v4, data, at + 12)
            at += 16
        h = (_rotl32(v1, 1) + _rotl32(v2, 7) + _rotl32(v3, 12) + _rotl32(v4, 18)) & _LOW32
    else:
        h = _PRIME32_5
    h = (h + np.uint64(end - start)) & _LOW32
    while at + 4 <= end:
        h = _rotl32((h + _read32(data, at) * _PRIME32_3) & _LOW32, 17) * _PRIME32_4 & _LOW32
        at += 4
    while at < end:
        h = _rotl32((h + np.uint64(data[at]) * _PRIME32_5) & _LOW32, 11) * _PRIME32_1 & _LOW32
        at += 1
    h ^= h >> np.uint64(15)
    h = h * _PRIME32_2 & _LOW32
    h ^= h >> np.uint64(13)
    h = h * _PRIME32_3 & _LOW32
    return h ^ (h >> np.uint64(16))


@njit(cache=True, nogil=True)
def _utf8(point, out, at):
    """Writes the UTF-8 bytes of one code point at out[at:]; returns where they end."""
    if point < 0x80:
        out[at] = point
        return at + 1
    if point < 0x800:
        out[at] = 0xC0 | point >> 6
        out[at + 1] = 0x80 | point & 0x3F
        return at + 2
    if point < 0x10000:
        out[at] = 0xE0 | point >> 12
        out[at + 1] = 0x80 | point >> 6 & 0x3F
        out[at + 2] = 0x80 | point & 0x3F
        return at + 3
    out[at] = 0xF0 | point >> 18
    out[at + 1] = 0x80 | point >> 12 & 0x3F
    out[at + 2] = 0x80 | point >> 6 & 0x3F
    out[at + 3] = 0x80 | point & 0x3F
    return at + 4


@njit(cache=True, nogil=True)
def _collapsed_utf8(points):
    """The UTF-8 bytes of the words of str.split() joined by single spaces, and whether a lone
    surrogate (which UTF-8 cannot encode) was met."""
    out = np.empty(4 * len(points), dtype=np.uint8)
    end = 0
    surrogate = False
    at = 0
    while at < len(points):
        if is_space(points[at]):
            at += 1
            continue
        if end:
            out[end] = 32
            end += 1
        while at < len(points) and not is_space(points[at]):
            surrogate = surrogate or 0xD800 <= points[at] <= 0xDFFF
            end = _utf8(points[at], out, end)
            at += 1
    return out[:end], surrogate


@njit(cache=True, nogil=True)
def _shingles(points, is_word, n):
    """The shingles of the words (runs of code points marked in `is_word`) in `points`: per run of n words (one
    run of all words for shorter texts, a single 0 for none) the polynomial combination of their
    xxh32 hashes, wrapping in 64 bits, folded to 32 bits."""
    hashes = np.empty(len(points) // 2 + 1, dtype=np.uint64)
    word = np.empty(4 * len(points), dtype=np.uint8)  # one word's UTF-8 bytes at a time
    words = 0
    at = 0
    while at < len(points):
        if not is_word[points[at]]:
            at += 1
            continue
        end = 0
        while at < len(points) and is_word[points[at]]:
            end = _utf8(points[at], word, end)
            at += 1
        hashes[words] = _xxh32(word, 0, end)
        words += 1
    if words == 0:
        return np.zeros(1, dtype=np.uint64)
    n = min(n, words)
    count = words - n + 1
    shingles = np.empty(count, dtype=np.uint64)
    for i in range(count):
        combined = np.uint64(0)
        for offset in range(n):
            combined = combined * np.uint64(1_000_003) + hashes[i + offset]
        shingles[i] = (combined ^ (combined >> np.uint64(32))) & _LOW32
    return shingles


@njit(cache=True, nogil=True)
def _signature(shingles, a, b):
    """Per permutation k, the minimum over the shingles s of (a[k] * s + b[k]) mod 2^61 - 1
    (every term below 2^64: a, b and s are below 2^32)."""
    signature = np.full(len(a), np.iinfo(np.uint64).max, dtype=np.uint64)
    for s in shingles:
        for k in range(len(a)):
            x = s * a[k] + b[k]
            x = (x & _MERSENNE) + (x >> np.uint64(61))  # x mod 2^61 - 1, as 2^61 is 1 modulo it
            if x >= _MERSENNE:
                x -= _MERSENNE
            if x < signature[k]:
                signature[k] = x
    return signature


def find_duplicates(
    exact: list[bytes] | None, bands: np.ndarray | None, count: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which documents (in plan order) are exact and which near duplicates of an earlier one.

    `exact`: the exact keys (None: exact dedup off); `bands`: an (n_docs, n_bands) array of
    band hashes (None: near dedup off). Returns two boolean masks (a document counts once, as
    an exact duplicate if it is one) and, per document, the index of the document it
    duplicates (itself when kept). `count`: the number of documents, needed when both are None
    (with both off, no document is a duplicate).
    """
    n = len(exact) if exact is not None else (len(bands) if bands is not None else count or 0)
    is_exact = np.zeros(n, dtype=bool)
    original = np.arange(n)
    if exact is not None:
        first: dict[bytes, int] = {}
        for i, key in enumerate(exact):
            if key in first:
                is_exact[i] = True
                original[i] = first[key]
            else:
                first[key] = i
    is_near = np.zeros(n, dtype=bool)
    if bands is not None and n:
        candidates = np.flatnonzero(~is_exact)
        parent = np.arange(n)

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for band in range(bands.shape[1]):
            values = bands[candidates, band]
            order = np.argsort(values, kind="stable")
            sorted_values = values[order]
            same = np.flatnonzero(sorted_values[1:] == sorted_values[:-1])
            for k in same:
                a, b = root(candidates[order[k]]), root(candidates[order[k + 1]])
                if a != b:
                    parent[max(a, b)] = min(a, b)  # the earliest document is the root
        roots = np.array([root(i) for i in candidates], dtype=np.int64)
        is_near[candidates] = roots != candidates
        original[candidates] = roots
    return is_exact, is_near, original
