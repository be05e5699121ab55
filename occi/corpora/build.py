"""`occi corpora build`: sources -> filtered, deduplicated per-language Parquet parts.

Phases, each an array of independent tasks (`--phase P --rank R --world-size N`), each safe to
kill and re-run (a unit of work is done when its file or marker exists):
1. filter (per shard, in a worker pool, or one rank's share of shards): read -> normalise ->
   language ID -> quality filters -> dedup keys. _work/shard-NNNNN/{kept.parquet, stats.json,
   near/exact key files partitioned by hash range} (dedup_stages.py), then its marker.
2. buckets (per dedup partition): duplicate pairs -> _work/pairs/<partition>.npy
3. clusters (per language): clusters of duplicates -> _work/drops/<lang>/<shard>.npy
4. write (per shard): kept rows minus duplicates -> _work/written/<shard>/<lang>/part-*.parquet
5. finish (once): stats.json, the plot, corpora/<lang>/ and the stage's marker.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from occi.corpora import eval_benchmarks, stats as corpus_stats
from occi.corpora.config import CorporaConfig
from occi.corpora import dedup_stages, domains
from occi.corpora.decontaminate import Benchmark, BenchmarkIndex, local_benchmarks
from occi.corpora.dedup import MinHasher, exact_key
from occi.corpora.document import Document, Unreadable
from occi.corpora.filters import Filter
from occi.corpora.normalize import Normalizer
from occi.corpora.pii import KINDS as PII_KINDS, PiiFormatter
from occi.corpora.urlfilter import CompiledList, UrlFilter, cache_folder, compile_lists
from occi.corpora.parquet import DROPPED_SCHEMA, KEPT_SCHEMA, OUTPUT_SCHEMA, Columns, PartWriter, StreamingTable
from occi.corpora.langid import LanguageFilter, LanguageIdentifier, resolve_model
from occi.corpora.quality import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from occi.corpora.sources import Shard, plan_shards, read_shard, sources_outside_run
from occi.errors import OcciError, warn
from occi.eval.suites import cells
from occi.fsutil import atomic_dir, atomic_path, atomic_write_json, is_done, mark_done, remove_stale_temporaries
from occi.hub import Manifest
from occi.machine import cores
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share

MAX_ERRORS_KEPT = 20
BLOCK = 256
"""Documents a worker hands to each step at a time (language ID: one compiled call per block)."""
PII = "pii:"
"""Tally key prefix of the personal data replaced in kept documents (pii:email, ...)."""
CONTAMINATED = "contaminated:"
"""Tally key prefix of the kept documents found to overlap a benchmark (dropped or flagged)."""


@dataclass
class Job:
    """What a worker needs to process shards (pickled once per worker process)."""

    corpora: CorporaConfig
    languages: list[str]
    work_dir: Path
    dropped_dir: Path | None
    url_lists: list[CompiledList] = field(default_factory=list)
    eval_suites: list[str] = field(default_factory=lambda: ["offline"])
    eval_tasks: list[tuple[str, str]] = field(default_factory=list)
    """(family, lm-eval task) of the eu-leaderboard cells the run evaluates: decontamination reads their data."""
    run_dir: Path | None = None
    """The run directory (its fetch manifest names the fetched copies of tasks' data files)."""


PHASES = ("filter", "buckets", "clusters", "write")
"""The array phases in order; `finish` joins them, `all` runs every one, `dedup` all but filter."""


def build(corpora: CorporaConfig, languages: list[str], run: RunDir, *, share: Share = Share(),
          phase: str = "all", workers: int | None = None, progress: bool = True,
          eval_suites: list[str] | None = None, eval_tasks: list[tuple[str, str]] | None = None) -> dict | None:
    """Runs the corpora stage, or one rank's share of one phase; returns the stats when done.
    `eval_suites`: the run's evaluation suites, whose data decontamination looks for (default:
    offline, the eval config's default); `eval_tasks`: (family, task) of its eu-leaderboard cells."""
    out = run.corpora
    if run.is_done("corpora"):
        return json.loads(run.corpora_stats.read_text(encoding="utf-8"))
    for source in sources_outside_run(corpora, languages):
        warn(f"source {source.name!r} is declared in {source.language!r}, which is not a language of this run "
             f"({', '.join(languages)}): it is not read")
    shards = plan_shards(corpora, languages, Manifest.read(run))
    work = run.corpora_work
    url_lists = compile_lists(corpora.url_filter.lists, corpora.base_dir, cache_folder(corpora.url_filter.cache_dir))
    job = Job(corpora, languages, work, out / "dropped" if corpora.keep_dropped else None, url_lists,
              list(eval_suites) if eval_suites is not None else ["offline"], list(eval_tasks or []), run.root)
    if phase == "all" and not share.whole:
        phase = "filter"  # ranks of `occi corpora build` without --phase: the filter share, as before
    wanted = {"all": (*PHASES, "finish"), "dedup": (*PHASES[1:], "finish"), "finish": ("finish",)}.get(phase, (phase,))
    workers = workers or corpora.workers or cores()
    if "filter" in wanted:
        _write_plan(work, shards)
        _filter_shards(job, share.mine(shards), workers, progress)
    if "buckets" in wanted:
        _require(work, shards, [work / s.name for s in shards], "filtered", "filter")
        _buckets(job, shards, share, progress, workers)
    if "clusters" in wanted:
        _require(work, shards, [_pairs_file(job, p) for p in _partitions(job)], "bucketed", "buckets",
                 what="dedup partitions")
        _clusters(job, shards, share, progress, workers)
    if "write" in wanted:
        _require(work, shards, [_drops_dir(job, code) for code in languages], "clustered", "clusters",
                 what="languages")
        _write_shards(job, share.mine(shards), progress, workers)
    if "finish" not in wanted:
        return None
    _require(work, shards, [_written_dir(job, s) for s in shards], "written", "write")
    stats = _finish(job, shards, run)
    mark_done(out, {"shards": len(shards)})
    shutil.rmtree(work, ignore_errors=True)
    return stats


def _require(work: Path, shards: list[Shard], markers: list[Path], state: str, phase: str,
             what: str = "shards") -> None:
    """Every unit of the previous phase is complete (a folder with _DONE, or a file), or one clear line."""
    missing = [m for m in markers if not (is_done(m) if m.suffix != ".npy" else m.exists())]
    if missing:
        first = missing[0].name
        if what == "shards":
            first += ", " + next(s for s in shards if s.name == first).describe()
        raise OcciError(
            f"{work.parent}: {len(missing)} of {len(markers)} {what} are not {state} yet (first: {first}); "
            f"run `occi corpora build --phase {phase}` for every rank first"
        )


def leaderboard_tasks(cfg) -> list[tuple[str, str]]:
    """(family, lm-eval task) of every eu-leaderboard cell the run evaluates."""
    if "eu-leaderboard" not in cfg.eval.suites:
        return []

    return [(cell.family, cell.task) for cell in cells("eu-leaderboard", cfg.eval_languages, {}, cfg.eval.families)]


def run(cfg, run: RunDir, share: Share = Share(), phase: str = "all", workers: int | None = None) -> StageResult:
    """The corpora stage of the stage list (occi/pipeline.py)."""
    stats = build(cfg.corpora, cfg.languages, run, share=share, phase=phase, workers=workers,
                  eval_suites=cfg.eval.suites, eval_tasks=leaderboard_tasks(cfg))
    if stats is None:
        following = {"filter": "buckets", "buckets": "clusters", "clusters": "write", "write": "finish"}
        step = following.get(phase if phase != "all" else "filter", "finish")
        return StageResult(f"corpora: {phase if phase != 'all' else 'filter'} rank {share.rank} of {share.world_size} "
                           f"done; once all ranks are done run `occi corpora build --phase {step}` (or without "
                           "--phase, to run the rest in one process)", complete=False)
    return StageResult(f"{corpus_stats.format_table(stats)}\ncorpora: {run.corpora}")


def shard_count(cfg, run: RunDir) -> int:
    """SLURM array tasks of the filter and write phases: one per shard at most (planned from the
    run's fetch manifest if any)."""
    return len(plan_shards(cfg.corpora, cfg.languages, Manifest.read(run)))


def bucket_count(cfg, run: RunDir) -> int:
    """SLURM array tasks of the buckets phase: as many as shards (the work grows with the
    documents), at most one per partition."""
    return max(1, min(shard_count(cfg, run), len(dedup_stages.partitions(cfg.corpora.dedup, cfg.languages))))


def language_count(cfg, run: RunDir) -> int:
    """SLURM array tasks of the clusters phase: one per language."""
    return len(cfg.languages)


def _write_plan(work: Path, shards: list[Shard]) -> None:
    plan = [{"shard": s.name, "source": s.source.name, "location": s.location, "limit": s.limit} for s in shards]
    plan_file = work / "plan.json"
    if plan_file.exists():
        previous = json.loads(plan_file.read_text(encoding="utf-8"))
        if previous != plan:
            raise OcciError(
                f"{plan_file}: the sources changed since this run started; "
                f"use a new --run-dir or delete {work.parent} to start over"
            )
        return
    atomic_write_json(plan_file, plan)


# ---------------------------------------------------------------------------- phase 1

_PROCESSOR: ShardProcessor | None = None


class ShardProcessor:
    """The filter chain of one worker process (the LID model is loaded once per process)."""

    def __init__(self, job: Job, identifier: LanguageIdentifier | None = None):
        cfg = job.corpora
        identifier = identifier or LanguageIdentifier.from_config(cfg.langid, job.languages, cfg.base_dir)
        self.job = job
        self.filters: list[Filter] = [
            Normalizer(cfg.normalize),
            LanguageFilter(identifier, job.languages, cfg.langid.thresholds),
            *([UrlFilter(job.url_lists)] if job.url_lists else []),  # after language ID: drops are counted per language
            GopherRepetitionFilter(cfg.quality),
            GopherQualityFilter(cfg.quality),
            FineWebQualityFilter(cfg.quality),
            *([PiiFormatter(cfg.pii.kinds)] if cfg.pii.enabled else []),
        ]
        self.domains = domains.DomainCounter()
        self.minhasher = MinHasher(cfg.dedup) if cfg.dedup.near else None
        # decide() runs the steps before this index a block at a time, the rest document by document
        self._blockwise = 1 + max((i for i, step in enumerate(self.filters) if isinstance(step, LanguageFilter)),
                                  default=-1)

    def process(self, shard: Shard) -> tuple[str, int]:
        """Filters one shard into its folder under _work; returns (name, documents read)."""
        folder = self.job.work_dir / shard.name
        if is_done(folder):
            return shard.name, 0
        self._remove_leftovers(shard)
        tally = corpus_stats.Tally()
        self.domains = domains.DomainCounter()
        errors: list[dict] = []
        count = 0
        folder.mkdir(parents=True, exist_ok=True)
        with ExitStack() as files:
            kept = StreamingTable(files.enter_context(atomic_path(folder / "kept.parquet")), KEPT_SCHEMA)
            files.callback(kept.close)
            dropped = None
            if self.job.dropped_dir:
                dropped = StreamingTable(files.enter_context(atomic_path(self.job.dropped_dir / f"{shard.name}.parquet")),
                                          DROPPED_SCHEMA)
                files.callback(dropped.close)
            block: list[Document] = []
            for record in read_shard(shard, self.job.corpora.base_dir, self.job.corpora.normalize.max_doc_chars):
                count += 1
                if isinstance(record, Unreadable):
                    tally.add(record.source, "", documents_in=record.count, **{f"read/{record.reason}": record.count})
                    if len(errors) < MAX_ERRORS_KEPT:
                        errors.append({"source": record.source, "where": record.where, "reason": record.reason,
                                       "detail": record.detail[:300]})
                    continue
                block.append(record)
                if len(block) == BLOCK:
                    self._process_block(block, tally, kept, dropped)
                    block = []
            self._process_block(block, tally, kept, dropped)
        if self.job.corpora.dedup.exact or self.job.corpora.dedup.near:
            dedup_stages.write_keys(folder / "kept.parquet", folder, shard.index, self.job.corpora.dedup,
                                    self.job.languages)
        self.domains.write(folder / "domains.parquet")
        atomic_write_json(folder / "stats.json", {"tally": tally.to_json(), "errors": errors})
        mark_done(folder, {"documents": count})
        return shard.name, count

    def _remove_leftovers(self, shard: Shard) -> None:
        """Temporary files of an earlier, killed attempt at this shard (only this shard's)."""
        places = [self.job.work_dir / shard.name]
        if self.job.dropped_dir:
            places.append(self.job.dropped_dir)
        for place in places:
            for leftover in place.glob(f".{'*' if place.name == shard.name else shard.name}.parquet.*.tmp"):
                leftover.unlink(missing_ok=True)

    def decide(self, docs: list[Document], spent: dict[str, float] | None = None,
               clock=time.thread_time) -> list[tuple[Filter, str] | None]:
        """Runs the chain over a block of documents: per document, the step and reason that
        dropped it, or None. The steps up to language ID run one step over the whole block at a
        time (the language identifier takes the block's texts in one compiled call); the ones after
        it document by document, so the filters of one text share its code points
        (kernels.code_points keeps the last). The steps keep nothing between documents, so this
        is the chain applied document by document. `spent` adds up each step's time by `clock`."""
        verdicts: list[tuple[Filter, str] | None] = [None] * len(docs)
        live = list(range(len(docs)))
        timed = spent is not None
        for position, step in enumerate(self.filters):
            if not live or position == self._blockwise:
                break
            start = clock() if timed else 0.0
            if isinstance(step, LanguageFilter):
                predictions = step.identifier.predict_block([docs[i].text for i in live])
                reasons = [step.decide(docs[i], p) for i, p in zip(live, predictions)]
            else:
                reasons = [step.filter(docs[i]) for i in live]
            if timed:
                spent[step.step] = spent.get(step.step, 0.0) + clock() - start
            if any(reason is not None for reason in reasons):
                for i, reason in zip(live, reasons):
                    if reason is not None:
                        verdicts[i] = (step, reason)
                live = [i for i, reason in zip(live, reasons) if reason is None]
        rest = self.filters[self._blockwise:]
        for i in live:
            doc = docs[i]
            for step in rest:
                start = clock() if timed else 0.0
                reason = step.filter(doc)
                if timed:
                    spent[step.step] = spent.get(step.step, 0.0) + clock() - start
                if reason is not None:
                    verdicts[i] = (step, reason)
                    break
        return verdicts

    def _process_block(self, docs: list[Document], tally: corpus_stats.Tally, kept: StreamingTable,
                       dropped: StreamingTable | None) -> None:
        raw_bytes = [len(doc.text.encode("utf-8", "surrogatepass")) for doc in docs]
        for doc, verdict, size in zip(docs, self.decide(docs), raw_bytes):
            if verdict is not None:
                step, reason = verdict
                language = doc.language or doc.metadata.get("language_declared") or ""
                tally.add(doc.source, language, documents_in=1, bytes_in=size, **{f"{step.step}/{reason}": 1})
                if dropped is not None:
                    text = doc.text.encode("utf-8", "replace").decode("utf-8")
                    dropped.append(text=text, id=doc.id, source=doc.source, language=doc.language,
                                   step=step.step, reason=reason, detail=doc.metadata.get("lid_top_label", ""))
                continue
            tally.add(doc.source, doc.language, documents_in=1, bytes_in=size, passed=1)
            bands = self.minhasher.band_hashes(doc.text) if self.minhasher else np.zeros(0, dtype=np.uint64)
            n_bytes = len(doc.text.encode("utf-8"))
            self.domains.add(doc.source, doc.language or "", doc.metadata.get("url"), n_bytes)
            kept.append(text=doc.text, id=doc.id, source=doc.source, language=doc.language,
                        language_score=doc.language_score, metadata=json.dumps(doc.metadata, sort_keys=True),
                        exact=exact_key(doc.text), bands=bands.tolist(), n_bytes=n_bytes,
                        n_words=len(doc.text.split()))


def _init_worker(job: Job) -> None:
    global _PROCESSOR
    _PROCESSOR = ShardProcessor(job)


def _process_in_worker(shard: Shard) -> tuple[str, int]:
    assert _PROCESSOR is not None
    return _PROCESSOR.process(shard)


def _compile_kernels(job: Job) -> None:
    """Runs the filters' numba kernels once here: a cold cache is compiled (about 8 s) and written
    once, then every worker loads it (about 0.3 s) instead of compiling at the same time."""
    cfg = job.corpora
    text = "Der Zug fährt um acht Uhr ab, und wir warten am Gleis.\n" * 3
    for step in (Normalizer(cfg.normalize), GopherRepetitionFilter(cfg.quality), GopherQualityFilter(cfg.quality),
                 FineWebQualityFilter(cfg.quality)):
        step.filter(Document(text=text, id="", source="", language=job.languages[0] if job.languages else None))
    MinHasher(cfg.dedup).band_hashes(text)


def _shared_identifier(job: Job) -> LanguageIdentifier | None:
    """The language identifier of worker threads, or None where each worker needs a process of its
    own. The compiled language ID and the filters' kernels release the GIL (numba nogil), so
    threads of this process share one copy of numba, LLVM, Arrow and the model instead of one per
    worker process (about 150 MB each); the compiled predictor keeps no state between calls. The
    fastText binding and heliport hold the GIL: they keep their worker processes."""
    langid = job.corpora.langid
    if langid.backend != "fasttext" or not langid.native or langid.second_opinion:
        return None
    identifier = LanguageIdentifier.from_config(langid, job.languages, job.corpora.base_dir)
    return identifier if identifier.backend.compiled is not None else None


def _in_threads(job: Job, shards: list[Shard], threads: int,
                identifier: LanguageIdentifier) -> Iterator[tuple[str, int]]:
    """Processes the shards in `threads` threads, each with its own filter chain."""
    local = threading.local()

    def process(shard: Shard) -> tuple[str, int]:
        if not hasattr(local, "processor"):
            local.processor = ShardProcessor(job, identifier)
        return local.processor.process(shard)

    with ThreadPoolExecutor(threads, thread_name_prefix="corpora-filter") as pool:
        yield from pool.map(process, shards)


def _filter_shards(job: Job, shards: list[Shard], workers: int, progress: bool) -> None:
    pending = [s for s in shards if not is_done(job.work_dir / s.name)]
    if not pending:
        return
    resolve_model(job.corpora.langid, job.corpora.base_dir)  # a missing model fails here, once
    bar = tqdm(total=len(pending), unit="shard", desc="corpora: filtering", disable=not progress)
    documents = 0
    started = time.monotonic()

    def advance(done: Iterator[tuple[str, int]]) -> None:
        nonlocal documents
        for _, count in done:
            documents += count
            bar.set_postfix(docs=documents, docs_per_s=int(documents / max(1e-9, time.monotonic() - started)))
            bar.update(1)

    try:
        if workers <= 1 or len(pending) == 1:
            processor = ShardProcessor(job)
            advance(processor.process(shard) for shard in pending)
        elif (identifier := _shared_identifier(job)) is not None:
            advance(_in_threads(job, pending, min(workers, len(pending)), identifier))
        else:
            _compile_kernels(job)
            context = get_context("spawn")  # fork is unsafe with Arrow's and fastText's threads
            with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context,
                                     initializer=_init_worker, initargs=(job,)) as pool:
                advance(pool.map(_process_in_worker, pending))
    finally:
        bar.close()


