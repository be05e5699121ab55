"""bench/train, part 1: `occi data prepare` against Megatron-LM's tools/preprocess_data.py.

  .venv/bin/python bench/train/prepare_vs_megatron.py [--data /tmp/occi-bench] [--megatron-lm DATA/Megatron-LM]
      [--work DATA/train/prep] [--corpus 'GLOB.jsonl'] [--mb 50] [--vocab 32000] [--workers 2] [--repeats 3]
      [--wait-load X] [--json FILE]

(bench/train/setup_megatron.sh puts Megatron-LM's source and triton under DATA once; nothing here
needs the network.)

Both tools tokenize the same documents (the first MB megabytes of the JSONL corpus; without one,
the demo samples repeated) with the same SentencePiece BPE model (trained here on that text, occi's
tokenizer settings) into megatron indexed datasets, EOD appended, WORKERS worker processes
(Megatron-LM) or tokenizer threads (occi) each, one after the other. occi reads the documents as
its corpora stage writes them (WORK/run/corpora/<lang>/part-*.parquet), Megatron-LM as JSONL.
Reported: wall time (start-up included), tokens/s, peak memory (the largest process's maximum RSS
from /usr/bin/time -v, and the peak of the summed PSS of the whole process tree, sampled every
50 ms: Megatron-LM runs 2 + WORKERS processes), and whether the token ids agree document by
document. --repeats N runs the two tools N times, alternating, and reports the ratio as
min/median/max, with start-up and without it.
Without start-up, Megatron-LM: measured inside each of its runs, from the moment its partition
process prints "Time to startup:" (after the interpreter, its imports of torch, megatron and
triton, argument parsing, the tokenizer loaded and the pool of workers forked, already handed
the input) to the moment its .idx file has its full size (the last thing it writes), wall and
CPU time (user + system of every process of its tree, sampled at the two marks). Its exit after
that is not counted either. occi: its run minus the median of its start-up runs, one per round:
the same command run again on the run it has just prepared (interpreter, imports, the config and
the run's checks, exit: it finds the data done and exits before reading a byte; its --help parses
arguments before occi imports its data stack, so it would miss most of occi's start-up).
The earlier way for Megatron-LM, its whole run minus the median of its --help runs (interpreter,
imports, argument parsing: it exits before reading a byte), is still measured and printed for
comparison. Both wall-time and CPU-time ratios are reported: on a shared machine CPU time moves
less. --wait-load X waits before each round until the 1-minute load
average is below X; each round records the load it started at. Before the rounds, each side runs
once untimed (occi's first run in a checkout compiles its numba kernels into the on-disk cache).
Megatron-LM's source (core_v0.16.1, the tag of the installed megatron-core) and the triton package
its `megatron.training` imports stay outside the repository (DATA/Megatron-LM, DATA/triton;
MEGATRON_EXTRA_PATH overrides the latter).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from threading import Thread
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from loadwait import wait_for_load  # noqa: E402
LANG = "de"  # the label of the one language folder; data prepare does not look at the text's language
DOCS_PER_PART = 100_000  # as occi's corpora stage writes its parts (occi/corpora/build.py)
SCHEMA = pa.schema([("text", pa.string()), ("id", pa.string()), ("source", pa.string()),
                    ("language", pa.string()), ("language_score", pa.float32()), ("metadata", pa.string())])


def read_corpus(pattern: str, megabytes: float) -> tuple[list[dict], str]:
    """The first `megabytes` of text of the JSONL files, or the demo samples repeated."""
    files = sorted(glob.glob(pattern)) if pattern else []
    rows, size, limit = [], 0, megabytes * 1_000_000

    def take(row: dict) -> bool:
        nonlocal size
        if not row["text"].strip():
            return False
        rows.append({"id": str(row["id"]), "text": row["text"], "source": row.get("source_hint") or "bench"})
        size += len(row["text"].encode("utf-8"))
        return size >= limit

    for name in files:
        with open(name, encoding="utf-8") as lines:
            if any(take(json.loads(line)) for line in lines if line.strip()):
                return rows, f"{len(files)} file(s) {pattern}"
    if files:
        return rows, f"all of {pattern} ({size / 1e6:.1f} MB)"
    demo = [json.loads(line) for name in sorted((REPO / "corpora" / "demo").glob("*.jsonl"))
            for line in open(name, encoding="utf-8") if line.strip()]
    for copy in range(10**9):
        if any(take({**row, "id": f"{row['id']}#{copy}"}) for row in demo):
            return rows, "the demo samples repeated"


def write_inputs(rows: list[dict], work: Path) -> Path:
    """WORK/corpus.jsonl for Megatron-LM and WORK/run/corpora/<lang>/part-*.parquet for occi."""
    with open(work / "corpus.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps({"id": row["id"], "text": row["text"]}, ensure_ascii=False) + "\n")
    folder = work / "run" / "corpora" / LANG
    folder.mkdir(parents=True)
    for part, start in enumerate(range(0, len(rows), DOCS_PER_PART)):
        chunk = rows[start:start + DOCS_PER_PART]
        pq.write_table(pa.table({"text": [r["text"] for r in chunk], "id": [r["id"] for r in chunk],
                                 "source": [r["source"] for r in chunk], "language": [LANG] * len(chunk),
                                 "language_score": [1.0] * len(chunk), "metadata": ["{}"] * len(chunk)},
                                schema=SCHEMA), folder / f"part-{part:05d}.parquet")
    (work / "run" / "corpora" / "_DONE").write_text("{}\n")
    config = work / "bench.yaml"
    config.write_text(yaml.safe_dump({"name": "bench", "languages": [LANG], "corpora": "demo",
                                      "data": {"threads": ARGS.workers}}))
    return config


def train_tokenizer(rows: list[dict], vocab: int, folder: Path) -> Path:
    """A SentencePiece BPE model with occi's tokenizer settings (occi/tokenizer/train.py)."""
    import sentencepiece as spm

    folder.mkdir(parents=True)
    text = folder / "train.txt"
    text.write_text("\n".join(line for r in rows for line in r["text"].splitlines() if line.strip()), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "tokenizer"), vocab_size=vocab, model_type="bpe",
        byte_fallback=True, split_digits=True, unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        input_sentence_size=300_000, shuffle_input_sentence=True, hard_vocab_limit=False,
        normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        num_threads=os.cpu_count() or 1, minloglevel=2)
    text.unlink()
    return folder / "tokenizer.model"


