"""Deduplication in stages, each one an array of independent tasks with bounded memory.

The way it is done at web scale (signatures -> buckets -> clusters -> filter):
1. keys (in the shard workers): each shard writes its documents' band hashes and exact keys,
   sorted by partition, into <shard>/near.npy and <shard>/exact.npy with an offset index. A
   partition is (language, band, hash range) for band hashes and (language, hash range) for
   exact keys. A document is named by its shard's position in the plan and its row there
   (`shard << 32 | row`), so sorting names sorts by plan order.
2. buckets (one task per share of the partitions): the partition's slice of every shard's
   file, sorted; records with equal hashes become (document, first document of the group)
   pairs. Memory: one partition.
3. clusters (one task per language): union of the language's pairs (connected components,
   by label propagation in numpy), memory proportional to the duplicates, not the documents;
   then, per shard, the rows to drop, why, and which document each duplicates.
4. write (one task per shard, in build.py): the shard's kept rows minus its drop list.

The result is that of `dedup.find_duplicates` over all of a language's documents at once: an
exact duplicate has the same words, so the same band hashes, as the document it repeats;
counting it in the near-duplicate graph joins nothing that was not joined already, and the
earliest document of a cluster is never an exact duplicate.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from occi.corpora.config import DedupConfig
from occi.fsutil import atomic_path

NEAR = np.dtype([("hash", "<u8"), ("doc", "<u8")])
EXACT = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("doc", "<u8")])
DROPS = np.dtype([("doc", "<u8"), ("original", "<u8"), ("reason", "u1")])
REASONS = {1: "exact_duplicate", 2: "near_duplicate"}
ROW_BITS = 32


def doc_names(shard: int, rows: int) -> np.ndarray:
    return (np.uint64(shard) << np.uint64(ROW_BITS)) | np.arange(rows, dtype=np.uint64)


def shard_of(docs: np.ndarray) -> np.ndarray:
    return (docs >> np.uint64(ROW_BITS)).astype(np.int64)


def row_of(docs: np.ndarray) -> np.ndarray:
    return (docs & np.uint64((1 << ROW_BITS) - 1)).astype(np.int64)


def hash_range(values: np.ndarray, ranges: int) -> np.ndarray:
    """Which of `ranges` equal ranges of the 64-bit space each hash falls in (top bits)."""
    return (((values >> np.uint64(32)) * np.uint64(ranges)) >> np.uint64(32)).astype(np.int64)


@dataclass(frozen=True)
class Partition:
    kind: str
    """"near" (band hashes of one language and band) or "exact" (exact keys of one language)."""
    index: int
    """Its index among the partitions of its kind: (language * bands + band) * ranges + range, or
    language * ranges + range."""
    language: str
    """The language whose documents it holds."""

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index:06d}"


def partitions(cfg: DedupConfig, languages: list[str]) -> list[Partition]:
    """Every partition, interleaved so that a share of them (every k-th) mixes languages and kinds."""
    near = [Partition("near", i, languages[i // (cfg.bands * cfg.hash_ranges)])
            for i in range(len(languages) * cfg.bands * cfg.hash_ranges)] if cfg.near else []
    exact = [Partition("exact", i, languages[i // cfg.hash_ranges])
             for i in range(len(languages) * cfg.hash_ranges)] if cfg.exact else []
    return near + exact


# ---------------------------------------------------------------------------- 1. keys

def write_keys(kept: Path, folder: Path, shard: int, cfg: DedupConfig, languages: list[str]) -> None:
    """<folder>/{near,exact}.npy and their .index.npy (partition offsets) from a shard's kept.parquet."""
    table = pq.read_table(kept, columns=["language", "exact", "bands"])
    docs = doc_names(shard, table.num_rows)
    language = np.array([languages.index(code) for code in table.column("language").to_pylist()], dtype=np.int64)
    ranges = cfg.hash_ranges
    if cfg.near:
        width = cfg.bands
        bands = pc.list_flatten(table.column("bands")).to_numpy().astype(np.uint64).reshape(table.num_rows, width)
        band = np.broadcast_to(np.arange(width), bands.shape)
        keys = ((language[:, None] * width + band) * ranges + hash_range(bands, ranges)).ravel()
        records = np.empty(bands.size, dtype=NEAR)
        records["hash"], records["doc"] = bands.ravel(), np.repeat(docs, width)
        _save_partitioned(folder / "near", records, keys, len(languages) * width * ranges)
    if cfg.exact:
        raw = b"".join(table.column("exact").to_pylist())
        halves = np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(table.num_rows, 2)
        records = np.empty(table.num_rows, dtype=EXACT)
        records["hi"], records["lo"], records["doc"] = halves[:, 0], halves[:, 1], docs
        _save_partitioned(folder / "exact", records, language * ranges + hash_range(halves[:, 0], ranges),
                          len(languages) * ranges)


