"""Published results of public models (eval/published/*.yaml), placed beside lm-eval results.

A table holds one model's values as its authors or a leaderboard published them, each with its
source, retrieval date, few-shot setting, metric and task version. `occi leaderboard --published`
puts a value into the board only where one of the compared results ran the same lm-eval task with
the same few-shot count and metric (and the same task version where both are known), and the
value was measured with lm-eval; everything else is listed as not comparable, never averaged in.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from occi import ranges
from occi.assets import asset_dir
from occi.errors import OcciError

LM_EVAL = "lm-eval"
"""The `harness` of a value that lm-evaluation-harness measured (only those can match)."""


@dataclass(frozen=True)
class PublishedResult:
    task: str
    """The lm-eval task the benchmark corresponds to (arc_challenge, belebele_deu_Latn, ...)."""
    metric: str
    """The metric as the source names it (lm-eval's acc, acc_norm, ... or the source's own)."""
    value: float
    """The published value as a fraction between 0 and 1 (a source's 79.7% is 0.797)."""
    num_fewshot: int | None
    """Few-shot examples the source states; None (`null` in the table): not stated, so the value
    is listed for reference and never placed in a cell."""
    language: str = "en"
    """The benchmark's language (ISO 639-1)."""
    benchmark: str = ""
    """The benchmark's name as the source writes it."""
    task_version: str | None = None
    """lm-eval's version of the task when the source gives it; None: not stated."""
    harness: str = LM_EVAL
    """What measured it: "lm-eval", or the source's own evaluation code (then never matched)."""
    source: str = ""
    """Link to where the value is published (default: the table's)."""
    retrieved: str = ""
    """The date the value was read from the source, YYYY-MM-DD (default: the table's)."""
    note: str = ""
    """Anything a reader needs to judge the value."""

    def __post_init__(self) -> None:
        ranges.check(self, {"value": ranges.SHARE, **({"num_fewshot": ranges.at_least(0)}
                                                      if self.num_fewshot is not None else {})})
        if not self.source or not self.retrieved:
            raise ValueError("every value needs `source` and `retrieved` (in the value or the table)")


@dataclass(frozen=True)
class PublishedTable:
    model: str
    """The model's hub id."""
    results: list[PublishedResult] = field(default_factory=list)
    """Its published values."""


def read_tables(folder: Path | None = None) -> list[PublishedTable]:
    """Every table in `folder` (default: the shipped eval/published/); a bad file is one OcciError."""
    folder = Path(folder) if folder else asset_dir("eval") / "published"
    if not folder.is_dir():
        raise OcciError(f"{folder}: no such folder of published results (expected YAML tables, see eval/published/)")
    tables = []
    names = {f.name for f in fields(PublishedResult)}
    for path in sorted(folder.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("model"), str):
                raise ValueError("expected a mapping with `model` and `results`")
            defaults = {k: data[k] for k in ("source", "retrieved", "harness") if k in data}
            results = []
            for number, entry in enumerate(data.get("results") or []):
                unknown = set(entry) - names if isinstance(entry, dict) else {"(not a mapping)"}
                if unknown:
                    raise ValueError(f"results[{number}]: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
                merged = {**defaults, **entry}
                merged["retrieved"] = str(merged.get("retrieved", ""))
                if merged.get("task_version") is not None:
                    merged["task_version"] = str(merged["task_version"])
                try:
                    results.append(PublishedResult(**merged))
                except (TypeError, ValueError) as err:
                    raise ValueError(f"results[{number}] ({entry.get('task')}): {err}") from None
            tables.append(PublishedTable(data["model"], results))
        except (OSError, ValueError, yaml.YAMLError) as err:
            raise OcciError(f"{path}: {err}") from None
    return tables


def place(board, tables: list[PublishedTable]) -> list[str]:
    """Adds to `board` each published value whose setting matches a compared result, and to
    `board.published_left_out` a line and to `board.published_unplaced` a record (with the value,
    so reports can show it) for each other value; returns one summary line per model."""
    own = [(key, cell) for key, cell in board.cells.items() if not cell["published"]]
    summary = []
    for table in tables:
        left_out = []
        for result in table.results:
            key, why = _match(result, [(k, c) for k, c in own if c["task"] == result.task])
            if key is None:
                left_out.append(f"{table.model} {result.task} ({setting(result)}): {why}")
                board.published_unplaced.append({
                    "model": table.model, "task": result.task, "language": result.language,
                    "benchmark": result.benchmark, "shots": result.num_fewshot, "metric": result.metric,
                    "value": result.value, "harness": result.harness, "reason": why,
                    "source": f"{result.source} (retrieved {result.retrieved})", "note": result.note})
                continue
            _, code, column = key
            cell = board.cells[key]
            board.cells[(table.model, code, column)] = {
                "value": result.value, "stderr": None, "metric": result.metric, "task": result.task,
                "shots": result.num_fewshot, "version": result.task_version, "higher_is_better": True,
                "group": cell["group"], "published": True, "source": f"{result.source} (retrieved {result.retrieved})",
                "date": 0.0, "file": result.source}
        board.published_left_out.extend(left_out)
        placed = len(table.results) - len(left_out)
        reasons = sorted({line.split(": ", 1)[1] for line in left_out})
        summary.append(f"{table.model}: {placed} of {len(table.results)} published value(s) placed"
                       + (f"; left out: {reasons[0]}" + (f" (and {len(reasons) - 1} other reason(s), see "
                          "published_left_out in leaderboard.json)" if len(reasons) > 1 else "") if reasons else ""))
    return summary


def setting(result: PublishedResult) -> str:
    """"25-shot acc_norm", or "few-shot not stated, acc" where the source does not say."""
    shots = "few-shot not stated," if result.num_fewshot is None else f"{result.num_fewshot}-shot"
    return f"{shots} {result.metric}"


def _match(result: PublishedResult, candidates: list[tuple[tuple, dict]]) -> tuple[tuple | None, str]:
    """The board key of a result of the same task and setting, or None and why there is none."""
    if result.harness != LM_EVAL:
        return None, f"measured with {result.harness}, not lm-eval"
    if result.num_fewshot is None:
        return None, "the source does not state the few-shot setting"
    if not candidates:
        return None, "no compared result ran this task"
    for key, cell in candidates:
        if cell["shots"] != result.num_fewshot:
            continue
        if cell["metric"] != result.metric:
            continue
        if result.task_version and cell["version"] is not None and str(cell["version"]) != result.task_version:
            continue
        return key, ""
    settings = ", ".join(sorted({f"{c['shots'] if c['shots'] is not None else '?'}-shot {c['metric']} "
                                 f"v{c['version'] if c['version'] is not None else '?'}" for _, c in candidates}))
    return None, f"setting differs from the compared results ({settings})"
