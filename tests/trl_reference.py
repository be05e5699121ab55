"""TRL's DPOTrainer on an occi run's data, as the reference occi's DPO must match step by step.

Apples to apples: the base model's own weights (what `occi import` loaded), fp32, no dropout,
the pairs in the order occi's plan trains them (TRL's sampler replaced by a sequential one), one
step per global batch (no gradient accumulation), Adam with the run's betas and epsilon, the
same constant learning rate, no clipping (a bound no gradient reaches), no truncation.
"""
from __future__ import annotations

import json
from pathlib import Path


def trl_steps(base: Path, tokenizer_dir: Path, rows: list[dict], order: list[int], dpo: dict, train: dict,
              out: Path) -> tuple[list[dict], object]:
    """Per-step logs of TRL's DPOTrainer over `rows` taken in `order`, and the trainer."""
    import torch
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    class InOrder(DPOTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    dataset = Dataset.from_list([{k: rows[i][k] for k in ("prompt", "chosen", "rejected")} for i in order])
    args = DPOConfig(
        output_dir=str(out), per_device_train_batch_size=dpo["global_batch_size"], gradient_accumulation_steps=1,
        learning_rate=dpo["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta1=train["adam_beta1"], adam_beta2=train["adam_beta2"], adam_epsilon=train["adam_eps"],
        optim="adamw_torch", max_grad_norm=1e9, beta=dpo["beta"], loss_type=["sigmoid"], max_length=None,
        precompute_ref_log_probs=False, disable_dropout=True, num_train_epochs=1, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, bf16=False, fp16=False, seed=0, dataset_num_proc=None,
        dataloader_num_workers=0)
    trainer = InOrder(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    steps = [entry for entry in trainer.state.log_history if "loss" in entry and "grad_norm" in entry]
    (out / "trl_log.json").write_text(json.dumps(steps, indent=1))
    return steps, trainer
