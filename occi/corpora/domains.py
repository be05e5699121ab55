"""Domain statistics: documents and bytes per registered domain, per source and language.

Filter phase: each shard counts, for the documents that passed every filter (before
deduplication), every registered domain exactly, and writes the counts sorted by (source,
language, domain). Finish phase: the shards' sorted files are merged k-way (heapq.merge), so each
domain's total is summed exactly while memory holds one row per shard plus the top list being
kept per source and language. The registered domain (eTLD+1) comes from the Public Suffix List
bundled in the `publicsuffixlist` package (no network at run time).
"""
from __future__ import annotations

import heapq
from functools import lru_cache
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from publicsuffixlist import PublicSuffixList

from occi.fsutil import atomic_path, atomic_write_json
from occi.plots import pyplot, save_png

TOP = 100
"""Domains listed per source and language."""
METHOD = (f"exact: every shard counts documents and UTF-8 bytes per registered domain (Public Suffix List "
          f"eTLD+1) of the documents that passed the filters (before deduplication) and writes them sorted; "
          f"the finish phase merges the sorted files k-way, summing each domain exactly, and keeps the top "
          f"{TOP} domains by bytes per source and language")
SCHEMA = pa.schema([("source", pa.string()), ("language", pa.string()), ("domain", pa.string()),
                    ("documents", pa.int64()), ("bytes", pa.int64())])


@lru_cache(maxsize=1)
def _suffix_list():
    return PublicSuffixList()


@lru_cache(maxsize=65536)
def _registered(host: str) -> str:
    if ":" in host or host.replace(".", "").isdigit():  # an IP address
        return host
    return _suffix_list().privatesuffix(host) or host


def registered_domain(url: str) -> str | None:
    """example.co.uk for https://news.example.co.uk/a; the host itself for IPs and bare suffixes."""
    try:
        host = (urlsplit(url if "://" in url else f"http://{url}").hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if not host:
        return None
    return _registered(host)


class DomainCounter:
    """One shard's exact counts."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], list[int]] = {}

    def add(self, source: str, language: str, url: str | None, n_bytes: int) -> None:
        domain = registered_domain(url) if url else None
        if domain is None:
            return
        entry = self.counts.setdefault((source, language, domain), [0, 0])
        entry[0] += 1
        entry[1] += n_bytes

    def write(self, path: Path) -> None:
        rows = sorted(self.counts.items())
        table = pa.table({
            "source": [k[0] for k, _ in rows], "language": [k[1] for k, _ in rows], "domain": [k[2] for k, _ in rows],
            "documents": [v[0] for _, v in rows], "bytes": [v[1] for _, v in rows],
        }, schema=SCHEMA)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)


def _rows(path: Path) -> Iterator[tuple[str, str, str, int, int]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
        columns = [batch.column(name).to_pylist() for name in SCHEMA.names]
        yield from zip(*columns)


def merge(files: list[Path], top: int = TOP) -> dict:
    """The domains.json document from the shards' sorted count files."""
    result: dict[str, dict[str, dict]] = {}
    heaps: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    current: tuple[str, str, str] | None = None
    documents = n_bytes = 0

    def close_domain() -> None:
        if current is None:
            return
        source, language, domain = current
        entry = result.setdefault(source, {}).setdefault(language, {"documents": 0, "bytes": 0, "domains": 0})
        entry["documents"] += documents
        entry["bytes"] += n_bytes
        entry["domains"] += 1
        heap = heaps.setdefault((source, language), [])
        item = (n_bytes, documents, domain)
        if len(heap) < top:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)

    for source, language, domain, docs, size in heapq.merge(*(_rows(f) for f in files if f.exists())):
        key = (source, language, domain)
        if key != current:
            close_domain()
            current, documents, n_bytes = key, 0, 0
        documents += docs
        n_bytes += size
    close_domain()
    for (source, language), heap in heaps.items():
        result[source][language]["top"] = [{"domain": d, "documents": docs, "bytes": size}
                                           for size, docs, d in sorted(heap, key=lambda x: (-x[0], x[2]))]
    return {"method": METHOD, "top_n": top, "sources": result}


def write(files: list[Path], json_path: Path, png_path: Path) -> dict:
    summary = merge(files)
    atomic_write_json(json_path, summary)
    plot(summary, png_path)
    return summary


def plot(summary: dict, path: Path, bars: int = 20) -> None:
    """The largest (domain, language) entries by MB, one horizontal bar each."""
    plt = pyplot()
    items = [(entry["bytes"], f"{entry['domain']} ({language}, {source})")
             for source, by_language in summary["sources"].items()
             for language, stats in by_language.items() for entry in stats.get("top", [])]
    items = sorted(items, reverse=True)[:bars][::-1]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(items) + 1.2)))
    if items:
        ax.barh([label for _, label in items], [size / 1e6 for size, _ in items], color="#2b7bba")
        ax.set_xlabel("text (MB, UTF-8) before deduplication")
    else:
        ax.text(0.5, 0.5, "no document has a URL (set url_field on the sources)", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("corpora: largest registered domains")
    fig.tight_layout()
    save_png(fig, path)
