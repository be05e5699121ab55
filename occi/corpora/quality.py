"""Heuristic quality filters: Gopher quality, Gopher repetition (Rae et al., 2021) and
FineWeb's line rules (Penedo et al., 2024), with per-language stop words and parameters.

Words are whitespace-separated tokens, the way Gopher counts them; this needs no
language-specific tokenizer for the EU languages, which all separate words with spaces.
"""
from __future__ import annotations

import math
import re
from functools import cache

import numpy as np
from numba import njit

from occi import languages
from occi.corpora.config import FineWebQualityConfig, GopherQualityConfig, GopherRepetitionConfig, QualityConfig
from occi.corpora.document import Document
from occi.corpora.kernels import ASK_PYTHON, character_set, code_points, is_space, letters, lowercase

BULLETS = ("•", "‣", "◦", "○", "●", "▪", "■", "□", "-", "–", "—", "*", "·", "➢", "►", "✓", "✔")
ELLIPSES = ("...", "…")
TERMINAL_PUNCTUATION = (".", "!", "?", "…", ";", ":", '"', "'", "»", "«", "”", "“", "’", ")", "]",
                        ";", "。", "！", "？", "؟")
_PUNCTUATION_STRIP = "\"'.,;:!?()[]{}«»„“”‘’‚‹›…-–—/\\*#%&+=<>|~^_`"


class _PerLanguage:
    """Holds the quality settings and hands out one section, per-language overrides applied."""

    section = ""

    def __init__(self, cfg: QualityConfig):
        self.cfg = cfg
        self._by_language: dict[str | None, object] = {None: getattr(cfg, self.section)}

    def settings(self, language: str | None):
        if language not in self._by_language:
            self._by_language[language] = getattr(self.cfg.for_language(language), self.section)
        return self._by_language[language]

    def filter(self, doc: Document) -> str | None:
        """None to keep `doc`, or the reason it is dropped, under its language's settings."""
        cfg = self.settings(doc.language)
        return self.check(doc, cfg) if cfg.enabled else None

    def check(self, doc: Document, cfg) -> str | None:
        """The filter's own rule, when it is enabled for the document's language."""
        raise NotImplementedError


class GopherQualityFilter(_PerLanguage):
    step = "gopher_quality"
    section = "gopher_quality"

    def check(self, doc: Document, cfg: GopherQualityConfig) -> str | None:
        text = doc.text
        n_words, content_words, content_chars, with_letter, lines, bullet_lines, ellipsis_lines = (
            _gopher_quality_figures(code_points(text), _STRIPPED, _BULLET_STARTS, letters()))
        if n_words < cfg.min_doc_words:
            return "too_few_words"
        if n_words > cfg.max_doc_words:
            return "too_many_words"
        if content_words:
            mean_length = content_chars / content_words
            if not cfg.min_avg_word_length <= mean_length <= cfg.max_avg_word_length:
                return "avg_word_length"
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / n_words > cfg.max_symbol_word_ratio:
            return "symbol_ratio"
        if lines:
            if bullet_lines / lines > cfg.max_bullet_lines_ratio:
                return "bullet_lines"
            if ellipsis_lines / lines > cfg.max_ellipsis_lines_ratio:
                return "ellipsis_lines"
        if with_letter / n_words < cfg.max_non_alpha_words_ratio:
            return "non_alpha_words"
        if doc.language:
            flat, offsets, slots = _stop_word_table(doc.language)
            found, resume = _stop_words_found(code_points(text), _STRIPPED, lowercase(), flat, offsets, slots,
                                              cfg.min_stop_words)
            if resume >= 0:  # a word the kernel cannot lowercase (Σ, U+0130): Python goes on from it
                stop_words = languages.get(doc.language).stop_words
                for word in _WORDS.finditer(text, resume):  # the words of text.split(), only as far as needed
                    if word.group().strip(_PUNCTUATION_STRIP).lower() in stop_words:
                        found += 1
                        if found >= cfg.min_stop_words:
                            break
            if found < cfg.min_stop_words:
                return "too_few_stop_words"
        return None