def tree_cpu(root: psutil.Process) -> float:
    """User + system seconds of every live process under `root` and of the children they have reaped."""
    total = 0.0
    for process in root.children(recursive=True):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def measure(command: list[str], env: dict | None = None, work_marks: tuple[str, Path, int] | None = None) -> dict:
    """Wall seconds, CPU seconds, the largest process's max RSS and the process tree's peak summed
    PSS (MB). With `work_marks` (a line the command prints when its start-up is over, a file and
    the size it has when the work is done), also the wall and CPU seconds between the two marks."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        process = subprocess.Popen(["/usr/bin/time", "-v", "-o", report.name, *command], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        root = psutil.Process(process.pid)
        marks: dict[str, tuple[float, float]] = {}
        tail: list[str] = []

        def read_output() -> None:  # stamps the start mark the moment its line arrives
            for line in process.stdout:
                if work_marks and "start" not in marks and line.startswith(work_marks[0]):
                    marks["start"] = (time.perf_counter(), tree_cpu(root))
                tail[:] = (tail + [line])[-50:]

        reader = Thread(target=read_output, daemon=True)
        reader.start()
        peak_pss = 0
        while process.poll() is None:
            if work_marks and "start" in marks and "end" not in marks and _size(work_marks[1]) >= work_marks[2]:
                marks["end"] = (time.perf_counter(), tree_cpu(root))
            pss = 0
            for child in root.children(recursive=True):
                try:
                    pss += child.memory_full_info().pss
                except psutil.Error:
                    pass
            peak_pss = max(peak_pss, pss)
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        reader.join()
        stderr = report.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} ... failed:\n{''.join(tail)[-3000:]}\n{stderr[-1000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", stderr).group(1)) for kind in ("User", "System"))
    result = {"seconds": seconds, "cpu_s": cpu, "max_rss_mb": rss / 1024, "peak_pss_mb": peak_pss / 2**20}
    if work_marks:
        if "start" not in marks:
            raise SystemExit(f"{' '.join(command[:3])} ... printed no line starting with {work_marks[0]!r}: "
                             "is Megatron-LM's tools/preprocess_data.py the one at core_v0.16.1?")
        if "end" not in marks:  # the process ended between two polls: its exit is counted as work
            print(f"note: {work_marks[1].name} was not seen at {work_marks[2]} bytes before the process ended", flush=True)
        end = marks.get("end", (started + seconds, cpu))
        result.update(work_s=end[0] - marks["start"][0], work_cpu_s=end[1] - marks["start"][1],
                      before_work_s=marks["start"][0] - started, before_work_cpu_s=marks["start"][1],
                      after_work_s=started + seconds - end[0], after_work_cpu_s=cpu - end[1])
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def megatron_idx_size(documents: int) -> int:
    """The size of the .idx file megatron-core's builder writes for `documents` one-sequence
    documents (occi/data/indexed.py describes the format): written last, so its full size marks
    the end of preprocess_data.py's work."""
    return 9 + 8 + 1 + 8 + 8 + documents * (4 + 8) + (documents + 1) * 8


