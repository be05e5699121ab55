"""`occi leaderboard RESULTS... --out DIR`: models x languages x benchmarks from lm-eval results.

Reads lm-eval results JSON files (or folders of them, ours and anyone else's), maps every task it
knows through the language table to (language, benchmark), and writes leaderboard.md, .csv,
.json, a static sortable HTML page (leaderboard.html beside this file, no CDN) and a heatmap PNG.
AGGREGATION says how averages and ranks are made. Missing cells stay missing, never 0.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from occi import languages, ranges
from occi.fsutil import atomic_write_text

LOWER_IS_BETTER = {"bpb"}
NOT_AVERAGED = LOWER_IS_BETTER | {"fidelity"}
"""Families shown but not in the language averages: bits per byte, and answer-language fidelity
(which language a model answers in, not how well: its own column)."""
METRIC_RANGES = {"acc": ranges.SHARE, "acc_norm": ranges.SHARE, "mc2": ranges.SHARE,
                 "bits_per_byte": ranges.at_least(0), "fidelity": ranges.SHARE}
"""The values a metric can take; a value outside (1e308, -5, NaN) is a broken file, not a score."""

AGGREGATION = ("A language's average is the unweighted mean of the model's accuracy-type benchmarks in that "
               "language (bits per byte is shown but not averaged: lower is better and its scale differs; answer-language "
               "fidelity is shown in its own table, not averaged: it measures the answer's language, not its quality); "
               "the overall average is the unweighted mean of the model's language averages; models are ranked "
               "by the overall average, so a model is compared on the languages it has results for. Standard "
               "errors of averages assume independent benchmarks: sqrt(sum of squared errors) / count, given "
               "only when every part has one.")


def task_index() -> dict[str, tuple[str, str, str]]:
    """lm-eval task name -> (language, benchmark family, metric), from the language table."""
    index = {}
    for code in languages.LANGUAGES:
        for family, task in languages.lm_eval_tasks(code).items():
            index[task] = (code, family, languages.BENCHMARKS[family][2])
        index[f"occi_bpb_{code}"] = (code, "bpb", "bits_per_byte")
        index[f"occi_mc_{code}"] = (code, "mc", "acc_norm")
        index[f"occi_fidelity_{code}"] = (code, "fidelity", "fidelity")
    return index


@dataclass
class Board:
    cells: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    """(model, language, benchmark) -> {value, stderr, metric, task, shots, date, file}."""
    problems: list[str] = field(default_factory=list)
    """One line per file that could not be used."""


def result_files(spec: str) -> tuple[str | None, list[Path]]:
    """NAME=PATH or PATH; a folder means every results*.json below it."""
    name, sep, path = spec.partition("=")
    if not sep or not name or Path(spec).exists():
        name, path = None, spec
    target = Path(path)
    if target.is_dir():
        return name, sorted(target.rglob("results*.json"))
    return name, [target]


def read(specs: list[str]) -> Board:
    board = Board()
    index = task_index()
    for spec in specs:
        name, files = result_files(spec)
        if not files:
            board.problems.append(f"{spec}: no lm-eval results*.json files found")
        for path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
                    raise ValueError("no `results` mapping")
            except (OSError, ValueError) as err:
                board.problems.append(f"{path}: not an lm-eval results file ({type(err).__name__}: {err})")
                continue
            _add(board, data, path, name or model_name(data, path), index)
    return board


def _add(board: Board, data: dict, path: Path, model: str, index: dict) -> None:
    """The file's cells; every task occi knows but cannot use, and a file that gives nothing,
    become a line in `board.problems`."""
    date = data.get("date") if data.get("date") in ranges.Range() else 0.0  # finite numbers only
    shots = data.get("n-shot") if isinstance(data.get("n-shot"), dict) else {}
    used = 0
    for task, scores in data["results"].items():
        if task not in index or not isinstance(scores, dict):
            continue
        code, family, metric = index[task]
        value = scores.get(f"{metric},none")
        if value is None:
            have = ", ".join(str(k) for k in scores if str(k).endswith(",none") and "stderr" not in str(k)) or "none"
            board.problems.append(f"{path}: task {task}: no {metric!r} score (metrics: {have}); task ignored")
            continue
        if value not in METRIC_RANGES.get(metric, ranges.Range()):
            expected = METRIC_RANGES.get(metric, ranges.Range()).describe()
            board.problems.append(f"{path}: task {task}: {metric} {value!r} is not {expected}; task ignored")
            continue
        used += 1
        key = (model, code, family)
        if key in board.cells and board.cells[key]["date"] > date:
            continue  # the same model and task evaluated twice: the newer run counts
        stderr = scores.get(f"{metric}_stderr,none")
        board.cells[key] = {
            "value": float(value), "stderr": float(stderr) if stderr in ranges.at_least(0) else None,
            "metric": metric, "task": task, "shots": _shots(shots.get(task)), "date": date, "file": str(path)}
    if not used and not any(p.startswith(f"{path}: ") for p in board.problems):
        tasks = ", ".join(sorted(str(t) for t in data["results"])[:5]) or "none"
        board.problems.append(f"{path}: no task occi can place (tasks: {tasks}); file ignored")


def _shots(value) -> int | None:
    """A few-shot count as the file gives it, when it is one (a whole number, 0 or more)."""
    return int(value) if value in ranges.at_least(0) and float(value).is_integer() else None


def model_name(data: dict, path: Path) -> str:
    """The model's name as lm-eval recorded it (a hub id, or a local folder's name), else the
    results folder's name."""
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    args = config.get("model_args")
    pretrained = ""
    if isinstance(args, dict):
        pretrained = str(args.get("pretrained") or "")
    elif isinstance(args, str):
        pretrained = next((p.split("=", 1)[1] for p in args.split(",") if p.startswith("pretrained=")), "")
    name = str(data.get("model_name") or pretrained or path.parent.name).rstrip("/")
    if name.startswith(("/", "./", "../", "~")):  # a local path: its folder's name
        name = Path(name).name
    return name


