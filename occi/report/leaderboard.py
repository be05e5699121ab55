"""`occi leaderboard RESULTS... --out DIR`: models x languages x benchmarks from lm-eval results.

Reads lm-eval results JSON files (or folders of them, ours and anyone else's): tasks of the language
table become (language, benchmark family) cells, every other task or group its own column in the
language its metadata or name gives (else "unmapped"); nothing is dropped without a line saying
why. Published results of public models (eval/published/, occi/report/published.py) can join where
task, few-shot setting and metric match. Writes leaderboard.md, .csv, .json, a static sortable HTML
page (leaderboard.html beside this file, no CDN) and a heatmap PNG. AGGREGATION says how averages and
ranks are made. Missing cells stay missing, never 0.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from occi import languages, ranges
from occi.eval import ifeval, results
from occi.eval.fidelity import INTERVAL_KEYS
from occi.fsutil import atomic_write_text
from occi.plots import pyplot, save_png
from occi.report.markdown_text import table_cell as _md

MIN_SHARED = 3
"""Models are ranked only when they share at least this many cells (benchmark x language)."""
STAND_IN_METRICS = ("acc_norm", "acc", "mc1", "mc2", "exact_match")
"""Accuracy metrics a task of the language table is shown under (in a column of its own) when its
family's metric is missing from a results file."""
NOT_AVERAGED = {"fidelity", "ifeval"}
"""Columns shown in a table of their own, never averaged: answer-language fidelity measures which
language a model answers in, not how well; instruction following scores generated answers, which a
base model is not trained to give (averaging it would rank a base model down for being one)."""

AGGREGATION = ("Models are ranked on the cells (benchmark x language) that every compared model has: the "
               "`shared` column is the unweighted mean over those cells, so no model gains from reporting fewer "
               "languages. Only accuracy-type scores between 0 and 1 where higher is better are averaged (bits per "
               "byte, perplexities, BLEU and groups are shown, not averaged; a group's tasks are averaged "
               "themselves; answer-language fidelity and instruction following have their own tables). `own average` is each model's mean over all of its own such cells and is not "
               "comparable between models with different coverage; `cells` and `languages` are its coverage. A "
               "language column is the model's mean over its benchmarks in that language. Standard errors assume "
               "independent cells: sqrt(sum of squared errors) / count, given only when every part has one.")


def task_index() -> dict[str, tuple[str, str, str]]:
    """lm-eval task name -> (language, benchmark family, metric), from the language table."""
    index = {}
    for code in languages.LANGUAGES:
        for family, task in languages.lm_eval_tasks(code).items():
            index[task] = (code, family, languages.BENCHMARKS[family][2])
        index[f"occi_bpb_{code}"] = (code, "bpb", "bits_per_byte")
        index[f"occi_mc_{code}"] = (code, "mc", "acc_norm")
        index[f"occi_fidelity_{code}"] = (code, "fidelity", "fidelity")
        if ifeval.task(code):
            index[ifeval.task(code)] = (code, "ifeval", ifeval.METRIC)
    return index


@dataclass
class Board:
    cells: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    """(model, language, benchmark) -> {value, stderr, metric, task, shots, version, higher_is_better,
    group, published, source, date, file}."""
    problems: list[str] = field(default_factory=list)
    """One line per file, task or value that could not be used."""
    published_left_out: list[str] = field(default_factory=list)
    """One line per published value not placed (occi/report/published.py) and why."""
    published_unplaced: list[dict] = field(default_factory=list)
    """The same values as records {model, task, language, benchmark, shots, metric, value, harness,
    reason, source, note}: shown beside the table, never in a cell or an average."""


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


def _mapping(data: dict, key: str) -> dict:
    return data.get(key) if isinstance(data.get(key), dict) else {}


