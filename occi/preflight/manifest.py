"""What a run reads from the Hugging Face hub, and the manifest (<run>/fetch.json) of what
`occi fetch` put into the cache for it.

An item is one thing to fetch: a corpus source for one language (dataset, subset, split), the
base model, one evaluation dataset (lm-eval's dataset_path/dataset_name), the remote data files
of one evaluation task (`hf://` or URL data files of a json/csv/parquet task: EU20, SIB-200), a
language-ID model given by URL. Every fetched file is recorded with its size and sha256, and
checked against them before a run trusts the cache. The list of items is computed without the network, so `occi slurm submit` and
`occi doctor` can tell on any machine whether a job would find everything it needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from occi import languages
from occi.corpora.sources import expand_sources
from occi.errors import OcciError
from occi.eval import ifeval
from occi.hub import Item, Manifest, source_item
from occi.pipeline import stages_of
from occi.rundir import RunDir


def corpus_items(cfg) -> list[Item]:
    """One item per hub source and run language."""
    items = []
    for source in expand_sources(cfg.corpora, cfg.languages):
        if source.kind != "hub" or (source.language and source.language not in cfg.languages):
            continue
        items.append(source_item(source, cfg.corpora.base_dir))
    return items


def base_model_item(cfg) -> Item | None:
    """The base model (`model: {base: HF_ID_OR_PATH}`), when the config has one."""
    base = getattr(cfg.model, "base", None) if cfg.model is not None else None
    return Item("model", str(base), revision=cfg.model.revision) if base else None


def langid_item(cfg) -> Item | None:
    model = cfg.corpora.langid.model
    if model and model.startswith(("http://", "https://")):
        return Item("langid", model, base_dir=cfg.corpora.langid.cache_dir or "")
    return None


def eval_items(cfg) -> list[Item]:
    """What every lm-eval task of the configured suites reads from the hub, read from the task
    configs as lm-eval resolves them (groups, tags and `include`s followed): hub datasets
    (dataset_path, dataset_name) and the remote data files of json/csv/parquet tasks."""
    # offline and fidelity read local files only; ifeval too, except lm-eval's own IFEval tasks
    names = []
    for code in cfg.eval_languages:
        if "eu-leaderboard" in cfg.eval.suites:
            for family, task in languages.lm_eval_tasks(code).items():
                if cfg.eval.families is None or family in cfg.eval.families:
                    names.extend(task if isinstance(task, list) else [task])
        if "ifeval" in cfg.eval.suites and code in ifeval.UPSTREAM:
            names.append(ifeval.UPSTREAM[code])
    return items_of_reads(task_reads(names)) if names else []


def items_of_reads(reads: dict[str, TaskRead]) -> list[Item]:
    """The fetch items of tasks' reads (a hub dataset read by several tasks is one item)."""
    datasets = {(r.dataset_path, r.dataset_name) for r in reads.values() if r.kind == "dataset"}
    items = [Item("eval", path, name) for path, name in sorted(datasets, key=lambda d: (d[0], d[1] or ""))]
    items += [Item("files", task, data_files=r.files) for task, r in sorted(reads.items()) if r.kind == "files"]
    return items


@dataclass(frozen=True)
class TaskRead:
    """What one lm-eval leaf task reads."""
    kind: Literal["dataset", "files", "local", "unknown"]
    """A hub dataset, remote data files, only local files (nothing to fetch), or a name lm-eval
    does not know."""
    dataset_path: str = ""
    """lm-eval's dataset_path (a hub id or a builder name such as json)."""
    dataset_name: str | None = None
    """lm-eval's dataset_name (the hub dataset's configuration)."""
    files: tuple[str, ...] = ()
    """The remote data files (kind files) or the local ones (kind local), sorted."""


REMOTE_PREFIXES = ("hf://", "http://", "https://")
_BUILDERS = ("json", "csv", "parquet", "text", "arrow")


def task_reads(names: list[str], include_path: str | list[str] | None = None,
               include_defaults: bool = True) -> dict[str, TaskRead]:
    """Per leaf lm-eval task reached from these task, group and tag names, what it reads."""
    return {leaf: read for leaves in reads_by_name(names, include_path, include_defaults).values()
            for leaf, read in leaves.items()}


