"""The DPO rank: the pretraining trainer (occi/train/trainer.py) with preference pairs and a
preference loss.

What changes against pretraining (and SFT):
- data: the plan of occi/dpo/batches.py; a micro batch of m pairs is 2m sequences (chosen,
  then rejected) padded to the step's longest, so the trainer's micro and global batch sizes
  count sequences;
- log-probabilities: megatron's per-token cross-entropy (vocabulary-parallel at TP > 1) summed,
  negated, over each sequence's answer tokens;
- loss: sigmoid (DPO) against the reference model's log-probabilities, or simpo (no reference);
  the mean over the step's real pairs (the sum of a micro batch's pair losses scaled by the whole
  global batch), so neither the micro batch size nor the data-parallel size changes it;
- reference: precomputed once before the first step by a forward pass of the starting weights
  over every pair (stored in dpo/reference_logps.npy), or live: the starting weights kept in
  memory and swapped in for a forward pass over each step's pairs;
- schedule: dpo.lr, epochs x steps per epoch; checkpoints in dpo/checkpoints;
- start: the SFT checkpoint (else the run's latest: pretraining or the imported base), weights
  only; a restart resumes from the newest DPO checkpoint with optimizer and schedule.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import xxhash
from tqdm import tqdm

from occi.dpo import batches
from occi.dpo.data import Pairs
from occi.errors import OcciError
from occi.fsutil import atomic_path
from occi.rundir import RunDir
from occi.train import checkpoints
from occi.train.config import TrainConfig
from occi.train.trainer import Trainer, current_device, main

METRICS = ("loss_sum", "chosen_reward_sum", "rejected_reward_sum", "accuracy_sum", "chosen_logps_sum",
           "rejected_logps_sum", "pairs", "answer_tokens")
"""What each micro batch reports (sums over its real pairs), in this order."""


def dpo_train_config(cfg, steps: int) -> TrainConfig:
    """The run's parallel layout with DPO's batch (in sequences: two per pair), schedule and checkpoints."""
    dpo = cfg.dpo
    try:
        return dataclasses.replace(
            cfg.train, micro_batch_size=2 * dpo.micro_batch_size, global_batch_size=2 * dpo.global_batch_size,
            steps=steps, lr=dpo.lr, min_lr=dpo.min_lr, warmup_steps=min(steps - 1, int(dpo.warmup_fraction * steps)),
            lr_schedule=dpo.lr_schedule, weight_decay=dpo.weight_decay, save_interval=dpo.save_interval,
            log_interval=dpo.log_interval, eval_interval=steps, keep_last=dpo.keep_last,
            stop_after_steps=dpo.stop_after_steps)
    except ValueError as err:
        raise OcciError(f"{cfg.source_file}: dpo: {err}") from None


def dpo_seq_length(cfg, model_cfg) -> int:
    return min(cfg.dpo.seq_length or model_cfg.seq_length, model_cfg.seq_length)


def start_checkpoint(run_dir: Path) -> Path | None:
    """The weights DPO starts from: the newest SFT checkpoint, else the run's newest checkpoint."""
    run = RunDir(run_dir)
    for root in (run.sft_checkpoints, run.checkpoints):
        iteration = checkpoints.latest_iteration(run.root, root)
        if iteration is not None:
            return checkpoints.checkpoint_dir(run.root, iteration, root)
    return None


