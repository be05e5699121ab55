"""The `pii` step: e-mail addresses, IP addresses, phone numbers and IBANs become placeholders.

Like datatrove's PII formatter the text keeps its shape (an address stays an address, so a model
still learns what one looks like) but no real one survives. The placeholders are reserved values:
example.com (RFC 2606), 192.0.2.x and 2001:db8:: (documentation ranges, RFC 5737/3849), the
non-existent country code +00 and the non-existent IBAN country XX.

Phone formats differ per language (country): where numbers carry a trunk prefix 0 a separated
number starting with 0 is a phone number; where they do not (es, pt, pl, cs, da, ...), a group
pattern that an ordinary number written with thousand separators also has ("912 345 678") counts
only after a word announcing a phone (tel, phone, Telefon, τηλ, ...). IBANs are checked with their
mod-97 check digits, so a random number is never taken for one.
"""
from __future__ import annotations

import re
from typing import Iterator

from occi.corpora.document import Document

KINDS = ("email", "ip", "phone", "iban")
PLACEHOLDERS = {
    "email": "email@example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "phone": "+00 000 000 000",
    "iban": "XX00 XXXX XXXX XXXX XX",
}

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+%-]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(rf"(?<![\w:])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,6}}:(?:{_H}:){{0,5}}{_H})(?![\w:])")
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w])")
_INTERNATIONAL = re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}[ .\-/]?(?:\(0\)[ ]?)?\d{1,4}(?:[ .\-/]?\d{1,4}){1,5}(?![\w])")
_TRUNK = re.compile(r"(?<![\w.,/-])(?:\(0\d{1,5}\)[ ]?|0\d{1,5}[ /.\-])\d{2,8}(?:[ .\-]\d{2,5}){0,3}(?![\w]|[.,]\d)"
                    r"|(?<![\w.,/-])0[1-9]\d{8,10}(?![\w]|[.,]\d)")
_GROUPED = re.compile(r"(?<![\w.,/-])[1-9]\d{1,3}(?:[ .\-]\d{2,4}){1,4}(?![\w]|[.,]\d)")
_CUE = re.compile(r"(?i)(?:tel|phone|fon|puh|tlf|mob|gsm|cell|τηλ|тел|telef|telf|móvil|movil|ring)\w*\.?\s*(?:\([^)]{0,12}\))?\s*[:.]?\s*$")

# A match of each pattern starts at most `back` characters before a match of its cue, a pattern
# sre finds with its fast scan for a first character (the patterns themselves start with a
# look-behind, so sre tries the whole pattern at every position: 5-10x slower on prose).
_CUES: dict[re.Pattern, tuple[re.Pattern, int]] = {
    _IBAN: (re.compile(r"[A-Z][A-Z]\d\d"), 0),
    _IPV4: (re.compile(r"\d\.\d"), 2),
    _INTERNATIONAL: (re.compile(r"(?:\+|00)[1-9]"), 0),
    _TRUNK: (re.compile(r"\(0\d|0\d"), 0),
    _GROUPED: (re.compile(r"\d[ .\-]\d\d"), 3),
}
_DECIMAL = re.compile(r"\d")

NATIONAL_DIGITS: dict[str, tuple[bool, int, int]] = {
    # language -> (numbers carry a trunk prefix 0, fewest and most national digits)
    "bg": (True, 8, 10), "de": (True, 9, 12), "en": (True, 10, 11), "fi": (True, 7, 11), "fr": (True, 10, 10),
    "ga": (True, 9, 10), "hr": (True, 8, 10), "hu": (True, 8, 11), "lt": (True, 9, 9), "nl": (True, 10, 10),
    "ro": (True, 10, 10), "sk": (True, 10, 10), "sl": (True, 9, 9), "sv": (True, 8, 10), "it": (True, 9, 11),
    "cs": (False, 9, 9), "pl": (False, 9, 9), "es": (False, 9, 9), "ca": (False, 9, 9), "eu": (False, 9, 9),
    "gl": (False, 9, 9), "pt": (False, 9, 9), "el": (False, 10, 10), "da": (False, 8, 8), "no": (False, 8, 8),
    "mt": (False, 8, 8), "lv": (False, 8, 8), "et": (False, 7, 8),
}
"""Per language the national phone format of its main country (ITU national numbering plans)."""


