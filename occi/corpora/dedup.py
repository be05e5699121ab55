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

import re

import numpy as np
import xxhash

from occi.corpora.config import DedupConfig

_WORD = re.compile(r"\w+")
_MERSENNE = np.uint64((1 << 61) - 1)
_CHUNK = 2048  # shingles hashed at once: bounds memory for very long documents


def exact_key(text: str) -> bytes:
    """128-bit hash of the text lower-cased with whitespace collapsed."""
    return xxhash.xxh3_128_digest(" ".join(text.lower().split()).encode("utf-8"))


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
        words = _WORD.findall(text.lower())
        if not words:
            return np.zeros(1, dtype=np.uint64)
        hashes = np.fromiter((xxhash.xxh32_intdigest(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words))
        n = min(self.n, len(hashes))
        count = len(hashes) - n + 1
        combined = np.zeros(count, dtype=np.uint64)
        for offset in range(n):  # polynomial rolling combination, wrapping in 64 bits
            combined = combined * np.uint64(1_000_003) + hashes[offset:offset + count]
        return (combined ^ (combined >> np.uint64(32))) & np.uint64(0xFFFFFFFF)

    def band_hashes(self, text: str) -> np.ndarray:
        """One uint64 per band."""
        shingles = self.shingles(text)
        signature = np.full(self.a.shape, np.iinfo(np.uint64).max, dtype=np.uint64)
        for start in range(0, len(shingles), _CHUNK):
            chunk = shingles[start:start + _CHUNK, None]
            np.minimum(signature, ((chunk * self.a + self.b) % _MERSENNE).min(axis=0), out=signature)
        rows = signature.reshape(self.bands, self.rows)
        return np.array([xxhash.xxh3_64_intdigest(row.tobytes()) for row in rows], dtype=np.uint64)


def find_duplicates(
    exact: list[bytes] | None, bands: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which documents (in plan order) are exact and which near duplicates of an earlier one.

    `exact`: the exact keys (None: exact dedup off); `bands`: an (n_docs, n_bands) array of
    band hashes (None: near dedup off). Returns two boolean masks (a document counts once, as
    an exact duplicate if it is one) and, per document, the index of the document it
    duplicates (itself when kept).
    """
    n = len(exact) if exact is not None else (len(bands) if bands is not None else 0)
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