def preference_loss(logps: torch.Tensor, reference: torch.Tensor, answer_tokens: torch.Tensor, loss: str,
                    beta: float, gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-pair losses, chosen rewards, rejected rewards) of m pairs from the 2m sequences'
    answer log-probabilities (chosen first), their reference values and answer token counts."""
    m = logps.shape[0] // 2
    if loss == "simpo":
        average = logps / answer_tokens.clamp(min=1)
        chosen, rejected = beta * average[:m], beta * average[m:]
        return -F.logsigmoid(chosen - rejected - gamma), chosen.detach(), rejected.detach()
    ratios = logps - reference
    chosen, rejected = ratios[:m], ratios[m:]
    return -F.logsigmoid(beta * (chosen - rejected)), beta * chosen.detach(), beta * rejected.detach()


def _digest(path: Path) -> str:
    return xxhash.xxh64(path.read_bytes()).hexdigest()


def _stored_reference(path: Path, key: dict) -> np.ndarray | None:
    """The stored reference log-probabilities when they are those of these pairs and starting weights."""
    if not path.is_file():
        return None
    with np.load(path) as stored:
        if str(stored["key"]) != json.dumps(key, sort_keys=True):
            return None
        return stored["logps"]


class DPOTrainer(Trainer):
    def _train_config(self) -> TrainConfig:
        run = RunDir(self.run_dir)
        self.seq_length = dpo_seq_length(self.cfg, self.model_cfg)
        self.model_cfg = dataclasses.replace(self.model_cfg, seq_length=self.seq_length)
        self.pairs = Pairs.load(run.dpo_data / "pairs.npz")
        self.plan = batches.plan(self.pairs, self.cfg.dpo.epochs, self.cfg.dpo.global_batch_size, self.cfg.seed)
        self.reference = None  # [pairs, 2]: the reference log-probabilities of chosen and rejected
        self._reference_mode = False
        self._start_weights = None
        self._step_pairs = 0
        self._step_reference = None
        return dpo_train_config(self.cfg, len(self.plan))

    def _vocab_size(self) -> int:
        if self.model_cfg.vocab_size is not None:
            return self.model_cfg.vocab_size
        return RunDir(self.run_dir).read_blend()["vocab_size"]

    def _build_data(self) -> None:
        self.checkpoint_folder = RunDir(self.run_dir).dpo_checkpoints
        self.valid_data = {}

    def _log_folder(self) -> Path:
        return RunDir(self.run_dir).dpo

    def _stability_guard(self):
        return None  # DPO's steps follow a fixed plan of pairs (no data order to skip batches of)

    # -------------------------------------------------------------------- start and reference

    def _resume(self) -> int:
        dpo, run = self.cfg.dpo, RunDir(self.run_dir)
        start = start_checkpoint(self.run_dir)
        if start is None:
            raise OcciError(f"{run.checkpoints}: no checkpoint to tune; run `occi sft` (or `occi train`, "
                            "or `occi import` for a base model) first")
        resumed = checkpoints.latest_iteration(self.run_dir, self.checkpoint_folder)
        precomputed = dpo.loss == "sigmoid" and dpo.reference == "precomputed"
        live = dpo.loss == "sigmoid" and dpo.reference == "live"
        key = {"pairs": _digest(run.dpo_data / "pairs.npz"), "start": str(start.relative_to(run.root))}
        if precomputed:
            self.reference = _stored_reference(run.dpo_reference, key)
        if not resumed or (precomputed and self.reference is None) or live:
            checkpoints.load_weights(self, start)
        if live:
            self._start_weights = [p.detach().clone() for p in self.model.module.parameters()]
        if precomputed and self.reference is None:
            # of the starting weights (loaded above, also when resuming: the reference never moves)
            self.reference = self._reference_logps(list(range(len(self.pairs))))
            if dist.get_rank() == 0:
                with atomic_path(run.dpo_reference) as tmp:
                    with open(tmp, "wb") as handle:
                        np.savez(handle, logps=self.reference, key=json.dumps(key, sort_keys=True))
            self.log.message(f"reference log-probabilities of {len(self.pairs)} pairs computed with {start}")
        step = checkpoints.load_latest(self)
        if step:
            self.log.message(f"resumed DPO from step {step}")
        else:
            self.log.message(f"tuning the weights of {start} ({len(self.plan)} steps, {self.cfg.dpo.epochs} "
                             f"epochs of {len(self.pairs)} pairs, loss {dpo.loss})")
        return step

    def _reference_logps(self, pair_indexes: list[int]) -> np.ndarray:
        """[pairs, 2] log-probabilities of `pair_indexes` (in that order) under the weights now in the
        model, the same on every rank."""
        from megatron.core import parallel_state  # loads megatron: only when used

        t, dpo = self.train, self.cfg.dpo
        per_step = dpo.global_batch_size
        padded = pair_indexes + [batches.EMPTY] * (-len(pair_indexes) % per_step)
        result = torch.zeros((len(padded), 2), dtype=torch.float64, device=current_device())
        keeps = parallel_state.is_pipeline_last_stage() and parallel_state.get_tensor_model_parallel_rank() == 0
        self.model.eval()
        self._reference_mode = True
        chunks = range(0, len(padded), per_step)
        try:
            for start in tqdm(chunks, desc="dpo: reference log-probabilities", unit=" batches",
                              disable=dist.get_rank() != 0 or len(chunks) < 2):
                shares = batches.rank_share(list(range(start, start + per_step)), dpo.micro_batch_size,
                                            t.data_parallel, self.dp_rank)
                length = self._length([padded[i] for i in range(start, start + per_step)])
                micro = [batches.batch(self.pairs, [padded[i] for i in share], length, None) for share in shares]
                with torch.no_grad():
                    self._forward_backward(micro, forward_only=True)
                if keeps:
                    for share, logps in zip(shares, self._reference_results):
                        m = len(share)
                        result[share, 0] = logps[:m].double()
                        result[share, 1] = logps[m:].double()
        finally:
            self._reference_mode = False
            self.model.train()
        dist.all_reduce(result)
        return result[:len(pair_indexes)].cpu().numpy()

    def _live_reference(self, step_pairs: list[int]) -> np.ndarray:
        """The step's reference log-probabilities from the starting weights, swapped in and back."""
        params = list(self.model.module.parameters())
        current = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, start in zip(params, self._start_weights):
                p.copy_(start)
        try:
            real = [p for p in step_pairs if p != batches.EMPTY]
            values = self._reference_logps(real)
        finally:
            with torch.no_grad():
                for p, now in zip(params, current):
                    p.copy_(now)
        reference = np.zeros((len(self.pairs), 2))
        reference[real] = values
        return reference

    # -------------------------------------------------------------------- steps

    def _length(self, step_pairs: list[int]) -> int:
        multiple = math.lcm(8, self.train.tensor_parallel)  # sequence parallelism splits positions over TP
        return batches.step_length(self.pairs, step_pairs, self.seq_length, multiple)

    def _micro_batches(self, step: int) -> list[dict]:
        t, dpo = self.train, self.cfg.dpo
        shares = batches.rank_share(self.plan[step], dpo.micro_batch_size, t.data_parallel, self.dp_rank)
        length = self._length(self.plan[step])
        return [batches.batch(self.pairs, share, length, self._step_reference) for share in shares]

    def _forward_backward(self, micro: list[dict], forward_only: bool, fault: str | None = None) -> float:
        # the pipeline schedule sizes its messages by the sequence length: this step's, not the longest
        full = self.model_cfg
        if micro:
            self.model_cfg = dataclasses.replace(full, seq_length=micro[0]["tokens"].shape[1])
        try:
            return super()._forward_backward(micro, forward_only, fault)
        finally:
            self.model_cfg = full

    def _loss_func(self, batch: dict):
        dpo = self.cfg.dpo
        # megatron divides the returned loss by the micro batch count, DDP averages the gradients over
        # data-parallel ranks: scaling by both leaves d(sum of the step's pair losses / its pairs)
        scale = (dpo.global_batch_size // dpo.micro_batch_size) / max(1, self._step_pairs)

        def loss_func(per_token_loss):
            mask = batch["loss_mask"].float()
            logps = -(per_token_loss.float().view(mask.shape) * mask).sum(dim=1)
            if self._reference_mode:
                return (logps.sum() * 0.0), {"logps": logps.detach().clone()}
            answer_tokens = mask.sum(dim=1)
            losses, chosen, rejected = preference_loss(logps, batch["reference"].float(), answer_tokens, dpo.loss,
                                                       dpo.beta, dpo.simpo_gamma)
            real = batch["pair_mask"]
            m = real.shape[0]
            total = (losses * real).sum()
            report = torch.stack([total.detach(), (chosen * real).sum(), (rejected * real).sum(),
                                  ((chosen > rejected).float() * real).sum(), (logps[:m].detach() * real).sum(),
                                  (logps[m:].detach() * real).sum(), real.sum(),
                                  (answer_tokens.view(2, m) * real).sum()])
            return total * scale, {"metrics": report.double()}

        return loss_func

    def _reduce(self, results: list[dict]):
        from megatron.core import parallel_state  # loads megatron: only when used

        if self._reference_mode:
            self._reference_results = [r["logps"] for r in results]
            return 0.0
        local = torch.zeros(len(METRICS), dtype=torch.float64, device=current_device())
        if self.is_last_stage:
            for r in results:
                local += r["metrics"].to(local.device)
        # every tensor-parallel rank of a last stage holds the same sums: counted once each
        dist.all_reduce(local)
        local /= parallel_state.get_tensor_model_parallel_world_size()
        self._metrics = dict(zip(METRICS, local.tolist()))
        return self._metrics["loss_sum"] / max(1.0, self._metrics["pairs"])

    def train_step(self) -> dict:
        step_pairs = self.plan[self.step]
        self._step_pairs = sum(1 for p in step_pairs if p != batches.EMPTY)
        self._step_reference = self.reference
        if self._start_weights is not None:
            self._step_reference = self._live_reference(step_pairs)
        cpu_started = time.process_time()
        record = super().train_step()
        # this process's CPU seconds (every thread's) for the step: a figure that a busy shared
        # machine moves less than wall seconds (bench/dpo compares both)
        record["cpu_seconds"] = time.process_time() - cpu_started
        metrics, pairs = self._metrics, max(1.0, self._metrics["pairs"])
        if round(metrics["pairs"]) != self._step_pairs:  # the loss scale would be wrong
            raise RuntimeError(f"DPO step {self.step}: the ranks' micro batches hold {metrics['pairs']} pairs, "
                               f"the plan {self._step_pairs}")
        tokens = sum(self.pairs.positions(p) for p in step_pairs if p != batches.EMPTY)
        chosen, rejected = metrics["chosen_reward_sum"] / pairs, metrics["rejected_reward_sum"] / pairs
        # tokens_per_s counts the pairs' tokens, not padding; positions_per_s every position
        record.update({"pairs": self._step_pairs, "rewards_chosen": chosen, "rewards_rejected": rejected,
                       "rewards_margin": chosen - rejected, "rewards_accuracy": metrics["accuracy_sum"] / pairs,
                       "logps_chosen": metrics["chosen_logps_sum"] / pairs,
                       "logps_rejected": metrics["rejected_logps_sum"] / pairs,
                       "answer_tokens": round(metrics["answer_tokens"]), "tokens": tokens,
                       "positions_per_s": record["tokens_per_s"], "tokens_per_s": tokens / record["seconds"]})
        return record

    def validate(self) -> dict[str, float]:
        return {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], DPOTrainer, RunDir(Path(sys.argv[2])).dpo_error))
