"""Reading a built corpus, and the one rule that splits it into training and held-out text.

Later stages (tokenizer report, data preparation, evaluation) all hold out the same documents:
per language, the ones whose id hashes lowest, `heldout_fraction` of them (at least one when a
language has two or more documents, at most `heldout_max_docs`). The split depends only on the
ids, so it is stable across stages, re-runs and machines.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from occi.errors import OcciError

Split = Literal["all", "train", "heldout"]
READ_BATCH = 2048  # documents read from Parquet at a time


def language_dir(run_dir: Path, code: str) -> Path:
    """<run>/corpora/<code>, checked to exist (the corpora stage must have run)."""
    folder = Path(run_dir) / "corpora" / code
    if not (Path(run_dir) / "corpora" / "_DONE").exists():
        raise OcciError(f"{Path(run_dir) / 'corpora'}: the corpora stage has not completed; run `occi corpora build` first")
    if not folder.is_dir():
        raise OcciError(f"{folder}: no corpus for language {code!r}; is it in the run's `languages`?")
    return folder


def heldout_ids(ids: list[str], fraction: float, max_docs: int) -> set[str]:
    """The ids held out from training under the run's rule."""
    if len(ids) < 2 or fraction <= 0:
        return set()
    count = min(max_docs, max(1, math.floor(fraction * len(ids))))
    ranked = sorted(ids, key=lambda doc_id: (xxhash.xxh64_intdigest(doc_id.encode("utf-8")), doc_id))
    return set(ranked[:count])


def read_texts(run_dir: Path, code: str, split: Split = "all", fraction: float = 0.1,
               max_docs: int = 1000) -> Iterator[tuple[str, str]]:
    """(id, text) of one language's corpus, in corpus order, restricted to `split`."""
    for batch in read_batches(run_dir, code, split, fraction, max_docs):
        yield from zip(batch.column("id").to_pylist(), batch.column("text").to_pylist())


def read_batches(run_dir: Path, code: str, split: Split = "all", fraction: float = 0.1,
                 max_docs: int = 1000, batch_size: int = READ_BATCH) -> Iterator[pa.RecordBatch]:
    """The same documents as Arrow batches of `id` and `text`, `batch_size` documents or fewer
    each (batch by batch, so memory does not grow with a part's size)."""
    parts = sorted(language_dir(run_dir, code).glob("part-*.parquet"))
    held = pa.array([], type=pa.string())
    if split != "all":
        ids = [i for part in parts for i in pq.read_table(part, columns=["id"]).column("id").to_pylist()]
        held = pa.array(sorted(heldout_ids(ids, fraction, max_docs)), type=pa.string())
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_size, columns=["id", "text"]):
            if split != "all":
                is_held = pc.is_in(batch.column("id"), value_set=held)
                batch = batch.filter(is_held if split == "heldout" else pc.invert(is_held))
            if batch.num_rows:
                yield batch
