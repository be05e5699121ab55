"""The training loop of one process (one rank of a torchrun or srun launch).

megatron-core does the heavy lifting: GPTModel, tensor/pipeline parallel state, DDP, the
megatron optimizer and its LR scheduler, the pipeline schedules, BlendedMegatronDatasetBuilder
and dist_checkpointing. This module wires them together, and adds what a run needs around
them: deterministic data order (a step's samples depend only on the step, so a resumed run sees
exactly the data an uninterrupted one would), per-language validation, logs and experiment trackers
(occi/train/trackers.py), checkpoints, the stability guard (occi/train/stability.py), and a clean
stop on SIGTERM/SIGUSR1 (occi/train/stop.py).
"""
from __future__ import annotations

import json
import math
import os
import resource
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml

from occi import config as config_module, lifeline
from occi.basemodel import run_model_config
from occi.config import RunConfig
from occi.errors import OcciError
from occi.rundir import RunDir
from occi.train import checkpoints, cpu_shim, goldfish, knobs, stability
from occi.train.affinity import pin_this_rank
from occi.train.config import TrainConfig, flops_per_token
from occi.train.data_order import LanguageSamples, trained_languages
from occi.train.logs import TrainLog
from occi.train.model import build_model, expert_tensor_parallel, initialize_independent_of_layout
from occi.train.moe_logs import ExpertLoad
from occi.train.stability import StabilityGuard
from occi.train.stop import StopRequest

KNOWN_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "MI250X": 191.5, "GH200": 989.0}
"""Dense bf16 TFLOP/s per device (MI250X: per GCD), for the MFU estimate."""


def current_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def dtype_for(train: TrainConfig) -> torch.dtype:
    if train.precision == "bf16" or (train.precision == "auto" and torch.cuda.is_available()):
        return torch.bfloat16
    return torch.float32


def setup_distributed(train: TrainConfig, seed: int, model=None) -> None:
    """Process group, megatron parallel state and seeds (after the CPU shim where needed); model
    (a ModelConfig): the run's shape, where its experts are not split over tensor-parallel ranks
    (occi/train/model.py expert_tensor_parallel)."""
    from megatron.core import parallel_state, tensor_parallel  # loads megatron: only when used

    on_cpu = cpu_shim.apply()
    if not dist.is_initialized():
        if not on_cpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="gloo" if on_cpu else "nccl")
    if dist.get_world_size() != train.world_size:
        raise RuntimeError(f"launched with {dist.get_world_size()} processes, the config needs "
                           f"{train.world_size} (tensor x context x pipeline x data parallel)")
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=train.tensor_parallel, pipeline_model_parallel_size=train.pipeline_parallel,
        context_parallel_size=train.context_parallel, expert_model_parallel_size=train.expert_parallel,
        expert_tensor_parallel_size=expert_tensor_parallel(model, train) if model is not None else None)
    tensor_parallel.model_parallel_cuda_manual_seed(seed)
    torch.manual_seed(seed)


def lr_scheduler(optimizer, train: TrainConfig):
    """Megatron's scheduler of the learning rate: a linear warmup from 0 over `warmup_steps`, then
    `lr_schedule` down to `min_lr` at `steps` (constant stays at `lr`; wsd stays at `lr` until the
    last `wsd_decay_fraction` of the steps, then decays linearly). Weight decay stays constant."""
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler  # loads megatron: only when used

    schedule = {"cosine": "cosine", "wsd": "WSD", "constant": "constant", "linear": "linear"}[train.lr_schedule]
    return OptimizerParamScheduler(
        optimizer, init_lr=0.0, max_lr=train.lr, min_lr=train.min_lr,
        lr_warmup_steps=train.warmup_steps, lr_decay_steps=train.steps, lr_decay_style=schedule,
        start_wd=train.weight_decay, end_wd=train.weight_decay, wd_incr_steps=train.steps,
        wd_incr_style="constant",
        wsd_decay_steps=max(1, round(train.wsd_decay_fraction * train.steps)) if schedule == "WSD" else None,
        lr_wsd_decay_style="linear" if schedule == "WSD" else None,
        # the config's schedule, not the checkpoint's: a run reconfigured to more steps re-plans
        # its schedule from the resumed step (checkpoints.load_latest says what changed)
        override_opt_param_scheduler=True, use_checkpoint_opt_param_scheduler=False,
    )


