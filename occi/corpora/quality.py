"""Heuristic quality filters: Gopher quality, Gopher repetition (Rae et al., 2021) and
FineWeb's line rules (Penedo et al., 2024), with per-language stop words and parameters.

Words are whitespace-separated tokens, the way Gopher counts them; this needs no
language-specific tokenizer for the EU languages, which all separate words with spaces.
"""
from __future__ import annotations

import re
from collections import Counter
from itertools import accumulate, compress

import numpy as np

from occi import languages
from occi.corpora.config import FineWebQualityConfig, GopherQualityConfig, GopherRepetitionConfig, QualityConfig
from occi.corpora.document import Document

BULLETS = ("•", "‣", "◦", "○", "●", "▪", "■", "□", "-", "–", "—", "*", "·", "➢", "►", "✓", "✔")
ELLIPSES = ("...", "…")
TERMINAL_PUNCTUATION = (".", "!", "?", "…", ";", ":", '"', "'", "»", "«", "”", "“", "’", ")", "]",
                        ";", "。", "！", "？", "؟")
_PUNCTUATION_STRIP = "\"'.,;:!?()[]{}«»„“”‘’‚‹›…-–—/\\*#%&+=<>|~^_`"
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def _has_letter(word: str) -> bool:
    return any(ch.isalpha() for ch in word)


def duplicated(elements: list[str]) -> tuple[int, int]:
    """(number of elements equal to an earlier one, their total characters)."""
    seen: set[str] = set()
    count = chars = 0
    for element in elements:
        if element in seen:
            count += 1
            chars += len(element)
        else:
            seen.add(element)
    return count, chars


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
        words = text.split()
        n_words = len(words)
        if n_words < cfg.min_doc_words:
            return "too_few_words"
        if n_words > cfg.max_doc_words:
            return "too_many_words"
        stripped = [w.strip(_PUNCTUATION_STRIP) for w in words]
        content = [w for w in stripped if w]
        if content:
            mean_length = sum(map(len, content)) / len(content)
            if not cfg.min_avg_word_length <= mean_length <= cfg.max_avg_word_length:
                return "avg_word_length"
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / n_words > cfg.max_symbol_word_ratio:
            return "symbol_ratio"
        lines = text.splitlines()
        if lines:
            if sum(line.lstrip().startswith(BULLETS) for line in lines) / len(lines) > cfg.max_bullet_lines_ratio:
                return "bullet_lines"
            if sum(line.rstrip().endswith(ELLIPSES) for line in lines) / len(lines) > cfg.max_ellipsis_lines_ratio:
                return "ellipsis_lines"
        with_letter = sum(1 for word, bare in zip(words, stripped) if bare.isalpha() or _has_letter(word))
        if with_letter / n_words < cfg.max_non_alpha_words_ratio:
            return "non_alpha_words"
        if doc.language:
            stop_words = languages.get(doc.language).stop_words
            found = 0
            for word in stripped:
                if word.lower() in stop_words:
                    found += 1
                    if found >= cfg.min_stop_words:
                        break
            if found < cfg.min_stop_words:
                return "too_few_stop_words"
        return None


class GopherRepetitionFilter(_PerLanguage):
    step = "gopher_repetition"
    section = "gopher_repetition"

    def check(self, doc: Document, cfg: GopherRepetitionConfig) -> str | None:
        text = doc.text
        length = len(text) or 1
        paragraphs = _PARAGRAPHS.split(text.strip())
        count, chars = duplicated(paragraphs)
        if count / len(paragraphs) > cfg.dup_para_frac:
            return "dup_para_frac"
        if chars / length > cfg.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = _LINES.split(text)
        count, chars = duplicated(lines)
        if count / len(lines) > cfg.dup_line_frac:
            return "dup_line_frac"
        if chars / length > cfg.dup_line_char_frac:
            return "dup_line_char_frac"
        words = text.split()
        ngrams = _NGrams(words) if len(words) >= _NUMPY_FROM_WORDS else _CountedNGrams(words)
        for n, limit in sorted(cfg.top_ngram_frac.items()):
            if len(words) < n:
                continue
            top_chars, top_count = ngrams.top(n)
            if top_count > 1 and top_chars * top_count / length > limit:
                return f"top_{n}gram"
        # A word inside a repeated (n+1)-gram is inside a repeated n-gram too, so the share can
        # only shrink as n grows: once it is within every later limit, no later check can fail.
        checks = sorted(cfg.dup_ngram_frac.items())
        for index, (n, limit) in enumerate(checks):
            if len(words) < n:
                break
            share = ngrams.duplicated_chars(n) / length
            if share > limit:
                return f"dup_{n}gram"
            if all(share <= later for _, later in checks[index + 1:]):
                break
        return None


