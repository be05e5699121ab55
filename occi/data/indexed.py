"""Writing megatron's indexed dataset (.bin + .idx) without importing megatron-core.

Importing megatron-core's IndexedDatasetBuilder imports torch and most of megatron-core (about
4.5 s), longer than tokenizing tens of megabytes; so `occi data prepare` writes the same two
files itself. tests/test_train.py checks that they are byte for byte what megatron-core's
builder writes for the same documents, and training reads them with megatron-core.

The .bin file holds the tokens of every document one after the other. The .idx file: the
header b"MMIDIDX\\x00\\x00", version 1 (<Q), the token dtype's code (<B), the number of
sequences (<Q) and of document indices (<Q), then each sequence's length (int32), its byte
offset in the .bin file (int64), and the document indices (int64: after document k, k + 1
sequences have been written; one sequence per document here).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

HEADER = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.float64: 6, np.float32: 7,
               np.uint16: 8}


class IndexedDatasetWriter:
    """Appends documents to a .bin file and writes the matching .idx at the end."""

    def __init__(self, bin_path: Path, dtype: type):
        if dtype not in DTYPE_CODES:
            raise ValueError(f"unsupported token dtype {dtype}")
        self.dtype = dtype
        self.data_file = open(bin_path, "wb")
        self.lengths: list[np.ndarray] = []

    def add_documents(self, tokens: np.ndarray, lengths: np.ndarray, eod_id: int) -> int:
        """Appends documents, given as all their tokens one after the other and each one's length,
        each followed by the end-of-document token; returns the tokens written."""
        documents = np.insert(tokens.astype(self.dtype, copy=False), np.cumsum(lengths), eod_id)
        self.data_file.write(documents.tobytes(order="C"))
        self.lengths.append((np.asarray(lengths) + 1).astype(np.int32))
        return int(documents.size)

    def finalize(self, idx_path: Path) -> None:
        self.data_file.close()
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, dtype=np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], dtype=np.int64, out=pointers[1:])
        pointers *= np.dtype(self.dtype).itemsize
        document_indices = np.arange(len(lengths) + 1, dtype=np.int64)
        with open(idx_path, "wb") as index:
            index.write(HEADER)
            index.write(struct.pack("<Q", VERSION))
            index.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            index.write(struct.pack("<Q", len(lengths)))
            index.write(struct.pack("<Q", len(document_indices)))
            index.write(lengths.tobytes(order="C"))
            index.write(pointers.tobytes(order="C"))
            index.write(document_indices.tobytes(order="C"))
