"""The first step of the corpora stage: Unicode and encoding normalisation."""
from __future__ import annotations

import re
import unicodedata

from occi.corpora.config import NormalizeConfig
from occi.corpora.document import Document


# UTF-8 lead byte read as Latin-1/cp1252, followed by a continuation byte read the same way.
_MOJIBAKE_HINT = re.compile("[\u00c2-\u00ef][\u0080-\u00bf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021"
                            "\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013"
                            "\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178]")
# C0 and C1 controls except tab and newline; carriage returns become newlines first.
_CONTROL = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Normalizer:
    """Unicode NFC, line endings, control characters, and repairable broken encodings."""

    step = "normalize"

    def __init__(self, cfg: NormalizeConfig):
        self.cfg = cfg

    def filter(self, doc: Document) -> str | None:
        text = doc.text
        if _SURROGATE.search(text):
            return "invalid_unicode"
        if self.cfg.fix_encoding and _MOJIBAKE_HINT.search(text):
            import ftfy

            fixed = ftfy.fix_encoding(text)
            if fixed != text:
                doc.metadata["encoding_fixed"] = True
                text = fixed
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
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
