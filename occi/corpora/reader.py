"""Reading a built corpus, and the one rule that splits it into training and held-out text.

Later stages (tokenizer report, data preparation, evaluation) all hold out the same documents:
per language, the ones whose id hashes lowest, `fraction` of them (at least one when a language
has two or more documents, at most `max_docs`). The split depends only on the ids, so it is
stable across stages, re-runs and machines.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from occi.errors import OcciError
from occi.rundir import RunDir

Split = Literal["all", "train", "heldout"]
READ_BATCH = 2048  # documents read from Parquet at a time


@dataclass(frozen=True)
class HeldoutRule:
    fraction: float = 0.1
    """Share of each language's documents held out (the run's `heldout_fraction`)."""
    max_docs: int = 1000
    """At most this many held-out documents per language (the run's `heldout_max_docs`)."""

    def ids(self, ids: list[str]) -> set[str]:
        """The ids held out from training."""
        if len(ids) < 2 or self.fraction <= 0:
            return set()
        count = min(self.max_docs, max(1, math.floor(self.fraction * len(ids))))
        ranked = sorted(ids, key=lambda doc_id: (xxhash.xxh64_intdigest(doc_id.encode("utf-8")), doc_id))
        return set(ranked[:count])


def language_dir(run: RunDir, code: str) -> Path:
    """<run>/corpora/<code>, checked to exist (the corpora stage must have run)."""
    run.require("corpora")
    folder = run.corpus(code)
    if not folder.is_dir():
        raise OcciError(f"{folder}: no corpus for language {code!r}; is it in the run's `languages`?")
    return folder


def read_texts(run: RunDir, code: str, split: Split = "all",
               heldout: HeldoutRule = HeldoutRule()) -> Iterator[tuple[str, str]]:
    """(id, text) of one language's corpus, in corpus order, restricted to `split`."""
    for batch in read_batches(run, code, split, heldout):
        yield from zip(batch.column("id").to_pylist(), batch.column("text").to_pylist())


def read_batches(run: RunDir, code: str, split: Split = "all", heldout: HeldoutRule = HeldoutRule(),
                 batch_size: int = READ_BATCH) -> Iterator[pa.RecordBatch]:
    """The same documents as Arrow batches of `id` and `text`, `batch_size` documents or fewer
    each (batch by batch, so memory does not grow with a part's size)."""
    parts = sorted(language_dir(RunDir.of(run), code).glob("part-*.parquet"))
    held = pa.array([], type=pa.string())
    if split != "all":
        ids = [i for part in parts for i in pq.read_table(part, columns=["id"]).column("id").to_pylist()]
        held = pa.array(sorted(heldout.ids(ids)), type=pa.string())
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=batch_size, columns=["id", "text"]):
            if split != "all":
                is_held = pc.is_in(batch.column("id"), value_set=held)
                batch = batch.filter(is_held if split == "heldout" else pc.invert(is_held))
            if batch.num_rows:
                yield batch
