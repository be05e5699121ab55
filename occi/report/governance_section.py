"""The model card's data-governance part, read from corpora/stats.json: what the URL block and
opt-out lists removed, the personal data replaced, and the benchmark x language table of
documents found to contain evaluation data (decontamination)."""
from __future__ import annotations

from pathlib import Path

from occi.rundir import RunDir


def governance_section(run_dir: Path, codes: list[str]) -> list[str]:
    """["## Data governance", text], or [] for corpora built before these steps existed."""
    run = RunDir.of(run_dir)
    stats = run.read_json(run.corpora_stats)
    if not stats or "decontamination" not in stats:
        return []
    parts = [_url_filter(stats["url_filter"]), _pii(stats["pii"], codes), decontamination_table(stats["decontamination"], codes)]
    return ["## Data governance", "\n\n".join(p for p in parts if p)]


def _url_filter(section: dict) -> str:
    if not section["lists"]:
        return "URL lists: none were applied (the recipe's `url_filter` is empty)."
    rows = ["| list | kind | entries | documents dropped |", "|---|---|---|---|"]
    for name, entry in section["lists"].items():
        dropped = sum(section["dropped"].get(name, {}).values())
        rows.append(f"| {name} | {entry['kind']} | {entry['entries']:,} | {dropped:,} |")
    return "Documents whose URL is on a block or rights-reservation (opt-out) list were dropped:\n\n" + "\n".join(rows)


def _pii(section: dict, codes: list[str]) -> str:
    if not section:
        return "Personal data: not replaced (the recipe's `pii` step is off)."
    kinds = sorted({kind for counts in section.values() for kind in counts})
    totals = {kind: sum(section.get(code, {}).get(kind, 0) for code in codes) for kind in kinds}
    listed = ", ".join(f"{totals[kind]:,} {kind}" for kind in kinds)
    return (f"Personal data replaced by placeholders in the kept documents: {listed} "
            "(per language in corpora/stats.json, `pii`).")


def decontamination_table(section: dict, codes: list[str]) -> str:
    """Benchmark x language: kept documents that contained benchmark text (dropped or flagged)."""
    if not section.get("enabled", True):
        return "Decontamination: off."
    checked = list(section.get("benchmarks", {}))
    action = "dropped" if section["action"] == "drop" else "kept and flagged in their metadata"
    head = (f"Decontamination: documents sharing a {section['ngram']}-gram with the test data of "
            f"{', '.join(checked) if checked else 'no local benchmark'} were {action}.")
    not_checked = section.get("not_checked") or []
    if not_checked:
        head += " Not checked: " + "; ".join(not_checked) + "."
    found = section["found"]
    benchmarks = sorted(set(checked) | set(found))
    if not benchmarks:
        return head
    shown = [code for code in codes if any(found.get(b, {}).get(code) for b in benchmarks)]
    if not shown:
        return head + " None was found."
    rows = ["| benchmark | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for benchmark in benchmarks:
        rows.append(f"| {benchmark} | " + " | ".join(str(found.get(benchmark, {}).get(code, 0)) for code in shown) + " |")
    return head + " Documents found, per benchmark and language:\n\n" + "\n".join(rows)