# Below this many words a Counter of tuples is faster than numpy's per-call overhead (measured
# on bench/corpora's documents); both give the same figures.
_NUMPY_FROM_WORDS = 200


class _CountedNGrams:
    """The word n-grams of a short document, counted as tuples."""

    def __init__(self, words: list[str]):
        self.words = words

    def top(self, n: int) -> tuple[int, int]:
        """(characters of the most frequent n-gram with single spaces, its count); the first to
        occur among equally frequent ones."""
        top, top_count = Counter(zip(*(self.words[i:] for i in range(n)))).most_common(1)[0]
        return len(" ".join(top)), top_count

    def duplicated_chars(self, n: int) -> int:
        """Characters of words inside n-grams that occur more than once (each word counted once)."""
        words = self.words
        ngrams = list(zip(*(words[i:] for i in range(n))))
        counts = Counter(ngrams)
        if len(counts) == len(ngrams):
            return 0
        offsets = list(accumulate(map(len, words), initial=0))
        repeated_starts = compress(range(len(ngrams)), map((1).__lt__, map(counts.__getitem__, ngrams)))
        chars, covered_to = 0, 0
        for start in repeated_starts:
            chars += offsets[start + n] - offsets[max(start, covered_to)]
            covered_to = start + n
        return chars


class _NGrams:
    """The word n-grams of one document as integer ids, for counting with numpy instead of a
    Counter of tuples. The ids of n-grams are built from those of (n-1)-grams and one more word
    (pairs of ids made unique again), so equal ids mean equal n-grams: no hashing, no collisions."""

    def __init__(self, words: list[str]):
        index = {word: i for i, word in enumerate(dict.fromkeys(words))}
        self.vocabulary = len(index)
        self.words = np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words))
        self.lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self.offsets = np.concatenate(([0], np.cumsum(self.lengths)))
        self._ids = {1: self.words}

    def ids(self, n: int) -> np.ndarray:
        """Per n-gram start, an id (0, 1, ...) equal for equal n-grams."""
        known = max(k for k in self._ids if k <= n)
        ids = self._ids[known]
        for size in range(known + 1, n + 1):
            count = len(self.words) - size + 1
            pairs = ids[:count] * self.vocabulary + self.words[size - 1:]
            ids = np.unique(pairs, return_inverse=True)[1].reshape(-1)
            self._ids[size] = ids
        return ids

    def top(self, n: int) -> tuple[int, int]:
        """(characters of the most frequent n-gram with single spaces, its count); the first to
        occur among equally frequent ones (Counter.most_common's choice)."""
        ids = self.ids(n)
        counts = np.bincount(ids)
        top_count = int(counts.max())
        first = int(np.argmax(counts[ids] == top_count))
        return int(self.offsets[first + n] - self.offsets[first]) + n - 1, top_count

    def duplicated_chars(self, n: int) -> int:
        """Characters of words inside n-grams that occur more than once (each word counted once)."""
        ids = self.ids(n)
        repeated = np.bincount(ids)[ids] > 1
        if not repeated.any():
            return 0
        starts = np.flatnonzero(repeated)
        depth = np.zeros(len(self.words) + 1, dtype=np.int64)
        depth[starts] += 1
        depth[starts + n] -= 1
        return int(self.lengths[np.cumsum(depth[:-1]) > 0].sum())


class FineWebQualityFilter(_PerLanguage):
    step = "fineweb_quality"
    section = "fineweb"

    def check(self, doc: Document, cfg: FineWebQualityConfig) -> str | None:
        lines = [line for line in doc.text.split("\n") if line.strip()]
        if not lines:
            return "empty"
        ending = sum(line.rstrip().endswith(TERMINAL_PUNCTUATION) for line in lines) / len(lines)
        if ending <= cfg.line_punct_thr:
            return "line_punct_ratio"
        short = sum(len(line) <= cfg.short_line_length for line in lines) / len(lines)
        if short >= cfg.short_line_thr:
            return "short_line_ratio"
        _, chars = duplicated(lines)
        if chars / max(1, len(doc.text) - doc.text.count("\n")) >= cfg.char_duplicates_ratio:
            return "char_dup_ratio"
        if doc.text.count("\n") / max(1, len(doc.text.split())) > cfg.new_line_ratio:
            return "list_ratio"
        return None


def _duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters of words inside n-grams that occur more than once (each word counted once)."""
    return (_NGrams(words) if len(words) >= _NUMPY_FROM_WORDS else _CountedNGrams(words)).duplicated_chars(n)
