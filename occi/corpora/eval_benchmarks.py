"""The eu-leaderboard suite's benchmark items, for decontamination (occi/corpora/decontaminate.py).

Those tasks read hub datasets and `hf://` data files, so their test and validation documents are
read the way the eval stage reads them: lm-eval's TaskManager over occi's task folders (with the
fetched copies of remote data files, occi/eval/tasks.py) and lm-eval's own catalogue, each task
built by lm-eval, which loads its dataset with `datasets` (from the fetch cache on a node without
network). A task that cannot be loaded is listed as not checked, with the reason, instead of
stopping the corpora stage: its cell will fail at evaluation with the same reason.

The items are read once per corpora build into <run>/corpora/_work/eval-benchmarks.json, which
every worker and phase reads afterwards.
"""
from __future__ import annotations

import json
from pathlib import Path

from occi.corpora.decontaminate import Benchmark, row_text
from occi.fsutil import atomic_write_json
from occi.rundir import RunDir

FILE = "eval-benchmarks.json"


def load(run_dir: Path, work_dir: Path, tasks: list[tuple[str, str]]) -> tuple[list[Benchmark], list[str]]:
    """Benchmarks named by family (mmlu, belebele, ...) holding the test and validation documents of
    the tasks (family, lm-eval task name) of every language, and the tasks not checked, with why."""
    path = Path(work_dir) / FILE
    if not path.exists():
        atomic_write_json(path, _read(Path(run_dir), Path(work_dir), tasks))
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Benchmark(name, items) for name, items in data["benchmarks"].items()], data["not_checked"]


def _read(run_dir: Path, work_dir: Path, tasks: list[tuple[str, str]]) -> dict:
    from lm_eval.tasks import TaskManager, get_task_dict  # loads lm-eval: only when used

    from occi.eval import tasks as task_folders  # loads pyarrow: only when used

    folders = task_folders.lm_eval_folders(RunDir(run_dir), work_dir / "eval-tasks")
    manager = TaskManager(include_path=[str(f) for f in folders], include_defaults=False)
    if any(name not in manager.task_index for _, name in tasks):  # lm-eval's catalogue takes seconds to index
        manager = TaskManager(include_path=[str(f) for f in folders], include_defaults=True)
    benchmarks: dict[str, list[str]] = {}
    not_checked = []
    for family, name in tasks:
        try:
            loaded = get_task_dict([name], manager)
        except Exception as err:  # lm-eval and datasets raise many kinds (missing file, no network, bad config)
            text = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
            not_checked.append(f"{name} (cannot load its data: {text})")
            continue
        items = benchmarks.setdefault(family, [])
        for task in _leaves(loaded):
            for has, docs in ((task.has_test_docs, task.test_docs), (task.has_validation_docs, task.validation_docs)):
                if has():
                    items.extend(text for text in map(row_text, docs()) if text.strip())
    return {"benchmarks": benchmarks, "not_checked": not_checked}


def _leaves(task_dict: dict) -> list:
    """The tasks of lm-eval's (possibly nested, for groups) task dictionary."""
    found = []
    for value in task_dict.values():
        found.extend(_leaves(value) if isinstance(value, dict) else [value])
    return found
