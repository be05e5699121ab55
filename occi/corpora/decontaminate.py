"""Decontamination: word n-gram overlap between kept documents and the run's evaluation data.

The benchmark items are the test and validation data of the tasks the run's eval suites run: the
offline suite's occi_mc questions with their choices, the fidelity suite's prompts, any JSONL files
the recipe names, and the eu-leaderboard suite's tasks, read from the hub (or the fetch cache)
through lm-eval as the eval stage reads them (occi/corpora/eval_benchmarks.py); a task that cannot
be read is listed under `not_checked`.

Text is lower-cased and split into word characters (\\w+); a document is contaminated by a
benchmark when one of its n-grams (13 by default) is an n-gram of an item, or, for items shorter
than n words but at least `min_words`, when it contains the item's whole word sequence. n-grams
are compared as 64-bit rolling hashes of 32-bit word hashes, the benchmark's side kept as a sorted
array (8 bytes an n-gram, a binary search per look-up).

It runs in the write phase: it needs only the document itself and the benchmarks, so it needs no
phase of its own, and there only documents that survived deduplication are compared, so the
counts describe the kept corpora.
"""
from __future__ import annotations

import glob
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occi.assets import asset_dir
from occi.corpora.config import DecontaminationConfig
from occi.errors import OcciError

_WORD = re.compile(r"\w+")
_MULTIPLIER = np.uint64(0x100000001B3)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngram_hashes(tokens: list[str], n: int) -> np.ndarray:
    """The rolling hash of every run of n consecutive words (empty when there are fewer)."""
    return _ngram_hashes(tokens, (n,))


def _ngram_hashes(tokens: list[str], lengths: tuple[int, ...]) -> np.ndarray:
    """The hashes of every run of each of `lengths` consecutive words, in one rolling pass (a run
    of n words extends the run of n - 1 words starting at the same word)."""
    wanted = [n for n in lengths if n <= len(tokens)]
    if not wanted:
        return np.zeros(0, dtype=np.uint64)
    word_hashes = np.fromiter((zlib.crc32(t.encode("utf-8")) for t in tokens), dtype=np.uint64, count=len(tokens))
    found = []
    acc = np.zeros(len(tokens), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(max(wanted)):
            count = len(tokens) - k
            acc = acc[:count] * _MULTIPLIER + word_hashes[k:k + count] + np.uint64(1)
            if k + 1 in wanted:
                mixed = acc ^ np.uint64(k + 1)
                mixed ^= mixed >> np.uint64(29)
                found.append(mixed * np.uint64(0xBF58476D1CE4E5B9))
    return np.concatenate(found)


@dataclass
class Benchmark:
    name: str
    """Label in stats and the card (occi_mc, occi_fidelity, occi_ifeval, or a name from the recipe)."""
    items: list[str] = field(default_factory=list)
    """The texts looked for."""


def local_benchmarks(suites: list[str], languages: list[str], cfg: DecontaminationConfig,
                     base_dir: str) -> list[Benchmark]:
    """The benchmarks read from local files (the eu-leaderboard suite's: occi/corpora/eval_benchmarks.py)."""
    eval_data = asset_dir("eval") / "data"
    found: list[Benchmark] = []
    if "offline" in suites:
        found.append(Benchmark("occi_mc", [
            " ".join([row["question"], *row["choices"]])
            for code in languages for row in _jsonl(eval_data / "mc" / f"{code}.jsonl")]))
    if "fidelity" in suites:
        found.append(Benchmark("occi_fidelity", [
            row["prompt"] for code in languages for row in _jsonl(eval_data / "fidelity" / f"{code}.jsonl")]))
    if "ifeval" in suites:  # occi's own prompts (lm-eval's IFEval sets are hub data, not local)
        found.append(Benchmark("occi_ifeval", [
            row["prompt"] for code in languages for row in _jsonl(eval_data / "ifeval" / f"{code}.jsonl")]))
    for name, pattern in cfg.files.items():
        paths = sorted({p for code in languages
                        for p in glob.glob(str(Path(base_dir, pattern.replace("{code}", code))))})
        if not paths:
            raise OcciError(f"decontamination.files.{name}: no file matches {pattern!r} (relative to {base_dir or '.'})")
        found.append(Benchmark(name, [row_text(row) for path in paths for row in _jsonl(Path(path))]))
    return found


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise OcciError(f"{path}:{number}: not a JSON line ({err.msg}); decontamination reads one "
                                "JSON object a line") from None
    return rows


def row_text(row) -> str:
    if isinstance(row, str):
        return row
    if isinstance(row, dict):
        return " ".join(row_text(v) for v in row.values())
    if isinstance(row, list):
        return " ".join(row_text(v) for v in row)
    return ""


class BenchmarkIndex:
    """The n-gram hashes of every benchmark; `check(text)` names the benchmarks a text overlaps."""

    def __init__(self, benchmarks: list[Benchmark], cfg: DecontaminationConfig):
        self.n = cfg.ngram
        self.lengths: set[int] = set()
        self.hashes: list[tuple[str, np.ndarray]] = []
        self.items: dict[str, int] = {}
        for benchmark in benchmarks:
            chunks = []
            for item in benchmark.items:
                tokens = words(item)
                if len(tokens) >= self.n:
                    chunks.append(ngram_hashes(tokens, self.n))
                    self.lengths.add(self.n)
                elif len(tokens) >= cfg.min_words:
                    chunks.append(ngram_hashes(tokens, len(tokens)))
                    self.lengths.add(len(tokens))
            self.items[benchmark.name] = sum(1 for c in chunks if len(c))
            if chunks:
                self.hashes.append((benchmark.name, np.unique(np.concatenate(chunks))))

    @property
    def order(self) -> tuple[int, ...]:
        return tuple(sorted(self.lengths))

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def check(self, text: str) -> list[str]:
        """Benchmarks with at least one n-gram in `text`, the one sharing most n-grams first."""
        doc = _ngram_hashes(words(text), self.order)
        if not len(doc):
            return []
        hits = []
        for name, hashes in self.hashes:
            where = np.minimum(np.searchsorted(hashes, doc), len(hashes) - 1)
            shared = int(np.count_nonzero(hashes[where] == doc))
            if shared:
                hits.append((-shared, name))
        return [name for _, name in sorted(hits)]
