"""`occi plan CONFIG --cluster NAME`: GPU-hours, wall time, energy and cost of a run before it is submitted.

Training compute is the model's FLOPs per token (6 x matmul parameters + attention, as training
computes MFU: occi/train/model.py) times the token budget (steps x global batch x sequence length).
GPU-seconds = FLOPs / (peak FLOP/s of one device x MFU); the peak comes from the cluster profile
(or train.peak_tflops), the MFU from an earlier run of the same run directory (the mean of its
logged steps) or DEFAULT_MFU. Energy is GPU-hours x the device's board power (an upper bound for the
GPUs alone: CPUs, memory, network and cooling are not in it); cost is GPU-hours x the card's price.
It also predicts the peak memory of one GPU (occi/train/memory.py) against the profile's
gpu_memory_gib, with the cheapest change that makes a layout fit when it does not.
The estimate is written to <run>/plan.json, which the card compares with what the run used,
and the memory breakdown is drawn in <run>/plan-memory.png.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_write_json
from occi.rundir import RunDir
from occi.families import model_config
from occi.slurm.config import ClusterProfile, load_profile, time_seconds
from occi.slurm.memory_plot import memory_png
from occi.train import memory
from occi.train.config import BaseModelConfig, flops_per_token, padded_vocab_size
from occi.train.memory import describe_fix, GIB

DEFAULT_MFU = 0.35
"""Model FLOPs utilisation assumed without a measurement: below the 38-43% BF16 MFU Meta reports for
Llama 3 405B pretraining on H100s (Llama 3 paper, Table 4), as a smaller job on a shared
cluster rarely reaches a tuned flagship run's efficiency."""


def model_shape(cfg: RunConfig, run: RunDir):
    """The run's model shape: the recipe's, or the base's config.json (imported into the run, a local
    folder, or already in the Hugging Face cache: a plan downloads nothing)."""

    if not isinstance(cfg.model, BaseModelConfig):
        if cfg.model is None:
            raise OcciError(f"{cfg.source_file}: the config has no model: to plan")
        return cfg.model
    candidates = [run.base / "config.json", Path(cfg.model.base) / "config.json"]
    try:
        from huggingface_hub import try_to_load_from_cache  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

        cached = try_to_load_from_cache(cfg.model.base, "config.json", revision=cfg.model.revision)
        if isinstance(cached, str):
            candidates.append(Path(cached))
    except Exception:  # not a hub id (a folder path): nothing cached under it
        pass
    for path in candidates:
        if path.is_file():
            return model_config(json.loads(path.read_text(encoding="utf-8")), cfg.model.seq_length, str(path))
    raise OcciError(f"the base model {cfg.model.base}'s config.json is neither imported ({run.base}) nor in the "
                    f"Hugging Face cache; run `occi fetch {cfg.source_file}` (or `occi import`) first")


def measured_mfu(run: RunDir) -> tuple[float | None, str]:
    """The mean MFU of the run's logged training steps, and where it comes from."""
    from occi.train.logs import read_log  # loads torch: only when used

    values = [r["mfu"] for r in read_log(run.train) if r.get("kind") == "train" and isinstance(r.get("mfu"), (int, float))
              and 0 < r["mfu"] <= 1]
    if not values:
        return None, ""
    return sum(values) / len(values), f"measured: mean of {len(values)} logged step(s) in {run.train / 'log.jsonl'}"


