"""Checkpoints with megatron's dist_checkpointing: save, keep the last K, resume from the latest.

Layout: <run>/checkpoints/iter_0000050/ (a distributed checkpoint: model and optimizer as
sharded tensors, so it reloads at another TP or PP size) and <run>/checkpoints/latest (the
iteration of the newest complete checkpoint; the same number also goes to
latest_checkpointed_iteration.txt, the file Megatron-LM's tools read). iter_0000000 written by
`occi import` holds a base model only: training loads its weights and starts the optimizer, the
schedule and the step counter afresh. A checkpoint is written into a temporary folder
and renamed when every rank has finished, then `latest` is updated: a crash while saving leaves
the previous checkpoint as the latest. On GPU the tensor writes run in the background
(async_save) and the rename happens when they are done.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist

from occi.errors import OcciError
from occi.fsutil import atomic_write_text
from occi.rundir import RunDir

_ASYNC_QUEUE = None


def folder(run_dir: Path) -> Path:
    return RunDir.of(run_dir).checkpoints


def latest_iteration(run_dir: Path, root: Path | None = None) -> int | None:
    """The iteration of the newest complete checkpoint (in `root`, default the run's
    checkpoints/), or None."""
    marker = (root or folder(run_dir)) / "latest"
    if not marker.exists():
        return None
    text = marker.read_text().strip()
    if not text.isdigit():
        raise OcciError(f"{marker}: expected an iteration number, found {text[:40]!r}; "
                        "delete the file to start from the checkpoint folders you trust")
    return int(text)


def checkpoint_dir(run_dir: Path, iteration: int, root: Path | None = None) -> Path:
    return (root or folder(run_dir)) / f"iter_{iteration:07d}"


# The distributed optimizer's state in model space (each weight's moments in the weight's own
# shape), gathered over the data-parallel ranks when saving: it reloads at any DP size.
DISTRIBUTED_OPTIMIZER_FORMAT = {"distrib_optim_sharding_type": "fully_reshardable"}


def _state(trainer, loading: bool) -> dict:
    model_state = trainer.model.module.sharded_state_dict()
    metadata = DISTRIBUTED_OPTIMIZER_FORMAT if trainer.train.distributed_optimizer else None
    return {
        "model": model_state,
        "optimizer": trainer.optimizer.sharded_state_dict(model_state, is_loading=loading, metadata=metadata),
        "scheduler": trainer.scheduler.state_dict(),
        "iteration": trainer.step,
        "stability": trainer.guard.state_dict() if getattr(trainer, "guard", None) is not None else None,
    }


def save(trainer) -> None:
    """Saves the trainer's state at its current step (called on every rank)."""
    from megatron.core import dist_checkpointing  # loads megatron: only when used

    global _ASYNC_QUEUE
    run_dir, step, root = trainer.run_dir, trainer.step, trainer.checkpoint_folder
    final = checkpoint_dir(run_dir, step, root)
    tmp = final.with_name(f".{final.name}.tmp")
    if dist.get_rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    use_async = trainer.train.async_save and torch.cuda.is_available()
    request = dist_checkpointing.save(_state(trainer, loading=False), str(tmp), async_sharded_save=use_async)

    def publish() -> None:
        if dist.get_rank() == 0:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            publish_latest(run_dir, step, root)
            _prune(root, trainer.train.keep_last)

    if use_async:
        from megatron.core.dist_checkpointing.strategies.async_utils import AsyncCallsQueue  # loads megatron: only when used

        if _ASYNC_QUEUE is None:
            _ASYNC_QUEUE = AsyncCallsQueue()
        request.add_finalize_fn(publish)
        _ASYNC_QUEUE.schedule_async_request(request)
    else:
        dist.barrier()
        publish()
        dist.barrier()


def publish_latest(run_dir: Path, step: int, root: Path | None = None) -> None:
    """Names `step` the newest complete checkpoint, for occi and for Megatron-LM's tools."""
    root = root or folder(run_dir)
    atomic_write_text(root / "latest_checkpointed_iteration.txt", f"{step}\n")
    atomic_write_text(root / "latest", f"{step}\n")


def is_import(path: Path) -> bool:
    """True for a checkpoint folder written by `occi import` (model weights only)."""
    return (Path(path) / "occi_import.json").is_file()


