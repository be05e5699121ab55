"""What flows through the corpora stage: documents, and records that could not be read."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Document:
    text: str
    """The text, as read; normalisation rewrites it in place."""
    id: str
    """The source's id for it, or <source>/<file>/<row>."""
    source: str
    """Name of the source it came from."""
    language: str | None = None
    """ISO 639-1 code once language ID has decided."""
    language_score: float | None = None
    """Language-ID score of `language`."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Anything filters want to keep about the document (e.g. the raw top LID label)."""


@dataclass(slots=True)
class Unreadable:
    """A record (or a whole file) that could not be turned into a Document."""

    reason: str
    """Why: malformed_json, invalid_utf8, missing_text_field, truncated_file, ..."""
    source: str
    """Name of the source."""
    where: str
    """File and line (or row) of the problem, for the report."""
    count: int = 1
    """How many documents this stands for (a file without a text column counts its rows)."""
    detail: str = ""
    """The underlying error message, for the report."""
