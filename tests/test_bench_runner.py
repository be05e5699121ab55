"""bench/run_all.py: every status-table row of bench/README.md has its command, in order, with the
one --data/--work convention; rounds are recorded with their load; stale rows are marked."""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_runner():
    spec = importlib.util.spec_from_file_location("bench_run_all", REPO / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_dry_run_lists_a_command_for_every_status_row_with_existing_scripts_and_the_wait(capsys, tmp_path):
    runner = load_runner()
    assert runner.main(["--dry-run", "--data", str(tmp_path), "--wait-load", "1.5", "--rounds", "3"]) == 0
    printed = capsys.readouterr().out
    readme = (REPO / "bench" / "README.md").read_text(encoding="utf-8")
    for line in runner.status_rows(readme):
        first = line.strip("| ").split(" | ")[0]
        assert any(first.startswith(row.key) or any(first.startswith(k) for k in row.rows_fed) for row in runner.ROWS), first
    commands = [line.split(": ", 1)[1] for line in printed.splitlines() if not line.startswith("#")]
    assert commands, printed
    for command in commands:
        for script in re.findall(r"\bbench/[\w/]+\.(?:py|sh)\b", command):
            assert (REPO / script).is_file(), f"{command}: {script} does not exist"
        assert "sudo" not in command and "/tmp/occi-bench" not in command  # everything under --data
    alternating = [c for c in commands if "--repeats 3" in c and "run.py --data" in c]
    assert alternating and all("--wait-load 1.5" in c for c in alternating)
    # the numba warm-up runs once, before the first corpora round; the GPU rows are skipped on a CPU machine
    assert printed.count("warmup:") == 1 and printed.index("warmup:") < printed.index("alternating rounds:")
    assert "(skipped: needs a GPU)" in printed
    megatron = next(c for c in commands if "prepare_vs_megatron.py" in c)
    assert f"--data {tmp_path}" in megatron and "--wait-load 1.5" in megatron


def test_rounds_are_recorded_with_load_and_figures_and_the_status_table_marks_old_rows(tmp_path):
    runner = load_runner()
    args = runner.argparse.Namespace(python=sys.executable, data=tmp_path, out=tmp_path / "out", rounds=3,
                                     wait_load=1e9, only=[], skip=[], gpu=False)
    args.out.mkdir()
    write = json.dumps({"spread": {"ratio": {"min": 3.1, "median": 3.5, "max": 4.0}}, "occi": {"peak_tree_rss_mb": 443.0}})
    program = f"open({str(args.out / 'r.json')!r}, 'w').write({write!r})"
    row = runner.Row("bench/made-up row", "{py} -c " + shlex.quote(program).replace("{", "{{").replace("}", "}}"),
                     result="{out}/r.json", ratios=("spread.ratio",))
    (planned_row, steps), = runner.plan((row,), args)
    assert [what for what, _ in steps] == ["round 1", "round 2", "round 3"]
    record = runner.run_row(planned_row, steps, args)
    assert "failed" not in record and len(record["steps"]) == 3
    assert all(len(step["load_avg_1m"]) == 2 and step["returncode"] == 0 for step in record["steps"])
    assert record["figures"] == {"spread.ratio": {"min": 3.1, "median": 3.5, "max": 4.0}, "occi.peak_tree_rss_mb": 443.0}
    assert record["wall_s"]["min"] <= record["wall_s"]["median"] <= record["wall_s"]["max"]

    readme = ("# B\n\n## Status (2026-10-01; rows dated where re-measured later)\n\n| benchmark | target | result |\n"
              "|---|---|---|\n| bench/made-up row | >= 3x | 2.0x |\n| bench/old row | x | y |\n"
              "| bench/newer row | x | y (2026-12-01) |\n\n## next\n")
    table = runner.status_table(readme, [record], dt.date(2026, 12, 7))
    assert "3.10 / 3.50 / 4.00" in table and "443.0" in table
    old, newer = (line for line in table.splitlines() if "old row" in line or "newer row" in line)
    assert "older than a month: 67 days" in old and "older than a month" not in newer

    failing = runner.Row("bench/failing", "{py} -c 'raise SystemExit(3)'")
    record = runner.run_row(failing, runner.plan((failing,), args)[0][1], args)
    assert record["failed"] == "round 1 exited with 3" and len(record["steps"]) == 1


def test_only_takes_a_row_name_with_commas_whole(capsys, tmp_path):
    runner = load_runner()
    name = "bench/corpora, throughput per core vs datatrove with the same whitespace words"
    assert runner.main(["--dry-run", "--data", str(tmp_path), "--only", name, "--only", "bench/train part 1"]) == 0
    chosen = [line[2:] for line in capsys.readouterr().out.splitlines() if line.startswith("# ")]
    assert chosen == [name] * 3 + ["bench/train part 1, data prepare vs Megatron-LM"], chosen
