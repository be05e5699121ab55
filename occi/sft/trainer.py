"""The SFT rank: the pretraining trainer (occi/train/trainer.py) with chat data and a loss over
assistant tokens.

What changes against pretraining:
- data: the packing plan of occi/sft/packing.py (epochs, packed or padded sequences, position
  ids and a block-diagonal causal attention mask per micro batch);
- loss: the sum over the step's assistant tokens divided by their number in the whole global
  batch (not a mean per micro batch), so a loss does not depend on how conversations are packed
  into sequences and micro batches; the count is logged with every step;
- schedule: sft.lr, epochs x steps per epoch, its own warmup; checkpoints in sft/checkpoints;
- start: the run's latest checkpoint (pretraining, or the imported base), weights only; a
  restart resumes from the newest SFT checkpoint with optimizer and schedule.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from occi.basemodel import vocab_size
from occi.errors import OcciError
from occi.rundir import RunDir
from occi.sft import packing
from occi.train import checkpoints
from occi.train.config import TrainConfig
from occi.train.trainer import Trainer, current_device, main


def sft_train_config(cfg, steps: int) -> TrainConfig:
    """The run's parallel layout with SFT's batch, schedule and checkpoint settings."""
    sft = cfg.sft
    try:
        return dataclasses.replace(
            cfg.train, micro_batch_size=sft.micro_batch_size, global_batch_size=sft.global_batch_size, steps=steps,
            lr=sft.lr, min_lr=sft.min_lr, warmup_steps=min(steps - 1, int(sft.warmup_fraction * steps)),
            lr_schedule=sft.lr_schedule, weight_decay=sft.weight_decay, save_interval=sft.save_interval,
            log_interval=sft.log_interval, eval_interval=steps, keep_last=sft.keep_last,
            stop_after_steps=sft.stop_after_steps)
    except ValueError as err:
        raise OcciError(f"{cfg.source_file}: sft: {err}") from None


def sft_seq_length(cfg, model_cfg) -> int:
    return min(cfg.sft.seq_length or model_cfg.seq_length, model_cfg.seq_length)


class SFTTrainer(Trainer):
    def _train_config(self) -> TrainConfig:
        run = RunDir(self.run_dir)
        self.seq_length = sft_seq_length(self.cfg, self.model_cfg)
        self.model_cfg = dataclasses.replace(self.model_cfg, seq_length=self.seq_length)
        self.conversations = packing.Conversations.load(run.sft_data / "conversations.npz")
        self.plan = packing.plan(self.conversations, self.cfg.sft.epochs, self.seq_length,
                                 self.cfg.sft.global_batch_size, self.cfg.sft.packing, self.cfg.seed)
        return sft_train_config(self.cfg, len(self.plan))

    def _vocab_size(self) -> int:
        return vocab_size(self.model_cfg, self.run_dir)

    def _build_data(self) -> None:
        self.checkpoint_folder = RunDir(self.run_dir).sft_checkpoints
        self.valid_data = {}

    def _log_folder(self) -> Path:
        return RunDir(self.run_dir).sft

    def _stability_guard(self):
        # SFT's steps follow a fixed plan of conversations (no data order to skip batches of)
        return None

    def _resume(self) -> int:
        step = checkpoints.load_latest(self)
        if step:
            self.log.message(f"resumed SFT from step {step}")
            return step
        iteration = checkpoints.latest_iteration(self.run_dir)
        if iteration is None:
            raise OcciError(f"{RunDir(self.run_dir).checkpoints}: no checkpoint to fine-tune; "
                            "run `occi train` (or `occi import` for a base model) first")
        path = checkpoints.checkpoint_dir(self.run_dir, iteration)
        checkpoints.load_weights(self, path)
        self.log.message(f"fine-tuning the weights of {path} ({len(self.plan)} steps, "
                         f"{self.cfg.sft.epochs} epochs of {len(self.conversations)} conversations)")
        return 0

    def _micro_batches(self, step: int) -> list[dict]:
        t = self.train
        sequences = self.plan[step]
        count = t.global_batch_size // (t.micro_batch_size * t.data_parallel)
        pad = 0  # any id: padded positions are neither attended to by real tokens nor trained on
        return [packing.batch(self.conversations,
                              sequences[(m * t.data_parallel + self.dp_rank) * t.micro_batch_size:]
                              [:t.micro_batch_size], self.seq_length, pad) for m in range(count)]

    def _loss_func(self, batch: dict):
        # megatron divides the returned loss by the micro batch count, DDP averages the gradients
        # over data-parallel ranks: scaling undoes both, leaving d(sum of losses / loss tokens)
        t = self.train
        scale = (t.global_batch_size // t.micro_batch_size) / max(1, self._loss_tokens)

        def loss_func(per_token_loss):
            mask = batch["loss_mask"].view(-1).float()
            total = (per_token_loss.view(-1).float() * mask).sum()
            return total * scale, {"sum": total.detach().clone(), "count": mask.sum().detach()}

        return loss_func

    def _reduce(self, results: list[dict]) -> float:
        from megatron.core import parallel_state  # loads megatron: only when used

        local = torch.zeros(2, dtype=torch.float64, device=current_device())
        if self.is_last_stage:
            for r in results:
                local[0] += r["sum"].double()
                local[1] += r["count"].double()
        # over every rank: the last pipeline stage of each data-parallel rank adds its share, and
        # each of the tensor-parallel ranks the same share again (their ratio is unchanged)
        dist.all_reduce(local)
        self._counted = round(local[1].item() / parallel_state.get_tensor_model_parallel_world_size())
        return (local[0] / local[1].clamp(min=1)).item()

    def train_step(self) -> dict:
        sequences = self.plan[self.step]
        self._loss_tokens = packing.loss_tokens(self.conversations, sequences)
        record = super().train_step()
        if self._counted != self._loss_tokens:  # the gradient scale would be wrong
            raise RuntimeError(f"SFT step {self.step}: the loss masks of all ranks hold {self._counted} assistant "
                               f"tokens, the plan {self._loss_tokens}")
        tokens = sum(self.conversations.positions(i) for sequence in sequences for i in sequence)
        # tokens_per_s counts conversation tokens, not padding; positions_per_s counts every position;
        # loss_tokens: what the loss functions of all ranks together counted (equal to the plan's)
        record.update({"loss_tokens": self._counted, "tokens": tokens,
                       "positions_per_s": record["tokens_per_s"], "tokens_per_s": tokens / record["seconds"],
                       "loss_tokens_per_s": self._loss_tokens / record["seconds"]})
        return record

    def validate(self) -> dict[str, float]:
        return {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], SFTTrainer, RunDir(Path(sys.argv[2])).sft_error))
