"""What a run reads from the Hugging Face hub, item by item, and the manifest of what `occi fetch`
put into the cache for it (<run>/fetch.json): the ground floor that the corpora, evaluation, SLURM
and pre-flight modules share. Which items a run needs is computed in occi/preflight/manifest.py.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from occi.errors import OcciError
from occi.fsutil import atomic_write_json
from occi.preflight.integrity import problem
from occi.rundir import RunDir

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Item:
    kind: Literal["dataset", "model", "eval", "files", "langid"]
    """A corpus source for one language, the base model, an evaluation dataset, the remote data
    files of one evaluation task, an LID model."""
    id: str
    """Hub id, local folder, datasets builder name, URL, or (files) the lm-eval task name."""
    subset: str | None = None
    """Dataset configuration (FineWeb-2: deu_Latn; lm-eval: dataset_name)."""
    split: str | None = None
    """The corpus split read."""
    data_files: tuple[str, ...] = ()
    """Files for a datasets builder ("parquet", "json"), as the recipe or the task names them
    (`hf://datasets/ORG/REPO[@REV]/PATH`, glob patterns allowed, or http(s) URLs)."""
    limit: int | None = None
    """Documents the run reads at most (only the files needed for them are fetched)."""
    base_dir: str = ""
    """Folder that relative data_files are relative to (the recipe's); for an LID model, the
    folder it is cached in (corpora.langid.cache_dir; empty: the default)."""
    revision: str | None = None
    """A model's hub branch, tag or commit (model.base.revision, distill.revision); None: the default branch."""

    @property
    def key(self) -> str:
        """The item's name in the manifest."""
        parts = [self.kind, self.id + (f"@{self.revision}" if self.revision else ""), self.subset or "", self.split or ""]
        if self.data_files:
            parts.append(",".join(self.data_files))
        return ":".join(parts)


def is_offline() -> bool:
    """True when the hub must not be contacted (HF_HUB_OFFLINE, as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def source_item(source, base_dir: str) -> Item:
    """The item of one (language-expanded) hub source of a corpus recipe."""
    return Item("dataset", source.dataset, source.subset, source.split, tuple(source.data_files or ()),
                source.limit, base_dir)


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
                bad = [p for p in map(problem, entry.get("files", [])) if p]
                if bad:
                    found.append(f"{item.key}: {bad[0]}" + (f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""))
        return found


def dataset_files(manifest: Manifest | None, item: Item) -> list[dict] | None:
    """The fetched files of a corpus item ([{path, bytes, rows}]), or None when not in the manifest."""
    entry = manifest.entry(item) if manifest else None
    if entry is None or not entry.get("complete"):
        return None
    return list(entry["files"])


def is_local(item: Item) -> bool:
    """A local folder or a builder over local files: readable offline without fetching."""
    if item.kind == "langid":
        return False
    if Path(item.id).expanduser().is_dir():
        return True
    return bool(item.data_files) and all("://" not in f for f in item.data_files)