_WORDS = re.compile(r"\S+")  # `re`'s \s is str.isspace(), what str.split() splits on
_STRIPPED = character_set(_PUNCTUATION_STRIP)
_BULLET_STARTS = character_set("".join(BULLETS))


@cache
def _stop_word_table(language: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The language's stop words for _stop_words_found: their code points end to end, where each
    starts (and the end), and a hash table of their indices (-1: empty slot)."""
    words = sorted(languages.get(language).stop_words)
    flat = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(word) for word in words])
    return flat, offsets, _word_slots(flat, offsets)


@njit(cache=True, nogil=True)
def _word_hash(points, start, end):
    h = np.uint64(end - start)
    for k in range(start, end):  # FNV-1a over the code points, then mixed
        h = (h ^ np.uint64(points[k])) * np.uint64(0x100000001B3)
    return _mix(h)


@njit(cache=True, nogil=True)
def _word_slots(flat, offsets):
    """Open addressing over the words flat[offsets[i]:offsets[i + 1]] (equal words: the first)."""
    count = len(offsets) - 1
    mask = _table_size(count) - 1
    slots = np.full(mask + 1, -1, dtype=np.int64)
    for i in range(count):
        slot = np.int64(_word_hash(flat, offsets[i], offsets[i + 1]) & np.uint64(mask))
        while slots[slot] >= 0:
            slot = (slot + 1) & mask
        slots[slot] = i
    return slots


@njit(cache=True, nogil=True)
def _stop_words_found(points, stripped, lowercase, flat, offsets, slots, needed):
    """How many words of str.split(), stripped of the characters in `stripped` at both ends and
    lowercased, are stop words (counting stops at `needed`), and -1; or, at a word holding a code
    point `lowercase` cannot map alone (ASK_PYTHON), the count before it and where it starts."""
    found = 0
    if found >= needed:
        return found, -1
    mask = len(slots) - 1
    longest = 0
    for i in range(len(offsets) - 1):
        longest = max(longest, offsets[i + 1] - offsets[i])
    lowered = np.empty(longest, dtype=np.uint32)
    at = 0
    while at < len(points):
        if is_space(points[at]):
            at += 1
            continue
        start = at
        while at < len(points) and not is_space(points[at]):
            at += 1
        low, high = start, at
        while low < high and points[low] < len(stripped) and stripped[points[low]]:
            low += 1
        while high > low and points[high - 1] < len(stripped) and stripped[points[high - 1]]:
            high -= 1
        for k in range(low, high):
            if lowercase[points[k]] == ASK_PYTHON:
                return found, start
        if high - low > longest:  # longer than every stop word: cannot be one
            continue
        for k in range(low, high):
            lowered[k - low] = lowercase[points[k]]
        slot = np.int64(_word_hash(lowered, 0, high - low) & np.uint64(mask))
        while slots[slot] >= 0:
            word = slots[slot]
            begin, length = offsets[word], offsets[word + 1] - offsets[word]
            if length == high - low:
                same = True
                for k in range(length):
                    if flat[begin + k] != lowered[k]:
                        same = False
                        break
                if same:
                    found += 1
                    if found >= needed:
                        return found, -1
                    break
            slot = (slot + 1) & mask
    return found, -1


@njit(cache=True, nogil=True)
def _gopher_quality_figures(points, stripped, bullet_starts, letters):
    """The counts GopherQualityFilter's rules divide: (words (str.split()), words left non-empty
    by stripping the characters in `stripped` from both ends, their characters, words with a
    letter, lines (str.splitlines()), lines starting with a bullet after leading whitespace,
    lines ending with an ellipsis before trailing whitespace)."""
    words = content_words = content_chars = with_letter = 0
    at = 0
    while at < len(points):
        if is_space(points[at]):
            at += 1
            continue
        start = at
        has_letter = False
        while at < len(points) and not is_space(points[at]):
            has_letter = has_letter or letters[points[at]]
            at += 1
        words += 1
        with_letter += has_letter
        low, high = start, at
        while low < high and points[low] < len(stripped) and stripped[points[low]]:
            low += 1
        while high > low and points[high - 1] < len(stripped) and stripped[points[high - 1]]:
            high -= 1
        if high > low:
            content_words += 1
            content_chars += high - low
    lines = bullet_lines = ellipsis_lines = 0
    start = 0
    while start < len(points):
        end = start
        while end < len(points) and not _is_line_break(points[end]):
            end += 1
        lines += 1
        first = start
        while first < end and is_space(points[first]):
            first += 1
        if first < end and points[first] < len(bullet_starts) and bullet_starts[points[first]]:
            bullet_lines += 1
        last = end
        while last > start and is_space(points[last - 1]):
            last -= 1
        if last > start and points[last - 1] == 0x2026:  # …
            ellipsis_lines += 1
        elif last - start >= 3 and points[last - 1] == 46 and points[last - 2] == 46 and points[last - 3] == 46:
            ellipsis_lines += 1
        start = end + 1
        if end + 1 < len(points) and points[end] == 13 and points[end + 1] == 10:  # \r\n is one break
            start += 1
    return words, content_words, content_chars, with_letter, lines, bullet_lines, ellipsis_lines


class GopherRepetitionFilter(_PerLanguage):
    step = "gopher_repetition"
    section = "gopher_repetition"

    def __init__(self, cfg: QualityConfig):
        super().__init__(cfg)
        self._ngram_checks: dict[int, tuple] = {}

    def check(self, doc: Document, cfg: GopherRepetitionConfig) -> str | None:
        text = doc.text
        length = len(text) or 1
        top_checks, duplicated_checks, largest = self.ngram_checks(cfg)
        (paragraphs, paragraph_repeats, paragraph_chars, lines, line_repeats, line_chars, words,
         figures) = _repetition_figures(code_points(text), largest)
        if paragraph_repeats / paragraphs > cfg.dup_para_frac:
            return "dup_para_frac"
        if paragraph_chars / length > cfg.dup_para_char_frac:
            return "dup_para_char_frac"
        if line_repeats / lines > cfg.dup_line_frac:
            return "dup_line_frac"
        if line_chars / length > cfg.dup_line_char_frac:
            return "dup_line_char_frac"
        top_chars, top_count, duplicated_chars = figures.tolist()
        for n, limit in top_checks:
            if words < n:
                continue
            if top_count[n] > 1 and top_chars[n] * top_count[n] / length > limit:
                return f"top_{n}gram"
        for n, limit, later_limits in duplicated_checks:
            if words < n:
                break
            share = duplicated_chars[n] / length
            if share > limit:
                return f"dup_{n}gram"
            if share <= later_limits:
                break
        return None

    def ngram_checks(self, cfg: GopherRepetitionConfig) -> tuple[list, list, int]:
        """The n-gram rules of `cfg` in the order they are checked: (n, limit) of the top
        n-grams; (n, limit, the smallest later limit) of the duplicated n-grams; the largest n."""
        if id(cfg) not in self._ngram_checks:
            # A word inside a repeated (n+1)-gram is inside a repeated n-gram too, so the share
            # can only shrink as n grows: once it is within every later limit, no later check
            # can fail.
            duplicated = sorted(cfg.dup_ngram_frac.items())
            self._ngram_checks[id(cfg)] = (
                sorted(cfg.top_ngram_frac.items()),
                [(n, limit, min((later for _, later in duplicated[i + 1:]), default=math.inf))
                 for i, (n, limit) in enumerate(duplicated)],
                max((*cfg.top_ngram_frac, *cfg.dup_ngram_frac), default=0),
            )
        return self._ngram_checks[id(cfg)]


# The repetition figures are counted by numba kernels over the text's code points (one uint32
# each), with exact ids: equal ids mean equal contents (hash tables that compare the contents, no
# hash-only identity). The top n-gram is the one at the first position that reaches the largest
# count, which is Counter.most_common's first to occur among the most frequent.
# tests/test_filters.py checks them against plain Python (re.split, str.split,
# Counter.most_common) on random and adversarial texts.

@njit(cache=True, nogil=True)
def _is_line_break(c):
    """Where str.splitlines() splits (the test checks every code point)."""
    return 0x0A <= c <= 0x0D or 0x1C <= c <= 0x1E or c == 0x85 or c == 0x2028 or c == 0x2029


@njit(cache=True, nogil=True)
def _mix(value):
    """A 64-bit finaliser (splitmix64's) spreading keys over the hash table's slots."""
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


@njit(cache=True, nogil=True)
def _table_size(count):
    """A power of two at least twice `count`: open addressing stays short."""
    size = 16
    while size < 2 * count:
        size *= 2
    return size


@njit(cache=True, nogil=True)
def _span_ids(points, starts, ends):
    """Per span [starts[i], ends[i]) of `points`, an id equal for spans of equal contents (0, 1,
    ... in order of first occurrence), and how many distinct contents there are."""
    count = len(starts)
    mask = _table_size(count) - 1
    first = np.full(mask + 1, -1, dtype=np.int64)  # per slot: the first span stored there
    hashes = np.empty(count, dtype=np.uint64)
    ids = np.empty(count, dtype=np.int64)
    distinct = 0
    for i in range(count):
        start, end = starts[i], ends[i]
        h = np.uint64(end - start)
        for k in range(start, end):  # FNV-1a over the code points, then mixed
            h = (h ^ np.uint64(points[k])) * np.uint64(0x100000001B3)
        h = _mix(h)
        hashes[i] = h
        slot = np.int64(h & np.uint64(mask))
        while True:
            j = first[slot]
            if j < 0:
                first[slot] = i
                ids[i] = distinct
                distinct += 1
                break
            if hashes[j] == h and ends[j] - starts[j] == end - start:
                same = True
                offset = starts[j] - start
                for k in range(start, end):
                    if points[k + offset] != points[k]:
                        same = False
                        break
                if same:
                    ids[i] = ids[j]
                    break
            slot = (slot + 1) & mask
    return ids, distinct


@njit(cache=True, nogil=True)
def _duplicated_spans(points, starts, ends):
    """(spans, spans equal to an earlier one, the characters of those)."""
    ids, _ = _span_ids(points, starts, ends)
    count = chars = 0
    seen = 0  # ids are handed out in order: a span is new when its id is the next one
    for i in range(len(ids)):
        if ids[i] == seen:
            seen += 1
        else:
            count += 1
            chars += ends[i] - starts[i]
    return len(ids), count, chars


@njit(cache=True, nogil=True)
def _paragraph_figures(points):
    """_duplicated_spans of the paragraphs, re.split(r"\\n{2,}", text.strip())."""
    low, high = 0, len(points)
    while low < high and is_space(points[low]):
        low += 1
    while high > low and is_space(points[high - 1]):
        high -= 1
    starts = np.empty(high - low + 1, dtype=np.int64)
    ends = np.empty(high - low + 1, dtype=np.int64)
    starts[0], count = low, 0
    i = low
    while i < high:
        if points[i] == 10:
            run = i
            while run < high and points[run] == 10:
                run += 1
            if run - i >= 2:
                ends[count] = i
                count += 1
                starts[count] = run
            i = run
        else:
            i += 1
    ends[count] = high
    return _duplicated_spans(points, starts[:count + 1], ends[:count + 1])


@njit(cache=True, nogil=True)
def _line_figures(points):
    """_duplicated_spans of the lines, re.split(r"\\n+", text)."""
    starts = np.empty(len(points) + 1, dtype=np.int64)
    ends = np.empty(len(points) + 1, dtype=np.int64)
    starts[0], count = 0, 0
    i = 0
    while i < len(points):
        if points[i] == 10:
            ends[count] = i
            count += 1
            while i < len(points) and points[i] == 10:
                i += 1
            starts[count] = i
        else:
            i += 1
    ends[count] = len(points)
    return _duplicated_spans(points, starts[:count + 1], ends[:count + 1])


@njit(cache=True, nogil=True)
def _words(points):
    """The words of str.split() as ids (equal words, equal ids) and their lengths."""
    starts = np.empty(len(points) // 2 + 1, dtype=np.int64)
    ends = np.empty(len(points) // 2 + 1, dtype=np.int64)
    count = 0
    i = 0
    while i < len(points):
        if is_space(points[i]):
            i += 1
            continue
        starts[count] = i
        while i < len(points) and not is_space(points[i]):
            i += 1
        ends[count] = i
        count += 1
    ids, _ = _span_ids(points, starts[:count], ends[:count])
    return ids, ends[:count] - starts[:count]


@njit(cache=True, nogil=True)
def _repetition_figures(points, largest):
    """Everything GopherRepetitionFilter divides, in one call: the paragraphs' and the lines'
    (number, repeats, their characters), the number of words, and ngram_figures' three rows."""
    paragraphs, paragraph_repeats, paragraph_chars = _paragraph_figures(points)
    lines, line_repeats, line_chars = _line_figures(points)
    word_ids, lengths = _words(points)
    figures = np.empty((3, largest + 1), dtype=np.int64)
    figures[0], figures[1], figures[2] = ngram_figures(word_ids, lengths, largest)
    return (paragraphs, paragraph_repeats, paragraph_chars, lines, line_repeats, line_chars, len(word_ids),
            figures)


@njit(cache=True, nogil=True)
def _repeated_longer(positions, ids, counts, word_ids, n):
    """The n-grams that may repeat, from the (n-1)-grams at `positions` (their ids `ids`, counted
    in `counts`): those starting where an (n-1)-gram occurs more than once and with room for n
    words. Returns their positions, ids (0, 1, ... in order of first occurrence; an n-gram is its
    (n-1)-gram and one more word) and how many distinct ones there are."""
    words = len(word_ids)
    size = 0
    for k in range(len(positions)):
        size += counts[ids[k]] > 1 and positions[k] + n <= words
    longer_positions = np.empty(size, dtype=np.int64)
    longer_ids = np.empty(size, dtype=np.int64)
    prefixes = np.empty(size, dtype=np.int64)
    mask = _table_size(size) - 1
    first = np.full(mask + 1, -1, dtype=np.int64)  # per slot: the first n-gram (index) stored there
    count = distinct = 0
    for k in range(len(positions)):
        position = positions[k]
        if counts[ids[k]] < 2 or position + n > words:
            continue
        prefix, word = ids[k], word_ids[position + n - 1]
        longer_positions[count], prefixes[count] = position, prefix
        slot = np.int64(_mix(np.uint64(prefix) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(word)) & np.uint64(mask))
        while True:
            j = first[slot]
            if j < 0:
                first[slot] = count
                longer_ids[count] = distinct
                distinct += 1
                break
            if prefixes[j] == prefix and word_ids[longer_positions[j] + n - 1] == word:
                longer_ids[count] = longer_ids[j]
                break
            slot = (slot + 1) & mask
        count += 1
    return longer_positions, longer_ids, distinct


@njit(cache=True, nogil=True)
def ngram_figures(word_ids, lengths, largest):
    """Per n in 1..largest (index n; zeros where the text has fewer than n words): the characters
    of the most frequent word n-gram, joined by single spaces (the first to occur among equally
    frequent ones, as Counter.most_common picks), its count, and the characters of the words
    inside n-grams that occur more than once (each word counted once).

    Only n-grams that can repeat are followed from one n to the next (an n-gram occurring once
    makes every longer n-gram starting there occur once): when none repeats, the first n-gram is
    the most frequent one, with a count of 1."""
    top_chars = np.zeros(largest + 1, dtype=np.int64)
    top_count = np.zeros(largest + 1, dtype=np.int64)
    duplicated_chars = np.zeros(largest + 1, dtype=np.int64)
    words = len(word_ids)
    offsets = np.zeros(words + 1, dtype=np.int64)
    for i in range(words):
        offsets[i + 1] = offsets[i] + lengths[i]
    positions = np.arange(words)
    ids = word_ids
    distinct = 0
    for i in range(words):
        distinct = max(distinct, word_ids[i] + 1)
    counts = np.zeros(0, dtype=np.int64)
    for n in range(1, min(largest, words) + 1):
        if n > 1:
            positions, ids, distinct = _repeated_longer(positions, ids, counts, word_ids, n)
        counts = np.zeros(distinct, dtype=np.int64)
        for k in range(len(ids)):
            counts[ids[k]] += 1
        top, top_count[n] = 0, 1
        chars, covered_to = 0, 0
        for k in range(len(ids)):
            count = counts[ids[k]]
            if count > top_count[n]:  # strictly more: the first to occur stays among ties
                top, top_count[n] = positions[k], count
            if count > 1:
                start = positions[k]
                chars += offsets[start + n] - offsets[max(start, covered_to)]
                covered_to = start + n
        top_chars[n] = offsets[top + n] - offsets[top] + n - 1
        duplicated_chars[n] = chars
    return top_chars, top_count, duplicated_chars


class FineWebQualityFilter(_PerLanguage):
    step = "fineweb_quality"
    section = "fineweb"

    def check(self, doc: Document, cfg: FineWebQualityConfig) -> str | None:
        text = doc.text
        lines, ending, short, duplicated_chars, words = _fineweb_figures(
            code_points(text), _TERMINAL_PUNCTUATION, cfg.short_line_length)
        if not lines:
            return "empty"
        if ending / lines <= cfg.line_punct_thr:
            return "line_punct_ratio"
        if short / lines >= cfg.short_line_thr:
            return "short_line_ratio"
        breaks = text.count("\n")
        if duplicated_chars / max(1, len(text) - breaks) >= cfg.char_duplicates_ratio:
            return "char_dup_ratio"
        if breaks / max(1, words) > cfg.new_line_ratio:
            return "list_ratio"
        return None


_TERMINAL_PUNCTUATION = character_set("".join(TERMINAL_PUNCTUATION))


@njit(cache=True, nogil=True)
def _fineweb_figures(points, terminal, short_line_length):
    """The counts FineWebQualityFilter's rules divide, over the lines of text.split("\\n") that
    are not blank: (lines, lines ending with a character of `terminal` before trailing whitespace,
    lines of at most `short_line_length` characters, characters of lines equal to an earlier one),
    and the words of the text (str.split())."""
    starts = np.empty(len(points) + 1, dtype=np.int64)
    ends = np.empty(len(points) + 1, dtype=np.int64)
    lines = ending = short = 0
    start = 0
    while start <= len(points):
        end = start
        while end < len(points) and points[end] != 10:
            end += 1
        last = end
        while last > start and is_space(points[last - 1]):
            last -= 1
        if last > start:  # not blank
            starts[lines], ends[lines] = start, end
            lines += 1
            ending += points[last - 1] < len(terminal) and terminal[points[last - 1]]
            short += end - start <= short_line_length
        start = end + 1
    _, _, duplicated_chars = _duplicated_spans(points, starts[:lines], ends[:lines])
    words = 0
    for i in range(len(points)):
        words += not is_space(points[i]) and (i == 0 or is_space(points[i - 1]))
    return lines, ending, short, duplicated_chars, words