class Trainer:
    """Owns the model, optimizer, data and logs of one rank.

    SFT (occi/sft/trainer.py) is this trainer with other data, loss normalisation, schedule,
    checkpoint folder and starting point: the methods marked "hook" are what it replaces."""

    def __init__(self, cfg: RunConfig, run_dir: Path):
        from megatron.core import parallel_state  # loads megatron: only when used
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads  # loads megatron: only when used
        from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer  # loads megatron: only when used

        self.cfg, self.run_dir = cfg, Path(run_dir)

        self.model_cfg = run_model_config(cfg, self.run_dir)  # a recipe's shape, or the imported base's
        self.train = self._train_config()
        self.checkpoint_folder = RunDir(self.run_dir).checkpoints
        self.vocab_size = self._vocab_size()
        self.dtype = dtype_for(self.train)
        on_gpu = torch.cuda.is_available()
        model = build_model(self.model_cfg, self.train, self.vocab_size, self.dtype)
        if self.model_cfg.is_moe:
            initialize_independent_of_layout(model, self.model_cfg, cfg.seed)
            # Experts are expert-parallel parameters at EP=1 too (reduced over the expert data-parallel
            # group, the data-parallel group there): the optimizer is then the same chain of a dense
            # and an expert optimizer at every EP size, and its checkpoint moves between EP sizes.
            for name, param in model.named_parameters():
                if ".experts." in name:
                    param.allreduce = False
        if on_gpu:
            model.cuda()
        self.expert_load = None
        if self.model_cfg.is_moe:
            self.expert_load = ExpertLoad(model, self.model_cfg.num_layers, self.model_cfg.num_experts,
                                          sum(self.model_cfg.moe_layers), current_device())
        ddp = DistributedDataParallelConfig(grad_reduce_in_fp32=True, **knobs.ddp_settings(self.train))
        self.model = DistributedDataParallel(model.config, ddp, model)
        model.config.finalize_model_grads_func = finalize_model_grads
        self.optimizer = get_megatron_optimizer(OptimizerConfig(
            optimizer="adam", lr=self.train.lr, min_lr=self.train.min_lr, weight_decay=self.train.weight_decay,
            adam_beta1=self.train.adam_beta1, adam_beta2=self.train.adam_beta2, adam_eps=self.train.adam_eps,
            clip_grad=self.train.clip_grad if on_gpu else 0.0, bf16=self.dtype == torch.bfloat16,
            params_dtype=self.dtype, use_distributed_optimizer=self.train.distributed_optimizer,
            overlap_param_gather=self.train.overlap_param_gather,
        ), [self.model])
        self.scheduler = lr_scheduler(self.optimizer, self.train)
        self.dp_rank = parallel_state.get_data_parallel_rank()
        self.is_last_stage = parallel_state.is_pipeline_last_stage()
        self.language_samples = None  # pretraining counts the samples it read per language
        self._build_data()
        self.step = 0
        self.guard = self._stability_guard()
        self.log = self._open_log()
        self.flops_per_token = flops_per_token(self.model_cfg, self.model_cfg.vocab_size or self.vocab_size)
        self.peak_tflops = self.train.peak_tflops or _known_peak_tflops()

    # -------------------------------------------------------------------- hooks

    def _train_config(self) -> TrainConfig:
        """hook: parallel layout, batch and schedule."""
        return self.cfg.train

    def _vocab_size(self) -> int:
        """hook: the tokenizer's vocabulary size (before padding)."""
        self.blend = RunDir(self.run_dir).read_blend()
        return self.blend["vocab_size"]

    def _build_data(self) -> None:
        """hook: this rank's data."""
        self.train_data, self.valid_data = _build_datasets(self.cfg, self.blend, self.model_cfg.seq_length)
        self.train_languages = trained_languages(self.cfg, self.blend)
        self.language_samples = LanguageSamples(self.train_data, self.train_languages)

    def _log_folder(self) -> Path:
        """hook: where log.jsonl and TensorBoard go."""
        return RunDir(self.run_dir).train

    def _stability_guard(self) -> StabilityGuard | None:
        """hook: the stability guard over this trainer's steps (occi/train/stability.py)."""
        return StabilityGuard(self.train.stability, RunDir(self.run_dir).stability_events, current_device())

    def _resume(self) -> int:
        """hook: loads the starting weights (and state); returns the step reached."""
        step = checkpoints.load_latest(self)
        if step:
            self.log.message(f"resumed from step {step}")
        elif checkpoints.latest_iteration(self.run_dir) == 0:
            self.log.message("continuing from the imported base model (optimizer and schedule start afresh)")
        return step

    def _loss_func(self, batch: dict):
        """hook: megatron's loss function for one micro batch: the mean over its loss_mask."""

        def loss_func(per_token_loss):
            mask = batch["loss_mask"].view(-1).float()
            total = torch.stack([(per_token_loss.view(-1).float() * mask).sum(), mask.sum()])
            if self.train.context_parallel > 1:
                # the whole sequence's sum and count; the gradient flows through this rank's part
                # (megatron's schedule multiplies the loss by the CP size against the averaging)
                from megatron.core import parallel_state  # loads megatron: only when used

                whole = total.detach().clone()
                dist.all_reduce(whole, group=parallel_state.get_context_parallel_group())
                total = total + (whole - total.detach())
            loss = total[0] / total[1].clamp(min=1.0)
            return loss, {"loss": loss.detach().clone()}  # megatron divides `loss` in place

        return loss_func

    def _reduce(self, results: list[dict]) -> float:
        """hook: the step's loss from the micro batches' reports, the same on every rank."""
        local = sum(r["loss"].item() for r in results) / len(results) if self.is_last_stage and results else 0.0
        return _average_over_last_stage(local)

    # -------------------------------------------------------------------- data

    def _batch_of(self, step: int) -> int:
        """The batch (position in the data order) that step `step` trains on."""
        return self.guard.order.batch(step) if self.guard is not None else step

    def _micro_batches(self, step: int) -> list[dict]:
        """This rank's micro batches of `step`: samples depend only on the step's batch and DP rank."""
        t = self.train
        per_step = t.global_batch_size
        count = t.global_batch_size // (t.micro_batch_size * t.data_parallel)
        batch = self._batch_of(step)
        batches = []
        for micro in range(count):
            start = batch * per_step + (micro * t.data_parallel + self.dp_rank) * t.micro_batch_size
            batches.append(_collate([self.train_data[i] for i in range(start, start + t.micro_batch_size)]))
        if t.goldfish is not None:
            masked = [goldfish.apply(batch, t.goldfish.k, t.goldfish.h) for batch in batches]
            before = sum(int(b["loss_mask"].sum()) for b in batches)
            after = sum(int(b["loss_mask"].sum()) for b in masked)
            self._goldfish_counts = (before - after, before)
            batches = masked
        return batches

    def _goldfish_record(self) -> dict:
        """The step's Goldfish counts over the whole global batch: the loss tokens it dropped and the
        loss tokens there were before (every rank of a data-parallel group holds other samples; the
        tensor, pipeline and context-parallel ranks of one data-parallel rank hold the same ones)."""
        from megatron.core import parallel_state  # loads megatron: only when used

        counts = torch.tensor(self._goldfish_counts, dtype=torch.int64, device=current_device())
        dist.all_reduce(counts, group=parallel_state.get_data_parallel_group())
        return {"goldfish_dropped": int(counts[0]), "goldfish_loss_tokens": int(counts[1])}

    # -------------------------------------------------------------------- steps

    def _forward_backward(self, batches: list[dict], forward_only: bool, fault: str | None = None) -> float:
        """The mean loss of the micro batches (gradients accumulated unless forward_only); `fault`:
        a fault-injection drill for this batch (occi/train/stability.py)."""
        from megatron.core import parallel_state  # loads megatron: only when used
        from megatron.core.pipeline_parallel import get_forward_backward_func  # loads megatron: only when used

        device = current_device()
        last_dp_rank = self.dp_rank == parallel_state.get_data_parallel_world_size() - 1

        def forward_step(data_iterator, model):
            batch = {k: v.to(device) for k, v in next(data_iterator).items()}
            if self.train.context_parallel > 1:  # this rank's 2 of the sequence's 2 x CP chunks
                from megatron.core.utils import get_batch_on_this_cp_rank  # loads megatron: only when used

                batch = get_batch_on_this_cp_rank(batch)
            # a batch without an attention mask (DPO's) leaves causal masking to the model's mask type
            output = model(batch["tokens"], batch["position_ids"], batch.get("attention_mask"), labels=batch["labels"])
            if fault is None:
                return output, self._loss_func(batch)
            stability.poison_gradients(fault, output, last_dp_rank)
            loss_func = self._loss_func(batch)
            return output, lambda per_token_loss: loss_func(stability.poison(fault, per_token_loss))

        results = get_forward_backward_func()(
            forward_step_func=forward_step, data_iterator=iter(batches), model=[self.model],
            num_microbatches=len(batches), seq_length=self.model_cfg.seq_length,
            micro_batch_size=self.train.micro_batch_size, forward_only=forward_only,
        )
        return self._reduce(results)

    def train_step(self) -> dict | None:
        """One optimizer step: its record, or None when the stability guard rejected it."""
        started = time.monotonic()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        self._goldfish_counts = None  # set by _micro_batches when the Goldfish loss is on
        batches = self._micro_batches(self.step)
        batch = self._batch_of(self.step)
        fault = self.guard.faults.get(batch) if self.guard is not None else None
        loss = self._forward_backward(batches, forward_only=False, fault=fault)
        if self.guard is not None:
            reason = self.guard.verdict(loss, [b.grad_data for b in self.model.buffers + self.model.expert_parallel_buffers])
            if reason:
                if self.expert_load is not None:
                    self.expert_load.collect(len(batches))  # the rejected step's routing counts are dropped
                self._bad_step(reason, batch, loss)
                return None
            self.guard.accept(loss)
        _, grad_norm, _ = self.optimizer.step()
        self.scheduler.step(increment=1)
        self.step += 1
        seconds = time.monotonic() - started
        tokens = self.train.global_batch_size * self.model_cfg.seq_length
        tflops = self.flops_per_token * tokens / seconds / dist.get_world_size() / 1e12
        record = {"step": self.step, "batch": batch, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                  "grad_norm": float(grad_norm) if grad_norm is not None else None,
                  "tokens_per_s": tokens / seconds, "tflops_per_device": tflops,
                  "mfu": tflops / self.peak_tflops if self.peak_tflops else None, "seconds": seconds,
                  "memory_gib": _peak_memory_gib()}
        if self._goldfish_counts is not None:
            record.update(self._goldfish_record())
        if self.language_samples is not None:
            skipped = [b for b in self.guard.order.skipped if b < batch] if self.guard is not None else []
            record["language_samples"] = self.language_samples.trained(batch + 1, self.train.global_batch_size, skipped)
        if self.expert_load is not None:
            record.update(self.expert_load.collect(len(batches)))
        return record

    def validate(self) -> dict[str, float]:
        """Mean loss on each language's held-out sequences."""
        self.model.eval()
        losses = {}
        with torch.no_grad():
            for code, dataset in self.valid_data.items():
                mbs = self.train.micro_batch_size
                samples = min(self.train.eval_samples, len(dataset))
                batches = [_collate([dataset[i] for i in range(s, min(s + mbs, samples))]) for s in range(0, samples, mbs)]
                losses[code] = self._forward_backward(batches, forward_only=True) if batches else float("nan")
        self.model.train()
        return losses

    # -------------------------------------------------------------------- stability

    def _bad_step(self, reason: str, batch: int, loss: float) -> None:
        """Records a rejected step (every rank) and applies the policy: skip, rollback or stop."""
        t = self.train
        policy = t.stability.policy
        latest = checkpoints.latest_iteration(self.run_dir, self.checkpoint_folder)
        if policy == "rollback" and not latest:
            policy = "skip"  # nothing trained to go back to yet: dropping the update is all a rollback could do
        contents = stability.batch_contents(self.train_data, self.train_languages, batch * t.global_batch_size,
                                            t.global_batch_size)
        event = {"step": self.step + 1, "batch": batch, "reason": reason, "policy": policy,
                 "loss": loss if math.isfinite(loss) else None, "languages": sorted(contents),
                 "documents": contents}
        if policy == "rollback":
            event["rolled_back_to"] = latest
        self.guard.record(event, rank0=dist.get_rank() == 0)
        self.log.stability(event, self.guard.events)
        if policy == "stop":
            raise OcciError(f"train.stability.policy stop: step {event['step']} (batch {batch}) is bad: {reason}; "
                            f"the event is in {self.guard.events_file}; the weights are those of the last "
                            "checkpoint; change the data or the settings, or use policy skip or rollback")
        if policy == "rollback":
            checkpoints.finish_pending()
            self.step = checkpoints.load_latest(self)
            self.log.message(f"stability: rolled back to the checkpoint of step {self.step}; batch {batch} is skipped")

    def _open_log(self) -> TrainLog:
        """The log and its trackers (rank 0's), given the frozen config (the run's config.yaml). A
        tracker that cannot start (a server out of reach, a client error) stops every rank with
        one line, instead of rank 0 alone failing while the others wait for it."""
        problem = None
        try:
            log = TrainLog(self._log_folder(), enabled=dist.get_rank() == 0, trackers=self.train.trackers,
                           run_name=self.cfg.name,
                           resumed_step=checkpoints.latest_iteration(self.run_dir, self.checkpoint_folder) or 0)
            config_file = RunDir(self.run_dir).config_file
            text = config_file.read_text(encoding="utf-8") if config_file.exists() else ""
            log.config((yaml.safe_load(text) or {}) if text else {}, text)
        except Exception as err:  # tracker clients raise their own kinds
            problem = str(err).splitlines()[0][:300] if str(err) else ""
            problem = f"train.trackers {self.train.trackers}: cannot start ({type(err).__name__}: {problem})"
        failed = torch.tensor([1.0 if problem else 0.0], device=current_device())
        dist.all_reduce(failed, op=dist.ReduceOp.MAX)
        if failed.item():
            raise OcciError(problem or "train.trackers: rank 0 cannot start the experiment trackers")
        return log

    # -------------------------------------------------------------------- the run

    def run(self, stop: StopRequest | None = None) -> str:
        """Trains to the configured steps (resuming if possible); returns why it stopped."""
        stop = stop or StopRequest(self.run_dir)
        self.step = self._resume()
        launch_steps = 0
        while self.step < self.train.steps:
            record = self.train_step()
            checkpoints.poll_pending()
            if record is None:  # the stability guard rejected the step (and maybe rolled back)
                continue
            launch_steps += 1
            if self.step % self.train.log_interval == 0 or self.step == self.train.steps:
                self.log.step(record, self.train.steps)
            if self.step % self.train.eval_interval == 0 or self.step == self.train.steps:
                self.log.validation(self.step, self.validate())
            final = self.step == self.train.steps
            stopping = stop.agreed(current_device())
            limit = self.train.stop_after_steps is not None and launch_steps >= self.train.stop_after_steps
            if final or stopping or limit or self.step % self.train.save_interval == 0:
                if self.train.overlap_param_gather:  # the updated weights are gathered before the next forward
                    self.model.start_param_sync(force_sync=True)
                checkpoints.save(self)
            if stopping:
                self.log.message(f"signal {stop.name} received: "
                                 f"checkpoint saved at step {self.step}, stopping")
                return "signal"
            if limit and not final:
                return "limit"
        return "done"


