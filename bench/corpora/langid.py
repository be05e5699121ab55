"""Language ID side by side: fastText lid.176 and heliport, through occi's LanguageIdentifier.

Accuracy on bench/corpora/langid_text/<code>.txt (sentences written for this project, one per
line; bs.txt and sr.txt are Bosnian and Serbian Latin, which occi counts as Croatian), and
throughput on one core (the same lines, repeated). Also shown: lid.176's raw top label, and the
rule occi used before (the language whose labels sum highest wins).

    .venv/bin/python bench/corpora/langid.py [--repeat 200]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from occi import languages
from occi.corpora.config import LangIdConfig
from occi.corpora.langid import LanguageIdentifier, resolve_model

TEXT = Path(__file__).parent / "langid_text"
ALIASES = {"bs": "hr", "sr": "hr"}


def load() -> list[tuple[str, str, str]]:
    """(file label, expected code, line) for every line."""
    rows = []
    for path in sorted(TEXT.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append((path.stem, ALIASES.get(path.stem, path.stem), line.strip()))
    return rows


def old_rule(identifier: LanguageIdentifier, text: str) -> str | None:
    """The earlier rule: the table language with the highest summed score wins (unless a label
    outside the table scores higher)."""
    totals: dict[str, float] = {}
    other = 0.0
    for label, score in identifier.backend.ranked(text):
        code = identifier.label_language.get(label)
        if code:
            totals[code] = totals.get(code, 0.0) + score
        else:
            other = max(other, score)
    if not totals or max(totals.values()) < other:
        return None
    return max(totals, key=lambda c: (totals[c], c))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200, help="passes over the lines for the throughput")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rows = load()
    codes = list(languages.LANGUAGES)
    fasttext = LanguageIdentifier(resolve_model(LangIdConfig()), codes)
    heliport = LanguageIdentifier(None, codes, backend="heliport")
    second = LanguageIdentifier(resolve_model(LangIdConfig()), codes, second_opinion=True)
    methods = {
        "lid.176 raw top label": lambda t: fasttext.label_language.get(fasttext.backend.ranked(t)[0][0]),
        "lid.176, summed groups win (before)": lambda t: old_rule(fasttext, t),
        "lid.176, occi (top label wins)": lambda t: fasttext.predict(t)[0],
        "lid.176 + heliport second opinion, occi": lambda t: second.predict(t)[0],
        "heliport, occi": lambda t: heliport.predict(t)[0],
    }
    files = sorted({label for label, _, _ in rows})
    table = {name: {} for name in methods}
    for name, method in methods.items():
        for label in files:
            lines = [(expected, text) for f, expected, text in rows if f == label]
            table[name][label] = sum(method(text) == expected for expected, text in lines) / len(lines)
    print(f"{len(rows)} lines, {len(files)} files ({len(codes)} languages; bs and sr count as hr)\n")
    print("| file | lines | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for label in files:
        count = sum(1 for f, _, _ in rows if f == label)
        print(f"| {label} | {count} | " + " | ".join(f"{table[n][label]:.2f}" for n in methods) + " |")
    print("| **macro** | " + str(len(rows)) + " | "
          + " | ".join(f"**{sum(table[n].values()) / len(files):.3f}**" for n in methods) + " |")
    print("\nright language and at or above the default threshold (what the corpora stage keeps), all lines:")
    for name, identifier in (("lid.176 (FineWeb-2 thresholds)", fasttext), ("lid.176 + second opinion", second),
                             ("heliport (its model's thresholds)", heliport)):
        kept = wrong = 0
        for _, expected, text in rows:
            code, score, _ = identifier.predict(text)
            passes = code is not None and score >= identifier.default_threshold(code)
            kept += passes and code == expected
            wrong += passes and code != expected
        print(f"  {name}: {kept}/{len(rows)} = {kept / len(rows):.3f} kept right; {wrong} kept in a wrong language")
    texts = [text for _, _, text in rows] * args.repeat
    print(f"\nthroughput, one core, {len(texts):,} lines:")
    import fasttext as fasttext_binding

    binding = fasttext_binding.load_model(str(resolve_model(LangIdConfig())))
    runs = {"lid.176, fastText binding only (predict k=5)": lambda t: binding.predict(t, k=5),
            "lid.176, occi's compiled copy only (predict k=5)": lambda t: fasttext.backend.compiled.predict(t, 5),
            "heliport, model only (identify)": heliport.backend.model.identify,
            "lid.176 through occi (LanguageIdentifier.predict)": fasttext.predict,
            "heliport through occi (top 5 + group score)": heliport.predict,
            "lid.176 + heliport second opinion through occi": second.predict}
    for name, run in runs.items():
        run(texts[0])
        started = time.perf_counter()
        for text in texts:
            run(text)
        seconds = time.perf_counter() - started
        print(f"  {name}: {len(texts) / seconds:,.0f} lines/s")


if __name__ == "__main__":
    main()
