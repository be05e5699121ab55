"""The Parquet files of the corpora stage: their schemas and the writers that keep memory flat."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DOCS_PER_PART = 100_000
OUTPUT_SCHEMA = pa.schema([
    ("text", pa.string()), ("id", pa.string()), ("source", pa.string()), ("language", pa.string()),
    ("language_score", pa.float32()), ("metadata", pa.string()),
])
DROPPED_SCHEMA = pa.schema([
    ("text", pa.string()), ("id", pa.string()), ("source", pa.string()), ("language", pa.string()),
    ("step", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
])
# a filtered shard's rows: the output columns plus the dedup keys the second phase needs
KEPT_SCHEMA = pa.schema(list(OUTPUT_SCHEMA) + [
    ("exact", pa.binary(16)), ("bands", pa.list_(pa.uint64())), ("n_bytes", pa.int64()), ("n_words", pa.int64()),
])


# Columns with few distinct values get Parquet's dictionary encoding; for text, ids and hashes it
# only costs time (pyarrow tries it per column by default: 4x the writing time of the texts).
_DICTIONARY_COLUMNS = ("source", "language", "step", "reason", "detail")


def parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, schema, use_dictionary=[c for c in schema.names if c in _DICTIONARY_COLUMNS])


class StreamingTable:
    """Rows appended one by one and written to Parquet in row groups, so memory stays flat."""

    ROWS_PER_GROUP = 2000

    def __init__(self, path: Path, schema: pa.Schema):
        self.schema = schema
        self.writer = parquet_writer(path, schema)
        self.pending = Columns(schema.names)

    def append(self, **row) -> None:
        self.pending.append(**row)
        if len(self.pending) >= self.ROWS_PER_GROUP:
            self.flush()

    def flush(self) -> None:
        if len(self.pending):
            self.writer.write_table(self.pending.table(self.schema))
            self.pending = Columns(self.schema.names)

    def close(self) -> None:
        """Writes what is pending and closes the file (before the atomic rename)."""
        if self.writer is not None:
            self.flush()
            self.writer.close()
            self.writer = None


class Columns:
    """Rows collected column by column, then turned into one Arrow table."""

    def __init__(self, names: list[str]):
        self.columns: dict[str, list] = {name: [] for name in names}

    def append(self, **row) -> None:
        for name, values in self.columns.items():
            values.append(row.get(name))

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def table(self, schema: pa.Schema) -> pa.Table:
        return pa.table({name: self.columns[name] for name in schema.names}, schema=schema)


class PartWriter:
    """Writes <prefix>00000.parquet, <prefix>00001.parquet, ... of at most DOCS_PER_PART rows."""

    def __init__(self, folder: Path, prefix: str = "part-"):
        self.folder = folder
        self.prefix = prefix
        self.part = 0
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self.writer is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.writer = parquet_writer(self.folder / f"{self.prefix}{self.part:05d}.parquet", OUTPUT_SCHEMA)
            take = min(table.num_rows, DOCS_PER_PART - self.rows)
            self.writer.write_table(table.slice(0, take))
            self.rows += take
            table = table.slice(take)
            if self.rows >= DOCS_PER_PART:
                self.close()
                self.part += 1
                self.rows = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
