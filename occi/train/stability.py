"""The stability guard: a bad step never updates the weights.

After the forward and backward pass and before the optimizer step, every rank checks the step's
loss (already averaged over the ranks, so the same everywhere) and its own gradients; the ranks
agree with one all-reduce (MAX), so all of them act on the same step. A step is bad when its loss
is NaN or infinite, its gradients hold a NaN or infinity (so the gradient norm would), or its loss
is a spike: more than `spike_zscore` standard deviations above the mean of the last
`spike_window` accepted losses.

The policy then decides (train.stability.policy):
- skip: the update is dropped and the batch leaves the data order; the next step trains on the
  next batch;
- rollback: the last checkpoint is reloaded and training replays from there, without the
  offending batch (OLMo and PaLM restarted before a spike and skipped its batches);
- stop: the run stops with an error naming the step and the batch.

The data order is a list of batch positions (batch b holds samples b x global batch ...); a
skipped batch is taken out of it, so a run that skipped batches equals one whose data never held
them, and train.stability.skip_batches leaves batches out from the start. The skipped batches
and every event (step, batch, its documents and languages, why) are in train/stability.json,
written by rank 0 before anything else happens, so a restart after a crash skips them too.
"""
from __future__ import annotations

import bisect
import json
import math
from collections import deque
from pathlib import Path

import torch
import torch.distributed as dist

from occi.errors import OcciError
from occi.fsutil import atomic_write_json
from occi.train.config import StabilityConfig

SPIKE_FACTOR = 1000.0
"""A `spike` fault-injection drill scales the batch's loss (and gradients) by this much."""


class DataOrder:
    """Which batch of the data each optimizer step trains on: the step-th batch not skipped."""

    def __init__(self, skipped: list[int] | set[int] = ()):
        self.skipped = sorted(set(skipped))

    def batch(self, step: int) -> int:
        """The batch position step `step` (0-based) trains on."""
        batch = step
        for skipped in self.skipped:  # sorted: each skipped batch at or before the candidate shifts it
            if skipped <= batch:
                batch += 1
            else:
                break
        return batch

    def skip(self, batch: int) -> None:
        if batch not in self.skipped:
            bisect.insort(self.skipped, batch)


def read_events(path: Path) -> dict:
    """train/stability.json: {"events": [...], "skipped_batches": [...]} (empty when missing)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"events": [], "skipped_batches": []}
    except (OSError, ValueError) as err:
        raise OcciError(f"{path}: cannot read the stability events ({err}); restore it from a backup, or delete "
                        "it to forget which batches were skipped (they would be trained on again)") from None
    return {"events": list(data.get("events", [])), "skipped_batches": list(data.get("skipped_batches", []))}


class StabilityGuard:
    """One rank's guard: the accepted-loss window, the decision, the event file."""

    def __init__(self, config: StabilityConfig, events_file: Path, device: torch.device):
        self.config, self.events_file, self.device = config, Path(events_file), device
        self.losses: deque[float] = deque(maxlen=config.spike_window)
        stored = read_events(self.events_file)
        self.events: list[dict] = stored["events"]
        self.order = DataOrder(set(config.skip_batches) | set(stored["skipped_batches"]))
        self.faults = {fault.batch: fault.fault for fault in config.inject}

    @property
    def enabled(self) -> bool:
        return self.config.policy != "off"

    # ---------------------------------------------------------------- the check

    def verdict(self, loss: float, grad_buffers: list[torch.Tensor]) -> str | None:
        """Why this step is bad (the same sentence on every rank), or None."""
        if not self.enabled:
            return None
        local_bad = any(not bool(torch.isfinite(buffer).all()) for buffer in grad_buffers)
        flag = torch.tensor([1.0 if local_bad else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # a NaN on any rank stops every rank's update
        if not math.isfinite(loss):
            return f"the loss is {loss}"
        if flag.item():
            return "the gradient norm is not finite (a NaN or infinity in the gradients)"
        return self._spike(loss)

    def _spike(self, loss: float) -> str | None:
        if len(self.losses) < self.config.spike_window:
            return None
        mean = sum(self.losses) / len(self.losses)
        std = math.sqrt(sum((x - mean) ** 2 for x in self.losses) / (len(self.losses) - 1))
        if std == 0.0:
            return None
        z = (loss - mean) / std
        if z > self.config.spike_zscore:
            return (f"loss spike: {loss:.4g} is {z:.1f} standard deviations above the mean {mean:.4g} of the last "
                    f"{len(self.losses)} steps (spike_zscore {self.config.spike_zscore:g})")
        return None

    def accept(self, loss: float) -> None:
        """A good step's loss joins the spike window."""
        self.losses.append(loss)

    # ---------------------------------------------------------------- events

    def record(self, event: dict, rank0: bool) -> None:
        """Adds an event and skips its batch, on every rank; rank 0 rewrites the event file first."""
        self.events.append(event)
        self.order.skip(event["batch"])
        if rank0:
            atomic_write_json(self.events_file, {"events": self.events, "skipped_batches": self.order.skipped})
        dist.barrier()  # the file is written before any rank rolls back or stops
        if len(self.order.skipped) - len(set(self.config.skip_batches)) > self.config.max_skipped_batches:
            raise OcciError(f"train.stability.max_skipped_batches: {len(self.order.skipped)} batches skipped, above "
                            f"the limit {self.config.max_skipped_batches}; the last at step {event['step']} "
                            f"({event['reason']}); see {self.events_file}")

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the spike window as of that step."""
        return {"losses": list(self.losses)}

    def load_state_dict(self, state: dict | None) -> None:
        self.losses.clear()
        self.losses.extend((state or {}).get("losses", []))


def batch_contents(train_data, languages: list[str], first_sample: int, samples: int) -> dict[str, list[int]]:
    """Language -> document ids (in that language's training split) of a batch's samples."""
    contents: dict[str, list[int]] = {}
    blended = hasattr(train_data, "dataset_index")  # one language: megatron gives its GPTDataset itself
    if blended and train_data.dataset_index is None:
        train_data[first_sample]  # megatron memory-maps the blend's index on first access
    for index in range(first_sample, first_sample + samples):
        dataset_id = int(train_data.dataset_index[index]) if blended else 0
        dataset = train_data.datasets[dataset_id] if blended else train_data
        sample = int(train_data.dataset_sample_index[index]) if blended else index
        _, documents = dataset._query_document_sample_shuffle_indices(sample)
        found = contents.setdefault(languages[dataset_id], [])
        found.extend(int(d) for d in documents if int(d) not in found)
    return contents


def poison(fault: str | None, loss: torch.Tensor) -> torch.Tensor:
    """A fault-injection drill's loss: scaled (spike), NaN (nan_loss), or as it is."""
    if fault == "spike":
        return loss * SPIKE_FACTOR
    if fault == "nan_loss":
        return loss * float("nan")
    return loss


def poison_gradients(fault: str | None, output: torch.Tensor, last_data_parallel_rank: bool) -> None:
    """nan_grad: the gradients flowing back from this output become NaN on the last DP rank."""
    if fault == "nan_grad" and last_data_parallel_rank and output.requires_grad:
        output.register_hook(lambda grad: torch.full_like(grad, float("nan")))
