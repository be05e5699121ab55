"""`occi leaderboard RESULTS... --out DIR`: models x languages x benchmarks from lm-eval results.

Reads lm-eval results JSON files (or folders of them, ours and anyone else's), maps every task it
knows through the language table to (language, benchmark), and writes leaderboard.md, .csv,
.json, a static sortable HTML page (no CDN) and a heatmap PNG. Aggregation: a language's average
is the mean over its accuracy-type benchmarks (higher is better; bits per byte is shown but not
averaged); a model's overall average is the mean of its language averages; models are ranked by
the overall average. Missing cells stay missing, never 0.
"""
from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from occi import languages
from occi.fsutil import atomic_write_text

LOWER_IS_BETTER = {"bpb"}


def task_index() -> dict[str, tuple[str, str, str]]:
    """lm-eval task name -> (language, benchmark family, metric), from the language table."""
    index = {}
    for code in languages.LANGUAGES:
        for family, task in languages.lm_eval_tasks(code).items():
            index[task] = (code, family, languages.BENCHMARKS[family][2])
        index[f"occi_bpb_{code}"] = (code, "bpb", "bits_per_byte")
        index[f"occi_mc_{code}"] = (code, "mc", "acc_norm")
    return index


@dataclass
class Board:
    cells: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    """(model, language, benchmark) -> {value, stderr, metric, task, file}."""
    problems: list[str] = field(default_factory=list)
    """One line per file that could not be used."""


def result_files(spec: str) -> tuple[str | None, list[Path]]:
    """NAME=PATH or PATH; a folder means every results*.json below it."""
    name, sep, path = spec.partition("=")
    if not sep:
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
                results = data["results"]
                if not isinstance(results, dict):
                    raise TypeError("`results` is not a mapping")
            except (OSError, ValueError, KeyError, TypeError) as err:
                board.problems.append(f"{path}: not an lm-eval results file ({type(err).__name__}: {err})")
                continue
            model = name or _model_name(data, path)
            for task, scores in results.items():
                if task not in index or not isinstance(scores, dict):
                    continue
                code, family, metric = index[task]
                value = scores.get(f"{metric},none")
                if not isinstance(value, (int, float)):
                    continue
                stderr = scores.get(f"{metric}_stderr,none")
                board.cells[(model, code, family)] = {
                    "value": float(value), "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
                    "metric": metric, "task": task, "file": str(path)}
    return board


def _model_name(data: dict, path: Path) -> str:
    """The model's name from lm-eval's config (pretrained=...), else the results folder's name."""
    args = str(data.get("config", {}).get("model_args") or "")
    for part in args.split(","):
        if part.startswith("pretrained="):
            return part.split("=", 1)[1].rstrip("/")
    return str(data.get("model_name") or path.parent.name)


def summarize(board: Board) -> dict:
    """Per model: language averages, overall average, rank; the benchmark table."""
    models = sorted({m for m, _, _ in board.cells})
    codes = [c for c in languages.LANGUAGES if any(c == code for _, code, _ in board.cells)]
    families = [f for f in ["bpb", "mc", *languages.BENCHMARKS] if any(f == fam for _, _, fam in board.cells)]
    rows = []
    for model in models:
        per_language = {}
        for code in codes:
            values = [cell["value"] for (m, c, f), cell in board.cells.items()
                      if m == model and c == code and f not in LOWER_IS_BETTER]
            per_language[code] = sum(values) / len(values) if values else None
        present = [v for v in per_language.values() if v is not None]
        rows.append({"model": model, "languages": per_language,
                     "overall": sum(present) / len(present) if present else None,
                     "languages_covered": len(present)})
    ranked = sorted(rows, key=lambda r: (r["overall"] is None, -(r["overall"] or 0.0), r["model"]))
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank if row["overall"] is not None else None
    cells = [{"model": m, "language": c, "benchmark": f, **cell} for (m, c, f), cell in sorted(board.cells.items())]
    return {"aggregation": __doc__.split("Aggregation: ")[1].split(" Missing")[0].replace("\n", " "),
            "languages": codes, "benchmarks": families, "models": ranked, "cells": cells, "problems": board.problems}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict) -> str:
    codes = summary["languages"]
    lines = ["| rank | model | overall | " + " | ".join(codes) + " |", "|" + "---|" * (3 + len(codes))]
    for row in summary["models"]:
        lines.append(f"| {row['rank'] or '–'} | {row['model']} | {_fmt(row['overall'])} | "
                     + " | ".join(_fmt(row["languages"][c]) for c in codes) + " |")
    lines += ["", "Per benchmark (value ± standard error):", "",
              "| model | language | benchmark | metric | value |", "|---|---|---|---|---|"]
    for cell in summary["cells"]:
        err = f" ± {cell['stderr']:.3f}" if cell["stderr"] is not None else ""
        lines.append(f"| {cell['model']} | {cell['language']} | {cell['benchmark']} | {cell['metric']} | {cell['value']:.4f}{err} |")
    lines += ["", f"Aggregation: {summary['aggregation']}"]
    return "\n".join(lines)


