"""The shape every step of the corpora stage has.

A filter is a small class with a `step` name and `filter(doc)`, which returns None to keep the
document or the reason it is dropped (datatrove's habit). A filter may also rewrite the text.
A filter keeps nothing from one document to the next: the shard worker runs the steps up to
language ID over a block of documents, one step at a time (build.ShardProcessor.decide).
"""
from __future__ import annotations

from typing import Protocol

from occi.corpora.document import Document


class Filter(Protocol):
    step: str
    """Name of the step in stats and in the dropped documents' `step` column."""

    def filter(self, doc: Document) -> str | None:
        """None to keep `doc`, or the reason it is dropped."""
