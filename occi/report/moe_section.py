"""The model card's part for a mixture-of-experts model: total and active parameters (FLOPs and
MFU count the active ones), the experts and their routing, the transformers architecture of the
export, and the PNG of expert load per layer from training (copied beside the card)."""
from __future__ import annotations

import shutil
from pathlib import Path

from occi.rundir import RunDir

PICTURE = "expert_load.png"
"""The expert-load PNG's name beside the card (and in the published repository)."""


def moe_section(model, run_dir: Path, vocab_size: int | None, out_dir: Path) -> list[str]:
    """["## Mixture of experts", text], or [] for a dense model."""
    if model is None or not model.is_moe:
        return []
    run = RunDir.of(run_dir)
    rows = []
    if vocab_size:
        total, active = model.parameters(vocab_size), model.parameters(vocab_size, active=True)
        rows.append(("Parameters: total / active per token", f"{total:,} / {active:,} ({100 * active / total:.0f} %)"))
    layers = [str(i) for i, moe in enumerate(model.moe_layers) if moe]
    rows += [("Routed experts per layer, used per token", f"{model.num_experts}, top-{model.moe_top_k}"),
             ("Expert FFN hidden size", model.expert_ffn_hidden_size),
             ("Shared expert", f"FFN hidden size {model.moe_shared_expert_ffn_hidden_size}"
              + (", sigmoid-gated" if model.moe_shared_expert_gate else "") if model.moe_shared_expert_ffn_hidden_size
              else "none (routed experts only)"),
             ("Mixture-of-experts layers", f"{len(layers)} of {model.num_layers}"
              + ("" if len(layers) == model.num_layers else f" ({', '.join(layers)}; the others dense)")),
             ("Router", "softmax over the experts, top-k " + ("renormalised" if model.moe_norm_top_k else "kept as they are")
              if model.moe_balancing != "expert_bias" else "sigmoid scores with a per-expert bias (aux-loss-free)"),
             ("Load balancing", {"aux_loss": f"auxiliary loss, coefficient {model.moe_aux_loss_coeff}",
                                 "expert_bias": f"per-expert bias, update rate {model.moe_bias_update_rate}",
                                 "none": "none"}[model.moe_balancing]),
             ("Token dropping", f"capacity factor {model.moe_capacity_factor}" if model.moe_capacity_factor else "none")]
    hf_config = run.read_json(run.hf / "config.json") or {}
    if hf_config.get("architectures"):
        rows.append(("transformers architecture", f"`{hf_config['architectures'][0]}`"))
    text = ["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    text += ["", "Training FLOPs and MFU count the active parameters (6 x active + attention per token)."]
    if run.expert_load_plot.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run.expert_load_plot, out_dir / PICTURE)
        text += ["", f"![share of routed tokens per expert and layer during training]({PICTURE})"]
    return ["## Mixture of experts", "\n".join(text)]