def csv_text(summary: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["model", "language", "benchmark", "metric", "value", "stderr"])
    for cell in summary["cells"]:
        writer.writerow([cell["model"], cell["language"], cell["benchmark"], cell["metric"], cell["value"],
                         "" if cell["stderr"] is None else cell["stderr"]])
    return out.getvalue()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>occi leaderboard</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 4px 8px; text-align: right; }}
th {{ background: #e8eef5; cursor: pointer; }}
td.model, th.model {{ text-align: left; }}
td.missing {{ color: #999; }}
</style></head>
<body>
<h1>occi leaderboard</h1>
<p>{aggregation} Click a column header to sort by it.</p>
<table id="board"><thead><tr>{header}</tr></thead><tbody>
{body}
</tbody></table>
<script>
function sortBy(column) {{
  const body = document.querySelector('#board tbody');
  const rows = Array.from(body.rows);
  const key = r => {{ const v = r.cells[column].dataset.value; return v === '' ? null : Number.isNaN(Number(v)) ? v : Number(v); }};
  const ascending = body.dataset.column === String(column) && body.dataset.order !== 'asc';
  rows.sort((a, b) => {{
    const x = key(a), y = key(b);
    if (x === null) return 1; if (y === null) return -1;
    const order = typeof x === 'string' ? x.localeCompare(y) : (y - x);
    return ascending ? -order : order;
  }});
  rows.forEach(r => body.appendChild(r));
  body.dataset.column = String(column); body.dataset.order = ascending ? 'asc' : 'desc';
}}
document.querySelectorAll('#board th').forEach((th, i) => th.addEventListener('click', () => sortBy(i)));
</script>
</body></html>
"""


def html_page(summary: dict) -> str:
    codes = summary["languages"]
    header = ['<th class="model">model</th>', "<th>rank</th>", "<th>overall</th>"]
    header += [f"<th>{html.escape(code)}</th>" for code in codes]
    body = []
    for row in summary["models"]:
        cells = [f'<td class="model" data-value="{html.escape(row["model"])}">{html.escape(row["model"])}</td>',
                 _td(row["rank"], 0), _td(row["overall"])]
        cells += [_td(row["languages"][code]) for code in codes]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return _PAGE.format(aggregation=html.escape(summary["aggregation"]), header="".join(header), body="\n".join(body))


def _td(value, digits: int = 3) -> str:
    if value is None:
        return '<td class="missing" data-value="">–</td>'
    return f'<td data-value="{value}">{value:.{digits}f}</td>' if digits else f'<td data-value="{value}">{value}</td>'


def heatmap(summary: dict, path: Path) -> None:
    import matplotlib
    import numpy as np

    from occi.plots import pyplot, save_png

    plt = pyplot()
    models, codes = [r["model"] for r in summary["models"]], summary["languages"]
    grid = np.array([[np.nan if r["languages"][c] is None else r["languages"][c] for c in codes] for r in summary["models"]])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(codes) + 3), max(2.5, 0.5 * len(models) + 1.5)))
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
    atomic_write_text(out / "leaderboard.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / "leaderboard.html", html_page(summary))
    heatmap(summary, out / "leaderboard.png")
