"""User text (model, task, source and teacher names) inside the Markdown that occi writes.

A name comes from a results file, a config or a data set, so it may hold HTML or Markdown; in a
report or model card it must show as the text itself, not as markup, and never break a table.
"""
from __future__ import annotations

import html
import re
from functools import lru_cache

_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]~|])")
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # an underscore inside a word is literal


def markdown_table(header: list[str], rows: list[tuple]) -> str:
    """A Markdown table; the cells as they are (escape user text with `table_cell` first)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def table_cell(text: object) -> str:
    """`text` as one Markdown table cell that renders as the text itself: on one line, HTML escaped,
    and no pipe, emphasis, code span, link or strikethrough (`belebele_deu_Latn` stays as it is)."""
    return _escaped(str(text))


@lru_cache(maxsize=1 << 16)
def _escaped(text: str) -> str:
    # a leaderboard of 1,000 files escapes the same few hundred names 125,000 times
    flat = html.escape(" ".join(text.split()), quote=False)
    return _EMPHASIS_UNDERSCORE.sub(r"\\_", _MARKDOWN_SPECIAL.sub(r"\\\1", flat))
