"""A model's evaluation table: every cell's state (done, failed, missing), read from its folder.

<run>/eval/<suite>/<model>/<lang>/<family>/ holds lm-eval's results JSON and samples, occi's
cell.json with the headline metric (done, with _DONE) or error.json (failed).
"""
from __future__ import annotations

import json
from pathlib import Path

from occi.fsutil import is_done
from occi.rundir import RunDir
from occi.eval.suites import Cell, cells, missing_benchmarks


def cell_folder(run: RunDir, label: str, cell: Cell) -> Path:
    """Where one cell of one model keeps its files."""
    return RunDir.of(run).eval_cell(cell.suite, label, cell.language, cell.family)


def collect(run: RunDir, label: str, suites: list[str], codes: list[str], overrides: dict[str, int]) -> dict:
    """Every cell's state (done, failed, missing) and value."""
    rows = []
    for suite in suites:
        for cell in cells(suite, codes, overrides):
            folder = cell_folder(run, label, cell)
            if is_done(folder):
                rows.append({**json.loads((folder / "cell.json").read_text(encoding="utf-8")), "state": "done"})
            elif (folder / "error.json").exists():
                error = json.loads((folder / "error.json").read_text(encoding="utf-8"))["error"]
                rows.append({"suite": suite, "language": cell.language, "family": cell.family, "task": cell.task,
                             "metric": cell.metric, "state": "failed", "error": error})
            else:
                rows.append({"suite": suite, "language": cell.language, "family": cell.family, "task": cell.task,
                             "metric": cell.metric, "state": "missing"})
    table = {"model": label, "languages": list(codes), "cells": rows}
    if "eu-leaderboard" in suites:
        table["gaps"] = {code: gaps for code, gaps in missing_benchmarks(codes).items() if gaps}
    return table


def format_table(table: dict) -> str:
    """Languages as rows, task families as columns; failed and missing cells are named, never 0."""
    families = list(dict.fromkeys(c["family"] for c in table["cells"]))
    codes = table.get("languages") or list(dict.fromkeys(c["language"] for c in table["cells"]))
    index = {(c["language"], c["family"]): c for c in table["cells"]}
    header = ["lang"] + [f"{f} ({next(c['metric'] for c in table['cells'] if c['family'] == f)})" for f in families]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for code in codes:
        row = [code]
        for family in families:
            cell = index.get((code, family))
            if cell is None:
                row.append("n/a")
            elif cell["state"] == "done":
                err = f" ± {cell['stderr']:.3f}" if cell.get("stderr") is not None else ""
                row.append(f"{cell['value']:.3f}{err}")
            else:
                row.append(cell["state"])
        lines.append("| " + " | ".join(row) + " |")
    if table.get("gaps"):
        lines.append("")
        lines.append("n/a: lm-eval has no such benchmark in that language. Lacking: "
                     + "; ".join(f"{code} {', '.join(gaps)}" for code, gaps in table["gaps"].items()))
    failed = [c for c in table["cells"] if c["state"] == "failed"]
    if failed:
        lines.append("")
        lines.append(f"{len(failed)} cell(s) failed, e.g. {failed[0]['language']}/{failed[0]['family']}: {failed[0]['error']}")
    return "\n".join(lines)