# ---------------------------------------------------------------------------- dedup phases

def _partitions(job: Job) -> list[dedup_stages.Partition]:
    return dedup_stages.partitions(job.corpora.dedup, job.languages)


def _pairs_file(job: Job, partition: dedup_stages.Partition) -> Path:
    return job.work_dir / "pairs" / f"{partition.name}.npy"


def _drops_dir(job: Job, code: str) -> Path:
    return job.work_dir / "drops" / code


def _written_dir(job: Job, shard: Shard) -> Path:
    return job.work_dir / "written" / shard.name


def _in_parallel(work, items: list, threads: int, desc: str, unit: str, progress: bool) -> None:
    """work(item) for every item, in `threads` threads of this process: the dedup phases' tasks
    are independent (each writes its own files) and spend their time in Arrow and numpy, which
    release the GIL."""
    bar = tqdm(total=len(items), unit=unit, desc=desc, disable=not progress)
    try:
        if threads <= 1 or len(items) <= 1:
            for item in items:
                work(item)
                bar.update(1)
            return
        with ThreadPoolExecutor(min(threads, len(items)), thread_name_prefix="corpora-dedup") as pool:
            for _ in pool.map(work, items):
                bar.update(1)
    finally:
        bar.close()


def _buckets(job: Job, shards: list[Shard], share: Share, progress: bool, threads: int = 1) -> None:
    """This rank's partitions: the duplicate pairs among their keys (a partition done is a file)."""
    pending = [p for p in share.mine(_partitions(job)) if not _pairs_file(job, p).exists()]
    keys = dedup_stages.KeyFiles([job.work_dir / s.name for s in shards], pending)
    mine = {f".{p.name}.npy." for p in pending}
    for leftover in (job.work_dir / "pairs").glob(".*.tmp"):  # a killed run's partial files, this rank's only
        if leftover.name[:leftover.name.index(".npy.") + 5] in mine:
            leftover.unlink(missing_ok=True)
    _in_parallel(lambda partition: dedup_stages.bucket(keys, partition, job.work_dir / "pairs"), pending, threads,
                 "corpora: dedup buckets", "partition", progress)


