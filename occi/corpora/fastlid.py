"""fastText's supervised prediction, compiled: the binding's labels and probabilities, bit for bit.

Language ID is the largest cost of the corpora stage's shard workers; the fastText binding spends
most of it building strings (each word, each character n-gram) and looking them up in hash maps.
Here the model file is read once into arrays and one numba-compiled function does what the
binding's `predict(text, k)` does, in the same order and the same float32 arithmetic:

- the line is split into words on fastText's seven separators and ends with its end-of-line
  token; a word of the vocabulary brings its own input row, every word that is not a label brings
  the rows of its character n-grams (FNV-1a hashes of "<word>" pieces, minn to maxn characters,
  modulo the bucket count, through the pruning table of a quantized model), then the word
  n-grams' rows when the model has them;
- the hidden vector is those rows added one after the other, times float(1 / count);
- hierarchical softmax: the depth-first search over the Huffman tree built from the label counts,
  log(p + 1e-5) summed from the root, branches below log(threshold + 1e-5) or below the k-th best
  so far dropped, the k best kept in a heap that behaves as libstdc++'s (ties come out in the
  binding's order); softmax: exp, normalise, the same heap;
- probabilities are expf(score).

A quantized input matrix is decoded into float32 rows at load (norm x centroid, the product the
binding rounds before adding it). Models this does not reproduce (an unsupervised model, the ns
and ova losses, a quantized output matrix) get a reason from `unsupported`, and the caller keeps
the binding. tests/test_fastlid.py checks equality with the binding on lid.176.ftz and on small
model files of every supported kind written by the test.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

MAGIC = 793712314
NEWEST_VERSION = 12
LABEL_PREFIX = b"__label__"  # not stored in model files: the binding reads every file with the default
EOS = b"</s>"
HIERARCHICAL_SOFTMAX, SOFTMAX = 1, 3
_LOSSES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
_SUPERVISED = 3


class ModelFileError(ValueError):
    """The file is not a fastText model this module can read."""


@dataclass
class InputMatrix:
    """The input matrix as the compiled sum reads it: dense float32 rows, or a product-quantized
    matrix kept quantized (codes, a norm code per row, centroids), which is a few hundred KB
    instead of several MB and so stays in the cache between documents. Exactly one of `rows`
    and `codes` has rows."""

    rows: np.ndarray
    """(rows, dim) float32, or (0, dim) when quantized."""
    codes: np.ndarray
    """(rows, subquantizers) uint8 centroid codes, or (0, 1) when dense."""
    norm_codes: np.ndarray
    """A norm code per row (all 0 without quantized norms)."""
    norm_table: np.ndarray
    """256 float32 norms (all 1 without quantized norms)."""
    centroids: np.ndarray
    """(subquantizers, 256, sub_dim) float32; the last subquantizer's may be narrower (zero-padded)."""
    sub_dim: int

    @property
    def count(self) -> int:
        return max(len(self.rows), len(self.codes))


@dataclass
class FastTextModel:
    """What prediction needs from a fastText model file, as arrays."""

    dim: int
    minn: int
    maxn: int
    bucket: int
    word_ngrams: int
    loss: int
    """1 hierarchical softmax, 3 softmax (2 ns and 4 ova are not reproduced)."""
    model: int
    """3: supervised (1 cbow and 2 skip-gram models have no labels)."""
    quantized_output: bool
    entries: list[bytes]
    """The dictionary: words (ids below `nwords`), then labels."""
    is_label: np.ndarray
    nwords: int
    label_counts: np.ndarray
    prune_size: int
    """-1: no pruning; 0: every n-gram pruned; else the size of the pruning table."""
    prune: np.ndarray
    """bucket -> row among the n-gram rows, -1 where pruned (empty without pruning)."""
    input_matrix: InputMatrix
    output_rows: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [e.decode("utf-8", "replace") for e, label in zip(self.entries, self.is_label) if label]


