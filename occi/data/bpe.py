"""SentencePiece's BPE encoding of words, compiled with numba: the ids SentencePiece gives each
word, without a SentencePiece call (for `occi data prepare`'s new words, occi/data/encoder.py).

SentencePiece's BPE encoder splits the normalized text into characters (a user-defined piece
that starts at a position is one frozen symbol instead), then merges, again and again, the
adjacent pair of symbols whose concatenation is a piece of the vocabulary (a normal, user-defined
or unused piece) with the highest score, the leftmost such pair on a tie; the remaining symbols
are the pieces, and a character in no piece becomes the byte pieces of its UTF-8 bytes (byte
fallback). Here a word's symbols are piece ids from the start and a hash table maps a pair of
ids to the id of their concatenation, which is the same merge exactly when every symbol is a
piece or a character in no piece (which merges with nothing, so the runs between such characters
are merged on their own). A word holding a user-defined piece or a character that SentencePiece
would treat otherwise (one that is only part of a piece; any unknown one without byte fallback),
or longer than MAX_WORD characters, is left to SentencePiece (`ok` false), and a vocabulary with
unused pieces (which SentencePiece splits again after merging) is not handled at all
(`BpeTables.of` gives None). tests/test_data_encoder.py compares the ids with SentencePiece's on
every word of edge-case text, with tied and reordered scores and with user-defined pieces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit
from sentencepiece import sentencepiece_model_pb2

from occi.data.wordtable import utf8_buffers

SPACE = 0x2581  # "▁", which SentencePiece's dummy prefix puts in front of each word
MAX_WORD = 200
"""Longest word (in characters, "▁" included) merged here: the search for the best pair is a scan
of the word's pairs per merge, quadratic in its length; longer words go to SentencePiece."""
EMPTY = -1
ID_BITS = 21
"""Bits of a piece id in a slot of BpeTables.pairs: up to 2,097,152 pieces (the pair's key, under
2 ** 42, takes the bits above)."""
ID_MASK = (1 << ID_BITS) - 1
_TYPE = sentencepiece_model_pb2.ModelProto.SentencePiece.Type
NORMAL, USER_DEFINED, UNUSED = _TYPE.NORMAL, _TYPE.USER_DEFINED, _TYPE.UNUSED
RESERVED = (_TYPE.CONTROL, _TYPE.UNKNOWN, _TYPE.BYTE)
"""Piece types that SentencePiece's encoder never merges into (it names them by id only)."""
UNKNOWN_CHAR = -1
LEAVE = -2


