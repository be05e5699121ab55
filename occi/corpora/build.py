"""`occi corpora build`: sources -> filtered, deduplicated per-language Parquet parts.

Two phases, both safe to kill and re-run:
1. filter (per shard, in a worker pool, or one rank's share of shards in a SLURM array):
   read -> normalise -> language ID -> quality filters -> dedup keys. Each shard writes
   _work/shard-NNNNN/{kept.parquet, stats.json} under temporary names, renames them, and
   marks itself done; a re-run skips done shards.
2. dedup (once all shards are done): exact and near duplicates within each language across
   all shards, then <lang>/part-NNNNN.parquet, stats.json, a plot, and the stage's marker.
"""
from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from occi.corpora import stats as corpus_stats
from occi.corpora.config import CorporaConfig
from occi.corpora.dedup import MinHasher, exact_key, find_duplicates
from occi.corpora.document import Document, Unreadable
from occi.corpora.filters import Filter
from occi.corpora.normalize import Normalizer
from occi.corpora.parquet import DROPPED_SCHEMA, KEPT_SCHEMA, OUTPUT_SCHEMA, Columns, PartWriter, StreamingTable
from occi.corpora.langid import LanguageFilter, LanguageIdentifier, resolve_model
from occi.corpora.quality import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from occi.corpora.sources import Shard, plan_shards, read_shard, sources_outside_run
from occi.errors import OcciError, warn
from occi.fsutil import atomic_dir, atomic_path, atomic_write_json, is_done, mark_done, remove_stale_temporaries
from occi.machine import cores
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share

MAX_ERRORS_KEPT = 20


@dataclass
class Job:
    """What a worker needs to process shards (pickled once per worker process)."""

    corpora: CorporaConfig
    languages: list[str]
    work_dir: Path
    dropped_dir: Path | None


def build(corpora: CorporaConfig, languages: list[str], run: RunDir, *, share: Share = Share(),
          phase: str = "all", workers: int | None = None, progress: bool = True) -> dict | None:
    """Runs the corpora stage (or one share of phase 1); returns the stats when done."""
    out = run.corpora
    if run.is_done("corpora"):
        return json.loads(run.corpora_stats.read_text(encoding="utf-8"))
    for source in sources_outside_run(corpora, languages):
        warn(f"source {source.name!r} is declared in {source.language!r}, which is not a language of this run "
             f"({', '.join(languages)}): it is not read")
    from occi.preflight.manifest import Manifest

    shards = plan_shards(corpora, languages, Manifest.read(run))
    work = out / "_work"
    job = Job(corpora, languages, work, out / "dropped" if corpora.keep_dropped else None)
    if phase in ("all", "filter"):
        _write_plan(work, shards)
        _filter_shards(job, share.mine(shards), workers or corpora.workers or cores(), progress)
        if phase == "filter" or not share.whole:
            return None  # the dedup phase runs once, after every rank is done
    missing = [s for s in shards if not is_done(work / s.name)]
    if missing:
        raise OcciError(
            f"{out}: {len(missing)} of {len(shards)} shards are not filtered yet (first: {missing[0].name}, "
            f"{missing[0].describe()}); run `occi corpora build` for every rank first"
        )
    stats = _deduplicate(job, shards, out, progress)
    mark_done(out, {"shards": len(shards)})
    shutil.rmtree(work, ignore_errors=True)
    return stats


def run(cfg, run: RunDir, share: Share = Share(), phase: str = "all", workers: int | None = None) -> StageResult:
    """The corpora stage of the stage list (occi/pipeline.py)."""
    stats = build(cfg.corpora, cfg.languages, run, share=share, phase=phase, workers=workers)
    if stats is None:
        return StageResult(f"corpora: rank {share.rank} of {share.world_size} done; run `occi corpora build` "
                           "without --rank (or with --phase dedup) once all ranks are done", complete=False)
    return StageResult(f"{corpus_stats.format_table(stats)}\ncorpora: {run.corpora}")