def _save_partitioned(stem: Path, records: np.ndarray, keys: np.ndarray, count: int) -> None:
    order = np.argsort(keys, kind="stable")  # rows stay in plan order within a partition
    index = np.searchsorted(keys[order], np.arange(count + 1)).astype(np.int64)
    _save(stem.with_suffix(".npy"), records[order])
    _save(stem.with_suffix(".index.npy"), index)


def _save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        np.save(file, array)


class KeyFiles:
    """The shards' key files, and where this task's partitions start and end in each (read once,
    through memory maps: shards x this task's partitions x 16 bytes, not every shard's index)."""

    def __init__(self, shard_folders: list[Path], partitions: list[Partition]):
        self.folders = shard_folders
        self._maps: dict[tuple[Path, str], np.ndarray] = {}
        self.bounds: dict[Partition, list[tuple[int, int]]] = {p: [] for p in partitions}
        for kind in {p.kind for p in partitions}:
            mine = [p for p in partitions if p.kind == kind]
            numbers = np.array([p.index for p in mine])
            for folder in shard_folders:
                index = np.load(folder / f"{kind}.index.npy", mmap_mode="r")
                starts, ends = np.asarray(index[numbers]), np.asarray(index[numbers + 1])
                for partition, start, end in zip(mine, starts.tolist(), ends.tolist()):
                    self.bounds[partition].append((start, end))


    def records(self, folder: Path, kind: str) -> np.ndarray:
        """A shard's key file of that kind, memory-mapped once per task."""
        if (folder, kind) not in self._maps:
            self._maps[folder, kind] = np.load(folder / f"{kind}.npy", mmap_mode="r")
        return self._maps[folder, kind]


def read_partition(keys: KeyFiles, partition: Partition) -> np.ndarray:
    """The partition's records from every shard, in plan order (memory-mapped reads of slices)."""
    slices = []
    for folder, (start, end) in zip(keys.folders, keys.bounds[partition]):
        if end > start:
            slices.append(np.array(keys.records(folder, partition.kind)[start:end]))
    dtype = NEAR if partition.kind == "near" else EXACT
    return np.concatenate(slices) if slices else np.empty(0, dtype=dtype)


# ---------------------------------------------------------------------------- 2. buckets

