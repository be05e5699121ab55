"""`occi merge`: the weighted average of exported transformers models, tensor by tensor.

Every model must have the same architecture (`model_type`), the same tensor names and shapes;
the first model's config, generation config and tokenizer files are the merged model's. Each
tensor is averaged in float64 and stored in the first model's dtype. <run>/merged/ gets the
model (safetensors) and occi_merge.json: the method and, per parent, its folder, weight and the
sha256 of its weight files (the lineage of the merged model). `occi eval --model <run>/merged`
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
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share


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


def merge(folders: list[Path], weights: list[float], out: Path) -> dict:
    """Writes the weighted average of the models in `folders` to `out`; returns its lineage record."""
    import torch  # loads torch: only when used

    first = _config(folders[0])
    for folder in folders[1:]:
        other = _config(folder)
        if other.get("model_type") != first.get("model_type"):
            raise OcciError(f"{folder}: model_type {other.get('model_type')!r}, {folders[0]} has "
                            f"{first.get('model_type')!r}; merge models of one architecture only")
    total = sum(weights)
    shares = [w / total for w in weights]
    merged: dict[str, torch.Tensor] = {}
    names: set[str] | None = None
    for folder, share in zip(folders, shares):
        tensors: dict[str, torch.Tensor] = {}
        for path in _weight_files(folder):
            tensors.update(load_file(str(path)))
        if names is None:
            names = set(tensors)
            merged = {name: tensor.double() * share for name, tensor in tensors.items()}
            dtypes = {name: tensor.dtype for name, tensor in tensors.items()}
            continue
        if set(tensors) != names:
            extra = sorted(set(tensors) ^ names)[0]
            raise OcciError(f"{folder}: tensor {extra!r} is in one model and not the other ({folders[0]}); "
                            "merge models of one shape only")
        for name, tensor in tensors.items():
            if tensor.shape != merged[name].shape:
                raise OcciError(f"{folder}: tensor {name!r} has shape {tuple(tensor.shape)}, {folders[0]}'s "
                                f"{tuple(merged[name].shape)}; merge models of one shape only")
            merged[name] += tensor.double() * share
    lineage = {"method": "linear", "parents": [
        {"path": str(folder), "weight": weight, "share": share, "weights_sha256": _sha256(_weight_files(folder))}
        for folder, weight, share in zip(folders, weights, shares)]}
    with atomic_dir(out) as tmp:
        save_file({name: tensor.to(dtypes[name]).contiguous() for name, tensor in merged.items()},
                  str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name in BASE_FILES:
            if (folders[0] / name).is_file():
                shutil.copy2(folders[0] / name, tmp / name)
        (tmp / "occi_merge.json").write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
        mark_done(tmp)
    return lineage


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The merge stage of the stage list (occi/pipeline.py)."""
    if cfg.merge is None:
        raise OcciError(f"{cfg.source_file}: no `merge:` section; add one listing the exported models to merge")
    run = RunDir.of(run)
    folders = [_folder(path, cfg.merge.base_dir) for path in cfg.merge.models]
    weights = cfg.merge.weights or [1.0] * len(folders)
    if is_done(run.merged):
        return StageResult(f"merge: {run.merged} is complete")
    lineage = merge(folders, weights, run.merged)
    parts = ", ".join(f"{Path(p['path']).name} x {p['share']:.3g}" for p in lineage["parents"])
    return StageResult(f"merge: {parts} -> {run.merged}")
