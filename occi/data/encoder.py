"""Token ids of documents for `occi data prepare`: SentencePiece's ids, word by word through a cache.

SentencePiece's BPE encoder merges adjacent symbols into longer pieces of the vocabulary. Where
no piece of the vocabulary holds a character followed by "▁" (a space) (what SentencePiece's
trainer guarantees when it splits by whitespace), no merge crosses the point before a space that
follows another character. A document is then the concatenation of its words cut at those points
("▁hello", "▁▁world", ...), each of which encodes on its own to the same ids wherever it occurs.
Text repeats its words, so encoding each distinct word once and gathering cached ids is several
times faster than encoding every document in full, and gives the same ids: `words_are_independent`
checks the model's settings and vocabulary (other models are encoded document by document), and
tests/test_data_encoder.py compares both ways on text built to find the edge cases.

Python touches only the words new to the cache, once each: Arrow cuts and deduplicates the
words, a compiled hash table (occi/data/wordtable.py) finds the cached ones from their UTF-8
bytes, new ones are merged by occi/data/bpe.py (SentencePiece's BPE compiled with numba, the
same ids) or, where it leaves a word (a run of spaces, a user-defined piece, a character without
byte fallback, a long word), by SentencePiece (on several threads) a few thousand at a time,
joined by spaces and cut again where a piece starts with "▁", and numpy gathers each document's
ids from the cache.
"""
from __future__ import annotations

import re
from itertools import chain
from queue import Full, Queue
from threading import Event, Thread
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from occi.data.bpe import RESERVED, BpeTables, model_proto
from occi.data.wordtable import WordTable

SPACE = "▁"
# " " + text, cut before each space or "▁" that follows another character; group 1 is the word
# without its first space, which SentencePiece's dummy prefix puts back when the word is encoded
# alone; the one exception is the empty group (a text ending in one space after another character),
# since SentencePiece encodes the empty string as nothing
WORDS = re.compile("[ ▁]([ ▁]*[^ ▁]+|[ ▁]*)")
CROSSES_WORD_START = re.compile("[^▁]▁")
BPE = 2  # TrainerSpec.ModelType in SentencePiece's sentencepiece_model.proto
CACHE_WORDS = 500_000
"""Distinct words whose ids are kept (about 300 bytes each: the string, its slot, its ids); once
full, the cache keeps the words it has (the frequent ones come early) and encodes others anew."""
JOINED_WORDS = 2_000
"""New words encoded together in one string (joined by spaces, cut again at word starts)."""


