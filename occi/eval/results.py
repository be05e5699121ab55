"""A model's evaluation table: every cell's state (done, failed, missing), read from its folder.

<run>/eval/<suite>/<model>/<lang>/<family>/ holds lm-eval's results JSON and samples, occi's
cell.json with the headline metric (done, with _DONE) or error.json (failed).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from occi import languages, ranges
from occi.fsutil import is_done
from occi.rundir import RunDir
from occi.eval.suites import Cell, cells, missing_benchmarks


def cell_folder(run: RunDir, label: str, cell: Cell) -> Path:
    """Where one cell of one model keeps its files."""
    return RunDir.of(run).eval_cell(cell.suite, label, cell.language, cell.family)


def collect(run: RunDir, label: str, suites: list[str], codes: list[str], overrides: dict[str, int],
            families: list[str] | None = None) -> dict:
    """Every cell's state (done, failed, missing) and value."""
    rows = []
    for suite in suites:
        for cell in cells(suite, codes, overrides, families):
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


# ------------------------------------------------------------------ any lm-eval results file

PREFERRED_METRICS = ("acc_norm", "acc", "mc2", "exact_match", "prompt_level_strict_acc", "f1", "em", "bleu", "chrf", "bits_per_byte",
                     "word_perplexity", "byte_perplexity", "perplexity")
"""The headline metric of a task occi does not know: the first of these it reports, else the first it reports."""
LOWER_IS_BETTER = frozenset({"bits_per_byte", "word_perplexity", "byte_perplexity", "perplexity", "ter"})
"""Metrics where a smaller value is better, when the file does not say (lm-eval's `higher_is_better`)."""
UNMAPPED = "unmapped"
"""The language of a task whose language neither the table, the task's metadata nor its name gives."""


def metric_range(metric: str):
    """The values a metric can take; outside them (1e308, -5, NaN) a value is a broken file, not a score."""
    if metric in ("acc", "acc_norm", "mc1", "mc2", "exact_match", "f1", "em", "mcc_abs", "fidelity",
                  "prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc", "inst_level_loose_acc"):
        return ranges.SHARE
    if metric in ("bleu", "chrf"):
        return ranges.between(0, 100)
    if metric in ("perplexity", "word_perplexity", "byte_perplexity"):
        return ranges.at_least(1)
    if metric in ("bits_per_byte", "ter"):
        return ranges.at_least(0)
    return ranges.Range()


def headline_metric(scores: dict) -> tuple[str, str] | None:
    """(metric, its "metric,filter" key) a task's scores are shown by: the unfiltered value where
    there is one, the first filter's otherwise; None when the task reports no metric."""
    keys = [str(k) for k in scores if "," in str(k) and "_stderr," not in str(k)]
    if not keys:
        return None
    by_metric: dict[str, str] = {}
    for key in keys:
        metric, _, filt = key.partition(",")
        if metric not in by_metric or filt == "none":
            by_metric[metric] = key
    metric = next((m for m in PREFERRED_METRICS if m in by_metric), next(iter(by_metric)))
    return metric, by_metric[metric]


def _known(word: str) -> str | None:
    """The occi language code a word names: an ISO 639-1 or 639-3 code, a 639-3 code with its
    script (any case), or the English name in lower case. Extra language-ID labels do not count
    (hr's `sr` is Serbian in a task name)."""
    if word in languages.LANGUAGES:
        return word
    lowered = word.lower()
    for code, lang in languages.LANGUAGES.items():
        names = {lang.iso639_3, lang.glotlid.lower(), f"{lang.iso639_3}_{lang.script}".lower(), lang.name.lower()}
        if lowered in names or (code == "no" and lowered in ("nb", "nob", "nob_latn")):
            return code
    return None


def _ending(task: str) -> tuple[str, str] | None:
    """(language, the name before it) when a task's name ends in a language code."""
    words = task.split("_")
    if len(words) > 2 and re.fullmatch(r"[a-z]{3}_[A-Za-z][a-z]{3}", "_".join(words[-2:])) \
            and _known("_".join(words[-2:])):  # belebele_deu_Latn
        return _known("_".join(words[-2:])), "_".join(words[:-2])
    if len(words) > 1 and (re.fullmatch(r"[a-z]{2,3}", words[-1]) or len(words) > 2) and _known(words[-1]):
        return _known(words[-1]), "_".join(words[:-1])
    return None


def task_language(task: str, config: dict | None = None) -> str:
    """A task's language: its lm-eval metadata's `language`, else a language code ending its name
    (`xwinograd_fr`, `arc_challenge_mt_fi`, `belebele_deu_Latn`), else its dataset config's name
    (`dataset_name: de`), else "unmapped"."""
    config = config if isinstance(config, dict) else {}
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    for value in (metadata.get("language"), metadata.get("lang")):
        if isinstance(value, str) and _known(value):
            return _known(value)
    ending = _ending(task)
    if ending:
        return ending[0]
    name = config.get("dataset_name")
    if isinstance(name, str) and _known(name):
        return _known(name)
    return UNMAPPED


def benchmark_column(task: str) -> str:
    """The column of a task occi does not know: its name without a language ending, so that
    `xwinograd_fr` and `xwinograd_pt` share the column `xwinograd`."""
    ending = _ending(task)
    return ending[1] if ending else task
