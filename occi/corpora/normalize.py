"""The first step of the corpora stage: Unicode and encoding normalisation."""
from __future__ import annotations

import re
import unicodedata

from numba import njit

from occi.corpora.config import NormalizeConfig
from occi.corpora.document import Document
from occi.corpora.kernels import character_set, code_points


# UTF-8 lead byte read as Latin-1/cp1252, followed by a continuation byte read the same way.
_CONTINUATIONS = "".join(map(chr, range(0x80, 0xC0))) + ("\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030"
                  "\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178")
_MOJIBAKE_HINT = re.compile(f"[\u00c2-\u00ef][{_CONTINUATIONS}]")
# C0 and C1 controls except tab and newline; carriage returns become newlines first.
_CONTROL = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# The searches run as one pass of _scan (below) over the code points; the patterns above are the
# rules it implements (tests/test_filters.py compares them) and _CONTROL also does the removing.


class Normalizer:
    """Unicode NFC, line endings, control characters, and repairable broken encodings."""

    step = "normalize"

    def __init__(self, cfg: NormalizeConfig):
        self.cfg = cfg

    def filter(self, doc: Document) -> str | None:
        text = doc.text
        surrogate, hint, control, carriage_return = _scan(code_points(text), _CONTINUATION_SET)
        if surrogate:
            return "invalid_unicode"
        if self.cfg.fix_encoding and hint:
            import ftfy  # loads ftfy: only when used

            fixed = ftfy.fix_encoding(text)
            if fixed != text:
                doc.metadata["encoding_fixed"] = True
                text = fixed
                control = carriage_return = True  # not scanned again: the rewrites below are no-ops where not needed
        if carriage_return:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if control:
            text = _CONTROL.sub("", text)
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        text = text.strip()
        if not text:
            return "empty"
        replacements = text.count("\ufffd")
        if replacements and replacements / len(text) > self.cfg.max_replacement_ratio:
            return "broken_encoding"
        doc.text = text
        return None


_CONTINUATION_SET = character_set(_CONTINUATIONS)


@njit(cache=True, nogil=True)
def _scan(points, continuations):
    """Which of the normaliser's searches match, in one pass over the code points: (a lone
    surrogate (_SURROGATE), a mojibake hint (_MOJIBAKE_HINT: a lead in U+00C2..U+00EF followed by
    one of `continuations`), a control character (_CONTROL), a carriage return)."""
    surrogate = hint = control = carriage_return = False
    for i in range(len(points)):
        c = points[i]
        if c < 0xA0:
            if c == 0x0D:
                carriage_return = True
            elif c <= 0x08 or c == 0x0B or c == 0x0C or 0x0E <= c <= 0x1F or 0x7F <= c:
                control = True
        elif 0xD800 <= c <= 0xDFFF:
            surrogate = True
        elif 0xC2 <= c <= 0xEF and i + 1 < len(points):
            following = points[i + 1]
            if following < len(continuations) and continuations[following]:
                hint = True
    return surrogate, hint, control, carriage_return
