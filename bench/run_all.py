"""Re-measures every row of bench/README.md's status table, in order, from this checkout.

    .venv/bin/python bench/run_all.py [--data /tmp/occi-bench] [--out DATA/run_all] [--rounds 3]
        [--wait-load 1.5] [--only KEY,...] [--skip KEY,...] [--gpu] [--dry-run]

Every script takes the same two folders: `--data DIR` (default /tmp/occi-bench) holds the inputs
and the peers' set-up (the corpus, datatrove's venv, Megatron-LM's source, TRL's venv, the demo
run), `--work DIR` (or `--out`) a script's own scratch and result folder, by default under DATA.
The runner first runs each row's set-up once (skipped where it is already done: each set-up
script checks), then a warm-up round where the row has one (the first numba compiles of occi's
corpora kernels are cached on disk, so they stay out of the rounds), then the rounds:

- rows whose script alternates occi and the peer itself (`--repeats N`: occi, peer, occi,
  peer, ...) get `--repeats ROUNDS --wait-load X` and wait before each of their rounds;
- the others are run ROUNDS times, the runner waiting for the load before each run.

`--wait-load X` waits until the 1-minute load average is below X (at most an hour; then it goes on
and the recorded load says so). Each row's record (date, load average before and after, each
command, its exit status and wall time, and the figures its result file gives: min / median /
max of its ratios) goes to OUT/results.json, written after every row (a re-run skips the rows
recorded with the same command; --again runs them anew), and OUT/status.md is regenerated from
it: the status table as measured, with README rows that were not re-measured and are older than a
month marked so. --dry-run prints the commands, in order, and runs nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from loadwait import wait_for_load  # noqa: E402

STALE_DAYS = 30
GPU, DEMO = "a GPU", "the demo run"


@dataclass(frozen=True)
class Row:
    """One row (or several rows fed by one command) of bench/README.md's status table."""

    key: str
    """The start of the status table's first cell(s) that this command re-measures."""
    command: str
    """The command, with {py} (the interpreter), {data}, {out}, {rounds} and {wait} filled in."""
    setup: tuple[str, ...] = ()
    """Set-up commands, run once each (shared between rows) before the row's first round."""
    warmup: str = ""
    """A run before the rounds whose time is not recorded (numba compiles, caches)."""
    alternates: bool = False
    """Whether the script runs occi and the peer in alternating rounds itself (--repeats, --wait-load)."""
    result: str = ""
    """The JSON file the command writes (with the same placeholders), read for the figures."""
    ratios: tuple[str, ...] = ()
    """Keys of min/median/max figures in the result (dotted paths)."""
    needs: str = ""
    """What the row needs that a CPU machine lacks (GPU): skipped unless --gpu."""
    rows_fed: tuple[str, ...] = field(default_factory=tuple)
    """Further status-table rows whose figures this command's result also gives."""
    timed: bool = True
    """Whether the row's figures are timings (run in rounds); others (accuracy, memory, same tokens) run once."""


MAKE_CORPUS = "test -f {data}/corpus/part-0028.jsonl || {py} bench/corpora/make_corpus.py --data {data}"
DATATROVE = "bash bench/corpora/setup_datatrove.sh --data {data}"
MEGATRON = "bash bench/train/setup_megatron.sh --data {data}"
DEMO_RUN = "{py} -m occi.cli run demo --run-dir {data}/demo"
TRL = "bash bench/setup_trl.sh --data {data}"
CORPORA = "{py} bench/corpora/run.py --data {data} --work {out}/corpora --sides occi,datatrove --repeats {rounds} {wait}"
CORPORA_WARMUP = "{py} bench/corpora/run.py --data {data} --work {out}/warmup --shards 1 --sides occi"
CORPORA_SPREAD = ("spread.ratio_occi_over_datatrove_whitespace_words", "spread.ratio_occi_over_datatrove")


