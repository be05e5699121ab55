"""The model card's part for a run with `occi merge`: how the merged model (<run>/merged) was
made, from its occi_merge.json: the method, its settings and every parent (and the base) with its
weight, which stage or checkpoint of the run it is, and the sha256 of its weights."""
from __future__ import annotations

from pathlib import Path

from occi.report.markdown_text import markdown_table, table_cell
from occi.rundir import RunDir

METHODS = {"linear": "linear (the weighted average of every tensor)",
           "task_arithmetic": "task arithmetic (base + the sum of each weight x (model - base))",
           "ties": "TIES (task vectors trimmed, a sign elected per entry, the agreeing entries' mean added to the base)"}


def _what(parent: dict, run: RunDir) -> str:
    """Which model a parent is: a stage (or checkpoint) of this run, or its folder."""
    path = Path(parent["path"])
    if parent.get("stage") and path.parent == run.stage_models:
        return f"this run's {parent['stage']} stage, checkpoint iteration {parent.get('iteration')}"
    return f"`{table_cell(path.name)}` ({table_cell(path)})"


def merge_lineage(run: RunDir) -> str:
    """One line for the card's lineage: the merged model's method and parents; "" without one."""
    record = run.read_json(run.merged / "occi_merge.json")
    if not record:
        return ""
    parents = "; ".join(f"{_what(p, run)} x {p['weight']:g} (sha256 `{p['weights_sha256'][:16]}`)"
                        for p in record["parents"])
    base = f", base {_what(record['base'], run)} (sha256 `{record['base']['weights_sha256'][:16]}`)" \
        if record.get("base") else ""
    return f"Merged model (`merged/`): {record['method']} of {parents}{base}."


def merge_section(cfg, run: RunDir, out_dir: Path) -> str:
    """"## Merged model" and its parents; "" when the run has no merged model yet."""
    run = RunDir.of(run)
    record = run.read_json(run.merged / "occi_merge.json")
    if not record:
        return ""
    rows = [(f"parent {number}", _what(parent, run), f"{parent['weight']:g}", f"`{parent['weights_sha256'][:16]}`")
            for number, parent in enumerate(record["parents"], 1)]
    if record.get("base"):
        rows.append(("base", _what(record["base"], run), "", f"`{record['base']['weights_sha256'][:16]}`"))
    method = METHODS.get(record["method"], record["method"])
    if record["method"] == "ties":
        method += f", density {record['density']:g}"
    return "\n\n".join([
        "## Merged model",
        f"`occi merge` made a second model of this run, `merged/`, with the method {method}. It is "
        "evaluated beside the run's other models in the leaderboard (report/leaderboard.md).",
        markdown_table(["", "model", "weight", "weights sha256"], rows)])
