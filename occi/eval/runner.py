"""`occi eval`: lm-eval through its Python API, one language x task family (a cell) at a time.

A cell that cannot run (an unreachable hub dataset, say) fails alone: its error is written
beside it and reported, and the other cells go on; completed cells are skipped on a re-run.
Results are saved in lm-eval's standard layout (results JSON and samples) under
<run>/eval/<suite>/<model>/<lang>/<family>/, plus occi's cell.json with the headline metric.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from occi.assets import asset_dir
from occi.config import RunConfig
from occi.corpora.output import read_texts
from occi.errors import OcciError
from occi.eval.suites import SUITES, Cell, cells
from occi.fsutil import atomic_write_json, atomic_write_text, mark_done


def model_label(model: str) -> str:
    """A folder name for a model: the folder's name or the hub id with / replaced."""
    path = Path(model)
    return path.name if path.exists() else model.replace("/", "__")


def prepare_tasks(cfg: RunConfig, run_dir: Path) -> Path:
    """<run>/eval/tasks/: occi's task files with absolute data paths (lm-eval resolves relative
    ones against the working directory), and the held-out text for bits per byte."""
    import yaml

    tasks = Path(run_dir) / "eval" / "tasks"
    eval_assets = asset_dir("eval")
    mc = tasks / "occi_mc"
    mc.mkdir(parents=True, exist_ok=True)
    shutil.copy(eval_assets / "tasks" / "occi_mc" / "_template", mc / "_template")
    for leaf in (eval_assets / "tasks" / "occi_mc").glob("*.yaml"):
        data = yaml.safe_load(leaf.read_text(encoding="utf-8"))
        if "dataset_kwargs" in data:
            relative = data["dataset_kwargs"]["data_files"]["test"]
            data["dataset_kwargs"]["data_files"]["test"] = str((eval_assets / relative).resolve())
        atomic_write_text(mc / leaf.name, yaml.safe_dump(data, sort_keys=False))
    bpb = tasks / "occi_bpb"
    bpb.mkdir(parents=True, exist_ok=True)
    shutil.copy(eval_assets / "tasks" / "occi_bpb" / "_template", bpb / "_template")
    for code in cfg.languages:
        texts = [text for _, text in read_texts(run_dir, code, "heldout", cfg.heldout_fraction, cfg.heldout_max_docs)]
        data_file = bpb / f"heldout_{code}.jsonl"
        atomic_write_text(data_file, "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                                             for t in texts[: cfg.eval.heldout_max_docs]))
        atomic_write_text(bpb / f"occi_bpb_{code}.yaml", yaml.safe_dump(
            {"include": "_template", "task": f"occi_bpb_{code}",
             "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}}}, sort_keys=False))
    return tasks


def _collect_environment_once() -> None:
    """lm-eval describes the machine in every results file by running torch's collect_env
    (about 0.3 s of subprocesses); occi calls simple_evaluate once per cell, so the description
    is collected on the first call and copied into the later ones."""
    import lm_eval.evaluator as evaluator

    collect = evaluator.add_env_info
    if getattr(collect, "occi_cached", False):
        return
    cache: dict = {}

    def add_env_info(storage: dict) -> None:
        if not cache:
            before = set(storage)
            collect(storage)
            cache.update({key: storage[key] for key in set(storage) - before})
        else:
            storage.update(cache)

    add_env_info.occi_cached = True
    evaluator.add_env_info = add_env_info


class Evaluator:
    """One loaded model and lm-eval task index, evaluating cells."""

    def __init__(self, cfg: RunConfig, model: str, tasks_dir: Path, offline_only: bool):
        self.label = model_label(model)
        import torch
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        device = cfg.eval.device if cfg.eval.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = cfg.eval.dtype if cfg.eval.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
        self.cfg = cfg
        _collect_environment_once()
        self.lm = HFLM(pretrained=model, device=device, dtype=dtype, batch_size=cfg.eval.batch_size)
        # indexing only occi's folder takes 0.01 s instead of ~9 s for lm-eval's whole catalogue
        self.tasks = TaskManager(include_path=str(tasks_dir), include_defaults=not offline_only)

    def run(self, cell: Cell, folder: Path) -> dict:
        from lm_eval import simple_evaluate
        from lm_eval.loggers import EvaluationTracker

        started = time.monotonic()
        tracker = EvaluationTracker(output_path=str(folder))
        results = simple_evaluate(model=self.lm, tasks=[cell.task], num_fewshot=cell.num_fewshot or None,
                                  limit=self.cfg.eval.limit, task_manager=self.tasks, log_samples=True,
                                  evaluation_tracker=tracker, random_seed=self.cfg.seed,
                                  numpy_random_seed=self.cfg.seed, torch_random_seed=self.cfg.seed,
                                  fewshot_random_seed=self.cfg.seed)
        samples = results.pop("samples", {})
        # a model object leaves lm-eval without a name for its results folder
        tracker.general_config_tracker.model_name_sanitized = self.label
        tracker.save_results_aggregated(results=results, samples=samples)
        for task_name, task_samples in samples.items():
            tracker.save_results_samples(task_name=task_name, samples=task_samples)
        scores = results["results"][cell.task]
        stderr = scores.get(f"{cell.metric}_stderr,none")
        return {"suite": cell.suite, "language": cell.language, "family": cell.family, "task": cell.task,
                "metric": cell.metric, "value": scores[f"{cell.metric},none"],
                "stderr": stderr if isinstance(stderr, (int, float)) else None,
                "num_fewshot": cell.num_fewshot, "seconds": round(time.monotonic() - started, 2)}


def evaluate(cfg: RunConfig, run_dir: Path, suites: list[str] | None = None, model: str | None = None,
             rank: int = 0, world_size: int = 1, progress: bool = True) -> dict:
    """Runs every cell not done yet (this rank's share); returns the table of all cells."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    if model is None:
        if not (run_dir / "hf" / "config.json").exists():
            raise OcciError(f"{run_dir / 'hf'}: no exported model; run `occi export` first or pass --model")
        model = str(run_dir / "hf")
    suites = suites or cfg.eval.suites
    label = model_label(model)
    tasks_dir = prepare_tasks(cfg, run_dir)
    todo = []
    for suite in suites:
        for index, cell in enumerate(cells(suite, cfg.languages, cfg.eval.num_fewshot)):
            folder = cell_folder(run_dir, label, cell)
            if index % world_size == rank and not (folder / "_DONE").exists():
                todo.append((cell, folder))
    evaluator = Evaluator(cfg, model, tasks_dir, offline_only=suites == ["offline"]) if todo else None
    for cell, folder in tqdm(todo, desc="eval", unit="cell", disable=not progress):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            atomic_write_json(folder / "cell.json", evaluator.run(cell, folder))
            mark_done(folder)
        except Exception as err:  # one unreachable dataset must not stop the other cells
            message = str(err).strip().splitlines()[0][:500] if str(err).strip() else type(err).__name__
            atomic_write_json(folder / "error.json", {"task": cell.task, "error": f"{type(err).__name__}: {message}"})
    evaluated = [s for s in SUITES if s in suites or (run_dir / "eval" / s / label).is_dir()]
    table = collect(run_dir, label, evaluated, cfg.languages, cfg.eval.num_fewshot)
    if world_size == 1:
        atomic_write_json(run_dir / "eval" / f"table-{label}.json", table)
        atomic_write_text(run_dir / "eval" / f"table-{label}.md", format_table(table) + "\n")
        if model == str(run_dir / "hf") and all(c["state"] != "missing" for c in table["cells"] if c["suite"] in suites):
            mark_done(run_dir / "eval")
    return table


def cell_folder(run_dir: Path, label: str, cell: Cell) -> Path:
    return Path(run_dir) / "eval" / cell.suite / label / cell.language / cell.family


def collect(run_dir: Path, label: str, suites: list[str], codes: list[str], overrides: dict[str, int]) -> dict:
    """Every cell's state (done, failed, missing) and value."""
    rows = []
    for suite in suites:
        for cell in cells(suite, codes, overrides):
            folder = cell_folder(run_dir, label, cell)
            if (folder / "_DONE").exists():
                rows.append({**json.loads((folder / "cell.json").read_text(encoding="utf-8")), "state": "done"})
            elif (folder / "error.json").exists():
                error = json.loads((folder / "error.json").read_text(encoding="utf-8"))["error"]
                rows.append({"suite": suite, "language": cell.language, "family": cell.family, "task": cell.task,
                             "metric": cell.metric, "state": "failed", "error": error})
            else:
                rows.append({"suite": suite, "language": cell.language, "family": cell.family, "task": cell.task,
                             "metric": cell.metric, "state": "missing"})
    return {"model": label, "cells": rows}


def format_table(table: dict) -> str:
    """Languages as rows, task families as columns; failed and missing cells are named, never 0."""
    families = list(dict.fromkeys(c["family"] for c in table["cells"]))
    codes = list(dict.fromkeys(c["language"] for c in table["cells"]))
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
    failed = [c for c in table["cells"] if c["state"] == "failed"]
    if failed:
        lines.append("")
        lines.append(f"{len(failed)} cell(s) failed, e.g. {failed[0]['language']}/{failed[0]['family']}: {failed[0]['error']}")
    return "\n".join(lines)