def corpora_row(key: str, options: str, folder: str, rows_fed: tuple[str, ...] = ()) -> Row:
    return Row(key, f"{CORPORA} {options}", (MAKE_CORPUS, DATATROVE), CORPORA_WARMUP, True,
               f"{{out}}/corpora/{folder}/result.json", CORPORA_SPREAD, rows_fed=rows_fed)


ROWS = (
    corpora_row("bench/corpora, throughput per core vs datatrove with the same whitespace words",
                "--shards 7 --words whitespace", "7-shards",
                ("bench/corpora, peak memory of the process tree",)),
    corpora_row("bench/corpora, throughput per core vs datatrove with the same whitespace words",
                "--shards 7 --words whitespace --dedup", "7-shards-dedup"),
    corpora_row("bench/corpora, throughput per core vs datatrove with the same whitespace words",
                "--shards 29 --words whitespace", "29-shards", ("bench/corpora, peak memory of the process tree",)),
    corpora_row("bench/corpora with `url_filter` and `pii`", "--shards 7 --words whitespace --governance",
                "7-shards-governance"),
    corpora_row("bench/corpora, throughput per core vs datatrove as shipped", "--shards 7 --words datatrove",
                "7-shards", ("bench/corpora, language-ID agreement",)),
    Row("bench/corpora, language ID on text written for the project",
        "PYTHONPATH=. {py} bench/corpora/langid.py --repeat 100", timed=False),
    Row("bench/corpora, dedup per-task memory",
        "{py} bench/corpora/dedup_scale.py --out {out}/dedup-scale --docs 10M,50M --docs-per-task 2M", timed=False),
    Row("bench/tokenizer", "{py} bench/tokenizer/run.py --corpus-run {out}/corpora/29-shards/occi --work {out}/tokenizer "
        "--char-budget 20000000 --input-sentence-size 300000", (MAKE_CORPUS,),
        rows_fed=("bench/tokenizer, worst parity", "bench/tokenizer, occi-32k"), timed=False),
    Row("bench/train part 1, data prepare vs Megatron-LM",
        "{py} bench/train/prepare_vs_megatron.py --data {data} --work {out}/train-prep --corpus '{data}/corpus/part-*.jsonl' "
        "--mb 50 --repeats {rounds} {wait} --json {out}/train-prep.json", (MAKE_CORPUS, MEGATRON), alternates=True,
        result="{out}/train-prep.json",
        ratios=("ratio_with_startup", "ratio_without_startup", "cpu_ratio_without_startup")),
    Row("bench/train part 2, loop overhead", "{py} bench/train/loop_overhead.py {data}/demo 200", (DEMO_RUN,)),
    Row("bench/train part 3, 1b on one H100", "bash bench/gpu/run.sh {out}/gpu", needs=GPU),
    Row("bench/gpu, `1b` 100 steps", "bash bench/gpu/run.sh {out}/gpu", needs=GPU),
    Row("bench/eval, leaderboard over 1,000 files", "{py} bench/eval/run.py {data}/demo", (DEMO_RUN,),
        rows_fed=("bench/eval, eval overhead",)),
    Row("bench/eval, eval overhead", "{py} bench/eval/run.py {data}/demo --wide", (DEMO_RUN,)),
    Row("bench/local, greedy generation", "{py} bench/local/run.py --out {out}/local --repeats {rounds} "
        "--new-tokens 32 --prompts 4 --threads 1", alternates=True),
    Row("bench/local, same answers", "{py} bench/local/answers.py {data}/demo",
        (DEMO_RUN, "{py} -m occi.cli export demo --run-dir {data}/demo --format gguf --quant f16,q8_0,q4_0,q4_k_m"),
        timed=False),
    Row("bench/import", "{py} bench/import/run.py --work {out}/import --repeats {rounds}", alternates=True),
    Row("bench/generate", "{py} bench/generate/run.py --rounds {rounds}", alternates=True),
    Row("bench/sft", "{py} bench/sft/run.py {data}/demo-sft --trl-python {data}/venv-trl/bin/python --epochs 3",
        (TRL, "{py} -m occi.cli run demo-sft --run-dir {data}/demo-sft")),
    Row("bench/dpo", "PYTHONPATH=. {py} bench/dpo/run.py --trl-python {data}/venv-trl/bin/python", (TRL,)),
    Row("bench/moe", "PYTHONPATH=. {py} bench/moe/run.py --work {out}/moe --steps 60 --repeats {rounds}", alternates=True),
    Row("bench/memory", "PYTHONPATH=. {py} bench/memory/compare.py", timed=False),
)


