"""Deduplication in array phases (buckets, clusters, write): the single-process result for any
number of tasks, resumable at a phase boundary and inside a phase, memory bounded by partitions."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import occi
from test_corpora_build import _many_shards
from occi import config
from occi.corpora import build as corpora_build
from occi.corpora import dedup_stages
from occi.corpora.dedup import find_duplicates
from occi.errors import OcciError
from occi.sharding import Share


def _phase(run_dir: Path, config_path: Path, phase: str, rank: int = 0, world_size: int = 1):
    cfg, run = config.load_for_run(str(config_path), run_dir)
    return corpora_build.build(cfg.corpora, cfg.languages, run, share=Share(rank, world_size), phase=phase,
                               progress=False)


def _staged(run_dir: Path, config_path: Path, buckets: int, clusters: int, writers: int) -> None:
    for phase, tasks in (("buckets", buckets), ("clusters", clusters), ("write", writers)):
        for rank in range(tasks):
            _phase(run_dir, config_path, phase, rank, tasks)
    assert _phase(run_dir, config_path, "finish") is not None


def _result(run_dir: Path) -> dict:
    """What must not depend on how the work was split: kept rows per language in order, the
    duplicates with their reason and original, stats.json."""
    out = run_dir / "corpora"
    kept = {code.name: [row for part in sorted(code.glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]
            for code in sorted(out.iterdir()) if code.is_dir() and code.name != "dropped"}
    duplicates = sorted((row["id"], row["reason"], row["detail"]) for part in (out / "dropped").glob("duplicates-*.parquet")
                        for row in pq.read_table(part).to_pylist())
    return {"kept": kept, "duplicates": duplicates, "stats": json.loads((out / "stats.json").read_text())}


def _reference(run_dir: Path, languages: list[str]) -> dict:
    """The single-process dedup (dedup.find_duplicates over each language's documents at once)
    applied to the filtered shards: kept ids per language and (id, reason, original id) of each drop."""
    work = run_dir / "corpora" / "_work"
    table = pa.concat_tables(pq.read_table(p, columns=["id", "language", "exact", "bands"])
                             for p in sorted(work.glob("shard-*/kept.parquet")))
    ids = np.array(table.column("id").to_pylist(), dtype=object)
    language = np.array(table.column("language").to_pylist(), dtype=object)
    exact, bands = table.column("exact").to_pylist(), np.array(table.column("bands").to_pylist(), dtype=np.uint64)
    kept, drops = {}, []
    for code in languages:
        rows = np.flatnonzero(language == code)
        is_exact, is_near, first = find_duplicates([exact[i] for i in rows], bands[rows])
        kept[code] = ids[rows[~(is_exact | is_near)]].tolist()
        drops += [(ids[rows[i]], "exact_duplicate" if is_exact[i] else "near_duplicate",
                   f"duplicate of {ids[rows[first[i]]]}") for i in np.flatnonzero(is_exact | is_near)]
    return {"kept": kept, "duplicates": sorted(drops)}


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A run whose filter phase is done (7 shards, exact and near duplicates across them), and the
    single-process reference result computed from its filtered shards."""
    folder = tmp_path_factory.mktemp("staged")
    config_path = _many_shards(folder, shards=7, docs_per_shard=20)
    run_dir = folder / "filtered"
    result = occi("corpora", "build", str(config_path), "--run-dir", str(run_dir), "--phase", "filter")
    assert result.returncode == 0 and "once all ranks are done run `occi corpora build --phase buckets`" in result.stdout
    cfg, _ = config.load_for_run(str(config_path), run_dir)
    return config_path, run_dir, _reference(run_dir, cfg.languages)


def _copy(run_dir: Path, name: str) -> Path:
    target = run_dir.parent / name
    shutil.copytree(run_dir, target)
    return target


@pytest.mark.parametrize("buckets", [1, 3, 8])
def test_any_number_of_bucket_tasks_gives_the_single_process_result(filtered, buckets):
    config_path, run_dir, reference = filtered
    staged = _copy(run_dir, f"buckets-{buckets}")
    _staged(staged, config_path, buckets=buckets, clusters=2, writers=3)
    result = _result(staged)
    assert {code: [r["id"] for r in rows] for code, rows in result["kept"].items()} == reference["kept"]
    assert result["duplicates"] == reference["duplicates"]
    drops = result["stats"]["totals"]["drops"]
    assert drops["dedup/exact_duplicate"] >= 6 and drops["dedup/near_duplicate"] > 0  # both kinds happen here
    assert not (staged / "corpora" / "_work").exists() and (staged / "corpora" / "_DONE").exists()
    if buckets == 3:  # and every phase in one process, through the command line, gives the same files
        one_process = _copy(run_dir, "one-process")
        assert occi("corpora", "build", str(config_path), "--run-dir", str(one_process)).returncode == 0
        assert _result(one_process) == result


def test_a_phase_refuses_to_start_before_the_previous_one_is_complete(filtered):
    config_path, run_dir, _ = filtered
    staged = _copy(run_dir, "early")
    _phase(staged, config_path, "buckets", 0, 3)
    with pytest.raises(OcciError, match=r"of \d+ dedup partitions are not bucketed yet .* --phase buckets"):
        _phase(staged, config_path, "clusters")
    with pytest.raises(OcciError, match="languages are not clustered yet"):
        _phase(staged, config_path, "write")


def test_killed_inside_phases_then_rerun_equals_the_uninterrupted_result(filtered, monkeypatch):
    config_path, run_dir, reference = filtered
    clean = _copy(run_dir, "clean")
    _staged(clean, config_path, buckets=1, clusters=1, writers=1)
    resumed = _copy(run_dir, "resumed")
    _phase(resumed, config_path, "buckets", 1, 3)  # a phase boundary with one share done, two not
    work = resumed / "corpora" / "_work"
    (work / "pairs" / ".near-000000.npy.x.tmp").write_bytes(b"half")  # what a killed bucket task leaves

    calls = {"n": 0}
    real_save = dedup_stages._save

    def dies_on_second_drop_list(path, array):
        if "drops" in str(path):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt  # killed between two shards' drop lists of one language
        real_save(path, array)

    monkeypatch.setattr(dedup_stages, "_save", dies_on_second_drop_list)
    _phase(resumed, config_path, "buckets", 0, 3)
    _phase(resumed, config_path, "buckets", 2, 3)
    with pytest.raises(KeyboardInterrupt):
        _phase(resumed, config_path, "clusters")
    monkeypatch.setattr(dedup_stages, "_save", real_save)
    assert any((work / "drops").rglob("shard-*.npy")) and not all(
        (work / "drops" / code / "_DONE").exists() for code in ("fr", "fi", "sv", "et"))
    with pytest.raises(OcciError, match="languages are not clustered yet"):
        _phase(resumed, config_path, "write", 0, 3)
    (work / "written").mkdir(exist_ok=True)
    (work / "written" / ".shard-00001.abc.tmp").mkdir()  # a write task killed mid-shard
    result = occi("corpora", "build", str(config_path), "--run-dir", str(resumed))
    assert result.returncode == 0, result.stderr
    assert _result(resumed) == _result(clean)
    assert {code: [r["id"] for r in rows] for code, rows in _result(resumed)["kept"].items()} == reference["kept"]
    assert not list((resumed / "corpora").rglob("*.tmp"))


def test_pairs_and_clusters_match_union_find_on_planted_clusters():
    """The bucket and cluster steps alone, on band hashes with planted clusters, against find_duplicates."""
    rng = np.random.default_rng(7)
    docs, bands = 3000, 6
    hashes = rng.integers(0, 2**63, size=(docs, bands), dtype=np.uint64)
    for _ in range(300):  # chains: document b shares one band with a, so clusters grow transitively
        a, b = sorted(rng.choice(docs, 2, replace=False))
        band = rng.integers(bands)
        hashes[b, band] = hashes[a, band]
    exact_rows = rng.choice(docs, 200, replace=False)
    keys = [i.to_bytes(16, "little") for i in range(docs)]
    for row in exact_rows:  # one exact key shared by 200 documents, the bands of the earliest
        keys[row] = keys[exact_rows.min()]
        hashes[row] = hashes[exact_rows.min()]
    names = dedup_stages.doc_names(0, docs)
    near = np.empty(docs * bands, dtype=dedup_stages.NEAR)
    near["hash"] = hashes.ravel()
    near["doc"] = np.repeat(names, bands)
    band_of = np.tile(np.arange(bands), docs)
    near_pairs = np.concatenate([dedup_stages.pairs_of(near[band_of == b]) for b in range(bands)])
    exact = np.empty(docs, dtype=dedup_stages.EXACT)
    halves = np.frombuffer(b"".join(keys), dtype="<u8").reshape(docs, 2)
    exact["hi"], exact["lo"], exact["doc"] = halves[:, 0], halves[:, 1], names
    drops = dedup_stages.drops_of(near_pairs, dedup_stages.pairs_of(exact))
    is_exact, is_near, original = find_duplicates(keys, hashes)
    expected = np.flatnonzero(is_exact | is_near)
    assert drops["doc"].tolist() == expected.tolist()
    assert drops["original"].tolist() == original[expected].tolist()
    assert drops["reason"].tolist() == np.where(is_exact[expected], 1, 2).tolist()
    assert is_exact.sum() == 199 and is_near.sum() > 100


def test_exact_dedup_alone_in_phases(tmp_path):
    config_path = _many_shards(tmp_path, shards=3, docs_per_shard=4)
    import yaml

    data = yaml.safe_load(config_path.read_text())
    data["corpora"]["dedup"] = {"near": False, "hash_ranges": 2}
    config_path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    _phase(run_dir, config_path, "filter")
    assert not list((run_dir / "corpora" / "_work").glob("shard-*/near.npy"))
    _staged(run_dir, config_path, buckets=2, clusters=1, writers=1)
    drops = _result(run_dir)["stats"]["totals"]["drops"]
    assert drops["dedup/exact_duplicate"] == 2 and "dedup/near_duplicate" not in drops  # the copy in 3 shards


def test_sigkill_during_the_buckets_phase_then_rerun_equals_the_uninterrupted_result(filtered):
    import os
    import signal
    import subprocess
    import sys
    import time

    config_path, run_dir, reference = filtered
    killed = _copy(run_dir, "sigkill-buckets")
    pairs = killed / "corpora" / "_work" / "pairs"
    proc = subprocess.Popen([sys.executable, "-m", "occi.cli", "corpora", "build", str(config_path), "--run-dir",
                             str(killed), "--phase", "buckets"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(pairs.glob("*.npy"))) < 20:
        assert proc.poll() is None, "the buckets phase finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cfg, _ = config.load_for_run(str(config_path), killed)
    assert len(list(pairs.glob("*.npy"))) < len(dedup_stages.partitions(cfg.corpora.dedup, cfg.languages))
    result = occi("corpora", "build", str(config_path), "--run-dir", str(killed))
    assert result.returncode == 0, result.stderr
    assert {code: [r["id"] for r in rows] for code, rows in _result(killed)["kept"].items()} == reference["kept"]
    assert _result(killed)["duplicates"] == reference["duplicates"]
    assert not list((killed / "corpora").rglob("*.tmp"))