def _add(board: Board, data: dict, path: Path, model: str, index: dict) -> None:
    """Every task and group of the file becomes a cell, or a line in `board.problems` saying why not.

    A task of occi's table is placed as (language, family) with the family's metric; any other task
    or group gets its own column (its name without a language ending) and its headline metric, in
    the language its metadata or name gives, else "unmapped"."""
    date = data.get("date") if data.get("date") in ranges.Range() else 0.0  # finite numbers only
    shots, versions, configs = _mapping(data, "n-shot"), _mapping(data, "versions"), _mapping(data, "configs")
    better = _mapping(data, "higher_is_better")
    subtasks = _mapping(data, "group_subtasks")
    groups = set(_mapping(data, "groups")) | {g for g, members in subtasks.items() if members}
    entries = {**_mapping(data, "groups"), **data["results"]}
    used = 0
    for task, scores in entries.items():
        task = str(task)
        if not isinstance(scores, dict):
            board.problems.append(f"{path}: task {task}: its scores are not a mapping; task ignored")
            continue
        if task in index:
            code, family, metric = index[task]
            key = f"{metric},{languages.METRIC_FILTERS.get(family, 'none')}"
            if scores.get(key) is None:
                have = ", ".join(str(k) for k in scores if "," in str(k) and "_stderr," not in str(k)) or "none"
                stand_in = results.headline_metric({k: v for k, v in scores.items()
                                                    if str(k).partition(",")[0] in STAND_IN_METRICS})
                if stand_in is None:
                    board.problems.append(f"{path}: task {task}: no {metric!r} score (metrics: {have}); task ignored")
                    continue
                wanted = metric
                metric, key = stand_in
                family = stand_in_column(family, key)
                board.problems.append(f"{path}: task {task}: no {wanted!r} score (metrics: {have}); shown under its "
                                      f"{metric!r} in the column {family!r}, not ranked against {wanted!r}")
        else:
            head = results.headline_metric(scores)
            if head is None:
                what = "group without an aggregate score" if task in groups else "task"
                board.problems.append(f"{path}: task {task}: no metric values ({what}); ignored")
                continue
            metric, key = head
            code = results.task_language(task, configs.get(task))
            family = results.benchmark_column(task) if code != results.UNMAPPED else task
        value = scores[key]
        allowed = results.metric_range(metric)
        if value not in allowed:
            board.problems.append(f"{path}: task {task}: {metric} {value!r} is not {allowed.describe()}; task ignored")
            continue
        used += 1
        cell_key = (model, code, family)
        if cell_key in board.cells:
            if not _replaces(board, cell_key, task, path, date):
                continue
        stderr = scores.get(key.replace(",", "_stderr,", 1))
        higher = _mapping(better, task).get(metric) if task in better else None
        version = versions.get(task)
        interval = [scores.get(k) for k in INTERVAL_KEYS]
        board.cells[cell_key] = {
            "value": float(value), "stderr": float(stderr) if stderr in ranges.at_least(0) else None,
            "interval": interval if family == "fidelity" and all(v in ranges.SHARE for v in interval) else None,
            "metric": metric, "task": task, "shots": _shots(shots.get(task)),
            "version": version if isinstance(version, str) or version in ranges.Range() else None,
            "higher_is_better": higher if isinstance(higher, bool) else metric not in results.LOWER_IS_BETTER,
            "group": task in groups, "published": False, "source": None, "date": date, "file": str(path)}
    if not used and not any(p.startswith(f"{path}: ") for p in board.problems):
        board.problems.append(f"{path}: the file has no tasks; file ignored")


def stand_in_column(family: str, key: str) -> str:
    """The column of a known task shown under another metric than its family's: `arc (acc)`, so
    that it is compared only with the same metric."""
    metric, _, filt = key.partition(",")
    return f"{family} ({metric}{'' if filt == 'none' else ', ' + filt})"


def _replaces(board: Board, cell_key: tuple[str, str, str], task: str, path: Path, date: float) -> bool:
    """Whether a second result for a model's cell replaces the one already read: the newer run counts
    (of two with the same date, the one read last); either way a line says which one is left out."""
    model, code, column = cell_key
    earlier = board.cells[cell_key]
    newer = date >= earlier["date"]
    kept, left_out = (task, path), (earlier["task"], earlier["file"])
    if not newer:
        kept, left_out = left_out, kept
    why = "the newer run" if date != earlier["date"] else "the same date, read last"
    board.problems.append(
        f"{model} has two results for {column}/{code}: {kept[0]} in {kept[1]} counts ({why}); {left_out[0]} in "
        f"{left_out[1]} is left out (give each run its own name, NAME=PATH, to compare them)")
    return newer


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


