"""The filter phase's worker threads (one process, numba kernels without the GIL): the same
output as the worker processes they replace, and as one worker (the dedup phases' tasks in
threads or one after the other); the worker's block path against the filters one by one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import sample_docs, write_config
from test_corpora_build import _many_shards, _output
from occi import config
from occi.corpora import build as corpora_build
from occi.corpora.document import Document
from occi.corpora.langid import LanguageFilter


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
    _build(config_path, tmp_path / "one", workers=1)  # one worker: the dedup phases' tasks one after the other too
    threads, processes = _output(tmp_path / "threads"), _output(tmp_path / "processes")
    assert threads == processes
    assert threads == _output(tmp_path / "one")
    assert threads["stats"]["totals"]["drops"]["dedup/exact_duplicate"] == 3  # the copy in 4 shards, kept once


@pytest.mark.parametrize("native", [True, False])
def test_block_decisions_are_the_chain_document_by_document(tmp_path, native):
    """ShardProcessor.decide (steps up to language ID a block at a time, one compiled language-ID
    call per block) drops and rewrites every document as the filters called one document at a
    time do: the same step and reason, text, language, score and metadata."""
    codes = ["fr", "fi", "sv", "et", "de"]
    texts = [d["text"] for code in codes for d in sample_docs(code)]
    texts += ["", "  \n ", "caf\u00c3\u00a9 au lait, un caf\u00c3\u00a9 noir et deux caf\u00c3\u00a9s cr\u00c3\u00a8me",
              json.loads('"texte \\ud800 cass\\u00e9"'), "Hello there, this is an English sentence, not a run language.",
              "line one\r\nline two\x07\nligne trois en fran\u00e7ais", "x", "la la la la la la la la la la la la"]
    texts += [f"{a}\n\n{b}" for a, b in zip(texts, texts[::-1])]
    config_path = write_config(tmp_path, codes[:4], [{"name": "web", "kind": "jsonl", "path": "*.jsonl"}],
                               langid={"native": native}, pii={"enabled": True})
    cfg = config.load(str(config_path))
    processor = corpora_build.ShardProcessor(corpora_build.Job(cfg.corpora, list(cfg.languages), tmp_path, None))
    assert isinstance(processor.filters[1], LanguageFilter) and processor.filters[-1].step == "pii"

    def documents() -> list[Document]:
        return [Document(text=t, id=str(i), source="web", metadata={"url": f"https://x.test/{i}"})
                for i, t in enumerate(texts)]

    one_by_one = documents()
    expected = []
    for doc in one_by_one:
        expected.append(next(((step.step, reason) for step in processor.filters
                              if (reason := step.filter(doc)) is not None), None))
    for block_size in (1, 7, len(texts)):
        blocked = documents()
        got = []
        for start in range(0, len(blocked), block_size):
            got += [None if v is None else (v[0].step, v[1]) for v in processor.decide(blocked[start:start + block_size])]
        assert got == expected
        assert [(d.text, d.language, d.language_score, d.metadata) for d in blocked] == \
            [(d.text, d.language, d.language_score, d.metadata) for d in one_by_one]
    reasons = {v for v in expected}
    assert None in reasons and ("normalize", "empty") in reasons and ("normalize", "invalid_unicode") in reasons
    assert any(v is not None and v[0] == "langid" for v in reasons)
    assert any(v is not None and v[0] not in ("normalize", "langid") for v in reasons)  # a step after the block part
