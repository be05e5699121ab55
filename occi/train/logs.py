"""Training logs: a console line per step, log.jsonl for reports, and the experiment trackers
(occi/train/trackers.py: TensorBoard, wandb, MLflow)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from occi.train import moe_logs
from occi.train.trackers import Trackers

TRAIN_METRICS = ("loss", "lr", "grad_norm", "tokens_per_s", "tflops_per_device", "mfu", "memory_gib", "loss_tokens",
                 "goldfish_dropped")


class TrainLog:
    """Writes on global rank 0 only (the other ranks hold a disabled log)."""

    def __init__(self, folder: Path, enabled: bool, trackers: list[str] = ("tensorboard",), run_name: str = "occi",
                 resumed_step: int = 0):
        self.enabled = enabled
        self.folder = Path(folder)
        self.trackers = None
        if enabled:
            self.folder.mkdir(parents=True, exist_ok=True)

            self.trackers = Trackers(list(trackers), self.folder, run_name, resumed_step)

    def _append(self, record: dict) -> None:
        with open(self.folder / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def step(self, record: dict, total_steps: int) -> None:
        if not self.enabled:
            return
        self._append({"kind": "train", **record})
        metrics = {f"train/{key}": record[key] for key in TRAIN_METRICS if record.get(key) is not None}
        if record.get("aux_loss") is not None:
            metrics["moe/load_balancing_loss"] = record["aux_loss"]
        for index, (low, high) in enumerate(zip(record.get("share_min") or [], record.get("share_max") or [])):
            metrics[f"moe/expert_share_min/moe_layer_{index}"] = low
            metrics[f"moe/expert_share_max/moe_layer_{index}"] = high
        self.trackers.metrics(metrics, record["step"])
        mfu = f" mfu {100 * record['mfu']:.1f}%" if record.get("mfu") else ""
        mfu += f" loss tokens {record['loss_tokens']:,}" if record.get("loss_tokens") is not None else ""
        mfu += f" goldfish dropped {record['goldfish_dropped']:,}" if record.get("goldfish_dropped") is not None else ""
        grad = f" grad {record['grad_norm']:.3f}" if record.get("grad_norm") is not None else ""
        grad += f" mem {record['memory_gib']:.2f} GiB" if record.get("memory_gib") is not None else ""
        print(f"train: step {record['step']:>6}/{total_steps} ({100 * record['step'] / total_steps:3.0f}%) "
              f"loss {record['loss']:.4f} lr {record['lr']:.2e}{grad} "
              f"{record['tokens_per_s']:,.0f} tok/s {record['tflops_per_device']:.3f} TFLOP/s{mfu}"
              f"{moe_logs.console(record)}", flush=True)

    def validation(self, step: int, losses: dict[str, float]) -> None:
        if not self.enabled or not losses:
            return
        self._append({"kind": "valid", "step": step, "loss": losses})
        self.trackers.metrics({f"valid/loss_{code}": value for code, value in losses.items() if not math.isnan(value)},
                              step)
        shown = " ".join(f"{code} {value:.3f}" for code, value in losses.items())
        print(f"valid: step {step} loss per language: {shown}", flush=True)

    def config(self, config: dict, config_text: str) -> None:
        """The frozen config of the run, for the trackers."""
        if self.enabled:
            self.trackers.config(config, config_text)

    def stability(self, event: dict, events: list[dict]) -> None:
        """A stability guard event (occi/train/stability.py)."""
        if not self.enabled:
            return
        self._append({"kind": "stability", **event})
        self.trackers.event(event, events)
        where = ", ".join(f"{code}: documents {docs}" for code, docs in event["documents"].items())
        print(f"train: stability: step {event['step']} (batch {event['batch']}): {event['reason']}; "
              f"policy {event['policy']}; the batch held {where}", flush=True)

    def close(self) -> None:
        if self.enabled:
            self.trackers.close()

    def message(self, text: str) -> None:
        if self.enabled:
            self._append({"kind": "message", "text": text})
            print(f"train: {text}", flush=True)


def read_log(folder: Path) -> list[dict]:
    """The records of log.jsonl; a resumed run's repeated steps keep their last value."""
    path = Path(folder) / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
