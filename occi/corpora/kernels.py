"""What the numba kernels of the corpora filters share: the text as an array, and tables of
character classes (built by Python itself, so the kernels classify exactly as `re` and str do)."""
from __future__ import annotations

import re
import sys
import threading
from functools import cache

import numpy as np
from numba import njit

_WORD = re.compile(r"\w+")


def code_points(text: str) -> np.ndarray:
    """The text as one uint32 per character (lone surrogates included, as str counts them).

    The last text's array is kept, per thread (the corpora workers are threads): the filters of
    one document ask for the same str object in turn (held here, so `is` cannot meet a new string
    at a freed address)."""
    last = getattr(_last, "pair", None)
    if last is None or last[0] is not text:
        last = _last.pair = (text, np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))
    return last[1]


_last = threading.local()


@cache
def word_characters() -> np.ndarray:
    """Per code point, whether `re`'s `\\w` matches it: found by `re` itself in a string of every
    code point (about 60 ms, once per process)."""
    everything = np.arange(sys.maxunicode + 1, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(len(everything), dtype=np.bool_)
    for run in _WORD.finditer(everything):
        table[run.start():run.end()] = True
    return table


@cache
def letters() -> np.ndarray:
    """Per code point, str.isalpha(). Letters are word characters (`\\w` is str.isalnum() and "_"),
    so only those are asked."""
    table = np.zeros(sys.maxunicode + 1, dtype=np.bool_)
    candidates = np.flatnonzero(word_characters())
    table[candidates] = [chr(c).isalpha() for c in candidates]
    return table


def character_set(characters: str) -> np.ndarray:
    """A table of the given characters, indexed by code point (as long as the largest one)."""
    table = np.zeros(max(map(ord, characters)) + 1, dtype=np.bool_)
    table[[ord(c) for c in characters]] = True
    return table


@njit(cache=True, nogil=True)
def is_space(c):
    """str.isspace(), which is what str.split() splits on (tests/test_filters.py checks every code
    point)."""
    if c <= 0x20:
        return 0x09 <= c <= 0x0D or 0x1C <= c
    if c < 0x85:
        return False
    return (c == 0x85 or c == 0xA0 or c == 0x1680 or 0x2000 <= c <= 0x200A or c == 0x2028 or c == 0x2029
            or c == 0x202F or c == 0x205F or c == 0x3000)


ASK_PYTHON = np.uint32(0xFFFFFFFF)
"""In lowercase(): str.lower() of this code point is not one code point of its own."""


@cache
def lowercase() -> np.ndarray:
    """Per code point, the code point str.lower() makes of it, or ASK_PYTHON where lower() gives
    several (U+0130 becomes "i" and a combining dot) or looks at the neighbours (Σ becomes ς at the
    end of a word). Found by str.lower() itself over a string of every code point (about 20 ms)."""
    table = np.arange(sys.maxunicode + 1, dtype=np.uint32)
    everything = table.tobytes().decode("utf-32-le", "surrogatepass")
    for start, end in ((0, 0x130), (0x131, sys.maxunicode + 1)):
        lowered = everything[start:end].lower()
        if len(lowered) == end - start:
            table[start:end] = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        else:  # a later Unicode lowercases another code point to several: one by one
            table[start:end] = [ord(low) if len(low := chr(c).lower()) == 1 else ASK_PYTHON for c in range(start, end)]
    table[0x130] = table[0x3A3] = ASK_PYTHON
    return table
