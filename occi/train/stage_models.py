"""The models of a run's stages as transformers folders: the newest checkpoint of pretraining
(`base`: the model before post-training), SFT and DPO, or a single checkpoint, exported once to
<run>/stage_models/ (base, sft, dpo, <stage>-iter_N) for `occi merge` and for `eval.models` (the leaderboard's
side-by-side table). Re-exported when the stage's newest checkpoint changed."""
from __future__ import annotations

from pathlib import Path

from occi.errors import OcciError
from occi.fsutil import is_done
from occi.rundir import ROLES, RunDir

STAGES = ("train", "sft", "dpo")
"""Stages whose checkpoints can be exported (pretraining, or the imported base, is `train`)."""


def checkpoint_root(run: RunDir, stage: str) -> Path:
    return {"train": run.checkpoints, "sft": run.sft_checkpoints, "dpo": run.dpo_checkpoints}[stage]


def folder_name(stage: str) -> str:
    """The stage model's folder under <run>/stage_models/: its eval.models name (train's is base)."""
    return next(name for name, of in ROLES.items() if of == stage)


def stage_model(cfg, run: RunDir, stage: str, iteration: int | None = None) -> Path:
    """The run's `stage` checkpoint (its newest, or `iteration`) as a transformers folder."""
    from occi.train import checkpoints  # loads torch: only when used
    from occi.train.export import export  # loads torch: only when used

    run = RunDir.of(run)
    root = checkpoint_root(run, stage)
    if iteration is None:
        iteration = checkpoints.latest_iteration(run.root, root)
        if iteration is None:
            raise OcciError(f"{root}: no checkpoint of the {stage} stage; run `occi {stage}` first (for a model "
                            f"folder named {folder_name(stage)!r}, write ./{folder_name(stage)})")
        out = run.stage_model(folder_name(stage))
        made = run.read_json(out / "occi_export.json") if is_done(out) else None
        if made and made.get("iteration") == iteration:
            return out
    else:
        out = run.stage_model(f"{stage}-iter_{iteration:07d}")
        if is_done(out):
            return out
    return export(cfg, run, stage=stage, iteration=iteration, out=out)


def last_checkpoints(run: RunDir, stage: str, last: int) -> list[int]:
    """The iterations of the stage's `last` newest complete checkpoints, oldest first."""
    root = checkpoint_root(run, stage)
    done = sorted(int(p.name.removeprefix("iter_")) for p in root.glob("iter_*") if (p / "metadata.json").is_file())
    if len(done) < last:
        raise OcciError(f"{root}: {len(done)} checkpoint(s), merge.checkpoints.last asks for {last}; lower it, or "
                        f"raise the {stage} section's keep_last (and save_interval's frequency) and train again")
    return done[-last:]


def named_model(cfg, run: RunDir, name: str) -> Path:
    """The folder of one of eval.models' names (MODEL_NAMES), exported when it is a stage model."""
    run = RunDir.of(run)
    if name in ROLES:
        return stage_model(cfg, run, ROLES[name])
    folder = run.merged if name == "merged" else run.hf
    if not is_done(folder):
        raise OcciError(f"{folder}: eval.models lists {name!r} but it is not there yet; run "
                        f"`occi {'merge' if name == 'merged' else 'export'}` first")
    return folder


def model_name_of(run: RunDir, folder: str) -> str | None:
    """eval.models' name of a model folder of this run (stage_models/sft -> sft), None for others."""
    run = RunDir.of(run)
    path = Path(folder).expanduser().resolve()
    for name in ROLES:
        if path == run.stage_model(name).resolve():
            return name
    return "merged" if path == run.merged.resolve() else None