def finish_pending() -> None:
    """Waits for background checkpoint writes (before exiting)."""
    if _ASYNC_QUEUE is not None:
        _ASYNC_QUEUE.maybe_finalize_async_calls(blocking=True)


def poll_pending() -> None:
    """Publishes background checkpoints that have finished (once per step)."""
    if _ASYNC_QUEUE is not None:
        _ASYNC_QUEUE.maybe_finalize_async_calls(blocking=False)


def _prune(root: Path, keep_last: int) -> None:
    done = sorted(p for p in Path(root).glob("iter_*") if p.is_dir())
    for old in done[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def load_weights(trainer, path: Path) -> None:
    """Loads only the model weights of a checkpoint (any layout) into the trainer's model: the
    start of a fine-tuning, whose optimizer and schedule begin afresh."""
    from megatron.core import dist_checkpointing  # loads megatron: only when used

    if not (Path(path) / "metadata.json").exists():
        raise OcciError(f"{path}: checkpoint is missing or incomplete (no metadata.json)")
    try:
        loaded = dist_checkpointing.load({"model": trainer.model.module.sharded_state_dict()}, str(path))
    except Exception as err:  # dist_checkpointing raises many kinds for damaged files
        message = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise OcciError(f"{path}: cannot load the model weights ({type(err).__name__}: {message})") from None
    trainer.model.module.load_state_dict(loaded["model"])
    _refresh_main_params(trainer)


def _refresh_main_params(trainer) -> None:
    """A bf16 optimizer keeps fp32 main copies of the weights, made when it was built: after
    loading weights alone, they are copied again (else the first step writes the initial weights
    back). Nothing to do for an fp32 optimizer."""
    trainer.optimizer.reload_model_params()


def load_latest(trainer) -> int:
    """Loads the newest checkpoint into the trainer; returns its iteration (0: none)."""
    from megatron.core import dist_checkpointing  # loads megatron: only when used

    root = trainer.checkpoint_folder
    iteration = latest_iteration(trainer.run_dir, root)
    if iteration is None:
        return 0
    path = checkpoint_dir(trainer.run_dir, iteration, root)
    if not (path / "metadata.json").exists():
        raise OcciError(f"{path}: checkpoint is missing or incomplete (no metadata.json); "
                        f"delete it and fix {root / 'latest'} to resume from an older one")
    try:
        if is_import(path):
            loaded = dist_checkpointing.load({"model": trainer.model.module.sharded_state_dict()}, str(path))
            trainer.model.module.load_state_dict(loaded["model"])
            _refresh_main_params(trainer)
            return 0
        loaded = dist_checkpointing.load(_state(trainer, loading=True), str(path))
        trainer.model.module.load_state_dict(loaded["model"])
        trainer.optimizer.load_state_dict(loaded["optimizer"])
        replanned = schedule_changes(loaded["scheduler"], trainer.scheduler.state_dict())
        trainer.scheduler.num_steps = 0  # megatron's scheduler adds the checkpoint's steps to its own (a rollback has some)
        trainer.scheduler.load_state_dict(loaded["scheduler"])
        if getattr(trainer, "guard", None) is not None:
            trainer.guard.load_state_dict(loaded.get("stability"))  # older checkpoints have none
    except OcciError:
        raise
    except Exception as err:  # dist_checkpointing raises many kinds for damaged files
        message = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
        raise OcciError(f"{path}: cannot load checkpoint ({type(err).__name__}: {message}); it is corrupt or "
                        f"was written by another model shape; delete it to resume from an older one") from None
    if replanned:
        trainer.log.message(f"the schedule differs from the checkpoint's ({'; '.join(replanned)}): re-planned from "
                            f"step {int(loaded['iteration'])}, learning rate now "
                            f"{trainer.optimizer.param_groups[0]['lr']:.6g}")
    return int(loaded["iteration"])


_SCHEDULE_KEYS = {"max_lr": "lr", "min_lr": "min_lr", "lr_warmup_steps": "warmup_steps",
                  "lr_decay_steps": "steps", "lr_decay_style": "lr_schedule"}
"""megatron's scheduler state -> the config key it comes from."""


def schedule_changes(saved: dict, planned: dict) -> list[str]:
    """What the config's schedule changes against a checkpoint's, as "key old -> new"."""
    return [f"{key} {saved[name]!r} -> {planned[name]!r}" for name, key in _SCHEDULE_KEYS.items()
            if name in saved and saved[name] != planned[name]]
