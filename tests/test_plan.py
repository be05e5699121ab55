"""`occi plan`: GPU-hours, wall time, energy and cost of the shipped recipes, checked against the
arithmetic done by hand here."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import REPO, occi

# Mistral-7B-v0.3's published config.json (architecture numbers only), as `occi import` would leave it
MISTRAL_7B_V03 = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
                  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32768, "max_position_embeddings": 32768,
                  "rope_theta": 1000000.0, "rms_norm_eps": 1e-5, "sliding_window": None, "hidden_act": "silu",
                  "tie_word_embeddings": False}


def _plan(tmp_path: Path, config: str, cluster: str, *extra: str) -> dict:
    run_dir = tmp_path / "run"
    result = occi("plan", config, "--cluster", cluster, "--run-dir", str(run_dir), *extra)
    assert result.returncode == 0, result.stderr
    return json.loads((run_dir / "plan.json").read_text()), result.stdout


def test_cpt_mistral_on_juwels_matches_the_hand_computation(tmp_path):
    (tmp_path / "run" / "base").mkdir(parents=True)
    (tmp_path / "run" / "base" / "config.json").write_text(json.dumps(MISTRAL_7B_V03))
    plan, stdout = _plan(tmp_path, str(REPO / "configs" / "cpt-mistral-7b-eu.yaml"), "juwels-booster")
    # per layer: q, k, v, o projections + SwiGLU (3 matrices) + 2 norms; plus both embeddings and the final norm
    h, f, layers, vocab, kv = 4096, 14336, 32, 32768, 8 * 128
    per_layer = h * (h + 2 * kv) + h * h + 3 * h * f + 2 * h
    parameters = layers * per_layer + 2 * vocab * h + h
    assert parameters == 7_248_023_552  # Mistral-7B-v0.3's published size
    matmul = parameters - vocab * h  # the input embedding is a lookup, not a matmul
    seq = 4096
    per_token = 6 * matmul + 12 * layers * h * seq
    tokens = 20_000 * 512 * seq  # steps x global batch x sequence length (the recipe)
    gpu_hours = per_token * tokens / (312e12 * 0.35) / 3600  # A100 bf16 peak, default MFU
    assert plan["parameters"] == parameters and plan["tokens"] == tokens
    assert plan["gpu_hours"] == pytest.approx(gpu_hours, rel=1e-12)
    assert round(gpu_hours) == 5241
    gpus = 2 * 1 * 16  # TP x PP x DP of the recipe
    assert plan["gpus"] == gpus and plan["nodes"] == 8
    assert plan["wall_hours"] == pytest.approx(gpu_hours / gpus)
    assert plan["jobs"] == math.ceil(gpu_hours / gpus / 24)  # 24 h jobs on JUWELS Booster
    assert plan["energy_kwh"] == pytest.approx(gpu_hours * 0.4)  # 400 W per A100
    assert plan["cost"] is None and "set card.price_per_gpu_hour" in stdout
    assert "5,241 (billed as whole nodes: 5,241)" in stdout and "default 0.35" in stdout


def test_demo_with_a_price_and_a_measured_mfu(tmp_path):
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    config["card"] = {"price_per_gpu_hour": 2.5, "currency": "EUR"}
    path = tmp_path / "demo-priced.yaml"
    path.write_text(yaml.safe_dump(config))
    model = yaml.safe_load((REPO / "models" / "tiny.yaml").read_text())
    h, f, layers, heads, groups, seq = (model[k] for k in ("hidden_size", "ffn_hidden_size", "num_layers",
                                                          "num_attention_heads", "num_query_groups", "seq_length"))
    vocab = _demo_vocab()
    d = h // heads
    per_layer = h * (h + 2 * groups * d) + h * h + 3 * h * f + 2 * h
    parameters = layers * per_layer + 2 * vocab * h + h
    per_token = 6 * (parameters - vocab * h) + 12 * layers * h * seq
    tokens = 60 * 8 * seq
    (tmp_path / "run" / "train").mkdir(parents=True)
    (tmp_path / "run" / "train" / "log.jsonl").write_text(
        "".join(json.dumps({"kind": "train", "step": s, "mfu": m}) + "\n" for s, m in ((1, 0.2), (2, 0.4), (3, None))))
    plan, stdout = _plan(tmp_path, str(path), "marenostrum5-acc")
    gpu_hours = per_token * tokens / (989e12 * 0.3) / 3600  # H100 bf16 peak; the mean of the two logged MFUs
    assert plan["mfu"] == pytest.approx(0.3) and "measured: mean of 2 logged step(s)" in plan["mfu_source"]
    assert plan["gpu_hours"] == pytest.approx(gpu_hours, rel=1e-12)
    assert plan["billed_gpu_hours"] == pytest.approx(4 * gpu_hours)  # one GPU used, a 4-GPU node billed
    assert plan["cost"] == pytest.approx(4 * gpu_hours * 2.5)
    assert plan["energy_kwh"] == pytest.approx(gpu_hours * 0.7)
    assert "EUR" in stdout


def _demo_vocab() -> int:
    """The demo tokenizer recipe's vocabulary, padded to a multiple of 128 as training pads it."""
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    recipe = yaml.safe_load((REPO / "tokenizer" / f"{cfg['tokenizer']}.yaml").read_text())
    return -(-recipe["vocab_size"] // 128) * 128


def test_plan_errors_are_one_line(tmp_path):
    no_peak = occi("plan", "demo", "--cluster", "local", "--run-dir", str(tmp_path / "a"))
    assert no_peak.returncode == 2 and "the profile has no gpu_peak_tflops" in no_peak.stderr
    no_base = occi("plan", str(REPO / "configs" / "cpt-llama-3.1-8b-eu.yaml"), "--cluster", "lumi-g",
                   "--run-dir", str(tmp_path / "b"), env={"HF_HUB_CACHE": str(tmp_path / "empty-cache")})
    assert no_base.returncode == 2 and "config.json is neither imported" in no_base.stderr
    assert len(no_base.stderr.strip().splitlines()) == 1
    bad_mfu = occi("plan", "demo", "--cluster", "lumi-g", "--mfu", "1.5", "--run-dir", str(tmp_path / "c"))
    assert bad_mfu.returncode == 2


def test_cpt_llama_on_lumi_matches_the_hand_computation(tmp_path):
    """In-process (no command line): the Llama 3.1 recipe on LUMI-G's GCDs."""
    from occi import config
    from occi.rundir import RunDir
    from occi.slurm import estimate
    from occi.slurm.submit import load_profile

    llama = {**MISTRAL_7B_V03, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
             "max_position_embeddings": 131072, "rope_theta": 500000.0,
             "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192}}
    run = RunDir(tmp_path / "run")
    run.base.mkdir(parents=True)
    (run.base / "config.json").write_text(json.dumps(llama))
    cfg = config.load(str(REPO / "configs" / "cpt-llama-3.1-8b-eu.yaml"))
    plan = estimate.estimate(cfg, run, load_profile("lumi-g")[0], "lumi-g")
    h, f, layers, vocab, kv, seq = 4096, 14336, 32, 128256, 8 * 128, 4096
    parameters = layers * (h * (h + 2 * kv) + h * h + 3 * h * f + 2 * h) + 2 * vocab * h + h
    assert parameters == 8_030_261_248  # Llama-3.1-8B's published size
    gpu_hours = (6 * (parameters - vocab * h) + 12 * layers * h * seq) * 20_000 * 512 * seq / (191.5e12 * 0.35) / 3600
    assert plan["gpu_hours"] == pytest.approx(gpu_hours, rel=1e-12)
    assert plan["gpus"] == 2 * 2 * 8 and plan["nodes"] == 4  # 32 GCDs, 8 per node
    assert plan["energy_kwh"] == pytest.approx(gpu_hours * 0.28)
    assert plan["jobs"] == math.ceil(gpu_hours / 32 / 48)  # 48 h jobs on LUMI-G