def fill(template: str, args: argparse.Namespace) -> str:
    wait = f"--wait-load {args.wait_load}" if args.wait_load is not None else ""
    return " ".join(template.format(py=shlex.quote(args.python), data=shlex.quote(str(args.data)),
                                    out=shlex.quote(str(args.out)), rounds=args.rounds, wait=wait).split())


def plan(rows: tuple[Row, ...], args: argparse.Namespace) -> list[tuple[Row, list[tuple[str, str]]]]:
    """Each chosen row with its steps: (what, command), what being setup, warmup or round N."""
    done_setup: set[str] = set()
    planned = []
    for row in rows:
        if args.only and not any(row.key.startswith(k) or k in row.key for k in args.only):
            continue
        if any(k in row.key for k in args.skip) or (row.needs == GPU and not args.gpu):
            planned.append((row, []))
            continue
        steps = []
        for command in row.setup:
            if command not in done_setup:
                done_setup.add(command)
                steps.append(("setup", fill(command, args)))
        if row.warmup and row.warmup not in done_setup:
            done_setup.add(row.warmup)
            steps.append(("warmup", fill(row.warmup, args)))
        runs = 1 if row.alternates or not row.timed else args.rounds
        steps.extend((f"round {k + 1}" if not row.alternates else f"{args.rounds} alternating rounds", fill(row.command, args))
                     for k in range(runs))
        planned.append((row, steps))
    return planned


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def dotted(data: dict, path: str):
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def run_row(row: Row, steps: list[tuple[str, str]], args: argparse.Namespace) -> dict:
    """Runs the row's steps; its record."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    record = {"key": row.key, "command": fill(row.command, args), "date": dt.date.today().isoformat(), "steps": []}
    walls = []
    for what, command in steps:
        load = wait_for_load(args.wait_load if what != "setup" else None)
        print(f"[{row.key[:50]}] {what}: {command}", flush=True)
        started = time.perf_counter()
        status = subprocess.run(command, shell=True, cwd=REPO, env=env, executable="/bin/bash").returncode
        wall = time.perf_counter() - started
        record["steps"].append({"what": what, "command": command, "returncode": status, "wall_s": round(wall, 2),
                                "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)]})
        if status != 0:
            record["failed"] = f"{what} exited with {status}"
            return record
        if what.startswith("round") or "alternating" in what:
            walls.append(wall)
    record["wall_s"] = spread(walls)
    loads = [v for step in record["steps"] if step["what"] != "setup" for v in step["load_avg_1m"]]
    record["load_avg_1m"] = {"min": min(loads), "max": max(loads)}
    result = Path(fill(row.result, args)) if row.result else None
    if result and result.is_file():
        figures = json.loads(result.read_text())
        record["figures"] = {path: dotted(figures, path) for path in row.ratios if dotted(figures, path) is not None}
        occi = figures.get("occi") or {}
        for name in ("peak_tree_rss_mb", "kept", "docs_per_s_per_core"):
            if name in occi:
                record["figures"][f"occi.{name}"] = occi[name]
    return record


def status_rows(readme: str) -> list[str]:
    """The status table's rows of bench/README.md, as written."""
    section = readme.split("## Status", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")]


def row_date(line: str, default: dt.date) -> dt.date:
    """The latest date written in a status row, else the table's own date."""
    dates = [dt.date.fromisoformat(d) for d in re.findall(r"\b(20\d\d-\d\d-\d\d)\b", line)]
    return max(dates, default=default)


def status_table(readme: str, records: list[dict], today: dt.date) -> str:
    """The status table with each re-measured row's new figures, and the other rows marked when
    older than a month."""
    table_date = dt.date.fromisoformat(re.search(r"## Status \((20\d\d-\d\d-\d\d)", readme).group(1))
    lines = ["| benchmark | result as written | re-measured by bench/run_all.py |", "|---|---|---|"]
    for line in status_rows(readme):
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        mine = [r for r in records if cells[0].startswith(r["key"]) or any(cells[0].startswith(k) for k in r.get("rows_fed", ()))]
        measured = "; ".join(describe(r) for r in mine)
        if not measured:
            age = (today - row_date(line, table_date)).days
            measured = f"not re-measured{f' (older than a month: {age} days)' if age > STALE_DAYS else ''}"
        lines.append(f"| {cells[0]} | {cells[-1]} | {measured} |")
    return "\n".join(lines) + "\n"


def describe(record: dict) -> str:
    if "failed" in record:
        return f"{record['date']}: `{record['command']}` failed ({record['failed']})"
    figures = ", ".join(f"{name} {fmt(value)}" for name, value in record.get("figures", {}).items())
    load = record["load_avg_1m"]
    return (f"{record['date']}, load {load['min']:.1f}-{load['max']:.1f}: `{record['command']}`: wall "
            f"{fmt(record['wall_s'])} s{'; ' + figures if figures else ''}")


def fmt(value) -> str:
    if isinstance(value, dict) and {"min", "median", "max"} <= value.keys():
        return " / ".join(f"{value[k]:.2f}" for k in ("min", "median", "max"))
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/occi-bench"), help="inputs and the peers' set-up")
    parser.add_argument("--out", type=Path, default=None, help="results and scratch (default DATA/run_all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row (alternating where there is a peer)")
    parser.add_argument("--wait-load", type=float, default=None,
                        help="before each round, wait until the 1-minute load average is below this")
    parser.add_argument("--only", action="append", default=[],
                        help="a part of the names of the rows to run (row names hold commas: give --only again for another part)")
    parser.add_argument("--skip", action="append", default=[], help="a part of the names of the rows not to run (may be given again)")
    parser.add_argument("--gpu", action="store_true", help="also the rows that need a GPU")
    parser.add_argument("--again", action="store_true", help="re-run rows already in OUT/results.json")
    parser.add_argument("--python", default=sys.executable, help="occi's interpreter (default: this one)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands in order; run nothing")
    args = parser.parse_args(argv)
    args.out = args.out or args.data / "run_all"
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: use 1 or more (3 or more for a min / median / max)")
    planned = plan(ROWS, args)
    if args.dry_run:
        for row, steps in planned:
            print(f"# {row.key}" + ("" if steps else f" (skipped: needs {row.needs or 'nothing; --skip'})"))
            for what, command in steps:
                print(f"{what:>22}: {command}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.json"
    records = json.loads(results.read_text()) if results.is_file() else []
    readme = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    for row, steps in planned:
        if not steps:
            continue
        command = fill(row.command, args)
        if not args.again and any(r["command"] == command and "failed" not in r for r in records):
            print(f"[{row.key[:50]}] recorded already (--again re-runs it)", flush=True)
            continue
        record = {**run_row(row, steps, args), "rows_fed": list(row.rows_fed)}
        records = [r for r in records if r["command"] != command] + [record]
        write_atomic(results, json.dumps(records, indent=1) + "\n")
        write_atomic(args.out / "status.md", status_table(readme, records, dt.date.today()))
    print(f"{results}\n{args.out / 'status.md'}")
    return 0 if all("failed" not in r for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