def _clusters(job: Job, shards: list[Shard], share: Share, progress: bool, threads: int = 1) -> None:
    """This rank's languages: clusters of duplicates, and each shard's drop list."""
    by_language: dict[str, list[Path]] = {}
    for partition in _partitions(job):
        by_language.setdefault(partition.language, []).append(_pairs_file(job, partition))
    kept = [job.work_dir / s.name / "kept.parquet" for s in shards] if job.dropped_dir else None

    def cluster(code: str) -> None:
        folder = _drops_dir(job, code)
        if is_done(folder):
            return
        if folder.exists():
            shutil.rmtree(folder)  # a killed attempt: its files may be a subset
        folder.mkdir(parents=True)
        dropped = dedup_stages.cluster(by_language.get(code, []), folder, kept)
        mark_done(folder, {"dropped": dropped})

    _in_parallel(cluster, share.mine(job.languages), threads, "corpora: dedup clusters", "language", progress)


def _write_shards(job: Job, shards: list[Shard], progress: bool, threads: int = 1) -> None:
    """Per shard: its kept rows minus its duplicates, as <lang>/part-SSSSS-NNNNN.parquet (in
    _work/written/<shard>/ until the stage finishes) and the counts of what it kept."""
    pending = [s for s in shards if not is_done(_written_dir(job, s))]
    if not pending:
        return
    index = _benchmark_index(job)

    def write(shard: Shard) -> None:
        for leftover in _written_dir(job, shard).parent.glob(f".{shard.name}.*.tmp"):  # a killed attempt at it
            shutil.rmtree(leftover, ignore_errors=True)
        _write_shard(job, shard, index)

    # decontamination's look-ups are Python holding the GIL: threads would only take turns
    _in_parallel(write, pending, threads if index is None else 1, "corpora: writing", "shard", progress)


