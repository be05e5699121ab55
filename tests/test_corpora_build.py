"""The corpora stage end to end: the demo sample, resumability after SIGKILL, SLURM-style ranks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import DEMO_SAMPLES, REPO, occi, sample_docs, write_config, write_jsonl
from occi import languages


def _output(run_dir: Path) -> dict:
    """Everything the stage produced that must be reproducible, as plain data."""
    out = run_dir / "corpora"
    result = {"stats": json.loads((out / "stats.json").read_text())}
    for path in sorted(out.rglob("*.parquet")):
        result[str(path.relative_to(out))] = pq.read_table(path).to_pylist()
    return result


# ---------------------------------------------------------------- the demo sample

def test_demo_keeps_every_language_sample_under_its_language(demo_run):
    out = demo_run / "corpora"
    stats = json.loads((out / "stats.json").read_text())
    for code in languages.LANGUAGES:
        expected = [d["id"] for d in sample_docs(code)]
        ids = [i for part in sorted((out / code).glob("part-*.parquet")) for i in pq.read_table(part).column("id").to_pylist()]
        samples = [i for i in ids if not i.startswith("noise-")]
        assert samples == expected, f"{code}: kept {ids}"
        assert stats["languages"][code]["documents_kept"] == len(ids)


def test_demo_drops_each_kind_of_noise_at_its_step(demo_run):
    dropped = {}
    for part in (demo_run / "corpora" / "dropped").glob("*.parquet"):
        for row in pq.read_table(part).to_pylist():
            dropped[row["id"]] = f"{row['step']}/{row['reason']}"
    noise = [json.loads(line)["id"] for line in (DEMO_SAMPLES / "noise.jsonl").read_text().splitlines()]
    expected_steps = {
        "exact_dup": {"dedup/exact_duplicate"},
        "near_dup": {"dedup/near_duplicate"},
        "wrong_language": {"langid/not_a_run_language"},
        "mixed_language": {"langid/below_threshold", "langid/not_a_run_language"},
        "code": {"langid/not_a_run_language", "langid/below_threshold", "gopher_quality", "gopher_repetition", "fineweb_quality"},
        "boilerplate": {"langid", "gopher_quality", "gopher_repetition", "fineweb_quality"},
        "spam": {"gopher_repetition", "langid/below_threshold"},
        "broken_lines": {"fineweb_quality"},
        "too_short": {"langid/below_threshold", "gopher_quality/too_few_words"},
    }
    for doc_id in noise:
        kind = doc_id.split("-")[1]
        if kind == "original":
            assert doc_id not in dropped
            continue
        assert doc_id in dropped, f"{doc_id} was kept"
        assert any(dropped[doc_id].startswith(prefix) for prefix in expected_steps[kind]), f"{doc_id}: {dropped[doc_id]}"
    duplicates = [row for part in sorted((demo_run / "corpora" / "dropped").glob("duplicates-*.parquet"))
                  for row in pq.read_table(part).to_pylist()]
    assert {r["detail"] for r in duplicates if r["id"] == "noise-exact_dup-1"} == {"duplicate of noise-original-1"}


def test_demo_stats_summary_and_plot(demo_run):
    out = demo_run / "corpora"
    stats = json.loads((out / "stats.json").read_text())
    totals = stats["totals"]
    assert totals["documents_in"] == sum(1 for p in DEMO_SAMPLES.glob("*.jsonl") for _ in p.open())
    assert totals["documents_in"] == totals["documents_kept"] + sum(totals["drops"].values())
    de = stats["languages"]["de"]
    assert de["sources"]["samples"]["documents_kept"] == de["documents_kept"]
    assert de["bytes_kept"] > 0 and de["words_kept"] > 0 and 0 < de["duplicate_rate"] < 1
    png = (out / "kept_dropped.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (out / "_DONE").exists() and not (out / "_work").exists()
    assert (demo_run / "config.yaml").exists()


def test_clean_demo_has_no_contamination_and_no_personal_data(demo_run):
    stats = json.loads((demo_run / "corpora" / "stats.json").read_text())
    section = stats["decontamination"]
    assert section["benchmarks"]["occi_mc"]["items"] > 0 and section["found"] == {}
    assert not any(k.startswith("decontaminate/") for k in stats["totals"]["drops"])
    assert set(stats["pii"]) == set(languages.LANGUAGES)  # measured: the demo samples hold no personal data
    assert all(n == 0 for counts in stats["pii"].values() for n in counts.values())
    assert stats["url_filter"] == {"lists": {}, "dropped": {}}
    domains = json.loads((demo_run / "corpora" / "domains.json").read_text())
    assert domains["sources"] == {} and (demo_run / "corpora" / "domains.png").exists()  # the samples have no URLs


def test_rerun_of_a_completed_stage_is_a_no_op(demo_run):
    before = {p: p.stat().st_mtime_ns for p in (demo_run / "corpora").rglob("*")}
    result = occi("corpora", "build", "demo", "--run-dir", str(demo_run))
    assert result.returncode == 0 and "lang" in result.stdout
    assert before == {p: p.stat().st_mtime_ns for p in (demo_run / "corpora").rglob("*")}


def test_langid_command_reads_stdin():
    texts = [sample_docs(code)[0]["text"].replace("\n", " ") for code in ("de", "el", "hr", "mt")]
    result = occi("corpora", "langid", stdin="\n".join(texts + ["Это русский текст о погоде и прогулке в парке."]) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [code for code, _ in rows] == ["de", "el", "hr", "mt", "ru"]
    assert all(0.5 < float(score) <= 1.0 for _, score in rows[:4])


def test_langid_command_prints_one_line_per_input_line_whatever_the_bytes():
    import subprocess
    import sys

    lines = [b"Bonjour le monde", b"Czesc\xff swiat", b"", b"Dzien dobry\rx\x1c\x85y", b"nul\x00byte",
             b"\xef\xbb\xbfGuten Tag", b"caf\xc3", b"last line without a newline"]
    result = subprocess.run([sys.executable, "-m", "occi.cli", "corpora", "langid"], input=b"\n".join(lines),
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines), out
    assert out[0].startswith("fr\t") and out[2] == "\t0.0000"
    assert all(len(row.split("\t")) == 2 for row in out[:-1])


def test_langid_command_with_the_heliport_backend():
    lines = ["Danes je lep sončen dan, zato gremo s prijatelji na sprehod ob reki.",
             "I dag skal vi gå en tur i skogen og spise matpakke ved vannet.", "Czesc\ufffd swiat"]
    result = occi("corpora", "langid", "--backend", "heliport", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 3 and [code for code, _ in rows[:2]] == ["sl", "no"] and float(rows[0][1]) > 1.0


# ---------------------------------------------------------------- kill, resume, ranks

def _many_shards(folder: Path, shards: int = 24, docs_per_shard: int = 120) -> Path:
    """Shards of distinct documents (pairs of sample texts) with duplicates across shards."""
    codes = ["fr", "fi", "sv", "et"]
    samples = {code: [d["text"] for d in sample_docs(code)] for code in codes}
    for s in range(shards):
        code = codes[s % len(codes)]
        texts = samples[code]
        rows = []
        for i in range(docs_per_shard):
            a, b = texts[i % len(texts)], texts[(i // len(texts) + s) % len(texts)]
            rows.append({"id": f"s{s}-{i}", "text": f"{a}\n\n{b}\n\nNr. {s}-{i}."})
        rows.append({"id": f"s{s}-copy", "text": samples["fr"][0]})  # the same document in every shard
        write_jsonl(folder / f"part-{s:03d}.jsonl", rows)
    return write_config(folder, codes, [{"name": "web", "kind": "jsonl", "path": "part-*.jsonl"}], keep_dropped=True)


def _start(config: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "occi.cli", "corpora", "build", str(config), "--run-dir", str(run_dir),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_after(proc: subprocess.Popen, run_dir: Path, done_shards: int) -> None:
    deadline = time.monotonic() + 120
    while len(list((run_dir / "corpora" / "_work").glob("shard-*/_DONE"))) < done_shards:
        assert proc.poll() is None, "the build finished before it could be killed; make the corpus bigger"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    children = _children_of(proc.pid)  # before the parent dies and they are re-parented
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for child in children:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_sigkill_midway_then_rerun_equals_an_uninterrupted_run(tmp_path):
    config = _many_shards(tmp_path)
    clean = tmp_path / "clean"
    assert occi("corpora", "build", str(config), "--run-dir", str(clean)).returncode == 0
    resumed = tmp_path / "resumed"
    for done_shards in (4, 12):  # killed twice, at different points
        _kill_after(_start(config, resumed), resumed, done_shards)
        assert not (resumed / "corpora" / "_DONE").exists()
    result = occi("corpora", "build", str(config), "--run-dir", str(resumed))
    assert result.returncode == 0, result.stderr
    assert _output(resumed) == _output(clean)
    assert not list((resumed / "corpora").rglob("*.tmp"))


@pytest.mark.slow
def test_ranks_of_an_array_give_the_same_result_as_one_process(tmp_path):
    config = _many_shards(tmp_path, shards=7, docs_per_shard=20)
    single = tmp_path / "single"
    assert occi("corpora", "build", str(config), "--run-dir", str(single)).returncode == 0
    ranked = tmp_path / "ranked"
    early = occi("corpora", "build", str(config), "--run-dir", str(ranked), "--phase", "dedup")
    assert early.returncode == 2 and "not filtered yet" in early.stderr
    for rank in range(3):
        result = occi("corpora", "build", str(config), "--run-dir", str(ranked), "--rank", str(rank), "--world-size", "3")
        assert result.returncode == 0 and f"rank {rank} of 3 done" in result.stdout
    assert occi("corpora", "build", str(config), "--run-dir", str(ranked), "--phase", "dedup").returncode == 0
    assert _output(ranked) == _output(single)
    stats = _output(single)["stats"]
    assert stats["totals"]["drops"]["dedup/exact_duplicate"] == 6  # the copy in 7 shards, kept once


def test_changed_sources_after_a_start_are_refused(tmp_path):
    config = _many_shards(tmp_path, shards=2, docs_per_shard=3)
    run_dir = tmp_path / "run"
    assert occi("corpora", "build", str(config), "--run-dir", str(run_dir), "--rank", "0", "--world-size", "2").returncode == 0
    write_jsonl(tmp_path / "part-999.jsonl", sample_docs("fr")[:1])
    result = occi("corpora", "build", str(config), "--run-dir", str(run_dir))
    assert result.returncode == 2 and "the sources changed since this run started" in result.stderr
