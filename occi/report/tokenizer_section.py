"""The tokenizer section of the model card, from tokenizer/report.json."""
from __future__ import annotations


def tokenizer_section(report: dict, languages: list[str]) -> str:
    return "_The tokenizer report format is not known yet._"
