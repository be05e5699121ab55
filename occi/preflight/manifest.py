"""What a run reads from the Hugging Face hub, and the manifest (<run>/fetch.json) of what
`occi fetch` put into the cache for it.

An item is one thing to fetch: a corpus source for one language (dataset, subset, split), the
base model, one evaluation dataset (lm-eval's dataset_path/dataset_name), a language-ID model
given by URL. The list of items is computed without the network, so `occi slurm submit` and
`occi doctor` can tell on any machine whether a job would find everything it needs.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from occi.errors import OcciError
from occi.rundir import RunDir

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Item:
    kind: Literal["dataset", "model", "eval", "langid"]
    """A corpus source for one language, the base model, an evaluation dataset, an LID model."""
    id: str
    """Hub id, local folder, datasets builder name or URL."""
    subset: str | None = None
    """Dataset configuration (FineWeb-2: deu_Latn; lm-eval: dataset_name)."""
    split: str | None = None
    """The corpus split read."""
    data_files: tuple[str, ...] = ()
    """Files for a datasets builder ("parquet", "json"), as the recipe names them."""
    limit: int | None = None
    """Documents the run reads at most (only the files needed for them are fetched)."""
    base_dir: str = ""
    """Folder that relative data_files are relative to (the recipe's); for an LID model, the
    folder it is cached in (corpora.langid.cache_dir; empty: the default)."""

    @property
    def key(self) -> str:
        """The item's name in the manifest."""
        parts = [self.kind, self.id, self.subset or "", self.split or ""]
        if self.data_files:
            parts.append(",".join(self.data_files))
        return ":".join(parts)


def is_offline() -> bool:
    """True when the hub must not be contacted (HF_HUB_OFFLINE, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def corpus_items(cfg) -> list[Item]:
    """One item per hub source and run language."""
    from occi.corpora.sources import expand_sources

    items = []
    for source in expand_sources(cfg.corpora, cfg.languages):
        if source.kind != "hub" or (source.language and source.language not in cfg.languages):
            continue
        items.append(source_item(source, cfg.corpora.base_dir))
    return items


def source_item(source, base_dir: str) -> Item:
    """The item of one (language-expanded) hub source of a corpus recipe."""
    return Item("dataset", source.dataset, source.subset, source.split, tuple(source.data_files or ()),
                source.limit, base_dir)


def base_model_item(cfg) -> Item | None:
    """The base model (`model: {base: HF_ID_OR_PATH}`), when the config has one."""
    base = getattr(cfg.model, "base", None) if cfg.model is not None else None
    return Item("model", str(base)) if base else None


def teacher_item(cfg) -> Item | None:
    """The distillation teacher (`distill: {teacher: HF_ID_OR_PATH}`), when the config has one."""
    distill = getattr(cfg, "distill", None)
    if distill is None:
        return None
    from occi.chat.distill import local_teacher

    local = local_teacher(distill)
    return Item("model", str(local) if local is not None else distill.teacher)


def langid_item(cfg) -> Item | None:
    model = cfg.corpora.langid.model
    if model and model.startswith(("http://", "https://")):
        return Item("langid", model, base_dir=cfg.corpora.langid.cache_dir or "")
    return None


def eval_items(cfg) -> list[Item]:
    """The datasets of every lm-eval task in the configured suites that come from the hub
    (read from lm-eval's task configs: dataset_path and dataset_name)."""
    from occi import languages

    suites = [s for s in cfg.eval.suites if s == "eu-leaderboard"]  # offline and fidelity read local files only
    if not suites:
        return []
    names = []
    for code in cfg.languages:
        for task in languages.lm_eval_tasks(code).values():
            names.extend(task if isinstance(task, list) else [task])
    return [Item("eval", path, name) for path, name in sorted(task_datasets(names))]


def task_datasets(names: list[str], include_path: str | None = None,
                  include_defaults: bool = True) -> set[tuple[str, str | None]]:
    """(dataset_path, dataset_name) of lm-eval tasks, groups and tags, leaves followed."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path, include_defaults=include_defaults)
    index = manager.task_index
    found: set[tuple[str, str | None]] = set()
    seen: set[str] = set()

    def visit(spec) -> None:
        if isinstance(spec, dict):
            if spec.get("dataset_path"):
                _add(spec)
            elif isinstance(spec.get("task"), (str, list)):
                for sub in spec["task"] if isinstance(spec["task"], list) else [spec["task"]]:
                    visit(sub)
            return
        if spec in seen:
            return
        seen.add(spec)
        entry = index.get(spec)
        if entry is None:
            return
        cfg = entry.cfg or {}
        if cfg.get("dataset_path"):
            _add(cfg)
        subs = cfg.get("task") if entry.kind.name == "GROUP" else None
        for sub in (subs if isinstance(subs, list) else [subs] if subs else []):
            visit(sub)
        if entry.kind.name == "TAG":
            for name, other in index.items():
                if spec in other.tags:
                    visit(name)

    def _add(cfg: dict) -> None:
        path = str(cfg["dataset_path"])
        kwargs = cfg.get("dataset_kwargs") or {}
        if path in ("json", "csv", "parquet", "text", "arrow") and kwargs.get("data_files"):
            return  # local files, nothing on the hub
        found.add((path, cfg.get("dataset_name")))

    for name in names:
        visit(name)
    return found


def needed_items(cfg, with_eval: bool = True) -> list[Item]:
    """Everything the run reads from the hub (local folders and files stand in for hub ids and go
    through the same path)."""
    items = corpus_items(cfg)
    items += [i for i in (base_model_item(cfg), teacher_item(cfg), langid_item(cfg)) if i]
    if with_eval:
        items += eval_items(cfg)
    return items


@dataclass
class Manifest:
    """<run>/fetch.json: per item what was fetched, which revision, how big, and the local files."""
    items: dict[str, dict] = field(default_factory=dict)
    """Item key -> {kind, id, subset, split, revision, bytes, files: [{path, bytes, rows}], complete}."""
    cache: str = ""
    """The cache the files were put in (HF_HOME)."""

    @classmethod
    def read(cls, run: RunDir | Path | str) -> Manifest | None:
        path = RunDir.of(run).fetch_manifest
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(items=dict(data["items"]), cache=data.get("cache", ""))
        except (ValueError, KeyError, TypeError) as err:
            raise OcciError(f"{path}: not a fetch manifest ({err}); run `occi fetch` again") from None

    def write(self, run: RunDir | Path | str) -> Path:
        from occi.fsutil import atomic_write_json

        total = sum(entry.get("bytes", 0) for entry in self.items.values())
        return atomic_write_json(RunDir.of(run).fetch_manifest, {
            "version": MANIFEST_VERSION, "cache": self.cache, "bytes": total, "items": self.items})

    def entry(self, item: Item) -> dict | None:
        return self.items.get(item.key)

    def problems(self, items: list[Item]) -> list[str]:
        """What is missing: items not fetched, fetched partly, or whose files are gone."""
        found = []
        for item in items:
            entry = self.entry(item)
            if entry is None:
                found.append(f"{item.key} was not fetched")
            elif not entry.get("complete"):
                found.append(f"{item.key} was fetched only partly")
            else:
                gone = [f["path"] for f in entry.get("files", []) if not Path(f["path"]).exists()]
                if gone:
                    found.append(f"{item.key}: {len(gone)} file(s) are gone from the cache, first {gone[0]}")
        return found


def dataset_files(manifest: Manifest | None, item: Item) -> list[dict] | None:
    """The fetched files of a corpus item ([{path, bytes, rows}]), or None when not in the manifest."""
    entry = manifest.entry(item) if manifest else None
    if entry is None or not entry.get("complete"):
        return None
    return list(entry["files"])


def check_fetched(cfg, run: RunDir, cluster: str) -> None:
    """For clusters whose jobs run offline: everything the run reads from the hub must be in the
    run's manifest with its files present, else one error saying what and how to fetch it. Local
    folders standing in for hub ids are items too (fetching them records their files)."""
    items = needed_items(cfg)
    if not items:
        return
    manifest = Manifest.read(run)
    problems = [f"{i.key} was not fetched" for i in items] if manifest is None else manifest.problems(items)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise OcciError(f"the jobs on {cluster} run offline (HF_HUB_OFFLINE=1) and this run reads from the hub: "
                        f"{shown}; run `occi fetch {run.config_file} --run-dir {run.root} --cluster {cluster}` "
                        "on a login node first")


def is_local(item: Item) -> bool:
    """A local folder or a builder over local files: readable offline without fetching."""
    if item.kind == "langid":
        return False
    if Path(item.id).expanduser().is_dir():
        return True
    return bool(item.data_files) and all("://" not in f for f in item.data_files)