def estimate(cfg: RunConfig, run: RunDir, profile: ClusterProfile, cluster: str, mfu: float | None = None) -> dict:

    t = cfg.train
    model = model_shape(cfg, run)
    vocab = padded_vocab_size(cfg.tokenizer.vocab_size, model, t.tensor_parallel)
    tokens = t.steps * t.global_batch_size * model.seq_length
    per_token = flops_per_token(model, vocab)
    flops = per_token * tokens
    peak = t.peak_tflops or profile.gpu_peak_tflops
    if not peak:
        raise OcciError(f"cluster {cluster!r}: the profile has no gpu_peak_tflops (peak dense bf16 TFLOP/s of one "
                        "device); add it to the profile, or set train.peak_tflops in the config")
    if mfu is not None:
        used_mfu, mfu_source = mfu, "given with --mfu"
    else:
        used_mfu, mfu_source = measured_mfu(run)
        if used_mfu is None:
            used_mfu, mfu_source = DEFAULT_MFU, f"default {DEFAULT_MFU} (no measured run; occi/slurm/estimate.py says why)"
    gpus = t.world_size
    gpu_hours = flops / (peak * 1e12 * used_mfu) / 3600
    wall_hours = gpu_hours / gpus
    nodes = math.ceil(gpus / profile.gpus_per_node)
    billed_gpu_hours = nodes * profile.gpus_per_node * wall_hours  # whole nodes are allocated for training
    price = cfg.card.price_per_gpu_hour
    tdp = profile.gpu_tdp_watts
    return {
        "cluster": cluster, "gpu_model": profile.gpu_model or None, "gpu_peak_tflops": peak,
        "gpu_tdp_watts": tdp, "gpus": gpus, "nodes": nodes, "gpus_per_node": profile.gpus_per_node,
        "parameters": model.parameters(vocab), "vocab_size": vocab, "seq_length": model.seq_length,
        "tokens": tokens, "flops_per_token": per_token, "flops": flops,
        "mfu": used_mfu, "mfu_source": mfu_source,
        "gpu_hours": gpu_hours, "billed_gpu_hours": billed_gpu_hours, "wall_hours": wall_hours,
        "jobs": max(1, math.ceil(wall_hours * 3600 / time_seconds(profile.gpu_time))), "job_time_limit": profile.gpu_time,
        "energy_kwh": gpu_hours * tdp / 1000 if tdp else None,
        "energy_basis": "GPU-hours x board power (GPUs only, at their power limit)" if tdp else
                        "not estimated: the profile has no gpu_tdp_watts",
        "price_per_gpu_hour": price, "currency": cfg.card.currency,
        "cost": billed_gpu_hours * price if price is not None else None,
        "memory": memory_plan(cfg, model, vocab, profile),
    }


def memory_plan(cfg: RunConfig, model, vocab: int, profile: ClusterProfile) -> dict:
    """The predicted peak memory of one GPU, its breakdown, and whether (and with what change) it fits."""
    layout = memory.Layout.of(cfg.train, model)
    top = memory.peak(memory.estimate(model, vocab, layout))
    result = {"peak_bytes": top.total, "stage": top.stage, "breakdown": memory.breakdown(top, layout),
              "parts": {part: getattr(top, part) for part in ("weights", "gradients", "optimizer", "activations",
                                                              "recompute_buffer", "logits")},
              "reserve_gib": memory.RUNTIME_RESERVE_GIB, "gpu_memory_gib": profile.gpu_memory_gib,
              "headroom_bytes": None, "fits": None, "fix": None}
    if profile.gpu_memory_gib:
        result["headroom_bytes"] = profile.gpu_memory_gib * memory.GIB - memory.RUNTIME_RESERVE_GIB * memory.GIB - top.total
        result["fits"] = memory.fits(top.total, profile.gpu_memory_gib)
        if not result["fits"]:
            result["fix"] = memory.cheapest_fix(cfg.train, model, vocab, profile.gpu_memory_gib)
    return result


def memory_refusal(cfg: RunConfig, run: RunDir, profile: ClusterProfile, cluster: str) -> tuple[str, str] | None:
    """(the shortfall, the cheapest change that fits, computed) when the training layout is predicted
    not to fit the profile's GPUs; None when it fits or the profile states no memory. Raises OcciError
    when the model's shape cannot be read (a base not fetched)."""
    if not profile.gpu_memory_gib:
        return None


    model = model_shape(cfg, run)
    vocab = padded_vocab_size(cfg.tokenizer.vocab_size, model, cfg.train.tensor_parallel)
    result = memory_plan(cfg, model, vocab, profile)
    if result["fits"]:
        return None
    usable = profile.gpu_memory_gib - memory.RUNTIME_RESERVE_GIB
    shortfall = (f"training is predicted to need {result['peak_bytes'] / memory.GIB:.1f} GiB per GPU (pipeline stage "
                 f"{result['stage']}), {-result['headroom_bytes'] / memory.GIB:.1f} GiB more than {cluster}'s "
                 f"{profile.gpu_memory_gib:g} GiB less the {memory.RUNTIME_RESERVE_GIB:g} GiB runtime reserve ({usable:g} GiB)")
    fix = result["fix"]
    if fix is None:
        return shortfall, ("no change of recompute, micro batch, sequence parallelism, distributed optimizer or TP/PP "
                           "size at this GPU count fits: use more GPUs or a larger-memory cluster (`occi plan` shows "
                           "the breakdown)")
    fixed = memory.peak(memory.estimate(model, vocab, memory.Layout.of(dataclasses.replace(cfg.train, **fix), model)))
    return shortfall, f"the cheapest change that fits: {memory.describe_fix(fix)} (predicted {fixed.total / memory.GIB:.1f} GiB)"