def pairs_of(records: np.ndarray) -> np.ndarray:
    """(document, first document with the same key) for every record whose key was seen before;
    an (n, 2) uint64 array, without a Python loop over records."""
    fields = ("hash",) if "hash" in records.dtype.names else ("hi", "lo")
    order = np.lexsort([records["doc"], *(records[f] for f in reversed(fields))])
    docs = records["doc"][order]
    if len(docs) < 2:
        return np.empty((0, 2), dtype=np.uint64)
    same = np.ones(len(docs) - 1, dtype=bool)
    for f in fields:
        values = records[f][order]
        same &= values[1:] == values[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    group_start = np.repeat(starts, np.diff(np.append(starts, len(docs))))
    repeat = np.flatnonzero(np.concatenate(([False], same)))
    return np.stack([docs[repeat], docs[group_start[repeat]]], axis=1)


def bucket(keys: KeyFiles, partition: Partition, pairs_dir: Path) -> int:
    """Writes <pairs_dir>/<partition>.npy; returns how many pairs it holds."""
    pairs = pairs_of(read_partition(keys, partition))
    _save(pairs_dir / f"{partition.name}.npy", pairs)
    return len(pairs)


# ---------------------------------------------------------------------------- 3. clusters

def components(left: np.ndarray, right: np.ndarray, count: int) -> np.ndarray:
    """Per node (0..count-1), the smallest node of its connected component, for edges left-right.

    Vectorised union-find: each round hooks the larger root of every edge whose ends still differ
    under the smaller one, then compresses every path (pointer jumping); O(log n) rounds."""
    label = np.arange(count)
    while True:
        low, high = np.minimum(label[left], label[right]), np.maximum(label[left], label[right])
        differ = low != high
        if not differ.any():
            return label
        np.minimum.at(label, high[differ], low[differ])  # roots only: whole trees merge at once
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def drops_of(near_pairs: np.ndarray, exact_pairs: np.ndarray) -> np.ndarray:
    """The documents to drop (DROPS records sorted by document) from a language's pairs."""
    documents = np.unique(np.concatenate([near_pairs.ravel(), exact_pairs.ravel()]))
    if not len(documents):
        return np.empty(0, dtype=DROPS)
    near = np.searchsorted(documents, near_pairs)
    root = documents[components(near[:, 0], near[:, 1], len(documents))]
    drops = np.zeros(len(documents), dtype=DROPS)
    drops["doc"] = documents
    is_near = root != documents
    drops["original"][is_near], drops["reason"][is_near] = root[is_near], 2
    exact = np.searchsorted(documents, exact_pairs[:, 0])
    drops["original"][exact], drops["reason"][exact] = exact_pairs[:, 1], 1  # an exact duplicate counts as one
    return drops[drops["reason"] > 0]


def cluster(pair_files: list[Path], out_dir: Path, kept_files: list[Path] | None) -> int:
    """Writes <out_dir>/shard-NNNNN.npy (drop records) for every shard with drops, and, with
    `kept_files` (the shards' kept.parquet, to name originals by id), shard-NNNNN.ids.parquet.
    Returns the number of documents dropped."""
    near = [np.load(p) for p in pair_files if p.name.startswith("near-")]
    exact = [np.load(p) for p in pair_files if p.name.startswith("exact-")]
    empty = np.empty((0, 2), dtype=np.uint64)
    drops = drops_of(np.concatenate(near) if near else empty, np.concatenate(exact) if exact else empty)
    shards = shard_of(drops["doc"])
    bounds = np.flatnonzero(np.diff(shards)) + 1
    for part in np.split(drops, bounds) if len(drops) else []:
        shard = int(shard_of(part["doc"][:1])[0])
        _save(out_dir / f"shard-{shard:05d}.npy", part)
        if kept_files is not None:
            with atomic_path(out_dir / f"shard-{shard:05d}.ids.parquet") as tmp:
                pq.write_table(pa.table({"original_id": _ids_of(part["original"], kept_files)}), tmp)
    return len(drops)


def _ids_of(docs: np.ndarray, kept_files: list[Path]) -> list[str]:
    """The id column's values of the given documents, reading one shard's ids at a time."""
    ids = np.empty(len(docs), dtype=object)
    shards = shard_of(docs)
    for shard in np.unique(shards):
        where = np.flatnonzero(shards == shard)
        column = pq.read_table(kept_files[shard], columns=["id"]).column("id")
        ids[where] = column.take(pa.array(row_of(docs[where]))).to_pylist()
    return ids.tolist()
