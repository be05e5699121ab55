"""Experiment trackers (train.trackers): TensorBoard, Weights & Biases, MLflow.

Rank 0 alone writes. Each tracker gets the same metrics (train/loss, train/lr, train/grad_norm,
train/tokens_per_s, train/mfu, train/memory_gib, valid/loss_<lang>, stability/...), the frozen
config of the run and the stability events. A tracker run's id is kept in trackers.json next to
log.jsonl, so a restarted training (a crash, the next job of a chain) logs into the same run:
wandb resumes the run id, MLflow reopens the run, TensorBoard appends to the same folder.
Steps a resumed or rolled-back run trains again are logged again with the same step number
(wandb gets them against its `train/step` axis, since its own step only grows).

Where they go: TensorBoard: <log folder>/tensorboard/; wandb: <log folder>/wandb/ (project
WANDB_PROJECT, default "occi"; WANDB_MODE=offline writes files only, `wandb sync` uploads them
later); MLflow: MLFLOW_TRACKING_URI (unset: an sqlite file <log folder>/mlflow.db), experiment
MLFLOW_EXPERIMENT_NAME (default: the run name).
"""
from __future__ import annotations

import importlib.util
import json
import os
import uuid
from pathlib import Path

from occi.errors import OcciError
from occi.fsutil import atomic_write_json

PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check_installed(trackers: list[str]) -> None:
    """One line naming a configured tracker whose client is not installed."""
    for name in trackers:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise OcciError(f"train.trackers: {name} is configured but its client is not installed; "
                            f"pip install 'occi[trackers]' (or {PACKAGES[name]}), or remove it from train.trackers")


def flat_config(config: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as dotted keys with printable values (tracker parameters)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_config(value, name + "."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


class TensorBoardTracker:
    def __init__(self, folder: Path, run_name: str, resumed_step: int, ids: dict):
        from torch.utils.tensorboard import SummaryWriter  # loads torch: only when used

        # purge_step: events of steps after the checkpoint (logged before a crash) are dropped
        self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=resumed_step + 1 if resumed_step else None)

    def config(self, config: dict, config_text: str) -> None:
        self.writer.add_text("config", "```\n" + config_text + "\n```", 0)

    def metrics(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def event(self, event: dict, events: list[dict]) -> None:
        self.writer.add_text("stability", json.dumps(event), event["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, folder: Path, run_name: str, resumed_step: int, ids: dict):
        import wandb  # optional: wandb is no core dependency

        ids.setdefault("wandb", uuid.uuid4().hex[:12])
        (folder / "wandb").mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "occi"), name=run_name, id=ids["wandb"],
                              resume="allow", dir=str(folder), settings=wandb.Settings(console="off", silent=True))
        self.run.define_metric("train/step")
        self.run.define_metric("*", step_metric="train/step")

    def config(self, config: dict, config_text: str) -> None:
        self.run.config.update(flat_config(config), allow_val_change=True)

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.run.log({**values, "train/step": step})

    def event(self, event: dict, events: list[dict]) -> None:
        self.run.log({"stability/bad_steps": len(events), "stability/skipped_batch": event["batch"],
                      "train/step": event["step"]})
        self.run.summary["stability/events"] = json.dumps(events)

    def close(self) -> None:
        self.run.finish()


class MlflowTracker:
    def __init__(self, folder: Path, run_name: str, resumed_step: int, ids: dict):
        import mlflow  # optional: mlflow is no core dependency

        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(f"sqlite:///{(folder / 'mlflow.db').resolve()}")
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", run_name))
        run = mlflow.start_run(run_id=ids.get("mlflow"), run_name=None if ids.get("mlflow") else run_name)
        ids["mlflow"] = run.info.run_id

    def config(self, config: dict, config_text: str) -> None:
        # parameters are write-once in MLflow: a resumed run logs only keys it does not have yet
        known = self.mlflow.get_run(self.mlflow.active_run().info.run_id).data.params
        self.mlflow.log_params({k: v[:6000] for k, v in flat_config(config).items() if k not in known})
        self.mlflow.log_text(config_text, "config.yaml")

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.mlflow.log_metrics(values, step=step)

    def event(self, event: dict, events: list[dict]) -> None:
        self.mlflow.log_metric("stability/bad_steps", len(events), step=event["step"])
        self.mlflow.log_dict({"events": events}, "stability.json")

    def close(self) -> None:
        self.mlflow.end_run()


TRACKERS = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker, "mlflow": MlflowTracker}


class Trackers:
    """The configured trackers of rank 0, opened into the runs named by trackers.json."""

    def __init__(self, names: list[str], folder: Path, run_name: str, resumed_step: int = 0):
        check_installed(names)
        self.folder = Path(folder)
        ids_file = self.folder / "trackers.json"
        ids = json.loads(ids_file.read_text(encoding="utf-8")) if ids_file.exists() else {}
        self.trackers = [TRACKERS[name](self.folder, run_name, resumed_step, ids) for name in names]
        atomic_write_json(ids_file, ids)
        self.ids = ids

    def config(self, config: dict, config_text: str) -> None:
        for tracker in self.trackers:
            tracker.config(config, config_text)

    def metrics(self, values: dict[str, float], step: int) -> None:
        values = {k: float(v) for k, v in values.items() if v is not None}
        for tracker in self.trackers:
            tracker.metrics(values, step)

    def event(self, event: dict, events: list[dict]) -> None:
        for tracker in self.trackers:
            tracker.event(event, events)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