def memory_line(plan: dict) -> str:
    """One line: the predicted peak per GPU, the headroom, and the fix when it does not fit."""
    memory = plan["memory"]
    peak = f"{memory['peak_bytes'] / GIB:.1f} GiB predicted peak per GPU"
    if memory["gpu_memory_gib"] is None:
        return f"{peak} (the profile has no gpu_memory_gib to compare with)"
    against = (f"of {memory['gpu_memory_gib']:g} GiB less {memory['reserve_gib']:g} GiB runtime reserve: "
               f"{memory['headroom_bytes'] / GIB:+.1f} GiB headroom")
    if memory["fits"]:
        return f"{peak} {against}, fits"
    fix = (f"fits with {describe_fix(memory['fix'])}" if memory["fix"] else
           "no single change of recompute, micro batch, sequence parallelism, distributed optimizer or TP/PP size fits")
    return f"{peak} {against}, DOES NOT FIT; {fix}"


def number(value: float) -> str:
    """A figure with the digits that matter: 5,242 / 163.8 / 0.000841."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.3g}"


def format_plan(plan: dict) -> str:
    cost = (f"{number(plan['cost'])} {plan['currency']} ({number(plan['billed_gpu_hours'])} billed GPU-hours x "
            f"{plan['price_per_gpu_hour']:g} {plan['currency']})" if plan["cost"] is not None
            else "not estimated: set card.price_per_gpu_hour in the config")
    energy = f"{number(plan['energy_kwh'])} kWh ({plan['energy_basis']})" if plan["energy_kwh"] is not None \
        else plan["energy_basis"]
    rows = [
        ("cluster", f"{plan['cluster']}: {plan['gpus']} x {plan['gpu_model'] or 'GPU'} on {plan['nodes']} node(s), "
                    f"{plan['gpu_peak_tflops']:g} TFLOP/s peak bf16 each"),
        ("model", f"{plan['parameters']:,} parameters, {plan['seq_length']} tokens per sequence"),
        ("tokens", f"{plan['tokens']:,}"),
        ("compute", f"{plan['flops']:.3e} FLOPs ({plan['flops_per_token']:.3e} per token: 6N + attention)"),
        ("MFU", f"{plan['mfu']:.3f} ({plan['mfu_source']})"),
        ("GPU-hours", f"{number(plan['gpu_hours'])} (billed as whole nodes: {number(plan['billed_gpu_hours'])})"),
        ("wall time", f"{number(plan['wall_hours'])} h in {plan['jobs']} job(s) of at most {plan['job_time_limit']}"),
        ("energy", energy),
        ("cost", cost),
        ("memory", memory_line(plan)),
        *[(f"  {name}", text) for name, text in plan["memory"]["breakdown"]],
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def plan(cfg: RunConfig, run: RunDir, cluster: str, mfu: float | None = None) -> dict:
    """The estimate, written to <run>/plan.json."""
    profile, _ = load_profile(cluster)
    result = estimate(cfg, run, profile, cluster, mfu)
    run.root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.plan, result)
    memory = result["memory"]
    gpus = {f"{profile.gpu_model or cluster} ({memory['gpu_memory_gib']:g} GiB)": memory["gpu_memory_gib"]} \
        if memory["gpu_memory_gib"] else {}
    memory_png([(cfg.name, memory["parts"])], gpus, memory["reserve_gib"], run.plan_memory_png)
    return result
