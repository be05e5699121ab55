"""The train stage's model card sections: the pretraining (steps, tokens, schedule, losses, loss curve)
and its stability events."""
from __future__ import annotations

from pathlib import Path

from occi.plots import pyplot, save_png
from occi.report.card_model import MISSING, model_of
from occi.report.markdown_text import markdown_table
from occi.rundir import RunDir
from occi.train import goldfish


def training(cfg, run: RunDir, out_dir: Path) -> str:
    from occi.train.logs import read_log  # loads torch: only when used

    records = read_log(run.train)
    train = {r["step"]: r for r in records if r.get("kind") == "train"}
    if not train:
        return MISSING.format(what="the training log", path="train/log.jsonl")
    t = cfg.train
    steps = max(train)
    seq_length = model_of(cfg, run).seq_length
    tokens = steps * t.global_batch_size * seq_length
    valid = [r for r in records if r.get("kind") == "valid"]
    rows = [("Steps", f"{steps:,}"), ("Tokens seen", f"{tokens:,}"),
            ("Global batch", f"{t.global_batch_size} sequences x {seq_length} tokens"),
            ("Parallelism", f"tensor {t.tensor_parallel}, pipeline {t.pipeline_parallel}, data {t.data_parallel}"),
            ("Optimizer", f"AdamW (beta1 {t.adam_beta1}, beta2 {t.adam_beta2}, weight decay {t.weight_decay})"),
            ("Learning rate", f"{t.lr:g} peak, {t.warmup_steps} warmup steps, {t.lr_schedule} decay to {t.min_lr:g}"),
            ("Precision", {"auto": "bf16 on GPU, fp32 on CPU"}.get(t.precision, t.precision)),
            ("Final training loss", f"{train[steps]['loss']:.4f}")]
    if t.goldfish is not None:
        rows.append(("Memorisation control", goldfish.describe(t.goldfish.k, t.goldfish.h, goldfish.logged_totals(records))))
    if valid:
        last = valid[-1]["loss"]
        rows.append(("Final validation loss (mean over languages)", f"{sum(last.values()) / len(last):.4f}"))
    text = [markdown_table(["", ""], rows), "", "![training and validation loss](loss_curve.png)"]
    plot_loss(train, valid, out_dir / "loss_curve.png")
    return "\n".join(text)


def plot_loss(train: dict, valid: list, path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    steps = sorted(train)
    ax.plot(steps, [train[s]["loss"] for s in steps], label="training loss", color="#2b7bba")
    if valid:
        ax.plot([v["step"] for v in valid], [sum(v["loss"].values()) / len(v["loss"]) for v in valid],
                marker="o", label="validation loss (mean over languages)", color="#e66101")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """`## Training` and, when the run had stability events, their section."""
    from occi.report.stability_section import stability_section  # loads torch: only when used

    return "\n\n".join(["## Training", training(cfg, run, out_dir), *stability_section(cfg, run)])
