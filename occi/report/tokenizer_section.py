"""The tokenizer section of the model card, from tokenizer/report.json."""
from __future__ import annotations

from pathlib import Path

from occi.report.card_model import MISSING
from occi.rundir import RunDir


def tokenizer_section(report: dict, languages: list[str]) -> str:
    name, entry = next(iter(report["tokenizers"].items()))
    lines = [f"One SentencePiece tokenizer shared by all languages ({entry['vocab_size']:,} tokens, byte fallback), "
             "trained on temperature-sampled text of the run's corpora. Measured on the held-out text of each language:", "",
             "| language | fertility (tokens per word) | characters per token | continued words | byte fallback |",
             "|---|---|---|---|---|"]
    for code in languages:
        m = entry["languages"].get(code)
        if m is None:
            lines.append(f"| {code} | n/a | n/a | n/a | n/a |")
            continue
        fallback = "n/a" if m["byte_fallback_rate"] is None else f"{m['byte_fallback_rate']:.2%}"
        lines.append(f"| {code} | {m['fertility']:.2f} | {m['chars_per_token']:.2f} | {m['continued_word_ratio']:.1%} | {fallback} |")
    return "\n".join(lines)


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """The tokenizer stage's `## Tokenizer` section (tokenizer/report.json)."""
    report = run.read_json(run.tokenizer_report)
    if not report:
        return "## Tokenizer\n\n" + MISSING.format(what="the tokenizer report", path="tokenizer/report.json")
    return "## Tokenizer\n\n" + tokenizer_section(report, cfg.languages)