def _mean_with_error(parts: list[dict]) -> tuple[float | None, float | None]:
    if not parts:
        return None, None
    mean = sum(p["value"] for p in parts) / len(parts)
    errors = [p["stderr"] for p in parts]
    if any(e is None for e in errors):
        return mean, None
    return mean, math.sqrt(sum(e * e for e in errors)) / len(parts)


def summarize(board: Board) -> dict:
    """Per model: language averages, overall average, rank; the benchmark table."""
    models = sorted({m for m, _, _ in board.cells})
    present = {code for _, code, _ in board.cells}
    codes = [c for c in languages.LANGUAGES if c in present]
    families = [f for f in ["bpb", "mc", "fidelity", *languages.BENCHMARKS] if any(f == fam for _, _, fam in board.cells)]
    averaged: dict[tuple[str, str], list[dict]] = {}  # (model, language) -> cells, in board order
    for (model, code, family), cell in board.cells.items():
        if family not in NOT_AVERAGED:
            averaged.setdefault((model, code), []).append(cell)
    rows = []
    for model in models:
        per_language, errors = {}, {}
        for code in codes:
            per_language[code], errors[code] = _mean_with_error(averaged.get((model, code), []))
        covered = [{"value": per_language[c], "stderr": errors[c]} for c in codes if per_language[c] is not None]
        overall, overall_error = _mean_with_error(covered)
        fidelity = {code: board.cells[(model, code, "fidelity")]["value"] for code in codes
                    if (model, code, "fidelity") in board.cells}
        rows.append({"model": model, "languages": per_language, "languages_stderr": errors, "fidelity": fidelity,
                     "overall": overall, "overall_stderr": overall_error, "languages_covered": len(covered)})
    ranked = sorted(rows, key=lambda r: (r["overall"] is None, -(r["overall"] or 0.0), r["model"]))
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank if row["overall"] is not None else None
    cells = [{"model": m, "language": c, "benchmark": f, **{k: v for k, v in cell.items() if k != "date"}}
             for (m, c, f), cell in sorted(board.cells.items())]
    return {"aggregation": AGGREGATION, "languages": codes, "benchmarks": families, "models": ranked,
            "cells": cells, "problems": board.problems}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _md(text: str) -> str:
    """Text as one Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(str(text).replace("\\", "\\\\").replace("|", "\\|").split())


def markdown(summary: dict) -> str:
    codes = summary["languages"]
    lines = ["| rank | model | overall | " + " | ".join(codes) + " |", "|" + "---|" * (3 + len(codes))]
    for row in summary["models"]:
        lines.append(f"| {row['rank'] or '–'} | {_md(row['model'])} | {_fmt(row['overall'])} | "
                     + " | ".join(_fmt(row["languages"][c]) for c in codes) + " |")
    fidelity_codes = [c for c in codes if any(c in row.get("fidelity", {}) for row in summary["models"])]
    if fidelity_codes:
        lines += ["", "Answer-language fidelity (share of answers to prompts in a language that are in that language):",
                  "", "| model | " + " | ".join(fidelity_codes) + " |", "|" + "---|" * (1 + len(fidelity_codes))]
        for row in summary["models"]:
            lines.append(f"| {_md(row['model'])} | " + " | ".join(_fmt(row.get("fidelity", {}).get(c))
                                                                  for c in fidelity_codes) + " |")
    lines += ["", "Per benchmark (value ± standard error; shots: few-shot examples, when the file says):", "",
              "| model | language | benchmark | metric | shots | value |", "|---|---|---|---|---|---|"]
    for cell in summary["cells"]:
        err = f" ± {cell['stderr']:.3f}" if cell["stderr"] is not None else ""
        shots = "–" if cell["shots"] is None else cell["shots"]
        lines.append(f"| {_md(cell['model'])} | {cell['language']} | {cell['benchmark']} | {cell['metric']} | {shots} "
                     f"| {cell['value']:.4f}{err} |")
    lines += ["", f"Aggregation: {summary['aggregation']}"]
    return "\n".join(lines)


def csv_text(summary: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "language", "benchmark", "task", "metric", "shots", "value", "stderr"])
    for cell in summary["cells"]:
        writer.writerow([cell["model"], cell["language"], cell["benchmark"], cell["task"], cell["metric"],
                         "" if cell["shots"] is None else cell["shots"], cell["value"],
                         "" if cell["stderr"] is None else cell["stderr"]])
    return out.getvalue()


def _th(label: str, text: bool = False, first: str = "desc") -> str:
    classes = ' class="text"' if text else ""
    return f'<th{classes} data-first="{first}">{html.escape(label)}</th>'


def _td(value, digits: int = 3, stderr: float | None = None) -> str:
    if value is None:
        return '<td class="missing" data-value="">–</td>'
    if isinstance(value, str):
        return f'<td class="text" data-value="{html.escape(value)}">{html.escape(value)}</td>'
    shown = f"{value:.{digits}f}" if digits else str(value)
    title = f' title="± {stderr:.4f}"' if stderr is not None else ""
    return f'<td data-value="{value}"{title}>{shown}</td>'


def html_page(summary: dict) -> str:
    codes = summary["languages"]
    board_header = [_th("model", text=True, first="asc"), _th("rank", first="asc"), _th("overall")]
    board_header += [_th(code) for code in codes]
    board_rows = []
    for row in summary["models"]:
        cells = [_td(row["model"]), _td(row["rank"], 0), _td(row["overall"], stderr=row["overall_stderr"])]
        cells += [_td(row["languages"][c], stderr=row["languages_stderr"][c]) for c in codes]
        board_rows.append("<tr>" + "".join(cells) + "</tr>")
    cells_header = [_th("model", True, "asc"), _th("language", True, "asc"), _th("benchmark", True, "asc"),
                    _th("metric", True, "asc"), _th("shots", first="asc"), _th("value"), _th("stderr", first="asc")]
    cells_rows = []
    for cell in summary["cells"]:
        cells_rows.append("<tr>" + "".join([
            _td(cell["model"]), _td(cell["language"]), _td(cell["benchmark"]), _td(cell["metric"]),
            _td(cell["shots"], 0), _td(cell["value"], 4), _td(cell["stderr"], 4)]) + "</tr>")
    problems = ""
    if summary["problems"]:
        problems = f"{len(summary['problems'])} file(s) could not be used: " + html.escape("; ".join(summary["problems"]))
    template = Template((Path(__file__).parent / "leaderboard.html").read_text(encoding="utf-8"))
    return template.substitute(aggregation=html.escape(summary["aggregation"]), problems=problems,
                               board_header="".join(board_header), board_rows="\n".join(board_rows),
                               cells_header="".join(cells_header), cells_rows="\n".join(cells_rows))


def heatmap(summary: dict, path: Path) -> None:
    import matplotlib
    import numpy as np

    from occi.plots import pyplot, save_png

    plt = pyplot()
    models, codes = [r["model"] for r in summary["models"]], summary["languages"]
    grid = np.array([[np.nan if r["languages"][c] is None else r["languages"][c] for c in codes]
                     for r in summary["models"]], dtype=float).reshape(len(models), len(codes))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(codes) + 3), max(2.5, 0.3 * len(models) + 1.5)))
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(codes)), codes)
    ax.set_yticks(range(len(models)), models)
    ax.set_title("average accuracy per language (grey: no results)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    save_png(fig, path)


def write(summary: dict, out: Path) -> None:
    out = Path(out)
    atomic_write_text(out / "leaderboard.md", markdown(summary) + "\n")
    atomic_write_text(out / "leaderboard.csv", csv_text(summary))
    atomic_write_text(out / "leaderboard.json", json.dumps(summary, indent=2, ensure_ascii=False,
                                                                     allow_nan=False) + "\n")
    atomic_write_text(out / "leaderboard.html", html_page(summary))
    heatmap(summary, out / "leaderboard.png")