def _benchmark_index(job: Job) -> BenchmarkIndex | None:
    cfg = job.corpora.decontamination
    if not cfg.enabled:
        return None
    benchmarks, _ = _benchmarks(job)
    return BenchmarkIndex(benchmarks, cfg) or None


def _benchmarks(job: Job) -> tuple[list[Benchmark], list[str]]:
    """The run's benchmarks (local files, and the eu-leaderboard tasks' data), and the tasks not checked."""
    found = local_benchmarks(job.eval_suites, job.languages, job.corpora.decontamination, job.corpora.base_dir)
    if not job.eval_tasks:
        return found, []

    read, not_checked = eval_benchmarks.load(job.run_dir, job.work_dir, job.eval_tasks)
    return found + read, not_checked


def _write_shard(job: Job, shard: Shard, index: BenchmarkIndex | None) -> None:
    source = job.work_dir / shard.name / "kept.parquet"
    rows = pq.ParquetFile(source).metadata.num_rows
    reasons = np.zeros(rows, dtype=np.uint8)
    originals = np.empty(rows, dtype=object)
    for code in job.languages:
        drops = _drops_dir(job, code) / f"{shard.name}.npy"
        if drops.exists():
            records = np.load(drops)
            where = dedup_stages.row_of(records["doc"])
            reasons[where] = records["reason"]
            if job.dropped_dir:
                originals[where] = pq.read_table(drops.with_suffix(".ids.parquet")).column("original_id").to_pylist()
    tally = corpus_stats.Tally()
    duplicates = Columns(DROPPED_SCHEMA.names) if job.dropped_dir else None
    with atomic_dir(_written_dir(job, shard)) as folder:
        writers = {code: PartWriter(folder / code, prefix=f"part-{shard.index:05d}-") for code in job.languages}
        offset = 0
        parquet = pq.ParquetFile(source)
        for batch in parquet.iter_batches(columns=[*OUTPUT_SCHEMA.names, "n_bytes", "n_words"],
                                          batch_size=StreamingTable.ROWS_PER_GROUP):
            table = pa.Table.from_batches([batch])
            mine = reasons[offset:offset + table.num_rows]
            sources = table.column("source").to_pylist()
            languages = table.column("language").to_numpy(zero_copy_only=False)
            n_bytes, n_words = table.column("n_bytes").to_numpy(), table.column("n_words").to_numpy()
            texts = table.column("text").to_pylist() if index else None
            metadata = table.column("metadata").to_pylist()
            dropped = mine != 0
            contaminated: dict[int, str] = {}
            flagged = False
            for i in range(table.num_rows):
                if mine[i]:
                    tally.add(sources[i], languages[i], **{f"dedup/{dedup_stages.REASONS[mine[i]]}": 1})
                    continue
                hits = index.check(texts[i]) if index else []
                if hits:
                    tally.add(sources[i], languages[i], **{f"{CONTAMINATED}{name}": 1 for name in hits})
                    if job.corpora.decontamination.action == "drop":
                        tally.add(sources[i], languages[i], **{f"decontaminate/{hits[0]}": 1})
                        dropped[i] = True
                        contaminated[i] = hits[0]
                        continue
                    metadata[i] = json.dumps({**json.loads(metadata[i]), "contaminated": hits}, sort_keys=True)
                    flagged = True
                if '"pii"' in metadata[i]:
                    tally.add(sources[i], languages[i],
                              **{f"{PII}{kind}": n for kind, n in json.loads(metadata[i])["pii"].items()})
                tally.add(sources[i], languages[i], documents_kept=1, bytes_kept=int(n_bytes[i]),
                          words_kept=int(n_words[i]))
            kept = table.select(OUTPUT_SCHEMA.names)
            if flagged:
                kept = kept.set_column(kept.schema.get_field_index("metadata"), "metadata",
                                       pa.array(metadata, pa.string()))
            kept = kept.filter(pa.array(~dropped))
            kept_languages = languages[~dropped]
            for code in np.unique(kept_languages):
                writers[code].write(kept.filter(pa.array(kept_languages == code)))
            if duplicates is not None:
                for row in np.flatnonzero(mine):
                    record = table.slice(int(row), 1).to_pylist()[0]
                    duplicates.append(text=record["text"], id=record["id"], source=record["source"],
                                      language=record["language"], step="dedup",
                                      reason=dedup_stages.REASONS[mine[row]],
                                      detail=f"duplicate of {originals[offset + row]}")
                for row, name in contaminated.items():
                    duplicates.append(text=texts[row], id=table.column("id")[row].as_py(), source=sources[row],
                                      language=languages[row], step="decontaminate", reason=name,
                                      detail=f"{job.corpora.decontamination.ngram}-gram overlap with {name}")
            offset += table.num_rows
        for writer in writers.values():
            writer.close()
        if duplicates is not None and len(duplicates):
            pq.write_table(duplicates.table(DROPPED_SCHEMA), folder / "duplicates.parquet")
        atomic_write_json(folder / "tally.json", tally.to_json())
        mark_done(folder)