def _known_peak_tflops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((value for key, value in KNOWN_PEAK_TFLOPS.items() if key in name), None)


def _peak_memory_gib() -> float:
    """Peak memory of this step (GPU: allocated by torch) or of this process (CPU: resident set)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _average_over_last_stage(local: float) -> float:
    """The value computed on the last pipeline stage, as seen by every rank."""
    from megatron.core import parallel_state  # loads megatron: only when used

    is_last = parallel_state.is_pipeline_last_stage()
    both = torch.tensor([local if is_last else 0.0, 1.0 if is_last else 0.0], dtype=torch.float64, device=current_device())
    dist.all_reduce(both)
    return (both[0] / both[1]).item()


def _collate(samples: list[dict]) -> dict:
    batch = {key: torch.stack([torch.as_tensor(s[key]) for s in samples]) for key in samples[0]}
    batch["attention_mask"] = batch["attention_mask"].bool()
    return batch


class _EodTokenizer:
    """What GPTDataset asks of a tokenizer: the vocabulary size and the end-of-document and pad ids."""

    def __init__(self, vocab_size: int, eod: int):
        self.vocab_size, self.eod, self.pad = vocab_size, eod, -1
        self.unique_identifiers = {"class": "occi-sentencepiece", "vocab_size": vocab_size, "eod": eod}


def _build_datasets(cfg: RunConfig, blend: dict, seq_length: int):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder  # loads megatron: only when used
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig  # loads megatron: only when used

    languages = trained_languages(cfg, blend)
    valid_languages = [c for c in cfg.languages if blend["languages"][c]["valid"]["documents"] > 0]
    train_blend = ([blend["languages"][c]["prefix"] for c in languages],
                   [blend["languages"][c]["weight"] for c in languages])
    dataset_config = GPTDatasetConfig(
        random_seed=cfg.seed, sequence_length=seq_length,
        blend_per_split=[train_blend, None, None],
        tokenizer=_EodTokenizer(blend["vocab_size"], blend["eod_id"]),
        reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False, create_attention_mask=True,
    )
    # spare batches for those the stability guard may skip
    stability_config = cfg.train.stability
    batches = cfg.train.steps + stability_config.max_skipped_batches + len(set(stability_config.skip_batches))
    samples = batches * cfg.train.global_batch_size
    train_data = BlendedMegatronDatasetBuilder(GPTDataset, [samples, 0, 0], lambda: True, dataset_config).build()[0]
    valid = {}
    for code in valid_languages:
        valid_config = GPTDatasetConfig(
            random_seed=cfg.seed, sequence_length=seq_length,
            blend_per_split=[None, ([blend["languages"][code]["valid_prefix"]], None), None],
            tokenizer=_EodTokenizer(blend["vocab_size"], blend["eod_id"]),
            reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False, create_attention_mask=True,
        )
        valid[code] = BlendedMegatronDatasetBuilder(
            GPTDataset, [0, cfg.train.eval_samples, 0], lambda: True, valid_config).build()[1]
    return train_data, valid


def _model_shape(cfg: RunConfig, run_dir: Path):
    """The run's ModelConfig for the parallel state; None where the base is not imported yet (the
    trainer then says so in one line)."""
    try:
        return run_model_config(cfg, run_dir)
    except OcciError:
        return None


def main(config_path: str, run_dir: str, trainer_class: type = Trainer, error_file: Path | None = None) -> int:
    """Entry point of one rank (of pretraining, or with another trainer class: of SFT)."""
    stop = StopRequest(Path(run_dir))  # first: a signal while starting up is kept, not fatal
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun rank ends with torchrun (occi/lifeline.py)
        lifeline.die_with_parent()

    cfg = config_module.load(config_path)
    pinned = pin_this_rank()  # before any thread pool starts
    if pinned:
        print(f"rank {os.environ.get('RANK', '0')}: {pinned}", flush=True)
    setup_distributed(cfg.train, cfg.seed, _model_shape(cfg, Path(run_dir)))
    try:
        trainer = trainer_class(cfg, Path(run_dir))
        try:
            trainer.run(stop)
            checkpoints.finish_pending()
        finally:
            trainer.log.close()
    except OcciError as err:
        if dist.get_rank() == 0:
            error_file = error_file or RunDir(Path(run_dir)).train_error
            error_file.parent.mkdir(parents=True, exist_ok=True)
            error_file.write_text(str(err) + "\n", encoding="utf-8")
        return 2
    finally:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1], sys.argv[2]))

