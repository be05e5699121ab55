"""The corpora stage's model card sections: the training data (sources, processing, per-language counts,
drop reasons, blend) and its data governance."""
from __future__ import annotations

from pathlib import Path

from occi.report.card_model import MISSING
from occi.report.governance_section import governance_section
from occi.report.markdown_text import markdown_table
from occi.rundir import RunDir


def training_data(cfg, run: RunDir, blend: dict | None) -> str:
    stats = run.read_json(run.corpora_stats)
    if not stats:
        return MISSING.format(what="the corpora statistics", path="corpora/stats.json")
    sources = ", ".join(f"`{s.name}` ({s.kind}{': ' + s.dataset if s.dataset else ''})" for s in cfg.corpora.sources)
    lines = [f"Sources: {sources}. Documents were normalised (Unicode NFC, repaired encodings), language-identified "
             f"with fastText ({cfg.corpora.langid.model or 'lid.176.ftz'}) against per-language thresholds, filtered with "
             f"the Gopher quality and repetition rules and FineWeb's line rules, and deduplicated per language "
             f"(exact, and MinHash LSH on word {cfg.corpora.dedup.ngram_size}-grams with {cfg.corpora.dedup.bands} bands "
             f"x {cfg.corpora.dedup.rows} rows).", ""]
    rows = []
    for code in cfg.languages:
        entry = stats["languages"].get(code, {})
        tokens = blend["languages"][code]["train"]["tokens"] if blend else None
        weight = blend["languages"][code]["weight"] if blend else None
        rows.append((code, f"{entry.get('documents_in', 0):,}", f"{entry.get('documents_kept', 0):,}",
                     f"{entry.get('words_kept', 0):,}", f"{tokens:,}" if tokens is not None else "n/a",
                     f"{weight:.3f}" if weight is not None else "n/a"))
    lines.append(markdown_table(["language", "documents in", "documents kept", "words kept", "training tokens", "blend weight"], rows))
    drops = stats["totals"]["drops"]
    if drops:
        top = sorted(drops.items(), key=lambda kv: -kv[1])[:8]
        lines += ["", "Most frequent reasons documents were dropped: " + ", ".join(f"`{k}` ({v:,})" for k, v in top) + "."]
    if blend and blend.get("alpha") is not None:
        lines += ["", f"Languages are blended by temperature sampling over token counts (alpha = {blend['alpha']})."]
    return "\n".join(lines)


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """`## Training data` and, for corpora built with the governance steps, `## Data governance`."""
    sections = ["## Training data", training_data(cfg, run, run.read_json(run.blend_file)),
                *governance_section(run, cfg.languages)]
    return "\n\n".join(sections)
