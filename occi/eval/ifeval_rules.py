"""The verifiable instructions of occi's IFEval-style suite, checked by rule in any EU language.

Each instruction has an id, its arguments (kwargs) and a check `(response, kwargs, language) ->
bool`; a prompt carries one or more (eval/data/ifeval/<lang>.jsonl). Scoring follows IFEval
(Zhou et al., 2023, arXiv:2311.07911): prompt-level accuracy (every instruction of a prompt
followed) and instruction-level accuracy (each instruction counted), each strict (the response as
it is) and loose (also passing when the response passes once its first and/or last line, or its
`*` marks, are removed).

Script notes: the case rules apply only to scripts with letter case (Latin, Greek, Cyrillic: all
24 official EU languages); the generator never asks for them elsewhere, and a response without a
cased letter fails them. Greek ends questions with `;` (or U+037E), which counts as a sentence
end in Greek only. Words are runs of letters and digits (inner hyphens and apostrophes kept:
French `l'eau`, Irish `t-uisce` are one word); keywords match whole words, case-folded (Greek
final sigma, German ß), in the form the prompt gives them (no stemming).
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable

CASED_SCRIPTS = frozenset({"Latn", "Grek", "Cyrl", "Armn"})
"""Scripts with upper and lower case letters: the only ones the case rules are asked in."""

WORD = re.compile(r"\w+(?:['’\-]\w+)*")
BULLET = re.compile(r"^\s*[*\-•]\s+\S", re.MULTILINE)
TITLE = re.compile(r"<<[^\n<>]+>>")
PLACEHOLDER = re.compile(r"\[[^\[\]\n]+\]")
FENCE = re.compile(r"^```(?:json|JSON)?\s*\n?(.*?)\n?```$", re.DOTALL)

Identify = Callable[[str], "str | None"]
"""A text's language code by occi's language ID (None: another language)."""


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str, language: str) -> list[str]:
    """Sentences end at . ! ? … (and ; or U+037E in Greek) followed by space or the end."""
    ends = r".!?…;;" if language == "el" else r".!?…"
    parts = re.split(rf"(?<=[{ends}])\s+", text.strip())
    return [p for p in parts if re.search(r"\w", p)]


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _cased(text: str) -> list[str]:
    return [c for c in text if c.isupper() or c.islower() or c.istitle()]


def _folded(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(_folded(word))}(?!\w)", _folded(text)) is not None


def _is_json(text: str) -> bool:
    text = text.strip()
    fenced = FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return False
    return isinstance(value, (dict, list))


CHECKS: dict[str, Callable[[str, dict, str, Identify | None], bool]] = {
    "length:words_at_least": lambda r, k, lang, ident: len(words(r)) >= k["n"],
    "length:words_at_most": lambda r, k, lang, ident: len(words(r)) <= k["n"],
    "length:sentences_at_most": lambda r, k, lang, ident: len(sentences(r, lang)) <= k["n"],
    "length:paragraphs_exactly": lambda r, k, lang, ident: len(paragraphs(r)) == k["n"],
    "format:bullets_exactly": lambda r, k, lang, ident: len(BULLET.findall(r)) == k["n"],
    "format:json": lambda r, k, lang, ident: _is_json(r),
    "format:title": lambda r, k, lang, ident: TITLE.search(r) is not None,
    "case:lower": lambda r, k, lang, ident: bool(_cased(r)) and not any(c.isupper() or c.istitle() for c in r),
    "case:upper": lambda r, k, lang, ident: bool(_cased(r)) and not any(c.islower() for c in r),
    "keywords:include": lambda r, k, lang, ident: _has_word(r, k["word"]),
    "keywords:forbid": lambda r, k, lang, ident: not _has_word(r, k["word"]),
    "language:response": lambda r, k, lang, ident: ident is not None and ident(r) == k["language"],
    "ending:phrase": lambda r, k, lang, ident: _folded(r.strip()).endswith(_folded(k["phrase"].strip())),
    "content:placeholders_at_least": lambda r, k, lang, ident: len(PLACEHOLDER.findall(r)) >= k["n"],
}
"""instruction id -> its check (response, kwargs, the prompt's language, language ID)."""

NEEDS_CASE = frozenset({"case:lower", "case:upper"})
"""Instructions asked only in scripts with case (CASED_SCRIPTS)."""


def follows(instruction: str, response: str, kwargs: dict, language: str, identify: Identify | None) -> bool:
    """Whether a response follows one instruction (strict); an empty response follows none."""
    return bool(response.strip()) and CHECKS[instruction](response, kwargs, language, identify)


def loose_variants(response: str) -> list[str]:
    """The response, without its first line, its last line or both, each also without `*`."""
    lines = response.split("\n")
    cut = [response, "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()]
    return cut + [text.replace("*", "") for text in cut]


def score(doc: dict, response: str, identify: Identify | None) -> dict:
    """lm-eval's per-document metrics of one prompt (doc: instruction_id_list, kwargs, language)."""
    strict, loose = [], []
    variants = loose_variants(response)
    for instruction, kwargs in zip(doc["instruction_id_list"], doc["kwargs"]):
        strict.append(follows(instruction, response, kwargs, doc["language"], identify))
        loose.append(any(follows(instruction, text, kwargs, doc["language"], identify) for text in variants))
    return {"prompt_level_strict_acc": all(strict), "inst_level_strict_acc": strict,
            "prompt_level_loose_acc": all(loose), "inst_level_loose_acc": loose}


def instruction_level(items: list[list[bool]]) -> float:
    """The share of instructions followed over every prompt (lm-eval aggregation)."""
    flat = [ok for item in items for ok in item]
    return sum(flat) / len(flat) if flat else 0.0