def finditer(pattern: re.Pattern, text: str) -> Iterator[re.Match]:
    """The matches of `pattern.finditer(text)`, the same ones, trying the pattern only at the
    positions its cue allows (a look-behind sees the text before the position it is tried at)."""
    cue, back = _CUES[pattern]
    position = 0
    while (found := cue.search(text, position)) is not None:
        at = found.start()
        for start in range(max(position, at - back), at + 1):
            if (match := pattern.match(text, start)) is not None:
                yield match
                position = match.end()
                break
        else:
            position = at + 1


def _has_digit(text: str) -> bool:
    """any(ch.isdigit() for ch in text): a regex finds a decimal digit (\\d, str.isdecimal) fast;
    only non-ASCII text without one is read character by character, for digits like ² (timed on
    the kept benchmark documents, that loop beat a regex of every such digit: 0.14 s against 0.19 s)."""
    return _DECIMAL.search(text) is not None or (not text.isascii() and any(ch.isdigit() for ch in text))


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _thousands_like(text: str) -> bool:
    """1 234 567 / 1.234.567: groups of three after the first, all with the same separator."""
    groups = re.split(r"[ .\-]", text)
    separators = set(re.findall(r"[ .\-]", text))
    return len(separators) == 1 and len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])


class PiiFormatter:
    """Replaces personal data in a document's text; never drops a document."""

    step = "pii"

    def __init__(self, kinds: list[str] | tuple[str, ...] = KINDS):
        self.kinds = set(kinds)

    def filter(self, doc: Document) -> str | None:
        text, counts = self.replace(doc.text, doc.language or "")
        if counts:
            doc.text = text
            doc.metadata["pii"] = counts
        return None

    def find(self, text: str, language: str) -> list[tuple[int, int, str]]:
        """(start, end, placeholder key) of every item found, earlier kinds winning overlaps."""
        spans: list[tuple[int, int, str]] = []
        if "email" in self.kinds and (at := text.find("@")) >= 0:  # an address starts <= 64 characters before its @
            spans += [(m.start(), m.end(), "email") for m in _EMAIL.finditer(text, max(0, at - 64))]
        if "iban" in self.kinds:
            spans += [(m.start(), m.end(), "iban") for m in finditer(_IBAN, text) if _iban_valid(m.group())]
        if "ip" in self.kinds:
            spans += [(m.start(), m.end(), "ipv4") for m in finditer(_IPV4, text)
                      if any(len(octet) > 1 for octet in m.group().split("."))]
            if "::" in text or text.count(":") >= 7:
                spans += [(m.start(), m.end(), "ipv6") for m in _IPV6.finditer(text)
                          if any(c.isalpha() for c in m.group()) or "::" in m.group() and m.group().count(":") >= 3]
        if "phone" in self.kinds:
            spans += self._phones(text, language)
        spans.sort(key=lambda span: (span[0], -span[1]))
        chosen: list[tuple[int, int, str]] = []
        for span in spans:
            if not chosen or span[0] >= chosen[-1][1]:
                chosen.append(span)
        return chosen

    def _phones(self, text: str, language: str) -> list[tuple[int, int, str]]:
        found = []
        for m in finditer(_INTERNATIONAL, text):
            if 8 <= _digits(m.group()) <= 15:
                found.append((m.start(), m.end(), "phone"))
        trunk, fewest, most = NATIONAL_DIGITS.get(language, (True, 8, 12))
        if trunk:
            for m in finditer(_TRUNK, text):
                if fewest <= _digits(m.group()) <= most:
                    found.append((m.start(), m.end(), "phone"))
        else:
            for m in finditer(_GROUPED, text):
                number = m.group()
                if not fewest <= _digits(number) <= most:
                    continue
                if _thousands_like(number) and not _CUE.search(text, max(0, m.start() - 30), m.start()):
                    continue
                found.append((m.start(), m.end(), "phone"))
        return found

    def replace(self, text: str, language: str) -> tuple[str, dict[str, int]]:
        """The text with every item replaced, and the count per kind (email, ip, phone, iban)."""
        if "@" not in text and not _has_digit(text):
            return text, {}
        spans = self.find(text, language)
        if not spans:
            return text, {}
        pieces, counts, position = [], {}, 0
        for start, end, key in spans:
            pieces += [text[position:start], PLACEHOLDERS[key]]
            kind = "ip" if key.startswith("ip") else key
            counts[kind] = counts.get(kind, 0) + 1
            position = end
        pieces.append(text[position:])
        return "".join(pieces), counts