@dataclass
class BpeTables:
    """A SentencePiece BPE vocabulary as arrays for `encode_words`."""

    char_id: np.ndarray
    """Per code point, the id of its one-character piece, UNKNOWN_CHAR (in no piece: SentencePiece
    writes its UTF-8 bytes as byte pieces) or LEAVE (a word holding it is left to SentencePiece)."""
    byte_ids: np.ndarray
    """The id of each byte's piece (<0x00> ... <0xFF>)."""
    pairs: np.ndarray
    """Open-addressing hash table of pairs: per slot, (left id * vocabulary size + right id) << ID_BITS
    | the id of the piece they concatenate to (one 8-byte word: a look-up reads one cache line),
    EMPTY where free."""
    scores: np.ndarray
    """Each piece's score (float32, as SentencePiece stores and compares them)."""
    special_first: np.ndarray
    """Per code point, whether a user-defined piece starts with it."""
    special_codes: np.ndarray
    """The user-defined pieces' code points one after the other (a word holding one is left to SentencePiece)."""
    special_ends: np.ndarray
    """Where each user-defined piece ends in `special_codes`."""

    @classmethod
    def of(cls, sp) -> BpeTables | None:
        """The tables of a SentencePiece processor, or None when its vocabulary has unused pieces,
        a user-defined piece that starts with "▁" or more than 2 ** ID_BITS pieces."""
        size = sp.get_piece_size()
        model = model_proto(sp)
        types = [piece.type for piece in model.pieces]
        pieces = [piece.piece for piece in model.pieces]
        if UNUSED in types or size > 1 << ID_BITS:
            return None
        # what SentencePiece's encoder merges into: its normal, user-defined (and unused) pieces
        merged = {pieces[i]: i for i, kind in enumerate(types) if kind in (NORMAL, USER_DEFINED)}
        specials = [pieces[i] for i, kind in enumerate(types) if kind == USER_DEFINED]
        if any(piece.startswith(chr(SPACE)) for piece in specials):
            return None
        char_id = np.full(0x110000, UNKNOWN_CHAR, dtype=np.int32)
        # a character in a piece that is not a piece itself, or that names a reserved piece, would
        # take SentencePiece paths not followed here
        for piece in merged:
            char_id[[ord(c) for c in piece]] = LEAVE
        char_id[[ord(pieces[i]) for i, kind in enumerate(types) if kind not in (NORMAL, USER_DEFINED)
                 and len(pieces[i]) == 1]] = LEAVE
        for piece, token_id in merged.items():
            if len(piece) == 1:
                char_id[ord(piece)] = token_id
        byte_ids = np.array([sp.piece_to_id(f"<0x{b:02X}>") for b in range(256)], dtype=np.int32)
        if not model.trainer_spec.byte_fallback or not all(sp.is_byte(int(i)) for i in byte_ids):
            char_id[char_id == UNKNOWN_CHAR] = LEAVE  # unknown characters without byte fallback: SentencePiece's <unk>
        special_first = np.zeros(0x110000, dtype=np.bool_)
        special_first[[ord(piece[0]) for piece in specials]] = True
        keys, values, index = [], [], merged.get
        for piece, token_id in merged.items():  # every way to cut a piece into two pieces
            for k in range(1, len(piece)):
                left, right = index(piece[:k]), index(piece[k:])
                if left is not None and right is not None:
                    keys.append(left * size + right)
                    values.append(token_id)
        pairs = _hash_table(np.array(keys, dtype=np.int64), np.array(values, dtype=np.int64))
        scores = np.array([piece.score for piece in model.pieces], dtype=np.float32)
        codes = [np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32) for piece in specials]
        special_codes = np.concatenate(codes) if codes else np.zeros(0, dtype=np.uint32)
        special_ends = np.cumsum([len(c) for c in codes], dtype=np.int64)
        return cls(char_id, byte_ids, pairs, scores, special_first, special_codes, special_ends)

    def encode(self, words: list[str] | pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(all ids of the words merged here one after the other, each word's number of ids (0
        where not), whether each word was merged here): each word encoded as SentencePiece encodes
        "▁" + word (spaces written as "▁"). Empty words are not merged here."""
        if isinstance(words, pa.Array):  # straight from Arrow's UTF-8 bytes, no Python strings
            codes, ends = _code_points(*utf8_buffers(words))
        else:
            codes = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32)
            ends = np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)))
        return encode_words(codes, ends, self.char_id, self.byte_ids, self.pairs, self.scores,
                            self.special_first, self.special_codes, self.special_ends, self.scores.size)


def model_proto(sp) -> sentencepiece_model_pb2.ModelProto:
    """The processor's model: its pieces, their types and scores, its settings."""
    return sentencepiece_model_pb2.ModelProto.FromString(sp.serialized_model_proto())


@njit(cache=True, nogil=True)
def _code_points(data, offsets):
    """(the code points of valid UTF-8 strings one after the other, where each string's end)"""
    codes = np.empty(offsets[-1] - offsets[0], dtype=np.uint32)
    ends = np.empty(offsets.size - 1, dtype=np.int64)
    used = 0
    for k in range(offsets.size - 1):
        i = offsets[k]
        while i < offsets[k + 1]:
            byte = np.uint32(data[i])
            if byte < 0x80:
                code, extra = byte, 0
            elif byte < 0xE0:
                code, extra = byte & 0x1F, 1
            elif byte < 0xF0:
                code, extra = byte & 0x0F, 2
            else:
                code, extra = byte & 0x07, 3
            for j in range(1, extra + 1):
                code = (code << 6) | (np.uint32(data[i + j]) & 0x3F)
            codes[used] = code
            used += 1
            i += extra + 1
        ends[k] = used
    return codes[:used], ends


@njit(cache=True, nogil=True)
def _hash_table(keys, values):
    slots = 16
    while slots < 2 * keys.size:
        slots *= 2
    table = np.full(slots, EMPTY, dtype=np.int64)
    for k in range(keys.size):
        slot = _slot(keys[k], slots)
        while table[slot] != EMPTY and table[slot] >> ID_BITS != keys[k]:
            slot = (slot + 1) & (slots - 1)
        table[slot] = (keys[k] << ID_BITS) | values[k]
    return table


@njit(cache=True, nogil=True)
def _slot(key, slots):
    return ((key * 0x9E3779B1) ^ (key >> 29)) & (slots - 1)


@njit(cache=True, nogil=True)
def _merged(pairs, left, right, size):
    key = left * size + right
    slot = _slot(key, pairs.size)
    while pairs[slot] != EMPTY:
        if pairs[slot] >> ID_BITS == key:
            return pairs[slot] & ID_MASK
        slot = (slot + 1) & (pairs.size - 1)
    return -1