def shard_count(cfg, run: RunDir) -> int:
    """SLURM array tasks: one per shard at most (planned from the run's fetch manifest if any)."""
    from occi.preflight.manifest import Manifest

    return len(plan_shards(cfg.corpora, cfg.languages, Manifest.read(run)))


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

    def __init__(self, job: Job):
        cfg = job.corpora
        identifier = LanguageIdentifier(resolve_model(cfg.langid, cfg.base_dir), job.languages, cfg.langid.top_k,
                                        backend=cfg.langid.backend, second_opinion=cfg.langid.second_opinion)
        self.job = job
        self.filters: list[Filter] = [
            Normalizer(cfg.normalize),
            LanguageFilter(identifier, job.languages, cfg.langid.thresholds),
            GopherRepetitionFilter(cfg.quality),
            GopherQualityFilter(cfg.quality),
            FineWebQualityFilter(cfg.quality),
        ]
        self.minhasher = MinHasher(cfg.dedup) if cfg.dedup.near else None

    def process(self, shard: Shard) -> tuple[str, int]:
        """Filters one shard into its folder under _work; returns (name, documents read)."""
        folder = self.job.work_dir / shard.name
        if is_done(folder):
            return shard.name, 0
        self._remove_leftovers(shard)
        tally = corpus_stats.Tally()
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
            for record in read_shard(shard, self.job.corpora.base_dir, self.job.corpora.normalize.max_doc_chars):
                count += 1
                if isinstance(record, Unreadable):
                    tally.add(record.source, "", documents_in=record.count, **{f"read/{record.reason}": record.count})
                    if len(errors) < MAX_ERRORS_KEPT:
                        errors.append({"source": record.source, "where": record.where, "reason": record.reason,
                                       "detail": record.detail[:300]})
                    continue
                self._process_document(record, tally, kept, dropped)
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

    def _process_document(self, doc: Document, tally: corpus_stats.Tally, kept: StreamingTable,
                          dropped: StreamingTable | None) -> None:
        raw_bytes = len(doc.text.encode("utf-8", "surrogatepass"))
        for step in self.filters:
            reason = step.filter(doc)
            if reason is not None:
                language = doc.language or doc.metadata.get("language_declared") or ""
                tally.add(doc.source, language, documents_in=1, bytes_in=raw_bytes, **{f"{step.step}/{reason}": 1})
                if dropped is not None:
                    text = doc.text.encode("utf-8", "replace").decode("utf-8")
                    dropped.append(text=text, id=doc.id, source=doc.source, language=doc.language,
                                   step=step.step, reason=reason, detail=doc.metadata.get("lid_top_label", ""))
                return
        tally.add(doc.source, doc.language, documents_in=1, bytes_in=raw_bytes, passed=1)
        bands = self.minhasher.band_hashes(doc.text) if self.minhasher else np.zeros(0, dtype=np.uint64)
        kept.append(text=doc.text, id=doc.id, source=doc.source, language=doc.language,
                    language_score=doc.language_score, metadata=json.dumps(doc.metadata, sort_keys=True),
                    exact=exact_key(doc.text), bands=bands.tolist(), n_bytes=len(doc.text.encode("utf-8")),
                    n_words=len(doc.text.split()))


def _init_worker(job: Job) -> None:
    global _PROCESSOR
    _PROCESSOR = ShardProcessor(job)


def _process_in_worker(shard: Shard) -> tuple[str, int]:
    assert _PROCESSOR is not None
    return _PROCESSOR.process(shard)


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
        else:
            context = get_context("spawn")  # fork is unsafe with Arrow's and fastText's threads
            with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context,
                                     initializer=_init_worker, initargs=(job,)) as pool:
                advance(pool.map(_process_in_worker, pending))
    finally:
        bar.close()


# ---------------------------------------------------------------------------- phase 2