def reads_by_name(names: list[str], include_path: str | list[str] | None = None,
                  include_defaults: bool = True) -> dict[str, dict[str, TaskRead]]:
    """Per task, group or tag name, its leaf tasks and what each reads. occi's shipped task
    folders are always indexed (EU20 and SIB-200 are not lm-eval's)."""
    from occi.eval.tasks import shipped_folders  # loads pyarrow: only when used

    extra = [include_path] if isinstance(include_path, str) else list(include_path or [])
    folders = tuple(extra + [str(f) for f in shipped_folders()])
    index = _task_index(folders, False)
    if include_defaults and any(name not in index for name in names):
        # lm-eval's own catalogue takes seconds to index: only when a task is not occi's
        index = _task_index(folders, True)

    def visit(spec, found: dict[str, TaskRead], seen: set[str]) -> None:
        if isinstance(spec, dict):
            if spec.get("dataset_path"):
                found[str(spec.get("task", spec["dataset_path"]))] = _read_of(spec)
            elif isinstance(spec.get("task"), (str, list)):
                for sub in spec["task"] if isinstance(spec["task"], list) else [spec["task"]]:
                    visit(sub, found, seen)
            return
        if spec in seen:
            return
        seen.add(spec)
        entry = index.get(spec)
        if entry is None:
            found[spec] = TaskRead("unknown")
            return
        cfg = entry.cfg or {}
        if cfg.get("dataset_path"):
            found[spec] = _read_of(cfg)
        subs = cfg.get("task") if entry.kind.name == "GROUP" else None
        for sub in (subs if isinstance(subs, list) else [subs] if subs else []):
            visit(sub, found, seen)
        if entry.kind.name == "TAG":
            for name, other in index.items():
                if spec in other.tags:
                    visit(name, found, seen)

    out = {}
    for name in names:
        out[name] = {}
        visit(name, out[name], set())
    return out


@lru_cache(maxsize=4)
def _task_index(folders: tuple[str, ...], include_defaults: bool) -> dict:
    from lm_eval.tasks import TaskManager  # loads lm-eval: only when used

    return TaskManager(include_path=list(folders), include_defaults=include_defaults).task_index


def _read_of(cfg: dict) -> TaskRead:
    path = str(cfg["dataset_path"])
    kwargs = cfg.get("dataset_kwargs") or {}
    files = _flat_files(kwargs.get("data_files"))
    if path in _BUILDERS and files:
        remote = tuple(sorted({f for f in files if f.startswith(REMOTE_PREFIXES)}))
        if remote:
            return TaskRead("files", path, files=remote)
        return TaskRead("local", path, files=tuple(sorted(set(files))))
    if Path(path).expanduser().is_dir():
        return TaskRead("local", path)
    return TaskRead("dataset", path, cfg.get("dataset_name"))


def _flat_files(data_files) -> list[str]:
    if data_files is None:
        return []
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return [f for value in data_files.values() for f in _flat_files(value)]
    return [str(f) for f in data_files]


def task_datasets(names: list[str], include_path: str | None = None,
                  include_defaults: bool = True) -> set[tuple[str, str | None]]:
    """(dataset_path, dataset_name) of the hub datasets lm-eval tasks, groups and tags read."""
    return {(r.dataset_path, r.dataset_name) for r in task_reads(names, include_path, include_defaults).values()
            if r.kind == "dataset"}


def needed_items(cfg, with_eval: bool = True) -> list[Item]:
    """Everything the run reads from the hub (local folders and files stand in for hub ids and go
    through the same path)."""
    items = corpus_items(cfg)
    items += [i for i in (base_model_item(cfg),) if i]
    items += [item for stage in stages_of(cfg) for item in stage.items(cfg)]  # the stages' own (the teacher)
    items += [i for i in (langid_item(cfg),) if i]
    if with_eval:
        items += eval_items(cfg)
    return items


def check_fetched(cfg, run: RunDir, cluster: str | None = None) -> None:
    """For jobs that run offline (a cluster profile's HF_HUB_OFFLINE=1, or `occi run` with it
    set): everything the run reads from the hub must be in the run's manifest with its files
    intact, else one error naming what and how to fetch it, before any work. Local folders
    standing in for hub ids are items too (fetching them records their files)."""
    items = needed_items(cfg)
    if not items:
        return
    manifest = Manifest.read(run)
    problems = [f"{i.key} was not fetched" for i in items] if manifest is None else manifest.problems(items)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        where = f"the jobs on {cluster} run offline" if cluster else "the hub is offline"
        fetch = f"occi fetch {run.config_file if cluster else cfg.source_file or 'CONFIG'} --run-dir {run.root}"
        raise OcciError(f"{where} (HF_HUB_OFFLINE=1) and this run reads from the hub: {shown}; run "
                        f"`{fetch}{f' --cluster {cluster}' if cluster else ''}` where there is internet first")