def averaged(cell: dict, column: str) -> bool:
    """A cell that enters averages and ranks: a task (not a group) scored between 0 and 1, higher better."""
    return (column not in NOT_AVERAGED and not cell["group"] and cell["higher_is_better"]
            and results.metric_range(cell["metric"]) == ranges.SHARE)


def side_by_side(board: Board, names: list[str]) -> dict:
    """The models `names` (those with results, in that order: a run's base, SFT, DPO and merged
    models) in one column each, a row per language and benchmark any of them has; groups left out."""
    models = [name for name in names if any(m == name for m, _, _ in board.cells)]
    order = {code: number for number, code in enumerate(languages.LANGUAGES)}
    keys = sorted({(code, column) for (m, code, column), cell in board.cells.items()
                   if m in models and not cell["group"]},
                  key=lambda k: (order.get(k[0], len(order)), k))
    rows = [{"language": code, "benchmark": column,
             "values": {m: board.cells[(m, code, column)]["value"] if (m, code, column) in board.cells else None
                        for m in models}} for code, column in keys]
    return {"models": models, "rows": rows}


def summarize(board: Board, min_shared: int = MIN_SHARED, compare: list[str] | None = None) -> dict:
    """Per model: coverage, the mean over the cells all models share (and the rank by it), its own
    average, language averages; the shared cells; the benchmark table; with `compare`, those
    models side by side per language and benchmark."""
    models = sorted({m for m, _, _ in board.cells})
    present = {code for _, code, _ in board.cells}
    codes = [c for c in languages.LANGUAGES if c in present] + ([results.UNMAPPED] if results.UNMAPPED in present else [])
    known = ["bpb", "mc", "fidelity", "ifeval", *languages.BENCHMARKS]
    columns = sorted({f for _, _, f in board.cells}, key=lambda f: (f not in known, known.index(f) if f in known else 0, f))
    own: dict[str, dict[tuple[str, str], dict]] = {m: {} for m in models}
    for (model, code, column), cell in board.cells.items():
        if averaged(cell, column):
            own[model][(code, column)] = cell
    published = {m for (m, _, _), c in board.cells.items() if c["published"]}
    # the shared set comes from the results being compared; a published model joins the ranking
    # only when it has every shared cell, so a few published values never shrink it
    compared = [m for m in models if own[m] and m not in published]
    shared = sorted(set.intersection(*(set(own[m]) for m in compared))) if compared else []
    enough = bool(compared) and len(shared) >= min_shared
    rows = []
    for model in models:
        per_language, errors = {}, {}
        for code in codes:
            per_language[code], errors[code] = _mean_with_error([c for (lc, _), c in own[model].items() if lc == code])
        covers = bool(shared) and all(k in own[model] for k in shared)
        score, score_error = _mean_with_error([own[model][k] for k in shared]) if covers else (None, None)
        mean, mean_error = _mean_with_error(list(own[model].values()))
        fidelity = {code: board.cells[(model, code, "fidelity")]["value"] for code in codes
                    if (model, code, "fidelity") in board.cells}
        fidelity_interval = {code: board.cells[(model, code, "fidelity")].get("interval") for code in fidelity}
        following = {code: board.cells[(model, code, "ifeval")] for code in codes if (model, code, "ifeval") in board.cells}
        rows.append({"model": model, "published": model in published, "fidelity": fidelity,
                     "fidelity_interval": fidelity_interval,
                     "ifeval": {code: {"value": c["value"], "interval": normal_interval(c["value"], c["stderr"])}
                                for code, c in following.items()},
                     "shared": score if enough else None, "shared_stderr": score_error if enough else None,
                     "own_average": mean, "own_stderr": mean_error, "cells": len(own[model]),
                     "languages_covered": len({c for c, _ in own[model]} - {results.UNMAPPED}),
                     "languages": per_language, "languages_stderr": errors})
    if enough:
        rows.sort(key=lambda r: (r["shared"] is None, -(r["shared"] or 0.0), r["model"]))
    else:
        rows.sort(key=lambda r: (-r["cells"], r["model"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["shared"] is not None else None
    if not compared:
        note = "not ranked: no model has an accuracy-type score to compare"
    elif enough:
        note = (f"ranked on the {len(shared)} cell(s) that all {len(compared)} compared model(s) share: "
                + ", ".join(f"{column}/{code}" for code, column in shared)
                + ("; published models lacking one of them are listed unranked" if published else ""))
    else:
        note = (f"not ranked: the {len(compared)} models share {len(shared)} cell(s) (benchmark x language), fewer "
                f"than the {min_shared} a ranking needs; own averages are over different cells and not comparable"
                + (": " + ", ".join(f"{column}/{code}" for code, column in shared) if shared else ""))
    cells = [{"model": m, "language": c, "benchmark": f, **{k: v for k, v in cell.items() if k != "date"}}
             for (m, c, f), cell in sorted(board.cells.items())]
    return {"aggregation": AGGREGATION, "ranking": note, "min_shared": min_shared,
            "shared": [{"language": code, "benchmark": column} for code, column in shared],
            "languages": codes, "benchmarks": columns, "models": rows, "cells": cells, "problems": board.problems,
            "published_left_out": board.published_left_out, "published_unplaced": board.published_unplaced,
            "side_by_side": side_by_side(board, compare) if compare else None}


def normal_interval(value: float, stderr: float | None) -> list[float] | None:
    """value ± 1.96 standard errors, within [0, 1] (None without a standard error)."""
    if stderr is None:
        return None
    return [round(max(0.0, value - 1.96 * stderr), 4), round(min(1.0, value + 1.96 * stderr), 4)]


def _with_interval(entry: dict | None) -> str:
    if entry is None:
        return "–"
    interval = entry["interval"]
    return f"{entry['value']:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _fidelity_cell(row: dict, code: str) -> str:
    interval = row["fidelity_interval"].get(code)
    return _fmt(row["fidelity"].get(code)) + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def _label(row_or_cell: dict) -> str:
    return row_or_cell["model"] + (" (published)" if row_or_cell["published"] else "")


def markdown(summary: dict) -> str:
    codes = summary["languages"]
    lines = [f"| rank | model | shared ({len(summary['shared'])}) | cells | languages | own average | "
             + " | ".join(codes) + " |", "|" + "---|" * (6 + len(codes))]
    for row in summary["models"]:
        lines.append(f"| {row['rank'] or '–'} | {_md(_label(row))} | {_fmt(row['shared'])} | {row['cells']} | "
                     f"{row['languages_covered']} | {_fmt(row['own_average'])} | "
                     + " | ".join(_fmt(row["languages"][c]) for c in codes) + " |")
    lines += ["", f"Ranking: {_md(summary['ranking'])}."]
    fidelity_codes = [c for c in codes if any(c in row["fidelity"] for row in summary["models"])]
    if fidelity_codes:
        lines += ["", "Answer-language fidelity (share of answers to prompts in a language that are in that language; "
                  "[95% Wilson interval]):",
                  "", "| model | " + " | ".join(fidelity_codes) + " |", "|" + "---|" * (1 + len(fidelity_codes))]
        for row in summary["models"]:
            lines.append(f"| {_md(_label(row))} | " + " | ".join(_fidelity_cell(row, c) for c in fidelity_codes) + " |")
    following_codes = [c for c in codes if any(c in row.get("ifeval", {}) for row in summary["models"])]
    if following_codes:
        lines += ["", "Instruction following (prompt-level strict accuracy: the share of prompts whose every verifiable "
                  "instruction is followed; [95% interval], value ± 1.96 standard errors):", "",
                  "| model | " + " | ".join(following_codes) + " |", "|" + "---|" * (1 + len(following_codes))]
        for row in summary["models"]:
            lines.append(f"| {_md(_label(row))} | " + " | ".join(_with_interval(row.get("ifeval", {}).get(c))
                                                                  for c in following_codes) + " |")
    compared = summary.get("side_by_side")
    if compared and compared["models"]:
        lines += ["", "Side by side per language (" + ", ".join(_md(m) for m in compared["models"]) + "):", "",
                  "| language | benchmark | " + " | ".join(_md(m) for m in compared["models"]) + " |",
                  "|" + "---|" * (2 + len(compared["models"]))]
        for row in compared["rows"]:
            lines.append(f"| {row['language']} | {_md(row['benchmark'])} | "
                         + " | ".join(_fmt(row["values"][m], 4) for m in compared["models"]) + " |")
    lines += ["", "Per benchmark (value ± standard error; shots: few-shot examples and version: task version, "
              "when the file says; group: an lm-eval group, shown but not averaged):", "",
              "| model | language | benchmark | task | metric | shots | version | value |", "|---|---|---|---|---|---|---|---|"]
    for cell in summary["cells"]:
        err = f" ± {cell['stderr']:.3f}" if cell["stderr"] is not None else ""
        shots = "–" if cell["shots"] is None else cell["shots"]
        version = "–" if cell["version"] is None else cell["version"]
        task = _md(cell["task"]) + (" (group)" if cell["group"] else "")
        lines.append(f"| {_md(_label(cell))} | {cell['language']} | {_md(cell['benchmark'])} | {task} | "
                     f"{_md(cell['metric'])} | {shots} | {_md(version)} | {cell['value']:.4f}{err} |")
    published = sorted({(c["model"], c["source"]) for c in summary["cells"] if c["published"]})
    if published:
        lines += ["", "Published values (taken from the source, placed only where task, few-shot setting and metric "
                  "match a result above): " + "; ".join(f"{_md(m)}: {_md(src)}" for m, src in published)]
    unplaced = summary.get("published_unplaced") or []
    if unplaced:
        lines += ["", "Published values not placed (shown for reference, never in a cell or an average: the "
                  "source's task, few-shot setting, metric or harness does not match a result above, or is not "
                  "stated):", "", "| model | language | task | shots | metric | value | why | source |",
                  "|---|---|---|---|---|---|---|---|"]
        for item in unplaced:
            shots = "not stated" if item["shots"] is None else item["shots"]
            lines.append(f"| {_md(item['model'])} | {item['language']} | {_md(item['task'])} | {shots} | "
                         f"{_md(item['metric'])} | {item['value']:.4f} | {_md(item['reason'])} | {_md(item['source'])} |")
    lines += ["", f"Aggregation: {summary['aggregation']}"]
    return "\n".join(lines)


def csv_text(summary: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", "published", "language", "benchmark", "task", "group", "metric", "shots", "version",
                     "value", "stderr", "source", "ci95_low", "ci95_high"])
    for cell in summary["cells"]:
        interval = cell.get("interval") or ["", ""]
        writer.writerow([cell["model"], cell["published"], cell["language"], cell["benchmark"], cell["task"],
                         cell["group"], cell["metric"], "" if cell["shots"] is None else cell["shots"],
                         "" if cell["version"] is None else cell["version"], cell["value"],
                         "" if cell["stderr"] is None else cell["stderr"], cell["source"] or cell["file"], *interval])
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
    board_header = [_th("model", text=True, first="asc"), _th("rank", first="asc"), _th("shared"), _th("cells"),
                    _th("languages"), _th("own average")]
    board_header += [_th(code) for code in codes]
    board_rows = []
    for row in summary["models"]:
        cells = [_td(_label(row)), _td(row["rank"], 0), _td(row["shared"], stderr=row["shared_stderr"]),
                 _td(row["cells"], 0), _td(row["languages_covered"], 0), _td(row["own_average"], stderr=row["own_stderr"])]
        cells += [_td(row["languages"][c], stderr=row["languages_stderr"][c]) for c in codes]
        board_rows.append("<tr>" + "".join(cells) + "</tr>")
    cells_header = [_th("model", True, "asc"), _th("language", True, "asc"), _th("benchmark", True, "asc"),
                    _th("metric", True, "asc"), _th("shots", first="asc"), _th("value"), _th("stderr", first="asc")]
    cells_rows = []
    for cell in summary["cells"]:
        cells_rows.append("<tr>" + "".join([
            _td(_label(cell)), _td(cell["language"]), _td(cell["benchmark"]), _td(cell["metric"]),
            _td(cell["shots"], 0), _td(cell["value"], 4), _td(cell["stderr"], 4)]) + "</tr>")
    compared, side = summary.get("side_by_side"), ""
    if compared and compared["models"]:
        header = [_th("language", True, "asc"), _th("benchmark", True, "asc")] + [_th(m) for m in compared["models"]]
        rows = ["<tr>" + "".join([_td(row["language"]), _td(row["benchmark"])]
                                 + [_td(row["values"][m], 4) for m in compared["models"]]) + "</tr>"
                for row in compared["rows"]]
        side = ('<table id="side" class="sortable"><caption>Side by side per language</caption>\n<thead><tr>'
                + "".join(header) + "</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>")
    problems = ""
    if summary["problems"]:
        problems = f"{len(summary['problems'])} problem(s): " + html.escape("; ".join(summary["problems"]))
    template = Template((Path(__file__).parent / "leaderboard.html").read_text(encoding="utf-8"))
    return template.substitute(aggregation=html.escape(summary["ranking"] + ". " + summary["aggregation"]),
                               problems=problems,
                               board_header="".join(board_header), board_rows="\n".join(board_rows), side=side,
                               cells_header="".join(cells_header), cells_rows="\n".join(cells_rows))


def heatmap(summary: dict, path: Path) -> None:
    import matplotlib  # loads matplotlib: only when used
    import numpy as np  # loads numpy: only when used


    plt = pyplot()
    models, codes = [_label(r) for r in summary["models"]], summary["languages"]
    grid = np.array([[np.nan if r["languages"][c] is None else r["languages"][c] for c in codes]
                     for r in summary["models"]], dtype=float).reshape(len(models), len(codes))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(codes) + 3), max(2.5, 0.3 * len(models) + 1.5)))
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(codes)), codes)
    ax.set_yticks(range(len(models)), models)
    ax.set_title("mean accuracy-type score per language (grey: no results)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    save_png(fig, path)


def write(summary: dict, out: Path, draw_aside: bool = False) -> str:
    """Writes leaderboard.{md,csv,json,html,png} into `out`; returns the Markdown written.

    draw_aside: the heatmap is drawn by a forked child process while this one writes the other
    files (`occi leaderboard`: matplotlib's import and drawing are about half of its time, and a
    second core does them meanwhile); off where the caller may hold threads (a fork keeps only
    the forking one), as in `occi card` after in-process stages. A child that fails says nothing:
    the heatmap is then drawn here, so its error is raised as any other (an OSError naming the
    path), and an error of this process's own writes wins over the child's."""
    out = Path(out)
    child = _draw_in_child(summary, out / "leaderboard.png") if draw_aside and hasattr(os, "fork") else None
    try:
        text = _write_files(summary, out)
    except BaseException:
        if child is not None:
            os.waitpid(child, 0)  # reaped; the error being raised is the one to report
        raise
    if child is None or not _drew(child):
        heatmap(summary, out / "leaderboard.png")
    return text


def _draw_in_child(summary: dict, path: Path) -> int:
    """Forks; the child draws the heatmap into `path` and leaves (exit code 0 if it did)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        heatmap(summary, path)
        code = 0
    except BaseException:  # silent: the parent draws again and raises this error itself
        pass
    finally:
        os._exit(code)  # no atexit handlers or buffer flushes of the parent's state


def _drew(pid: int) -> bool:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _write_files(summary: dict, out: Path) -> str:
    text = markdown(summary)
    atomic_write_text(out / "leaderboard.md", text + "\n")
    atomic_write_text(out / "leaderboard.csv", csv_text(summary))
    atomic_write_text(out / "leaderboard.json", json.dumps(summary, indent=2, ensure_ascii=False,
                                                                     allow_nan=False) + "\n")
    atomic_write_text(out / "leaderboard.html", html_page(summary))
    return text
