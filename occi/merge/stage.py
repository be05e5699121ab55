"""`occi merge`: exported transformers models merged tensor by tensor (occi/merge/methods.py).

The parents are exported model folders, this run's stage models (base, sft, dpo: the newest
checkpoint of pretraining, SFT or DPO, exported to <run>/stage_models/<name>) or the newest checkpoints of one of its
stages (each exported to <run>/stage_models/<stage>-iter_N). Every model must have the same
architecture (`model_type`), the same tensor names and shapes; the first model's config,
generation config and tokenizer files are the merged model's. Each tensor is merged in float64 and
stored in the first model's dtype. <run>/merged/ gets the model (safetensors) and occi_merge.json:
the method, its settings and, per parent (and base), its folder, weight and the sha256 of its
weight files (the lineage of the merged model, in the card). `occi eval --model <run>/merged`
evaluates it like any model.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from occi.basemodel import BASE_FILES
from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_dir, is_done, mark_done
from occi.merge import methods
from occi.merge.config import MergeConfig
from occi.pipeline import StageResult
from occi.rundir import ROLES, RunDir
from occi.sharding import Share
from occi.train.stage_models import last_checkpoints, stage_model


def has_merge(cfg: RunConfig) -> bool:
    return cfg.merge is not None


def _folder(path: str, base_dir: str) -> Path:
    folder = Path(path).expanduser()
    return folder if folder.is_absolute() else Path(base_dir) / folder


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise OcciError(f"{folder}: no *.safetensors weights; list folders written by `occi export` (or "
                        "save_pretrained with safetensors) in merge.models")
    return files


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise OcciError(f"{path}: missing; merge.models must list exported transformers model folders")
    return json.loads(path.read_text(encoding="utf-8"))


def _sha256(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _tensors(folder: Path) -> dict:
    tensors = {}
    for path in _weight_files(folder):
        tensors.update(load_file(str(path)))
    return tensors


def _check_alike(first: Path, folder: Path, names: dict, tensors: dict) -> None:
    """One line naming the folder and tensor when `tensors` is not of `names`'s shape."""
    if _config(folder).get("model_type") != _config(first).get("model_type"):
        raise OcciError(f"{folder}: model_type {_config(folder).get('model_type')!r}, {first} has "
                        f"{_config(first).get('model_type')!r}; merge models of one architecture only")
    if set(tensors) != set(names):
        extra = sorted(set(tensors) ^ set(names))[0]
        raise OcciError(f"{folder}: tensor {extra!r} is in one model and not the other ({first}); "
                        "merge models of one shape only")
    for name, tensor in tensors.items():
        if tensor.shape != names[name].shape:
            raise OcciError(f"{folder}: tensor {name!r} has shape {tuple(tensor.shape)}, {first}'s "
                            f"{tuple(names[name].shape)}; merge models of one shape only")


def _parent(folder: Path, weight: float | None = None) -> dict:
    record = {"path": str(folder), "weights_sha256": _sha256(_weight_files(folder))}
    export = folder / "occi_export.json"
    if export.is_file():  # a stage model or checkpoint of a run: which one
        made = json.loads(export.read_text(encoding="utf-8"))
        record.update(stage=made.get("stage"), iteration=made.get("iteration"))
    return record if weight is None else {**record, "weight": weight}


def merge(folders: list[Path], weights: list[float], out: Path, method: str = "linear", base: Path | None = None,
          density: float = 0.2) -> dict:
    """Writes the merge of the models in `folders` to `out`; returns its lineage record."""
    loaded = [_tensors(folder) for folder in folders]
    base_tensors = _tensors(base) if base is not None else None
    for folder, tensors in zip(folders[1:], loaded[1:]):
        _check_alike(folders[0], folder, loaded[0], tensors)
    if base is not None:
        _check_alike(folders[0], base, loaded[0], base_tensors)
    merged = {}
    for name, first in loaded[0].items():
        parts = [tensors[name] for tensors in loaded]
        if method == "linear":
            value = methods.linear(parts, weights)
        elif method == "task_arithmetic":
            value = methods.task_arithmetic(base_tensors[name], parts, weights)
        else:
            value = methods.ties(base_tensors[name], parts, weights, density)
        merged[name] = value.to(first.dtype).contiguous()
    total = sum(weights)
    lineage = {"method": method, "parents": [
        {**_parent(folder, weight), **({"share": weight / total} if method == "linear" else {})}
        for folder, weight in zip(folders, weights)]}
    if base is not None:
        lineage["base"] = _parent(base)
    if method == "ties":
        lineage["density"] = density
    with atomic_dir(out) as tmp:
        save_file(merged, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name in BASE_FILES:
            if (folders[0] / name).is_file():
                shutil.copy2(folders[0] / name, tmp / name)
        (tmp / "occi_merge.json").write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
        mark_done(tmp)
    return lineage


def parents(cfg: RunConfig, run: RunDir) -> tuple[list[Path], Path | None]:
    """The merge's model folders and its base (None for linear), stage models exported as needed."""
    merge_cfg: MergeConfig = cfg.merge
    if merge_cfg.checkpoints is not None:
        stage = merge_cfg.checkpoints.of
        return [stage_model(cfg, run, stage, iteration)
                for iteration in last_checkpoints(run, stage, merge_cfg.checkpoints.last)], None

    def folder(name: str) -> Path:
        return stage_model(cfg, run, ROLES[name]) if name in ROLES else _folder(name, merge_cfg.base_dir)

    return [folder(name) for name in merge_cfg.models], folder(merge_cfg.base) if merge_cfg.base else None


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The merge stage of the stage list (occi/pipeline.py)."""
    if cfg.merge is None:
        raise OcciError(f"{cfg.source_file}: no `merge:` section; add one listing the models to merge")
    run = RunDir.of(run)
    if is_done(run.merged):
        return StageResult(f"merge: {run.merged} is complete")
    folders, base = parents(cfg, run)
    weights = cfg.merge.weights or [1.0] * len(folders)
    lineage = merge(folders, weights, run.merged, cfg.merge.method, base, cfg.merge.density)
    parts = ", ".join(f"{Path(p['path']).name} x {p['weight']:.3g}" for p in lineage["parents"])
    on = f" on {Path(base).name}" if base is not None else ""
    return StageResult(f"merge ({cfg.merge.method}{on}): {parts} -> {run.merged}")
