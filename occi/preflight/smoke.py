"""The doctor's training checks, run in a throw-away folder inside the run directory:

1. a 20-step training of a tiny model (two languages of the bundled demo corpus, a 600-piece
   tokenizer) at TP = the node's GPU count (CPU: the config's TP), stopped after 10 steps with a
   checkpoint and resumed to 20 by a second launch, then exported and compared with megatron's
   logits (the same code paths as `occi train` and `occi export`);
2. a few steps of the config's own model on random tokens of the config's vocabulary size, for
   tokens/s and MFU (which a later `occi plan` can use).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from occi.configtools import to_plain
from occi.data.indexed import IndexedDatasetWriter
from occi.fsutil import atomic_write_json, mark_done
from occi.preflight.report import Check
from occi.rundir import RunDir

SMOKE_MODEL = {"description": "the doctor's smoke-test model: 8 heads and 8 groups, so TP can be 1, 2, 4 or 8",
               "num_layers": 2, "hidden_size": 128, "ffn_hidden_size": 352, "num_attention_heads": 8,
               "num_query_groups": 8, "seq_length": 64}
SMOKE_STEPS, SMOKE_STOP = 20, 10
CPU_THROUGHPUT_MAX_PARAMETERS = 20_000_000
"""On CPU the config's model is measured only when it is this small (the demo's); bigger models
on CPU say nothing about a cluster."""


def _occi(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "occi.cli", *args], capture_output=True, text=True, timeout=timeout)


def smoke_tp(cfg, gpus: int) -> int:
    """TP of the tiny run: the node's GPUs, else the config's; a divisor of the smoke model's 8 heads."""
    wanted = gpus or cfg.train.tensor_parallel
    return max(tp for tp in (1, 2, 4, 8) if tp <= wanted)