@njit(cache=True, nogil=True)
def _pair(pairs, scores, left, right, size):
    """(the id that the pair of symbols merges into or -1, its score)"""
    if left < 0 or right < 0:  # an unknown character merges with nothing
        return -1, np.float32(0.0)
    merged = _merged(pairs, left, right, size)
    return merged, scores[merged] if merged >= 0 else np.float32(0.0)


@njit(cache=True, nogil=True)
def encode_words(codes, ends, char_id, byte_ids, pairs, scores, special_first, special_codes, special_ends, size):
    # symbols: piece ids, or -1 - code point for a character in no piece
    out = np.empty(4 * codes.size + ends.size, dtype=np.int32)
    counts = np.zeros(ends.size, dtype=np.int64)
    ok = np.zeros(ends.size, dtype=np.bool_)
    symbols = np.empty(MAX_WORD, dtype=np.int64)
    best = np.empty(MAX_WORD, dtype=np.float32)
    merges = np.empty(MAX_WORD, dtype=np.int64)
    used = 0
    start = 0
    for w in range(ends.size):
        end = ends[w]
        n = end - start + 1
        good = 1 < n <= MAX_WORD and char_id[SPACE] >= 0
        if good:
            symbols[0] = char_id[SPACE]
            for i in range(start, end):
                code = codes[i]
                if code == 0x20:  # SentencePiece writes spaces as "▁"
                    code = SPACE
                kind = char_id[code] if code < char_id.size else LEAVE
                if kind == LEAVE or (special_first[code] and _special_at(codes, i, end, special_codes, special_ends)):
                    good = False
                    break
                symbols[i - start + 1] = kind if kind >= 0 else -1 - np.int64(code)
        if good:
            # a character in no piece merges with nothing: the runs between such characters are merged
            # on their own (the same merges as over the whole word, and shorter scans)
            first = used
            run = 0
            for i in range(n + 1):
                if i < n and symbols[i] >= 0:
                    continue
                merged = _merge(symbols[run:i], merges, best, pairs, scores, size)
                out[used:used + merged] = symbols[run:run + merged]
                used += merged
                if i < n:
                    used = _write_utf8(out, used, -1 - symbols[i], byte_ids)
                run = i + 1
            counts[w] = used - first
            ok[w] = True
        start = end
    return out[:used], counts, ok


@njit(cache=True, nogil=True)
def _merge(symbols, merges, best, pairs, scores, size):
    """SentencePiece's merges over a run of pieces, in place; returns the number of pieces left."""
    n = symbols.size
    for i in range(n - 1):
        merges[i], best[i] = _pair(pairs, scores, symbols[i], symbols[i + 1], size)
    while n > 1:
        pick = -1
        for i in range(n - 1):
            if merges[i] >= 0 and (pick < 0 or best[i] > best[pick]):
                pick = i
        if pick < 0:
            break
        symbols[pick] = merges[pick]
        for i in range(pick + 1, n - 1):
            symbols[i] = symbols[i + 1]
            merges[i] = merges[i + 1]
            best[i] = best[i + 1]
        n -= 1
        if pick > 0:
            merges[pick - 1], best[pick - 1] = _pair(pairs, scores, symbols[pick - 1], symbols[pick], size)
        if pick < n - 1:
            merges[pick], best[pick] = _pair(pairs, scores, symbols[pick], symbols[pick + 1], size)
    return n


@njit(cache=True, nogil=True)
def _write_utf8(out, used, code, byte_ids):
    """SentencePiece's byte fallback: the byte pieces of the character's UTF-8 bytes."""
    if code < 0x80:
        out[used] = byte_ids[code]
        return used + 1
    if code < 0x800:
        out[used] = byte_ids[0xC0 | (code >> 6)]
        out[used + 1] = byte_ids[0x80 | (code & 0x3F)]
        return used + 2
    if code < 0x10000:
        out[used] = byte_ids[0xE0 | (code >> 12)]
        out[used + 1] = byte_ids[0x80 | ((code >> 6) & 0x3F)]
        out[used + 2] = byte_ids[0x80 | (code & 0x3F)]
        return used + 3
    out[used] = byte_ids[0xF0 | (code >> 18)]
    out[used + 1] = byte_ids[0x80 | ((code >> 12) & 0x3F)]
    out[used + 2] = byte_ids[0x80 | ((code >> 6) & 0x3F)]
    out[used + 3] = byte_ids[0x80 | (code & 0x3F)]
    return used + 4


@njit(cache=True, nogil=True)
def _special_at(codes, i, end, special_codes, special_ends):
    begin = 0
    for k in range(special_ends.size):
        stop = special_ends[k]
        length = stop - begin
        if length <= end - i:
            same = True
            for j in range(length):
                if codes[i + j] != special_codes[begin + j]:
                    same = False
                    break
            if same:
                return True
        begin = stop
    return False
