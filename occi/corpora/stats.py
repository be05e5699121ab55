"""Counting what the corpora stage kept and dropped, and showing it (table and plot)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from occi.plots import pyplot, save_png

_NUMBERS = ("documents_in", "documents_kept", "bytes_in", "bytes_kept", "words_kept")


class Tally:
    """Counters per (source, language); language "" means not (yet) identified."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, source: str, language: str | None, **counts: int) -> None:
        bucket = self.counts[(source, language or "")]
        for key, value in counts.items():
            bucket[key] += value

    def merge(self, rows: list[list]) -> None:
        for source, language, counts in rows:
            self.add(source, language, **counts)

    def to_json(self) -> list[list]:
        return [[source, language, dict(sorted(counts.items()))]
                for (source, language), counts in sorted(self.counts.items())]


def _entry(counts: dict[str, int]) -> dict:
    """One stats entry: the numbers, the drops by step/reason, and the duplicate rate."""
    entry = {key: counts.get(key, 0) for key in _NUMBERS}
    drops = {key: value for key, value in sorted(counts.items()) if "/" in key and value}
    entry["drops"] = drops
    passed = counts.get("passed", 0)
    duplicates = sum(v for k, v in drops.items() if k.startswith("dedup/"))
    entry["duplicate_rate"] = round(duplicates / passed, 4) if passed else 0.0
    return entry


def summarize(tally: Tally, errors: list[dict], languages: list[str]) -> dict:
    """The stats.json document: per language (with its sources), per source, totals, errors."""
    by_language: dict[str, dict] = {code: defaultdict(int) for code in languages}
    by_language_source: dict[str, dict[str, dict]] = {code: {} for code in languages}
    by_source: dict[str, dict] = {}
    total: dict[str, int] = defaultdict(int)
    for (source, language), counts in sorted(tally.counts.items()):
        for target in (by_source.setdefault(source, defaultdict(int)), total):
            for key, value in counts.items():
                target[key] += value
        if language in by_language:
            for key, value in counts.items():
                by_language[language][key] += value
            by_language_source[language][source] = _entry(counts)
    return {
        "languages": {
            code: {**_entry(by_language[code]), "sources": by_language_source[code]} for code in languages
        },
        "sources": {source: _entry(counts) for source, counts in by_source.items()},
        "totals": _entry(total),
        "errors": errors[:100],
    }


def warnings(stats: dict) -> list[str]:
    """What a user should look at: a run language or a source that kept no document at all."""
    found = []
    if not stats["totals"]["documents_kept"]:
        found.append(f"corpora kept 0 documents of {stats['totals']['documents_in']:,} read; "
                     "the later stages have nothing to work on (see drops in stats.json)")
    for code, entry in stats["languages"].items():
        if not entry["documents_kept"] and stats["totals"]["documents_kept"]:
            found.append(f"language {code!r} kept 0 documents{_why(entry)}")
    for source, entry in stats["sources"].items():
        if not entry["documents_kept"]:
            found.append(f"source {source!r} contributed no documents{_why(entry)}")
    return found


def _why(entry: dict) -> str:
    top = max(entry["drops"].items(), key=lambda kv: kv[1], default=None)
    read = f" ({entry['documents_in']:,} read"
    return read + (f"; most dropped as {top[0]}: {top[1]:,})" if top else ")")


def format_table(stats: dict) -> str:
    """The summary printed at the end of a build."""
    header = f"{'lang':<5} {'docs in':>8} {'kept':>7} {'kept %':>7} {'MB kept':>8} {'words kept':>11} {'dup %':>6}  top drop"
    lines = [header, "-" * len(header)]
    for code, entry in stats["languages"].items():
        lines.append(_row(code, entry))
    lines.append("-" * len(header))
    lines.append(_row("all", stats["totals"]))
    drops = stats["totals"]["drops"]
    if drops:
        lines.append("")
        lines.append("dropped, by step/reason: " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items(), key=lambda kv: -kv[1])))
    bad = {k: v for k, v in drops.items() if k.startswith("read/")}
    if bad:
        lines.append(f"unreadable input: {', '.join(f'{k[5:]} {v}' for k, v in bad.items())}; "
                     "first cases under `errors` in stats.json:")
        for error in stats["errors"][:5]:
            lines.append(f"  {error['reason']}: {error['where']}")
    return "\n".join(lines)


def _row(label: str, entry: dict) -> str:
    docs_in, kept = entry["documents_in"], entry["documents_kept"]
    share = f"{100 * kept / docs_in:.0f}%" if docs_in else "-"
    top = max(entry["drops"].items(), key=lambda kv: kv[1], default=("", 0))
    top_text = f"{top[0]} ({top[1]})" if top[1] else ""
    return (f"{label:<5} {docs_in:>8,} {kept:>7,} {share:>7} {entry['bytes_kept'] / 1e6:>8.2f} "
            f"{entry['words_kept']:>11,} {100 * entry['duplicate_rate']:>5.1f}%  {top_text}")


def plot(stats: dict, path: Path) -> None:
    """A bar chart of kept and dropped text (MB) per language, written atomically."""
    plt = pyplot()
    codes = list(stats["languages"])
    kept = [stats["languages"][c]["bytes_kept"] / 1e6 for c in codes]
    dropped = [max(0.0, (stats["languages"][c]["bytes_in"] - stats["languages"][c]["bytes_kept"]) / 1e6) for c in codes]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(codes) + 2), 4))
    ax.bar(codes, kept, label="kept", color="#2b7bba")
    ax.bar(codes, dropped, bottom=kept, label="dropped (filters, duplicates)", color="#f0a35e")
    ax.set_ylabel("text (MB, UTF-8)")
    ax.set_title("corpora: kept and dropped text per language")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)