def spread(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2] if len(ordered) % 2 else
            (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2, "max": ordered[-1], "values": values}


def compare_tokens(occi_prefixes: list[str], mlm_prefix: str, eod: int) -> dict:
    """Token counts, and whether each document's ids agree (occi writes its training documents,
    then the held-out ones; Megatron-LM all of them in corpus order)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from occi.corpora.reader import HeldoutRule

    rows = [json.loads(line)["id"] for line in open(ARGS.work / "corpus.jsonl", encoding="utf-8")]
    held = HeldoutRule().ids(rows)  # the run's defaults: heldout_fraction, heldout_max_docs
    order = [i for i, r in enumerate(rows) if r not in held] + [i for i, r in enumerate(rows) if r in held]
    occi_sets = [IndexedDataset(prefix) for prefix in occi_prefixes]  # kept open: the documents are views of its mmap
    occi_docs = [d for dataset in occi_sets for d in dataset]
    mlm = IndexedDataset(mlm_prefix)
    differ = sum(1 for k, i in enumerate(order) if not np.array_equal(occi_docs[k], mlm[i]))
    return {"occi_documents": len(occi_docs), "mlm_documents": len(mlm),
            "occi_tokens": int(sum(len(d) for d in occi_docs)), "mlm_tokens": int(mlm.sequence_lengths.sum()),
            "documents_differing": differ, "mlm_eod": int(mlm[0][-1]), "occi_eod": eod}


def main() -> dict:
    work = ARGS.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows, origin = read_corpus(ARGS.corpus, ARGS.mb)
    megabytes = sum(len(r["text"].encode("utf-8")) for r in rows) / 1e6
    print(f"part 1: {len(rows):,} documents, {megabytes:.1f} MB of text ({origin})", flush=True)
    config = write_inputs(rows, work)
    started = time.perf_counter()
    model = train_tokenizer(rows, ARGS.vocab, work / "run" / "tokenizer")
    print(f"part 1: SentencePiece BPE {ARGS.vocab} trained in {time.perf_counter() - started:.0f} s (not timed below)", flush=True)
    documents = len(rows)
    del rows

    extra = os.environ.get("MEGATRON_EXTRA_PATH", str(ARGS.data / "triton"))
    # unbuffered, so that its "Time to startup" line arrives when it is printed (two short lines go to stdout)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ARGS.megatron_lm), extra) if p),
           "PYTHONUNBUFFERED": "1"}
    occi_command = [sys.executable, "-m", "occi.cli", "data", "prepare", str(config), "--run-dir", str(work / "run")]
    mlm_command = [sys.executable, str(ARGS.megatron_lm / "tools" / "preprocess_data.py"), "--input", str(work / "corpus.jsonl"),
                   "--output-prefix", str(work / "mlm" / LANG), "--tokenizer-type", "SentencePieceTokenizer",
                   "--tokenizer-model", str(model), "--append-eod", "--workers", str(ARGS.workers), "--json-keys", "text"]
    # a warm-up of each side, not timed: occi's first run in a checkout compiles its numba kernels
    # (cached on disk afterwards: 7 s of CPU on 2026-12-07), and both sides' first run reads
    # their packages into the page cache
    (work / "mlm").mkdir()
    measure(occi_command)
    measure(mlm_command, env)
    rounds = []
    for index in range(ARGS.repeats):
        shutil.rmtree(work / "run" / "data", ignore_errors=True)
        shutil.rmtree(work / "mlm", ignore_errors=True)
        (work / "mlm").mkdir()
        load = wait_for_load(ARGS.wait_load)
        occi = measure(occi_command)
        occi_start = measure(occi_command)  # the data is done now: everything but the work
        mlm_start = measure(mlm_command[:2] + ["--help"], env)
        mlm = measure(mlm_command, env, ("Time to startup:", work / "mlm" / f"{LANG}_text_document.idx",
                                         megatron_idx_size(documents)))
        occi["startup_s"], mlm["startup_s"] = occi_start["seconds"], mlm_start["seconds"]
        occi["startup_cpu_s"], mlm["startup_cpu_s"] = occi_start["cpu_s"], mlm_start["cpu_s"]
        rounds.append({"occi": occi, "megatron_lm": mlm, "load_avg_1m": round(load, 2)})
        print(f"round {index + 1}/{ARGS.repeats}: occi {occi['seconds']:.1f} s, CPU {occi['cpu_s']:.1f} s (start-up "
              f"{occi_start['seconds']:.1f} s, CPU {occi_start['cpu_s']:.1f} s); Megatron-LM {mlm['seconds']:.1f} s, CPU "
              f"{mlm['cpu_s']:.1f} s, its work {mlm['work_s']:.1f} s, CPU {mlm['work_cpu_s']:.1f} s (before it "
              f"{mlm['before_work_s']:.1f} s, CPU {mlm['before_work_cpu_s']:.1f} s; after it {mlm['after_work_s']:.2f} s, CPU "
              f"{mlm['after_work_cpu_s']:.2f} s; --help run {mlm_start['seconds']:.1f} s, CPU {mlm_start['cpu_s']:.1f} s)",
              flush=True)
    blend = json.loads((work / "run" / "data" / "blend.json").read_text())
    entry = blend["languages"][LANG]
    prefixes = [str(work / "run" / entry[key]) for key in ("prefix", "valid_prefix")]  # relative to the run folder
    tokens = compare_tokens(prefixes, str(work / "mlm" / f"{LANG}_text_document"), blend["eod_id"])
    for r in rounds:
        r["occi"]["tokens_per_s"] = tokens["occi_tokens"] / r["occi"]["seconds"]
        r["megatron_lm"]["tokens_per_s"] = tokens["mlm_tokens"] / r["megatron_lm"]["seconds"]
    with_startup = [r["megatron_lm"]["seconds"] / r["occi"]["seconds"] * tokens["occi_tokens"] / tokens["mlm_tokens"]
                    for r in rounds]
    # occi's start-up: the median over the rounds of its start-up runs (one measured on a loaded
    # machine can take longer than a whole run). Megatron-LM's work is measured inside each run:
    # from its "Time to startup" line to its .idx file written.
    startup = {tool: spread([r[tool]["startup_s"] for r in rounds])["median"] for tool in ("occi", "megatron_lm")}
    startup_cpu = {tool: spread([r[tool]["startup_cpu_s"] for r in rounds])["median"] for tool in ("occi", "megatron_lm")}
    scale = tokens["occi_tokens"] / tokens["mlm_tokens"]
    without_startup = [r["megatron_lm"]["work_s"] / (r["occi"]["seconds"] - startup["occi"]) * scale for r in rounds]
    cpu_without_startup = [r["megatron_lm"]["work_cpu_s"] / (r["occi"]["cpu_s"] - startup_cpu["occi"]) * scale
                           for r in rounds]
    # the earlier way, for comparison: each tool's median start-up run subtracted from its whole run
    apart = {"wall": [(r["megatron_lm"]["seconds"] - startup["megatron_lm"]) / (r["occi"]["seconds"] - startup["occi"])
                      * scale for r in rounds],
             "cpu": [(r["megatron_lm"]["cpu_s"] - startup_cpu["megatron_lm"]) / (r["occi"]["cpu_s"] - startup_cpu["occi"])
                     * scale for r in rounds]}
    occi, mlm = rounds[-1]["occi"], rounds[-1]["megatron_lm"]
    result = {"documents": documents, "megabytes": round(megabytes, 1),
              "corpus": origin, "vocab": blend["vocab_size"], "workers": ARGS.workers, "occi": occi, "megatron_lm": mlm,
              **tokens, "ratio_tokens_per_s": occi["tokens_per_s"] / mlm["tokens_per_s"], "rounds": rounds,
              "ratio_with_startup": spread(with_startup), "ratio_without_startup": spread(without_startup),
              "startup_median_s": startup, "cpu_ratio_without_startup": spread(cpu_without_startup),
              "startup_cpu_median_s": startup_cpu, "ratio_without_startup_subtracting_help": spread(apart["wall"]),
              "cpu_ratio_without_startup_subtracting_help": spread(apart["cpu"]), "identical_ids": tokens["documents_differing"] == 0}
    print(f"{'tool':<31} {'wall s':>7} {'tokens/s':>11} {'max RSS MB':>11} {'peak PSS MB':>12} {'tokens':>12}")
    for name, r, n in (("occi data prepare", occi, tokens["occi_tokens"]), ("Megatron-LM preprocess_data.py", mlm, tokens["mlm_tokens"])):
        print(f"{name:<31} {r['seconds']:>7.1f} {r['tokens_per_s']:>11,.0f} {r['max_rss_mb']:>11,.0f} {r['peak_pss_mb']:>12,.0f} {n:>12,}")
    for name in ("ratio_with_startup", "ratio_without_startup", "cpu_ratio_without_startup",
                 "ratio_without_startup_subtracting_help", "cpu_ratio_without_startup_subtracting_help"):
        print(f"{name} over {ARGS.repeats} alternating rounds: min {result[name]['min']:.2f}, "
              f"median {result[name]['median']:.2f}, max {result[name]['max']:.2f}")
    print(f"ratio occi / Megatron-LM tokens/s (last round): {result['ratio_tokens_per_s']:.2f} (target >= 2); documents "
          f"{tokens['occi_documents']:,} vs {tokens['mlm_documents']:,}, documents whose ids differ: "
          f"{tokens['documents_differing']} (EOD id {tokens['occi_eod']} vs {tokens['mlm_eod']})", flush=True)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/occi-bench"),
                        help="the benchmarks' folder: inputs and the peers' set-up (default /tmp/occi-bench)")
    parser.add_argument("--megatron-lm", type=Path, default=None,
                        help="Megatron-LM's source at core_v0.16.1 (default DATA/Megatron-LM, from setup_megatron.sh)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder, emptied first (default DATA/train/prep)")
    parser.add_argument("--corpus", default="", help="JSONL files with `id` and `text` (default: the demo samples)")
    parser.add_argument("--mb", type=float, default=50, help="megabytes of text to take")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds of the two tools")
    parser.add_argument("--wait-load", type=float, default=None,
                        help="before each round, wait until the 1-minute load average is below this")
    parser.add_argument("--json", type=Path, help="write the figures here")
    ARGS = parser.parse_args()
    ARGS.megatron_lm = ARGS.megatron_lm or ARGS.data / "Megatron-LM"
    ARGS.work = ARGS.work or ARGS.data / "train" / "prep"
    if not (ARGS.megatron_lm / "tools" / "preprocess_data.py").is_file():
        raise SystemExit(f"{ARGS.megatron_lm}: no tools/preprocess_data.py; run `bash bench/train/setup_megatron.sh "
                         f"--data {ARGS.data}` once (or pass --megatron-lm)")
    figures = main()
    if ARGS.json:
        ARGS.json.write_text(json.dumps(figures, indent=1) + "\n")