def tiny_training(cfg, run: RunDir, gpus: int) -> list[Check]:
    folder = run.scratch("doctor-train")
    try:
        return _tiny_training(cfg, folder, smoke_tp(cfg, gpus))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tiny_training(cfg, folder: Path, tp: int) -> list[Check]:
    from occi import config as config_module  # loads pyarrow: only when used
    from occi.corpora.build import build as build_corpora  # loads numba, pyarrow, tqdm: only when used
    from occi.data.prepare import prepare  # loads pyarrow, tqdm: only when used
    from occi.tokenizer.train import train as train_tokenizer  # loads pyarrow: only when used

    languages = list(cfg.languages[:2])
    config_path = folder / "smoke.yaml"
    config_path.write_text(yaml.safe_dump({
        "name": "doctor-smoke", "languages": languages, "corpora": {"recipe": "demo", "workers": 1},
        "tokenizer": {"recipe": "demo", "vocab_size": 600}, "model": SMOKE_MODEL,
        "train": {"tensor_parallel": tp, "micro_batch_size": 2, "global_batch_size": 4, "steps": SMOKE_STEPS,
                  "warmup_steps": 2, "eval_interval": SMOKE_STEPS, "save_interval": SMOKE_STOP, "log_interval": 1,
                  "eval_samples": 2, "stop_after_steps": SMOKE_STOP, "precision": "fp32"}}))
    smoke, run = config_module.load_for_run(str(config_path), folder / "run")
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        build_corpora(smoke.corpora, smoke.languages, run, progress=False)
        train_tokenizer(smoke, run)
        prepare(smoke, run, progress=False)
    prepared_s = time.monotonic() - started
    checks = []
    started = time.monotonic()
    first = _occi("train", str(run.config_file), "--run-dir", str(run.root))
    if first.returncode != 0:
        return [Check("tiny training", "fail", f"TP={tp}: the first launch failed", _tail(first),
                      fix="the training cannot start on this node; the detail shows the end of its output")]
    second = _occi("train", str(run.config_file), "--run-dir", str(run.root))
    train_s = time.monotonic() - started
    records = [json.loads(line) for line in (run.train / "log.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in records if r["kind"] == "train"}
    resumed = any(r["kind"] == "message" and f"resumed from step {SMOKE_STOP}" in r["text"] for r in records)
    if second.returncode != 0 or not run.is_done("train"):
        return [Check("tiny training", "fail", f"TP={tp}: stopped at step {max(losses, default=0)}", _tail(second),
                      fix="the resumed launch failed; the detail shows the end of its output")]
    loss_ok = all(math.isfinite(v) for v in losses.values()) and losses[SMOKE_STEPS] < losses[1]
    checks.append(Check("tiny training", "ok" if loss_ok else "fail",
                        f"{SMOKE_STEPS} steps at TP={tp}, loss {losses[1]:.2f} -> {losses[SMOKE_STEPS]:.2f}",
                        f"data {prepared_s:.0f} s, two launches {train_s:.0f} s",
                        fix="" if loss_ok else "the loss did not go down: the numerics on this node are broken",
                        data={"tp": tp, "losses": [losses[1], losses[SMOKE_STEPS]], "seconds": train_s}))
    checks.append(Check("checkpoint + resume", "ok" if resumed else "fail",
                        f"stopped at {SMOKE_STOP} with a checkpoint, resumed to {SMOKE_STEPS}" if resumed
                        else "the second launch did not resume", fix="" if resumed else
                        "checkpoints cannot be read back on this file system"))
    checks.append(_export_exactness(smoke, run))
    return checks


def _export_exactness(smoke, run: RunDir) -> Check:
    import torch  # loads torch: only when used
    from transformers import AutoModelForCausalLM  # loads transformers: only when used

    from occi.train.export import export, megatron_logits  # loads pyarrow, torch: only when used

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        export(smoke, run)
        tokens = torch.randint(3, 600, (2, 32), generator=torch.Generator().manual_seed(0))
        expected = megatron_logits(smoke, run, tokens)
        model = AutoModelForCausalLM.from_pretrained(run.hf, torch_dtype=torch.float32)
        with torch.no_grad():
            actual = model(tokens).logits.float()
    difference = (actual - expected).abs().max().item()
    status = "ok" if difference <= 1e-4 else "fail"
    return Check("export exactness", status, f"max |logit difference| {difference:.1e} (fp32, limit 1e-4)",
                 fix="" if status == "ok" else "the exported model differs from the trained one on this software stack",
                 data={"max_abs_diff": difference})


def _tail(result: subprocess.CompletedProcess, chars: int = 400) -> str:
    text = (result.stderr or "") + (result.stdout or "")
    return " | ".join(text.strip().splitlines()[-4:])[-chars:]


# ---------------------------------------------------------------------------- throughput

def throughput(cfg, run: RunDir, gpus: int, steps: int | None = None) -> Check:
    """A few steps of the config's model at the config's TP/PP, as much data parallelism as the
    node holds, on random tokens of the config's vocabulary size."""
    if cfg.model is None:
        return Check("throughput", "skip", "-", "the config has no model")
    params = cfg.model.parameters(cfg.tokenizer.vocab_size)
    model_parallel = cfg.train.tensor_parallel * cfg.train.pipeline_parallel
    if not gpus and params > CPU_THROUGHPUT_MAX_PARAMETERS:
        return Check("throughput", "skip", "-", f"no GPU: {params / 1e6:.0f} M parameters on CPU say nothing about a cluster")
    if gpus and model_parallel > gpus:
        return Check("throughput", "skip", "-", f"TP x PP = {model_parallel} needs more than this node's {gpus} GPUs")
    folder = run.scratch("doctor-throughput")
    try:
        return _throughput(cfg, folder, gpus, params, steps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _throughput(cfg, folder: Path, gpus: int, params: int, steps: int | None) -> Check:
    from occi import config as config_module  # loads pyarrow: only when used

    steps, skipped = (steps or 12, 3) if gpus else (steps or 6, 2)
    model_parallel = cfg.train.tensor_parallel * cfg.train.pipeline_parallel
    data_parallel = max(1, gpus // model_parallel) if gpus else 1
    micro = cfg.train.micro_batch_size
    accumulation = min(4, max(1, cfg.train.global_batch_size // (micro * cfg.train.data_parallel)))
    config_path = folder / "throughput.yaml"
    code = cfg.languages[0]
    config_path.write_text(yaml.safe_dump({
        "name": "doctor-throughput", "languages": [code], "corpora": {"recipe": "demo"},
        "tokenizer": {"recipe": "demo", "vocab_size": cfg.tokenizer.vocab_size},
        "model": {k: v for k, v in to_plain(cfg.model).items() if k != "base"},
        "train": {"tensor_parallel": cfg.train.tensor_parallel, "pipeline_parallel": cfg.train.pipeline_parallel,
                  "data_parallel": data_parallel, "micro_batch_size": micro,
                  "global_batch_size": micro * data_parallel * accumulation, "steps": steps, "warmup_steps": 1,
                  "eval_interval": steps, "save_interval": steps, "log_interval": 1, "eval_samples": 1,
                  "precision": cfg.train.precision, "peak_tflops": cfg.train.peak_tflops}}, sort_keys=False))
    measured_cfg, run = config_module.load_for_run(str(config_path), folder / "run")
    _random_data(measured_cfg, run, code)
    started = time.monotonic()
    result = _occi("train", str(run.config_file), "--run-dir", str(run.root))
    seconds = time.monotonic() - started
    if result.returncode != 0:
        return Check("throughput", "fail", "the config's model did not train", _tail(result),
                     fix="see the detail: out of memory means a larger TP/PP or a smaller micro batch")
    records = [json.loads(line) for line in (run.train / "log.jsonl").read_text().splitlines()]
    steady = [r for r in records if r["kind"] == "train" and r["step"] > skipped]
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in steady)
    world = measured_cfg.train.world_size
    mfus = [r["mfu"] for r in steady if r.get("mfu") is not None]
    mfu = statistics.median(mfus) if mfus else None
    value = f"{tokens_per_s:,.0f} tokens/s ({tokens_per_s / world:,.0f} per device, {world} devices)"
    value += f", MFU {mfu:.0%}" if mfu is not None else ", MFU unknown (set train.peak_tflops)"
    return Check("throughput", "ok", value, f"{params / 1e6:,.0f} M parameters, median of steps {skipped + 1}-{steps}; "
                 f"{seconds:.0f} s with start-up", data={"tokens_per_s": tokens_per_s, "tokens_per_s_per_device":
                                                         tokens_per_s / world, "mfu": mfu, "devices": world,
                                                         "parameters": params,
                                                         "tp": measured_cfg.train.tensor_parallel,
                                                         "pp": measured_cfg.train.pipeline_parallel,
                                                         "dp": measured_cfg.train.data_parallel,
                                                         "micro_batch_size": micro})


def _random_data(cfg, run: RunDir, code: str, tokens: int = 400_000) -> None:
    """data/ with random token ids of the config's vocabulary, as `occi data prepare` lays it out."""
    from occi.data.prepare import token_dtype  # loads pyarrow, tqdm: only when used

    vocab = cfg.tokenizer.vocab_size
    rng = np.random.default_rng(cfg.seed)
    prefix = run.dataset_prefix(code)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab)
    writer = IndexedDatasetWriter(Path(f"{prefix}.bin"), dtype)
    lengths = np.full(tokens // 1000, 999)
    writer.add_documents(rng.integers(4, vocab, int(lengths.sum())), lengths, 2)
    writer.finalize(Path(f"{prefix}.idx"))
    atomic_write_json(run.blend_file, {
        "tokenizer": "tokenizer/tokenizer.model", "vocab_size": vocab, "eod_id": 2, "dtype": np.dtype(dtype).name,
        "alpha": None, "languages": {code: {"train": {"documents": len(lengths), "tokens": tokens},
                                           "valid": {"documents": 0, "tokens": 0}, "weight": 1.0,
                                           "prefix": run.relative(prefix),
                                           "valid_prefix": run.relative(run.dataset_prefix(code, "valid"))}}})
    mark_done(run.data)
