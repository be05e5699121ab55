"""The word cache's index for occi/data/encoder.py: words (UTF-8 bytes) -> slots, compiled with numba.

Looking up a batch's distinct words in a Python dict needs each of them made a Python string
first; here they are looked up straight from the bytes of the Arrow array that holds them, and
only the words not found become Python strings (for the encoder). Open addressing over a table
of at least twice the words it may hold; each word's bytes are kept, so a look-up compares bytes
and a hash collision never maps a word to another word's slot.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
FREE = -1
HASH, START, LENGTH, SLOT = 0, 1, 2, 3  # the columns of WordTable.table


class WordTable:
    """Up to `capacity` words, each with the slot the encoder gave it."""

    def __init__(self, capacity: int):
        size = 16
        while size < 2 * capacity:
            size *= 2
        self.capacity = capacity
        # per position: the word's hash, where its bytes start in `text`, their length and its slot
        # (FREE: no word), side by side so that a probe reads one cache line
        self.table = np.zeros((size, 4), dtype=np.int64)
        self.table[:, SLOT] = FREE
        self.text = np.zeros(1 << 16, dtype=np.uint8)
        self.used = 0  # bytes of `text` in use
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def lookup(self, words: pa.Array) -> np.ndarray:
        """Each word's slot, -1 where it is not in the table."""
        data, offsets = utf8_buffers(words)
        return _lookup(self.table, self.text, data, offsets)

    def add(self, words: pa.Array, rows: np.ndarray, slots: np.ndarray) -> None:
        """Adds words[rows] (not in the table yet) with their slots; no more than the room left."""
        if self.count + len(rows) > self.capacity:
            raise ValueError(f"{len(rows)} words do not fit in the {self.capacity - self.count} entries left")
        data, offsets = utf8_buffers(words)
        rows = np.asarray(rows, dtype=np.int64)
        size = int((offsets[rows + 1] - offsets[rows]).sum())
        if self.used + size > len(self.text):
            grown = np.zeros(max(self.used + size, 2 * len(self.text)), dtype=np.uint8)
            grown[:self.used] = self.text[:self.used]
            self.text = grown
        added, self.used = _add(self.table, self.text, self.used, data, offsets, rows, np.asarray(slots, dtype=np.int64))
        self.count += added


def utf8_buffers(words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(the UTF-8 bytes, the offsets of each word in them) of a string or large_string array."""
    _, offsets, data = words.buffers()
    if offsets is None:  # an empty array may have no offsets at all
        return np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)
    offsets = np.frombuffer(offsets, dtype=np.int64 if words.type == pa.large_string() else np.int32)
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return data, offsets[words.offset:words.offset + len(words) + 1].astype(np.int64)


@njit(cache=True, nogil=True)
def _hash(data, start, stop):
    h = _FNV_OFFSET
    for j in range(start, stop):
        h = (h ^ np.uint64(data[j])) * _FNV_PRIME
    return np.int64(h ^ (h >> np.uint64(29)))  # the low bits pick the position: fold the high ones in


@njit(cache=True, nogil=True)
def _find(table, text, h, data, start, stop):
    """The position that holds data[start:stop], or the free one where it would go."""
    mask = table.shape[0] - 1
    position = h & mask
    while table[position, SLOT] != FREE:
        if table[position, HASH] == h and table[position, LENGTH] == stop - start:
            begin = table[position, START]
            same = True
            for j in range(stop - start):
                if text[begin + j] != data[start + j]:
                    same = False
                    break
            if same:
                return position
        position = (position + 1) & mask
    return position


@njit(cache=True, nogil=True)
def _lookup(table, text, data, offsets):
    found = np.empty(offsets.size - 1, dtype=np.int64)
    for i in range(offsets.size - 1):
        position = _find(table, text, _hash(data, offsets[i], offsets[i + 1]), data, offsets[i], offsets[i + 1])
        found[i] = table[position, SLOT]  # FREE (-1) where not found
    return found


@njit(cache=True, nogil=True)
def _add(table, text, used, data, offsets, rows, slots):
    added = 0
    for k in range(rows.size):
        start, stop = offsets[rows[k]], offsets[rows[k] + 1]
        h = _hash(data, start, stop)
        position = _find(table, text, h, data, start, stop)
        if table[position, SLOT] != FREE:  # a word given twice keeps its first slot
            continue
        text[used:used + stop - start] = data[start:stop]
        table[position, HASH], table[position, START], table[position, LENGTH] = h, used, stop - start
        table[position, SLOT] = slots[k]
        used += stop - start
        added += 1
    return added, used
