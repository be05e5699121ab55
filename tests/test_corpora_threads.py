"""The filter phase's worker threads (one process, numba kernels without the GIL): the same
output as the worker processes they replace."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_corpora_build import _many_shards, _output
from occi import config
from occi.corpora import build as corpora_build


def _build(config_path: Path, run_dir: Path, workers: int) -> None:
    cfg, run = config.load_for_run(str(config_path), run_dir)
    assert corpora_build.build(cfg.corpora, cfg.languages, run, workers=workers, progress=False) is not None


@pytest.mark.slow
def test_worker_threads_give_the_worker_processes_output(tmp_path, monkeypatch):
    config_path = _many_shards(tmp_path, shards=4, docs_per_shard=30)

    def no_processes(*args, **kwargs):
        raise AssertionError("the compiled language ID runs in threads, not worker processes")

    with monkeypatch.context() as patched:
        patched.setattr(corpora_build, "ProcessPoolExecutor", no_processes)
        _build(config_path, tmp_path / "threads", workers=2)
    with monkeypatch.context() as patched:
        patched.setattr(corpora_build, "_shared_identifier", lambda job: None)  # the worker processes of before
        _build(config_path, tmp_path / "processes", workers=2)
    threads, processes = _output(tmp_path / "threads"), _output(tmp_path / "processes")
    assert threads == processes
    assert threads["stats"]["totals"]["drops"]["dedup/exact_duplicate"] == 3  # the copy in 4 shards, kept once