def _deduplicate(job: Job, shards: list[Shard], out: Path, progress: bool) -> dict:
    remove_stale_temporaries(out)  # a killed earlier dedup phase; this phase runs in one process
    if job.dropped_dir:
        for leftover in job.dropped_dir.glob(".duplicates.parquet.*.tmp"):
            leftover.unlink()
    keys = _read_dedup_columns(job.work_dir, shards)
    dedup = job.corpora.dedup
    tally = corpus_stats.Tally()
    errors: list[dict] = []
    for shard in shards:
        shard_stats = json.loads((job.work_dir / shard.name / "stats.json").read_text(encoding="utf-8"))
        tally.merge(shard_stats["tally"])
        errors.extend(shard_stats["errors"])
    drop = np.zeros(len(keys["language"]), dtype=object)  # reason per document, 0 when kept
    original = np.arange(len(drop))
    for language in job.languages:
        rows = np.flatnonzero(keys["language"] == language)
        if not len(rows) or not (dedup.exact or dedup.near):  # nothing to compare, or dedup is off
            continue
        exact = [keys["exact"][i] for i in rows] if dedup.exact else None
        bands = keys["bands"][rows] if dedup.near else None
        is_exact, is_near, first = find_duplicates(exact, bands)
        drop[rows[is_exact]] = "exact_duplicate"
        drop[rows[is_near]] = "near_duplicate"
        original[rows] = rows[first]
    for i in np.flatnonzero(drop != 0):
        tally.add(keys["source"][i], keys["language"][i], **{f"dedup/{drop[i]}": 1})
    for i in np.flatnonzero(drop == 0):
        tally.add(keys["source"][i], keys["language"][i], documents_kept=1,
                  bytes_kept=int(keys["n_bytes"][i]), words_kept=int(keys["n_words"][i]))
    _write_outputs(job, shards, out, drop, original, keys["id"], progress)
    stats = corpus_stats.summarize(tally, errors, job.languages)
    stats["warnings"] = corpus_stats.warnings(stats)
    for message in stats["warnings"]:
        warn(message)
    atomic_write_json(out / "stats.json", stats)
    corpus_stats.plot(stats, out / "kept_dropped.png")
    return stats


def _read_dedup_columns(work: Path, shards: list[Shard]) -> dict[str, np.ndarray]:
    parts = [pq.read_table(work / s.name / "kept.parquet", columns=["id", "source", "language", "exact", "bands",
                                                                     "n_bytes", "n_words"]) for s in shards]
    table = pa.concat_tables(parts) if parts else KEPT_SCHEMA.empty_table()
    bands = table.column("bands").to_pylist()
    width = max((len(b) for b in bands), default=0)
    return {
        "id": np.array(table.column("id").to_pylist(), dtype=object),
        "source": np.array(table.column("source").to_pylist(), dtype=object),
        "language": np.array(table.column("language").to_pylist(), dtype=object),
        "exact": table.column("exact").to_pylist(),
        "bands": np.array(bands, dtype=np.uint64).reshape(len(bands), width),
        "n_bytes": table.column("n_bytes").to_numpy(),
        "n_words": table.column("n_words").to_numpy(),
    }


def _write_outputs(job: Job, shards: list[Shard], out: Path, drop: np.ndarray, original: np.ndarray,
                   ids: np.ndarray, progress: bool) -> None:
    """Streams every shard's kept rows into <lang>/part-*.parquet, in plan order."""
    duplicates = Columns(DROPPED_SCHEMA.names) if job.dropped_dir else None
    offset = 0
    with ExitStack() as staging:  # each language folder appears whole, or not at all
        writers = {code: PartWriter(staging.enter_context(atomic_dir(out / code))) for code in job.languages}
        for table in _kept_batches(job.work_dir, shards, progress):
            reasons = drop[offset:offset + table.num_rows]
            keep = pa.array(reasons == 0)
            kept = table.filter(keep)
            languages = kept.column("language").to_numpy(zero_copy_only=False)
            for code in np.unique(languages):
                writers[code].write(kept.filter(pa.array(languages == code)))
            if duplicates is not None:
                for row in np.flatnonzero(reasons != 0):
                    record = table.slice(int(row), 1).to_pylist()[0]
                    duplicates.append(text=record["text"], id=record["id"], source=record["source"],
                                      language=record["language"], step="dedup", reason=reasons[row],
                                      detail=f"duplicate of {ids[original[offset + row]]}")
            offset += table.num_rows
        for writer in writers.values():
            writer.close()
        if duplicates is not None:
            with atomic_path(job.dropped_dir / "duplicates.parquet") as tmp:
                pq.write_table(duplicates.table(DROPPED_SCHEMA), tmp)


def _kept_batches(work: Path, shards: list[Shard], progress: bool) -> Iterator[pa.Table]:
    """Every shard's kept rows in plan order, a row group at a time (memory stays flat)."""
    for shard in tqdm(shards, unit="shard", desc="corpora: writing", disable=not progress):
        parquet = pq.ParquetFile(work / shard.name / "kept.parquet")
        for batch in parquet.iter_batches(columns=OUTPUT_SCHEMA.names, batch_size=StreamingTable.ROWS_PER_GROUP):
            yield pa.Table.from_batches([batch])