def _finish(job: Job, shards: list[Shard], run: RunDir) -> dict:
    """stats.json, the plots, domains.json and the language folders (each appears whole, or not at all)."""
    out = run.corpora
    remove_stale_temporaries(out)
    tally = corpus_stats.Tally()
    errors: list[dict] = []
    for shard in shards:
        shard_stats = json.loads((job.work_dir / shard.name / "stats.json").read_text(encoding="utf-8"))
        tally.merge(shard_stats["tally"])
        errors.extend(shard_stats["errors"])
        tally.merge(json.loads((_written_dir(job, shard) / "tally.json").read_text(encoding="utf-8")))
    for code in job.languages:
        with atomic_dir(out / code) as folder:
            for shard in shards:
                for part in sorted((_written_dir(job, shard) / code).glob("part-*.parquet")):
                    _link(part, folder / part.name)
    if job.dropped_dir:
        remove_stale_temporaries(job.dropped_dir)
        for shard in shards:
            written = _written_dir(job, shard) / "duplicates.parquet"
            if written.exists():
                _link(written, job.dropped_dir / f"duplicates-{shard.index:05d}.parquet")
    stats = corpus_stats.summarize(tally, errors, job.languages)
    stats.update(_governance(job, tally))
    domains.write([job.work_dir / s.name / "domains.parquet" for s in shards], run.corpora_domains,
                  run.corpora_domains_plot)
    stats["warnings"] = corpus_stats.warnings(stats)
    for message in stats["warnings"]:
        warn(message)
    atomic_write_json(out / "stats.json", stats)
    corpus_stats.plot(stats, out / "kept_dropped.png")
    return stats