class DocumentEncoder:
    """Encodes batches of documents: all their token ids one after the other, and each one's length."""

    def __init__(self, sp, dtype: type, threads: int):
        self.sp = sp
        self.dtype = np.dtype(dtype)
        # plain ids, whatever options the processor was made with (data prepare adds the EOD itself)
        self.options = {"out_type": int, "add_bos": False, "add_eos": False, "reverse": False,
                        "enable_sampling": False, "num_threads": threads}
        self.by_word = words_are_independent(sp)
        # new words without spaces are merged by occi/data/bpe.py, the others by SentencePiece
        self.bpe = BpeTables.of(sp) if self.by_word else None
        # a word without spaces encodes to one piece that starts with "▁", then pieces that do not
        self.starts_word = np.array([piece.piece.startswith(SPACE) and piece.type not in RESERVED
                                     for piece in model_proto(sp).pieces])
        # the ids of a lone "▁": "a " is "▁a" then "▁" (the cut falls between them)
        self.lone_space = np.asarray(self._encode(["a "])[0][len(self._encode(["a"])[0]):], dtype=self.dtype)
        # the cache: word -> slot; a slot's ids are ids[word_start[slot]:][:word_length[slot]]
        self.word_index = WordTable(CACHE_WORDS)
        self.word_start = np.zeros(1024, dtype=np.int64)
        self.word_length = np.zeros(1024, dtype=np.int64)
        self.ids = np.zeros(4096, dtype=self.dtype)
        self.ids_used = 0

    def encode(self, texts: pa.Array | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(the token ids of all texts one after the other, each text's number of tokens)"""
        if not self.by_word:
            texts = texts.to_pylist() if isinstance(texts, pa.Array) else texts
            if None in texts:
                raise ValueError("a text is null")
            encoded = self._encode(texts)
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            return np.fromiter(chain.from_iterable(encoded), dtype=self.dtype, count=int(lengths.sum())), lengths
        return self._encode_words(*cut_words(texts))

    def encode_all(self, batches: Iterable[pa.Array | list[str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """encode() of each batch, in order; reading and cutting the next batches (Arrow's work,
        which releases the GIL) runs on a second thread meanwhile."""
        if not self.by_word:
            yield from map(self.encode, batches)
            return
        for words, flat in _ahead(map(cut_words, batches), depth=2):
            yield self._encode_words(words, flat)

    def _encode_words(self, words: pa.ListArray, flat: pa.DictionaryArray) -> tuple[np.ndarray, np.ndarray]:
        numbers = self.word_index.lookup(flat.dictionary)
        new = np.flatnonzero(numbers < 0)
        room = max(0, self.word_index.capacity - len(self.word_index))
        if len(new):
            numbers[new[:room]] = slots = self._add_words(flat.dictionary.take(new[:room]))
            self.word_index.add(flat.dictionary, new[:room], slots)
        ids_kept = self.ids_used
        if len(new) > room:  # a full cache keeps the words it has; these are only borrowed for this batch
            numbers[new[room:]] = self._add_words(flat.dictionary.take(new[room:]))
        per_word = numbers[flat.indices.to_numpy(zero_copy_only=False)]
        starts, lengths = self.word_start[per_word], self.word_length[per_word]
        word_ends = np.cumsum(lengths)
        total = int(word_ends[-1]) if len(word_ends) else 0
        ids = self.ids[np.repeat(starts - (word_ends - lengths), lengths) + np.arange(total)]
        self.ids_used = ids_kept
        offsets = words.offsets.to_numpy()
        text_ends = np.concatenate([[0], word_ends])[offsets - offsets[0]]
        return ids, np.diff(text_ends)

    def _add_words(self, new: pa.Array) -> np.ndarray:
        """Encodes new words into the next free slots (after the cache's words); returns their slots.
        Only the words that SentencePiece encodes become Python strings."""
        order, parts, cuts, size = [], [], [], 0
        rest = np.arange(len(new))
        if self.bpe is not None:
            ids, counts, merged = self.bpe.encode(new)
            order.extend(np.flatnonzero(merged).tolist())
            parts.append(ids.astype(self.dtype, copy=False))
            cuts.append(np.cumsum(counts[merged]) - counts[merged])
            size = len(ids)
            rest = np.flatnonzero(~merged)  # left to SentencePiece
        words = dict(zip(rest.tolist(), new.take(rest).to_pylist()))
        plain, other = [], []  # words without spaces are encoded joined; the rest one by one
        for k, word in words.items():
            (plain if word and " " not in word and SPACE not in word else other).append(k)
        groups = [plain[i:i + JOINED_WORDS] for i in range(0, len(plain), JOINED_WORDS)]
        joined = self._encode([" ".join(words[k] for k in group) for group in groups])
        for group, ids in zip(groups, joined):
            ids = np.asarray(ids, dtype=self.dtype)
            starts = np.flatnonzero(self.starts_word[ids])
            if len(starts) != len(group):
                raise RuntimeError(f"joined words encoded to {len(starts)} word starts, expected {len(group)}")
            order.extend(group)
            parts.append(ids)
            cuts.append(size + starts)
            size += len(ids)
        alone = [words[k] for k in other]
        for k, word, ids in zip(other, alone, self._encode(alone)):
            ids = np.asarray(ids, dtype=self.dtype) if word else self.lone_space
            order.append(k)
            parts.append(ids)
            cuts.append(np.array([size]))
            size += len(ids)
        first = len(self.word_index)
        slots = np.empty(len(new), dtype=np.int64)
        slots[order] = first + np.arange(len(new))
        self.word_start = _room(self.word_start, first + len(new))
        self.word_length = _room(self.word_length, first + len(new))
        self.ids = _room(self.ids, self.ids_used + size)
        starts = np.concatenate(cuts) if cuts else np.zeros(0, dtype=np.int64)
        self.word_start[first:first + len(new)] = self.ids_used + starts
        self.word_length[first:first + len(new)] = np.diff(np.append(starts, size))
        self.ids[self.ids_used:self.ids_used + size] = np.concatenate(parts) if parts else []
        self.ids_used += size
        return slots

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts, **self.options) if texts else []


def _room(array: np.ndarray, size: int) -> np.ndarray:
    if size <= len(array):
        return array
    grown = np.zeros(max(size, 2 * len(array)), dtype=array.dtype)
    grown[:len(array)] = array
    return grown


def cut_words(texts: pa.Array | list[str]) -> tuple[pa.ListArray, pa.DictionaryArray]:
    """Each text's words, and all words one after the other as indices into the distinct ones."""
    if isinstance(texts, list):
        texts = pa.array(texts, type=pa.large_string())
    elif isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.type not in (pa.string(), pa.large_string()):
        texts = texts.cast(pa.large_string())
    if texts.null_count:
        raise ValueError("a text is null")
    words = split_words(texts)
    return words, pc.list_flatten(words).dictionary_encode()


def _ahead(items: Iterator, depth: int) -> Iterator:
    """`items`, produced on a second thread up to `depth` ahead; its errors are raised here, and
    the thread ends when the consumer stops early."""
    queue: Queue = Queue(maxsize=depth)
    end, stop = object(), Event()

    def hand_over(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
            hand_over((end, None))
        except BaseException as error:  # handed to the consumer, which raises it
            hand_over((end, error))

    producer = Thread(target=produce, daemon=True)
    producer.start()
    try:
        while True:
            item, error = queue.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        producer.join()


def split_words(texts: pa.Array) -> pa.ListArray:
    """Each text's words (see WORDS): Arrow's split on " " where that gives the same cut (no run of
    spaces, no "▁", no leading space: nearly all text), the regular expression for the rest."""
    is_irregular = irregular_texts(texts)
    if not is_irregular.any():
        return pc.split_pattern(texts, " ")
    rows = np.flatnonzero(is_irregular)
    plain = pc.split_pattern(pc.filter(texts, pa.array(~is_irregular)), " ")
    odd = pa.array([WORDS.findall(" " + text) if text else [] for text in texts.take(rows).to_pylist()],
                   type=plain.type)
    order = np.empty(len(texts), dtype=np.int64)
    order[np.flatnonzero(~is_irregular)] = np.arange(len(plain))
    order[rows] = len(plain) + np.arange(len(rows))
    return pa.concat_arrays([plain, odd]).take(order)


def irregular_texts(texts: pa.Array) -> np.ndarray:
    """Per text (a string or large_string array without nulls), whether it is empty, starts with a
    space or holds two spaces in a row or a "▁": one pass over Arrow's UTF-8 bytes."""
    _, offsets, data = texts.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int64 if texts.type == pa.large_string() else np.int32)
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    return _irregular(data, offsets[texts.offset:texts.offset + len(texts) + 1])


@njit(cache=True, nogil=True)
def _irregular(data, offsets):
    irregular = np.zeros(offsets.size - 1, dtype=np.bool_)
    for k in range(offsets.size - 1):
        start, end = offsets[k], offsets[k + 1]
        if end == start or data[start] == 0x20:
            irregular[k] = True
            continue
        for i in range(start, end - 1):
            if data[i] == 0x20 and data[i + 1] == 0x20:
                irregular[k] = True
                break
            if data[i] == 0xE2 and i + 2 < end and data[i + 1] == 0x96 and data[i + 2] == 0x81:  # "▁" in UTF-8
                irregular[k] = True
                break
    return irregular


def words_are_independent(sp) -> bool:
    """Whether encoding word by word gives the ids of encoding the whole text (see the module's
    docstring): a BPE model whose normalizer changes nothing but spaces, keeps every space and
    adds one in front, and whose vocabulary has "▁" and no piece with a "▁" after another character."""
    model = model_proto(sp)
    trainer, normalizer = model.trainer_spec, model.normalizer_spec
    if trainer.model_type != BPE or trainer.treat_whitespace_as_suffix:
        return False
    space = sp.piece_to_id(SPACE)
    if space == sp.unk_id() or sp.is_control(space) or sp.is_byte(space):
        return False  # "▁" must be a piece of its own (every word then starts with a piece starting with "▁")
    if (normalizer.name != "identity" or normalizer.precompiled_charsmap or normalizer.normalization_rule_tsv
            or not normalizer.add_dummy_prefix or normalizer.remove_extra_whitespaces
            or not normalizer.escape_whitespaces):
        return False
    return not any(" " in piece.piece or CROSSES_WORD_START.search(piece.piece)
                   for piece in model.pieces if piece.type not in RESERVED)
