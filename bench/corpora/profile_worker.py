"""Where occi's corpora shard worker spends its time, and what it decides, document by document.

    PYTHONPATH=. .venv/bin/python bench/corpora/profile_worker.py --corpus DIR --shards 2 \
        [--save decisions.npz] [--compare decisions.npz] [--cprofile 30] [--binding] [--cpu]

Runs the worker's own chain (occi.corpora.build.ShardProcessor.decide, blocks of BLOCK documents: normalise -> language ID ->
Gopher repetition -> Gopher quality -> FineWeb lines, then the exact key and the MinHash band
hashes of every kept document) over the first --shards shards of the benchmark corpus, in this
process, one core, with the bench/corpora run config (every language of the table, default
filters). Prints the share of wall time of each step (and the run's CPU time): the reading and Parquet writing of the worker
are not in it (they are the same before and after a speed-up of the filters). --cpu times each
step in this thread's CPU time instead (a system call per reading, about 0.3 s over 7 shards, but
steady on a machine shared with other work, where the wall time of a step is not).

--save writes every document's decision (the step and reason that dropped it, or "kept", the
language and its score) and the kept documents' exact keys and band hashes; --compare checks a
later run against such a file and exits 1 on the first difference: the before/after check of a
speed-up (store the "before" first).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from occi import languages
from occi.corpora.build import BLOCK, Job, ShardProcessor
from occi.corpora.dedup import exact_key
from occi.corpora.document import Document
from occi.corpora.sources import plan_shards, read_shard


def corpora_config(corpus: Path, shards: int, native: bool = True):
    from occi.config import load

    files = sorted(corpus.glob("part-*.jsonl"))[:shards]
    if len(files) < shards:
        raise SystemExit(f"{corpus} has {len(files)} shards, fewer than --shards {shards}: run make_corpus.py")
    folder = Path(tempfile.mkdtemp(prefix="occi-profile-"))
    for file in files:
        (folder / file.name).symlink_to(file.resolve())
    config = folder / "run.yaml"
    config.write_text(
        "name: bench-profile\n"
        f"languages: [{', '.join(json.dumps(c) for c in languages.LANGUAGES)}]\n"
        "corpora:\n  sources:\n    - name: debian-docs\n      kind: jsonl\n"
        f"      path: {folder}/part-*.jsonl\n      text_field: text\n      id_field: id\n"
        f"  langid: {{native: {json.dumps(native)}}}\n",
        encoding="utf-8")
    return load(str(config)), folder


def run(cfg, folder: Path, profile: cProfile.Profile | None, cpu: bool = False):
    corpora = cfg.corpora
    processor = ShardProcessor(Job(corpora, list(cfg.languages), folder / "_work", None))
    steps = [step.step for step in processor.filters]
    spent = dict.fromkeys([*steps, "exact_key", "minhash"], 0.0)
    ids, verdicts, langs, scores, exact, bands = [], [], [], [], [], []
    documents = 0
    # perf_counter is cheap; thread_time is a system call costing more than some steps here
    clock = time.thread_time if cpu else time.perf_counter
    if profile:
        profile.enable()
    def decide(block: list[Document]) -> None:
        for doc, verdict in zip(block, processor.decide(block, spent, clock)):
            ids.append(doc.id)
            verdicts.append("kept" if verdict is None else f"{verdict[0].step}/{verdict[1]}")
            langs.append(doc.language or "")
            scores.append(doc.language_score if doc.language_score is not None else -1.0)
            if verdict is None:
                start = clock()
                exact.append(exact_key(doc.text))
                middle = clock()
                bands.append(processor.minhasher.band_hashes(doc.text))
                spent["exact_key"] += middle - start
                spent["minhash"] += clock() - middle

    for shard in plan_shards(corpora, list(cfg.languages)):
        block: list[Document] = []
        for doc in read_shard(shard, corpora.base_dir, corpora.normalize.max_doc_chars):
            if not isinstance(doc, Document):
                continue
            documents += 1
            block.append(doc)
            if len(block) == BLOCK:
                decide(block)
                block = []
        decide(block)
    if profile:
        profile.disable()
    decisions = {"id": np.array(ids), "verdict": np.array(verdicts), "language": np.array(langs),
                 "score": np.array(scores), "exact": np.array(exact, dtype="S16"),
                 "bands": np.array(bands, dtype=np.uint64).reshape(len(bands), -1)}
    return documents, spent, decisions


def compare(now: dict, before_file: Path) -> int:
    before = np.load(before_file)
    for key in ("id", "verdict", "language", "score", "exact", "bands"):
        if before[key].shape != now[key].shape or not np.array_equal(before[key], now[key]):
            if before[key].shape == now[key].shape and before[key].ndim:
                first = np.flatnonzero((before[key] != now[key]).reshape(len(now[key]), -1).any(axis=1))[0]
                print(f"DIFFERENT {key}: first at row {first}: {before[key][first]!r} -> {now[key][first]!r}")
            else:
                print(f"DIFFERENT {key}: shape {before[key].shape} -> {now[key].shape}")
            return 1
    print(f"identical to {before_file}: {len(now['id'])} decisions, {len(now['exact'])} exact keys, "
          f"{now['bands'].size} band hashes")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="make_corpus.py's shard folder")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--save", type=Path, help="write the decisions here (.npz)")
    parser.add_argument("--compare", type=Path, help="compare the decisions with this file (.npz)")
    parser.add_argument("--cprofile", type=int, default=0, help="also print cProfile's top N functions")
    parser.add_argument("--cpu", action="store_true", help="time the steps in CPU time, not wall time")
    parser.add_argument("--binding", action="store_true",
                        help="language ID with the fastText binding (corpora.langid.native: false)")
    args = parser.parse_args(argv)
    cfg, folder = corpora_config(args.corpus, args.shards, native=not args.binding)
    profile = cProfile.Profile() if args.cprofile else None
    start, cpu = time.perf_counter(), time.process_time()
    try:
        documents, spent, decisions = run(cfg, folder, profile, args.cpu)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    total = sum(spent.values())
    kind, whole = ("CPU", cpu) if args.cpu else ("wall", wall)
    print(f"{documents} documents, {len(decisions['exact'])} kept before dedup; wall {wall:.1f} s, CPU {cpu:.1f} s "
          f"({documents / cpu:.0f} docs per CPU second), {total:.1f} s ({kind}) in the steps below; "
          f"load average {os.getloadavg()[0]:.2f}")
    for step, seconds in spent.items():
        print(f"  {step:<18}{seconds:8.2f} s  {100 * seconds / whole:5.1f} % of the {kind} time")
    print(f"  {'read + loop':<18}{whole - total:8.2f} s  {100 * (whole - total) / whole:5.1f} %")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.cprofile)
    if args.save:
        with args.save.open("wb") as handle:
            np.savez_compressed(handle, **decisions)
        print(f"decisions written to {args.save}")
    if args.compare:
        return compare(decisions, args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