def _governance(job: Job, tally: corpus_stats.Tally) -> dict:
    """stats.json's url_filter, pii and decontamination sections."""
    per_language: dict[str, dict[str, int]] = {}
    for (_, language), counts in tally.counts.items():
        if language in job.languages:
            bucket = per_language.setdefault(language, {})
            for key, value in counts.items():
                bucket[key] = bucket.get(key, 0) + value

    def by_prefix(prefix: str) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for language, counts in per_language.items():
            for key, value in counts.items():
                if key.startswith(prefix) and value:
                    found.setdefault(key[len(prefix):], {})[language] = value
        return {name: dict(sorted(langs.items())) for name, langs in sorted(found.items())}

    cfg = job.corpora
    pii = {code: {kind: per_language.get(code, {}).get(f"{PII}{kind}", 0) for kind in PII_KINDS if kind in cfg.pii.kinds}
           for code in job.languages} if cfg.pii.enabled else {}
    decontamination: dict = {"ngram": cfg.decontamination.ngram, "action": cfg.decontamination.action,
                             "enabled": cfg.decontamination.enabled}
    if cfg.decontamination.enabled:
        benchmarks, not_checked = _benchmarks(job)
        decontamination["benchmarks"] = {b.name: {"items": len(b.items)} for b in benchmarks}
        decontamination["not_checked"] = not_checked
    decontamination["found"] = by_prefix(CONTAMINATED)
    dropped = by_prefix("url_filter/")
    return {
        "url_filter": {
            "lists": {entry.name: {"kind": entry.kind, "path": entry.path, "entries": entry.entries}
                      for entry in job.url_lists},
            "dropped": {entry.name: dropped.get(entry.name, {}) for entry in job.url_lists},
        },
        "pii": pii,
        "decontamination": decontamination,
    }


def _link(source: Path, target: Path) -> None:
    """`target` becomes `source`'s content (a hard link: the work folder is removed afterwards)."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # another file system
            shutil.copyfile(source, tmp)