def unsupported(model: FastTextModel) -> str | None:
    """Why `CompiledFastText` cannot reproduce this model's predictions (None: it can)."""
    if model.model != _SUPERVISED:
        return "not a supervised model"
    if model.loss not in (HIERARCHICAL_SOFTMAX, SOFTMAX):
        return f"loss {_LOSSES.get(model.loss, model.loss)} (only hs and softmax are reproduced)"
    if model.quantized_output:
        return "quantized output matrix"
    if len(model.label_counts) < (2 if model.loss == HIERARCHICAL_SOFTMAX else 1):
        return "too few labels"
    if model.maxn > 0 and model.bucket <= 0:
        return "character n-grams without buckets"
    return None


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelFileError(f"{self.path}: truncated fastText model file")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def array(self, dtype, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if count < 0 or self.pos + size > len(self.data):
            raise ModelFileError(f"{self.path}: truncated fastText model file")
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return values

    def cstring(self) -> bytes:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ModelFileError(f"{self.path}: truncated fastText model file")
        value = self.data[self.pos:end]
        self.pos = end + 1
        return value


def read_model(path: str | Path) -> FastTextModel:
    """Reads a fastText .bin or .ftz file (the layout of fastText 0.9's saveModel)."""
    path = Path(path)
    reader = _Reader(path.read_bytes(), path)
    magic, version = reader.take("<ii")
    if magic != MAGIC or version > NEWEST_VERSION:
        raise ModelFileError(f"{path}: not a fastText model file (magic {magic}, version {version})")
    dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lr_rate, _t = \
        reader.take("<12id")
    if version == 11 and model == _SUPERVISED:
        maxn = 0  # what fastText does with old supervised models: no character n-grams
    size, nwords, _nlabels, _ntokens, prune_size = reader.take("<iiiqq")
    entries, is_label, counts = [], np.zeros(size, dtype=np.bool_), []
    for i in range(size):
        entries.append(reader.cstring())
        count, kind = reader.take("<qb")
        is_label[i] = kind == 1
        if kind == 1:
            counts.append(count)
    prune = np.zeros(0, dtype=np.int32)
    if prune_size >= 0:
        pairs = reader.array("<i4", 2 * prune_size).reshape(-1, 2)
        prune = np.full(max(bucket, 1), -1, dtype=np.int32)
        prune[pairs[:, 0]] = pairs[:, 1]
    quantized_input = reader.take("<?")
    input_matrix = _quantized_matrix(reader, dim) if quantized_input else _dense_matrix(_dense_rows(reader))
    quantized_output = reader.take("<?")
    output_rows = np.zeros((0, dim), dtype=np.float32) if quantized_input and quantized_output else _dense_rows(reader)
    if input_matrix.count < nwords or input_matrix.rows.shape[1] != dim or output_rows.shape[1] != dim:
        raise ModelFileError(f"{path}: matrix width differs from the model's dimension {dim}")
    return FastTextModel(
        dim=dim, minn=minn, maxn=maxn, bucket=bucket, word_ngrams=word_ngrams, loss=loss, model=model,
        quantized_output=bool(quantized_input and quantized_output), entries=entries, is_label=is_label,
        nwords=nwords, label_counts=np.array(counts, dtype=np.int64), prune_size=int(prune_size), prune=prune,
        input_matrix=input_matrix, output_rows=np.ascontiguousarray(output_rows))


def _dense_rows(reader: _Reader) -> np.ndarray:
    rows, cols = reader.take("<qq")
    return reader.array("<f4", rows * cols).reshape(rows, cols).astype(np.float32)


def _dense_matrix(rows: np.ndarray) -> InputMatrix:
    return InputMatrix(rows=np.ascontiguousarray(rows), codes=np.zeros((0, 1), dtype=np.uint8),
                       norm_codes=np.zeros(0, dtype=np.uint8), norm_table=np.ones(256, dtype=np.float32),
                       centroids=np.zeros((1, 256, 1), dtype=np.float32), sub_dim=1)


def _quantized_matrix(reader: _Reader, dim: int) -> InputMatrix:
    """A product-quantized matrix (fastText's QuantMatrix): each row is, per subquantizer, the
    centroid its code names, times the row's norm."""
    qnorm, rows, cols, code_size = reader.take("<?qqi")
    if cols != dim:
        raise ModelFileError(f"{reader.path}: matrix width {cols} differs from the model's dimension {dim}")
    codes = reader.array("u1", code_size)
    flat, subquantizers, sub_dim, last_sub_dim = _product_quantizer(reader)
    norm_codes, norm_table = np.zeros(rows, dtype=np.uint8), np.ones(256, dtype=np.float32)
    if qnorm:
        norm_codes = reader.array("u1", rows).copy()
        norm_table = _product_quantizer(reader)[0][:256].copy()  # one subquantizer of width 1
    centroids = np.zeros((subquantizers, 256, sub_dim), dtype=np.float32)
    for m in range(subquantizers):
        if m == subquantizers - 1:
            block = flat[m * 256 * sub_dim:m * 256 * sub_dim + 256 * last_sub_dim]
            centroids[m, :, :last_sub_dim] = block.reshape(256, last_sub_dim)
        else:
            centroids[m] = flat[m * 256 * sub_dim:(m + 1) * 256 * sub_dim].reshape(256, sub_dim)
    return InputMatrix(rows=np.zeros((0, dim), dtype=np.float32), codes=codes.reshape(rows, subquantizers).copy(),
                       norm_codes=norm_codes, norm_table=norm_table, centroids=centroids, sub_dim=sub_dim)


def _product_quantizer(reader: _Reader) -> tuple[np.ndarray, int, int, int]:
    dim, subquantizers, sub_dim, last_sub_dim = reader.take("<iiii")
    return reader.array("<f4", dim * 256).astype(np.float32), subquantizers, sub_dim, last_sub_dim


def _huffman_children(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right child of every node of fastText's hierarchical-softmax tree (-1 for the
    leaves, which are the labels in dictionary order): the two lightest of the remaining leaves
    and inner nodes are joined at each step, the first taken as the left child."""
    n = len(counts)
    size = 2 * n - 1
    count = np.full(size, 10 ** 15, dtype=np.int64)
    count[:n] = counts
    left = np.full(size, -1, dtype=np.int32)
    right = np.full(size, -1, dtype=np.int32)
    leaf, node = n - 1, n
    for i in range(n, size):
        pair = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(node)
                node += 1
        left[i], right[i] = pair
        count[i] = count[pair[0]] + count[pair[1]]
    return left, right


class CompiledFastText:
    """The k best labels of a text with their probabilities, as the binding's predict(text, k)."""

    def __init__(self, model: FastTextModel):
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"CompiledFastText cannot reproduce this model: {reason}")
        self.model = model
        self.labels = model.labels
        blob = b"".join(model.entries)
        self._entry_bytes = np.frombuffer(blob, dtype=np.uint8) if blob else np.zeros(1, dtype=np.uint8)
        self._entry_starts = np.concatenate(([0], np.cumsum([len(e) for e in model.entries]))).astype(np.int64)
        self._entry_types = model.is_label.astype(np.int8)
        self._table = _entry_table(self._entry_bytes, self._entry_starts)
        self._settings = np.array([model.nwords, model.minn, model.maxn, model.bucket, model.word_ngrams,
                                   model.prune_size, model.dim, model.input_matrix.sub_dim], dtype=np.int64)
        self._label_prefix = np.frombuffer(LABEL_PREFIX, dtype=np.uint8)
        self._kept = _KeptBuckets.of(model.prune)
        if model.loss == HIERARCHICAL_SOFTMAX:
            self._left, self._right = _huffman_children(model.label_counts)
        else:
            self._left = self._right = np.zeros(0, dtype=np.int32)

    @classmethod
    def from_file(cls, path: str | Path) -> CompiledFastText | None:
        """The compiled predictor of a model file, or None when it does not reproduce that model
        (the caller keeps the binding)."""
        model = read_model(path)
        return None if unsupported(model) is not None else cls(model)

    def predict(self, text: str, k: int = 1) -> list[tuple[str, float]]:
        """The k best (label, probability), best first; text is one line (no "\\n")."""
        if "\n" in text:
            raise ValueError("predict processes one line at a time (remove '\\n')")
        data = np.frombuffer(text.encode("utf-8", "replace") + b"\n", dtype=np.uint8)
        matrix = self.model.input_matrix
        labels, probabilities = _predict_line(
            data, self._entry_bytes, self._entry_starts, self._entry_types, self._table, self._label_prefix,
            self._settings, self._kept.bits, self._kept.before, self._kept.rows, matrix.rows, matrix.codes,
            matrix.norm_codes, matrix.norm_table, matrix.centroids, self.model.output_rows, self.model.loss,
            self._left, self._right, k)
        return [(self.labels[i], p) for i, p in zip(labels.tolist(), probabilities.tolist())]

    def predict_block(self, texts: list[str], k: int = 1) -> list[list[tuple[str, float]]]:
        """predict(text, k) of every text, in one compiled call without the GIL; a text's "\n"
        counts as a space (the corpora stage's language ID sends lines so)."""
        labels, probabilities, counts = self.predict_ids(texts, k)
        names = self.labels
        return [[(names[i], p) for i, p in zip(row[:n], probs[:n])]
                for row, probs, n in zip(labels.tolist(), probabilities.tolist(), counts.tolist())]

    def predict_ids(self, texts: list[str], k: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """predict_block's figures as arrays: label ids and probabilities (one row of k per text,
        best first) and how many of each row count."""
        # Every text's own "\n" became a space, so the only line breaks of the buffer end the
        # texts: their positions are the offsets. "replace" turns each lone surrogate into "?"
        # on its own, so encoding the joined texts gives the texts' encodings one after the other.
        joined = "\n".join([text.replace("\n", " ") for text in texts]) + "\n" if texts else ""
        data = np.frombuffer(joined.encode("utf-8", "replace"), dtype=np.uint8)
        ends = np.flatnonzero(data == 10) + 1
        matrix = self.model.input_matrix
        return _predict_block(
            data, ends, self._entry_bytes, self._entry_starts, self._entry_types, self._table, self._label_prefix,
            self._settings, self._kept.bits, self._kept.before, self._kept.rows, matrix.rows, matrix.codes,
            matrix.norm_codes, matrix.norm_table, matrix.centroids, self.model.output_rows, self.model.loss,
            self._left, self._right, k)


@dataclass
class _KeptBuckets:
    """A pruned model's bucket -> row table, small enough to stay in a core's cache: one bit per
    bucket (kept or pruned), the kept buckets counted before each 64-bit word, and the rows of the
    kept buckets in bucket order. (The plain table of 2 M int32 is 8 MB: a cache miss per
    character n-gram, most of them pruned.)"""

    bits: np.ndarray
    before: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, prune: np.ndarray) -> _KeptBuckets:
        kept = np.flatnonzero(prune >= 0)
        words = max(1, (len(prune) + 63) // 64)
        bits = np.zeros(words, dtype=np.uint64)
        np.bitwise_or.at(bits, kept // 64, np.left_shift(np.uint64(1), (kept % 64).astype(np.uint64)))
        per_word = np.bincount(kept // 64, minlength=words)
        before = np.concatenate(([0], np.cumsum(per_word)[:-1])).astype(np.int32)
        return cls(bits=bits, before=before, rows=prune[kept].astype(np.int32))


# ------------------------------------------------------------------ compiled parts
#
# The hot loop is one flat function on purpose: numba reference-counts the arrays passed to a
# function it calls, which costs more than the work itself at one call per character n-gram.

_FNV_OFFSET = 2166136261
_FNV_PRIME = 16777619
_LOW32 = 0xFFFFFFFF
EOS_BYTES = np.frombuffer(EOS, dtype=np.uint8).copy()


@njit(cache=True, nogil=True, inline="always")
def _fnv_step(h, byte):
    """One byte of fastText's FNV-1a (bytes as signed char, widened to 32 bits); h in [0, 2^32)."""
    widened = byte if byte < 128 else byte | 0xFFFFFF00
    return ((h ^ widened) * _FNV_PRIME) & _LOW32


@njit(cache=True, nogil=True)
def _entry_table(entry_bytes, entry_starts):
    """Open-addressing table of the dictionary's entries keyed by their FNV hash (-1: empty)."""
    count = len(entry_starts) - 1
    size = 1
    while size < 2 * count + 2:
        size *= 2
    table = np.full(size, -1, dtype=np.int64)
    for entry in range(count):
        h = _FNV_OFFSET
        for i in range(entry_starts[entry], entry_starts[entry + 1]):
            h = _fnv_step(h, np.int64(entry_bytes[i]))
        slot = h & (size - 1)
        while table[slot] != -1:
            slot = (slot + 1) & (size - 1)
        table[slot] = entry
    return table


@njit(cache=True, nogil=True, inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, nogil=True, inline="always")
def _bucket_row(bucket_id, prune_size, bits, before, kept_rows):
    """fastText's pushHash: the row (counted after the vocabulary's) of an n-gram bucket, through
    the pruning table; -1 where pruned."""
    if prune_size == 0 or bucket_id < 0:
        return -1
    if prune_size < 0:
        return bucket_id
    word = bits[bucket_id >> 6]
    bit = np.uint64(bucket_id & 63)
    if (word >> bit) & np.uint64(1) == np.uint64(0):
        return -1
    return np.int64(kept_rows[before[bucket_id >> 6] + _popcount(word & ((np.uint64(1) << bit) - np.uint64(1)))])


@njit(cache=True, nogil=True, inline="always")
def _mod32(value, magic, divisor):
    """value % divisor for value < 2^32, divisor < 2^32, magic = (2^64 - 1) // divisor + 1, without
    a division: Lemire's exact 32-bit "fastmod" (a 64-bit division is most of an n-gram's cost)."""
    low = np.uint64(value) * magic
    high = (low >> np.uint64(32)) * divisor + (((low & np.uint64(0xFFFFFFFF)) * divisor) >> np.uint64(32))
    return np.int64(high >> np.uint64(32))


@njit(cache=True, nogil=True, inline="always")
def _is_separator(byte):
    return byte == 32 or byte == 10 or byte == 13 or byte == 9 or byte == 11 or byte == 12 or byte == 0


@njit(cache=True, nogil=True)
def _add_rows(hidden, ids, count, rows, codes, norm_codes, norm_table, centroids, sub_dim):
    """computeHidden's sum: the input rows of ids[:count] added to hidden one after the other
    (a quantized row as fastText's addcode adds it: norm x centroid, element by element)."""
    dim = len(hidden)
    if len(codes) == 0:
        for k in range(count):
            row = ids[k]
            for d in range(dim):
                hidden[d] += rows[row, d]
        return
    subquantizers = codes.shape[1]
    last_width = dim - (subquantizers - 1) * sub_dim
    if sub_dim == 2 and last_width == 2:
        # lid.176's shape (16 = 8 x 2): the same products added in the same order, without the
        # inner loop of two, which cost more than its arithmetic (about half of a row's time)
        for k in range(count):
            row = ids[k]
            norm = norm_table[norm_codes[row]]
            for m in range(subquantizers):
                code = codes[row, m]
                hidden[2 * m] += norm * centroids[m, code, 0]
                hidden[2 * m + 1] += norm * centroids[m, code, 1]
        return
    for k in range(count):
        row = ids[k]
        norm = norm_table[norm_codes[row]]
        for m in range(subquantizers):
            code = codes[row, m]
            width = last_width if m == subquantizers - 1 else sub_dim
            for n in range(width):
                hidden[m * sub_dim + n] += norm * centroids[m, code, n]


@njit(cache=True, nogil=True)
def _hidden(data, entry_bytes, entry_starts, entry_types, table, label_prefix, settings, bits, before, kept_rows,
            rows, codes, norm_codes, norm_table, centroids):
    """fastText's getLine + computeHidden over data (the line's UTF-8 bytes, ending with "\n"):
    the hidden vector and how many rows were averaged into it."""
    nwords, minn, maxn, bucket, word_ngrams, prune_size, dim, sub_dim = (
        settings[0], settings[1], settings[2], settings[3], settings[4], settings[5], settings[6], settings[7])
    hidden = np.zeros(dim, dtype=np.float32)
    ids = np.empty(4096, dtype=np.int64)  # row ids in fastText's order, summed whenever full
    count = 0
    added = 0
    word = np.empty(len(data) + 6, dtype=np.uint8)  # "<" + token + ">"
    word_hashes = np.empty(len(data) + 1, dtype=np.int64)
    hashed = 0
    pos = 0
    size = len(data)
    prefix_length = len(label_prefix)
    table_mask = len(table) - 1
    ubucket = np.uint64(max(bucket, 1))
    magic = np.uint64(0xFFFFFFFFFFFFFFFF) // ubucket + np.uint64(1)
    while True:
        # readWord: skip separators; a newline ends the line with the end-of-line token
        length = 0
        while pos < size:
            byte = data[pos]
            pos += 1
            if _is_separator(byte):
                if length == 0:
                    if byte == 10:
                        for i in range(4):
                            word[1 + i] = EOS_BYTES[i]
                        length = 4
                        break
                    continue
                if byte == 10:
                    pos -= 1
                break
            word[1 + length] = byte
            length += 1
        if length == 0:
            break
        h = _FNV_OFFSET
        for i in range(1, length + 1):
            h = _fnv_step(h, np.int64(word[i]))
        wid = -1  # the dictionary's lookup
        slot = h & table_mask
        while table[slot] != -1:
            entry = table[slot]
            first = entry_starts[entry]
            if entry_starts[entry + 1] - first == length:
                same = True
                for i in range(length):
                    if entry_bytes[first + i] != word[1 + i]:
                        same = False
                        break
                if same:
                    wid = entry
                    break
            slot = (slot + 1) & table_mask
        is_eos = length == 4 and word[1] == 60 and word[2] == 47 and word[3] == 115 and word[4] == 62
        if wid >= 0:
            is_word = entry_types[wid] == 0
        else:  # not in the dictionary: a label when it starts with the label prefix
            is_word = length < prefix_length
            for i in range(min(prefix_length, length)):
                if word[1 + i] != label_prefix[i]:
                    is_word = True
                    break
        if not is_word:
            continue
        if wid >= 0:
            ids[count] = wid
            count += 1
        if maxn > 0 and not is_eos:
            # the character n-grams of "<" + token + ">": by start character, then by length in
            # characters (UTF-8 continuation bytes stay with their character)
            word[0] = 60
            word[length + 1] = 62
            end = length + 2
            for i in range(end):
                if (word[i] & 0xC0) == 0x80:
                    continue
                g = _FNV_OFFSET
                j = i
                n = 1
                while j < end and n <= maxn:
                    g = _fnv_step(g, np.int64(word[j]))
                    j += 1
                    while j < end and (word[j] & 0xC0) == 0x80:
                        g = _fnv_step(g, np.int64(word[j]))
                        j += 1
                    if n >= minn and not (n == 1 and (i == 0 or j == end)):
                        row = _bucket_row(_mod32(g, magic, ubucket), prune_size, bits, before, kept_rows)
                        if row >= 0:
                            if count == len(ids):
                                _add_rows(hidden, ids, count, rows, codes, norm_codes, norm_table, centroids, sub_dim)
                                added += count
                                count = 0
                            ids[count] = nwords + row
                            count += 1
                    n += 1
        if count >= len(ids) - 1:
            _add_rows(hidden, ids, count, rows, codes, norm_codes, norm_table, centroids, sub_dim)
            added += count
            count = 0
        word_hashes[hashed] = h - (1 << 32) if h >= (1 << 31) else h  # as fastText keeps it: an int32
        hashed += 1
        if is_eos:
            break
    # word n-grams: 64-bit rolling hashes of runs of up to word_ngrams words (wrapping), widened
    # from the int32 word hashes with their sign, as fastText's addWordNgrams
    modulus = np.uint64(max(bucket, 1))
    for i in range(hashed if word_ngrams > 1 else 0):
        g64 = np.uint64(word_hashes[i])
        for j in range(i + 1, min(hashed, i + word_ngrams)):
            g64 = g64 * np.uint64(116049371) + np.uint64(word_hashes[j])
            row = _bucket_row(np.int64(g64 % modulus), prune_size, bits, before, kept_rows)
            if row >= 0:
                if count == len(ids):
                    _add_rows(hidden, ids, count, rows, codes, norm_codes, norm_table, centroids, sub_dim)
                    added += count
                    count = 0
                ids[count] = nwords + row
                count += 1
    _add_rows(hidden, ids, count, rows, codes, norm_codes, norm_table, centroids, sub_dim)
    added += count
    if added > 0:
        scale = np.float32(1.0 / added)
        for d in range(dim):
            hidden[d] *= scale
    return hidden, added


@njit(cache=True, nogil=True)
def _predict_line(data, entry_bytes, entry_starts, entry_types, table, label_prefix, settings, bits, before,
                  kept_rows, rows, codes, norm_codes, norm_table, centroids, output_rows, loss, left, right, k):
    """_hidden, then _predict, in one compiled call per line (no labels when no row was summed)."""
    hidden, added = _hidden(data, entry_bytes, entry_starts, entry_types, table, label_prefix, settings, bits, before,
                            kept_rows, rows, codes, norm_codes, norm_table, centroids)
    if added == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return _predict(hidden, output_rows, loss, left, right, k)


@njit(cache=True, nogil=True)
def _predict_block(data, ends, entry_bytes, entry_starts, entry_types, table, label_prefix, settings, bits, before,
                   kept_rows, rows, codes, norm_codes, norm_table, centroids, output_rows, loss, left, right, k):
    """_predict_line over each line of data (line i ends at ends[i], its "\n" included): label ids
    and probabilities, a row of k per line, and how many of each row count."""
    labels = np.full((len(ends), max(k, 0)), -1, dtype=np.int64)
    probabilities = np.zeros((len(ends), max(k, 0)), dtype=np.float32)
    counts = np.zeros(len(ends), dtype=np.int64)
    start = 0
    for i in range(len(ends)):
        ids, probs = _predict_line(data[start:ends[i]], entry_bytes, entry_starts, entry_types, table, label_prefix,
                                   settings, bits, before, kept_rows, rows, codes, norm_codes, norm_table, centroids,
                                   output_rows, loss, left, right, k)
        counts[i] = len(ids)
        labels[i, :len(ids)] = ids
        probabilities[i, :len(ids)] = probs
        start = ends[i]
    return labels, probabilities, counts


@njit(cache=True, nogil=True, inline="always")
def _dot(rows, row, hidden):
    """DenseMatrix::dotRow: a float32 sum, term by term."""
    d = np.float32(0.0)
    for j in range(len(hidden)):
        d += rows[row, j] * hidden[j]
    return d


@njit(cache=True, nogil=True, inline="always")
def _std_log(x):
    """fastText's std_log: log(x + 1e-5) in double, returned as float."""
    return np.float32(math.log(np.float64(x) + 1e-5))


@njit(cache=True, nogil=True, inline="always")
def _comes_before(score_a, score_b):
    """fastText's comparePairs: the heap's order (a greater score first)."""
    return score_a > score_b


@njit(cache=True, nogil=True)
def _sift_up(scores, ids, hole, top, score, node):
    """libstdc++'s __push_heap."""
    parent = (hole - 1) // 2
    while hole > top and _comes_before(scores[parent], score):
        scores[hole] = scores[parent]
        ids[hole] = ids[parent]
        hole = parent
        parent = (hole - 1) // 2
    scores[hole] = score
    ids[hole] = node


@njit(cache=True, nogil=True)
def _adjust(scores, ids, hole, length, score, node):
    """libstdc++'s __adjust_heap."""
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if _comes_before(scores[child], scores[child - 1]):
            child -= 1
        scores[hole] = scores[child]
        ids[hole] = ids[child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        scores[hole] = scores[child - 1]
        ids[hole] = ids[child - 1]
        hole = child - 1
    _sift_up(scores, ids, hole, top, score, node)


@njit(cache=True, nogil=True)
def _pop_to_back(scores, ids, length):
    """libstdc++'s pop_heap over the first `length` entries: the front moves to length - 1."""
    if length > 1:
        last = length - 1
        score, node = scores[last], ids[last]
        scores[last], ids[last] = scores[0], ids[0]
        _adjust(scores, ids, 0, last, score, node)


@njit(cache=True, nogil=True)
def _offer(scores, ids, size, k, score, node):
    """push_heap, then pop_heap + pop_back when over k; returns the new size."""
    scores[size] = score
    ids[size] = node
    _sift_up(scores, ids, size, 0, score, node)
    size += 1
    if size > k:
        _pop_to_back(scores, ids, size)
        size -= 1
    return size


@njit(cache=True, nogil=True)
def _predict(hidden, output_rows, loss, left, right, k):
    """The k best labels and their probabilities (expf of the summed log-scores), best first."""
    labels = len(left) // 2 + 1 if loss == HIERARCHICAL_SOFTMAX else output_rows.shape[0]
    k = min(k, labels)
    scores = np.empty(k + 1, dtype=np.float32)
    ids = np.empty(k + 1, dtype=np.int64)
    size = 0
    floor = _std_log(np.float32(0.0))  # threshold 0, the binding's default
    if loss == HIERARCHICAL_SOFTMAX:
        stack_nodes = np.empty(2 * labels, dtype=np.int64)
        stack_scores = np.empty(2 * labels, dtype=np.float32)
        stack_nodes[0] = 2 * labels - 2
        stack_scores[0] = np.float32(0.0)
        depth = 1
        while depth > 0:  # the recursive search, left subtree first
            depth -= 1
            node, score = stack_nodes[depth], stack_scores[depth]
            if score < floor:
                continue
            if size == k and score < scores[0]:
                continue
            if left[node] == -1 and right[node] == -1:
                size = _offer(scores, ids, size, k, score, node)
                continue
            f = _dot(output_rows, node - labels, hidden)
            f = np.float32(1.0 / np.float64(np.float32(1.0) + np.float32(math.exp(-f))))
            stack_nodes[depth], stack_scores[depth] = right[node], score + _std_log(f)
            stack_nodes[depth + 1] = left[node]
            stack_scores[depth + 1] = score + _std_log(np.float32(1.0 - np.float64(f)))
            depth += 2
    else:
        output = np.empty(labels, dtype=np.float32)
        for i in range(labels):
            output[i] = _dot(output_rows, i, hidden)
        top = output[0]
        for i in range(labels):
            top = max(output[i], top)
        z = np.float32(0.0)
        for i in range(labels):
            output[i] = np.float32(math.exp(np.float64(output[i] - top)))
            z += output[i]
        for i in range(labels):
            output[i] /= z
        for i in range(labels):
            if output[i] < 0.0:
                continue
            score = _std_log(output[i])
            if size == k and score < scores[0]:
                continue
            size = _offer(scores, ids, size, k, score, i)
    count = size
    while size > 1:  # sort_heap: best first
        _pop_to_back(scores, ids, size)
        size -= 1
    probabilities = np.empty(count, dtype=np.float32)
    for i in range(count):
        probabilities[i] = np.float32(math.exp(scores[i]))
    return ids[:count].copy(), probabilities
