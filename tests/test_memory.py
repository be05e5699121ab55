"""The memory model (occi/train/memory.py) checked two ways: against Megatron-LM's own estimator
(its figures recorded by bench/memory/megatron_estimator.py in tests/golden/megatron_memory.json),
every difference named and computed; and against memory measured on CPU from occi's real
megatron model (tests/memory_measure.py)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import REPO
from occi.train import memory
from occi.train.config import ModelConfig

GOLDEN = json.loads((REPO / "tests" / "golden" / "megatron_memory.json").read_text())


def occi_shape(args: dict) -> ModelConfig:
    return ModelConfig(num_layers=args["num_layers"], hidden_size=args["hidden_size"],
                       ffn_hidden_size=args["ffn_hidden_size"], num_attention_heads=args["num_attention_heads"],
                       num_query_groups=args["num_query_groups"], seq_length=args["seq_length"],
                       vocab_size=args["padded_vocab_size"], num_experts=args["num_experts"],
                       moe_top_k=args["moe_router_topk"], moe_ffn_hidden_size=args["moe_ffn_hidden_size"])


def occi_layout(args: dict) -> memory.Layout:
    return memory.Layout(tensor_parallel=args["tensor_model_parallel_size"],
                         pipeline_parallel=args["pipeline_model_parallel_size"],
                         data_parallel=args["data_parallel_size"], expert_parallel=args["expert_model_parallel_size"],
                         micro_batch_size=args["micro_batch_size"], global_batch_size=args["global_batch_size"],
                         sequence_parallel=args["sequence_parallel"], recompute=args["recompute_granularity"] or "none",
                         distributed_optimizer=args["use_distributed_optimizer"])


def test_the_golden_file_covers_the_issues_configurations():
    names = list(GOLDEN["configurations"])
    assert len(names) >= 12 and len(GOLDEN["provenance"]["commit"]) == 40
    for wanted in ("llama3-8b tp1", "llama3-8b tp2", "llama3-8b tp4", "pp2", "llama3-70b tp8 pp4", "mixtral-8x7b tp1 pp1 dp8 ep8"):
        assert any(wanted in name for name in names), wanted
    assert any("distopt" in n for n in names) and any("distopt" not in n for n in names)
    assert any("selective" in n for n in names) and any("full" in n for n in names)


@pytest.mark.parametrize("name", list(GOLDEN["configurations"]))
def test_weights_gradients_and_optimizer_equal_megatrons(name):
    """Both count bf16 weights, fp32 gradients, fp32 main weights and Adam moments (18 bytes a
    parameter; 6 + 12 / DP with the distributed optimizer, the experts' over the expert-data-parallel
    ranks) of the most loaded rank. The one difference: Megatron spreads the final norm's weights over
    the pipeline stages; occi puts them on the last stage, the most loaded (it also holds the output
    layer, as large as the first stage's embedding)."""
    entry = GOLDEN["configurations"][name]
    args = entry["args"]
    stages = memory.estimate(occi_shape(args), args["padded_vocab_size"], occi_layout(args))
    occi_bytes = max(s.weights + s.gradients + s.optimizer for s in stages)
    p, dp = args["pipeline_model_parallel_size"], args["data_parallel_size"]
    per_parameter = 6 + 12 / dp if args["use_distributed_optimizer"] else 18
    final_norm_moved = args["hidden_size"] * (1 - 1 / p) * per_parameter
    assert occi_bytes == pytest.approx(entry["weight_and_optimizer_bytes"] + final_norm_moved, rel=1e-12)


def activation_differences(entry: dict) -> tuple[float, float, dict[str, float]]:
    """(Megatron's activation figure, its overhead factor, occi minus Megatron by named cause) for the
    first pipeline stage, where Megatron's estimator measures."""
    args = entry["args"]
    shape = occi_shape(args)
    h, f, vocab, layers = shape.hidden_size, shape.ffn_hidden_size, args["padded_vocab_size"], shape.num_layers
    q, kv, heads = shape.num_attention_heads * shape.head_dim, shape.num_query_groups * shape.head_dim, shape.num_attention_heads
    t, p = args["tensor_model_parallel_size"], args["pipeline_model_parallel_size"]
    selective, sp = args["recompute_granularity"] in ("selective", "full"), args["sequence_parallel"]
    tokens = args["seq_length"] * args["micro_batch_size"]
    per_layer = tokens * min(1, entry["num_microbatches"] / p) * layers  # both: min(PP, micro batches) in flight
    in_flight = tokens * min(p, entry["num_microbatches"])
    whole = t if sp else 1
    last = p == 1  # the first stage is also the last: output layer and loss
    with_sp = sp and args["recompute_granularity"] == "selective"  # the formula Megatron picks
    split = t if with_sp else 1  # Megatron's with-SP formula divides everything by TP
    differences = {
        "no dropout in occi (Megatron: two masks a layer, one after the embedding)": -(per_layer * 2 * h + in_flight * h) / split,
        "fp32 inverse RMS per token of each norm": per_layer * 8 / whole + (tokens * 4 / whole if last else 0),
        "RoPE's cos and sin tables for q and k": per_layer / tokens * 4 * args["seq_length"] * shape.head_dim * 2,
        "flash attention's log-sum-exp, fp32 (kept without selective recompute)": 0 if selective else per_layer * 4 * heads / t,
        "the loss's target mask and targets": tokens * 9 if last else 0,
        "token ids whole on every TP rank (Megatron: split over TP)": in_flight * 8 * (1 - 1 / split),
    }
    if with_sp:
        differences["q, k, v, attention output at GQA widths (Megatron: K, V as wide as Q)"] = per_layer * (2 * (q + 2 * kv) + 2 * q - 8 * h) / t
        differences["SwiGLU keeps 5 inner-width tensors (Megatron: GeLU's 2)"] = per_layer * (10 * f - 4 * f) / t
    else:  # Megatron: 10h + 24h / TP a layer, GPT's attention and a GeLU MLP of 4h
        differences["attention and MLP split over TP: GQA widths, SwiGLU's 5 inner tensors (Megatron: 24h, f = 4h)"] = \
            per_layer * (2 * (q + 2 * kv) + 2 * q + 10 * f - 24 * h) / t
        if last:
            differences["output: final norm input and output-layer input, fp32 softmax (Megatron: one hidden tensor, bf16 logits)"] = \
                tokens * (4 * h / whole - 2 * h + 4 * vocab / t - 2 * vocab / t)
        differences["sequence parallelism: the whole-width tensors split over TP (Megatron's formula without SP)"] = \
            -per_layer * 8 * h * (1 - 1 / whole)
    if shape.is_moe:
        k, fe, experts = shape.moe_top_k, shape.expert_ffn_hidden_size, shape.num_experts
        differences["MoE layers: router, k copies of each token through SwiGLU experts with the probability inside "
                    "(Megatron: a dense MLP)"] = per_layer * ((9 * experts + 28 * k) / whole + k * (2 * h + 4)
                                                            + (12 * k * fe - 10 * f) / t)
    figure = entry["activation_with_sp_bytes"] if with_sp else entry["activation_without_sp_bytes"]
    return figure, 1.0 if with_sp else 1.05, differences


@pytest.mark.parametrize("name", list(GOLDEN["configurations"]))
def test_activations_differ_from_megatrons_by_what_each_counts(name):
    """Megatron's estimator (after Korthikanti et al. 2022, Table 2) assumes selective recompute and
    GPT's layer; without sequence parallelism and selective recompute it switches to a coarser
    formula that adds 5 %. occi counts its own layers term by term. occi's figure for the first
    stage must be Megatron's (without its 5 %) plus the named differences, exactly. Full recompute is
    compared as selective: Megatron does not model it (the next test)."""
    entry = GOLDEN["configurations"][name]
    args = entry["args"]
    layout = occi_layout(args)
    if layout.recompute == "full":
        layout = dataclasses.replace(layout, recompute="selective")
    stage0 = memory.estimate(occi_shape(args), args["padded_vocab_size"], layout)[0]
    megatron, overhead, differences = activation_differences(entry)
    assert stage0.activations == pytest.approx(megatron / overhead + sum(differences.values()), rel=1e-12)


def test_megatron_does_not_model_full_recompute_and_occi_does():
    configurations = GOLDEN["configurations"]
    full = configurations["llama3-8b tp2 pp2 dp2 distopt sp full"]
    selective = configurations["llama3-8b tp2 pp2 dp2 distopt sp selective"]
    assert full["activation_without_sp_bytes"] == selective["activation_without_sp_bytes"]
    args = full["args"]
    shape = occi_shape(args)
    full_stage = memory.estimate(shape, args["padded_vocab_size"], occi_layout(args))[0]
    selective_stage = memory.estimate(shape, args["padded_vocab_size"], occi_layout(selective["args"]))[0]
    tokens, t = args["seq_length"] * args["micro_batch_size"], 2
    # each of the 16 layers of a stage keeps its input only (split by SP), for 2 micro batches in flight
    assert full_stage.activations == pytest.approx(2 * tokens * (16 * 2 * 4096 / t + 8), rel=1e-12)
    # the backward pass re-materialises one whole layer (flash attention's statistics included)
    h, f, q, kv = 4096, 14336, 4096, 1024
    rotary = 4 * 4096 * 128 * 2
    assert full_stage.recompute_buffer == pytest.approx(
        tokens * (8 * h + 8 + 2 * (q + 2 * kv) + 2 * q + 10 * f + 4 * 32) / t + rotary, rel=1e-12)
    assert full_stage.total < selective_stage.total


SMALL_DENSE = {"num_layers": 2, "hidden_size": 256, "ffn_hidden_size": 704, "num_attention_heads": 8,
               "num_query_groups": 4, "seq_length": 256}
SMALL_MOE = {**SMALL_DENSE, "ffn_hidden_size": 512, "num_experts": 4, "moe_top_k": 2}
SMALL_MLA = {**SMALL_MOE, "num_query_groups": 8, "norm_epsilon": 1e-6, "moe_ffn_hidden_size": 256,
             "moe_shared_expert_ffn_hidden_size": 256, "moe_first_dense_layers": 1, "moe_balancing": "expert_bias",
             "moe_router_groups": 2, "moe_router_group_top_k": 1, "mla_q_lora_rank": 96, "mla_kv_lora_rank": 64,
             "mla_qk_nope_head_dim": 32, "mla_qk_rope_head_dim": 16, "mla_v_head_dim": 32}
MEASURED_LAYOUTS = [
    {"name": "dense tp2", "vocab": 1024, "model": SMALL_DENSE,
     "train": {"tensor_parallel": 2, "micro_batch_size": 2, "global_batch_size": 2, "precision": "fp32"}},
    {"name": "dense dp2", "vocab": 1024, "model": SMALL_DENSE,
     "train": {"data_parallel": 2, "micro_batch_size": 2, "global_batch_size": 4, "precision": "fp32"}},
    {"name": "moe ep2, shared expert", "vocab": 1024,
     "model": {**SMALL_MOE, "moe_ffn_hidden_size": 256, "moe_shared_expert_ffn_hidden_size": 512, "moe_shared_expert_gate": True},
     "train": {"data_parallel": 2, "expert_parallel": 2, "micro_batch_size": 2, "global_batch_size": 4, "precision": "fp32"}},
    {"name": "moe tp2 (sequence parallel)", "vocab": 1024, "model": SMALL_MOE,
     "train": {"tensor_parallel": 2, "micro_batch_size": 2, "global_batch_size": 2, "precision": "fp32"}},
    {"name": "deepseek-style ep2 (latent attention, first layer dense)", "vocab": 1024, "model": SMALL_MLA,
     "train": {"data_parallel": 2, "expert_parallel": 2, "micro_batch_size": 2, "global_batch_size": 4, "precision": "fp32"}},
]


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    """Every layout measured on both ranks of one 2-rank gloo run (tests/memory_measure.py)."""
    import os
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("memory")
    (folder / "layouts.json").write_text(json.dumps(MEASURED_LAYOUTS))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(REPO / "tests" / "memory_measure.py"), str(folder / "layouts.json"), str(folder / "out.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((folder / "out.json").read_text())


@pytest.mark.parametrize("layout", MEASURED_LAYOUTS, ids=lambda layout: layout["name"])
def test_prediction_matches_memory_measured_on_cpu(measured, layout):
    """occi's real megatron model on CPU (fp32, megatron's local layers: unfused attention, torch's
    RMSNorm): weights, gradient buffers and optimizer state are counted exactly; the activations of
    one micro batch within 10 %. Experts: the prediction assumes balanced routing, so it is compared
    with the mean over the expert-parallel ranks (a randomly initialised router sends one rank more)."""
    from occi.train.config import TrainConfig

    shape, train = ModelConfig(**layout["model"]), TrainConfig(**layout["train"])
    predicted = memory.estimate(shape, layout["vocab"], memory.Layout.of(train, shape, on_gpu=False))[0]
    ranks = measured[layout["name"]]
    for part in ("weights", "gradients", "optimizer"):
        assert all(rank[part] == getattr(predicted, part) for rank in ranks), (part, ranks, getattr(predicted, part))
    mean = sum(rank["activations"] for rank in ranks) / len(ranks)
    assert mean == pytest.approx(predicted.activations, rel=0.10)


# ---------------------------------------------------------------- plan, doctor and submit

MISTRAL_7B_V03 = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
                  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32768, "max_position_embeddings": 32768,
                  "rope_theta": 1000000.0, "rms_norm_eps": 1e-5, "sliding_window": None, "hidden_act": "silu",
                  "tie_word_embeddings": False}


def mistral_run(tmp_path, **train) -> tuple:
    """The cpt-mistral-7b-eu recipe with these train settings, its base's config.json in the run
    (as `occi import` leaves it) and the corpora marked done (planning them would ask the hub)."""
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "cpt-mistral-7b-eu.yaml").read_text())
    raw["train"].update(train)
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "cpt-mistral.yaml"
    config.write_text(yaml.safe_dump(raw))
    run_dir = tmp_path / "run"
    (run_dir / "base").mkdir(parents=True)
    (run_dir / "base" / "config.json").write_text(json.dumps(MISTRAL_7B_V03))
    (run_dir / "corpora").mkdir()
    (run_dir / "corpora" / "_DONE").write_text("{}")
    return config, run_dir


# the recipe as it was before this change: the plain optimizer, no sequence parallelism, micro batch 2
UNFIT = {"micro_batch_size": 2, "distributed_optimizer": False, "sequence_parallel": False}


def test_plan_prints_the_peak_the_breakdown_and_the_headroom(tmp_path):
    from conftest import occi

    config, run_dir = mistral_run(tmp_path)
    result = occi("plan", str(config), "--cluster", "juwels-booster", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    plan = json.loads((run_dir / "plan.json").read_text())["memory"]
    assert plan["fits"] and plan["gpu_memory_gib"] == 40
    # the weights of one TP=2 rank: half of every matrix but the norms, in bf16; fp32 gradients;
    # 12 bytes of optimizer state per parameter over 16 data-parallel ranks
    h, f, layers, vocab, kv = 4096, 14336, 32, 32768, 1024
    split = layers * (h * (h + 2 * kv) + h * h + 3 * h * f) + 2 * vocab * h
    rank = split / 2 + layers * 2 * h + h
    rows = dict(plan["breakdown"])
    assert rows["weights"].startswith(f"{rank * 2 / 2**30:.1f} GiB ({rank:,.0f} parameters")
    assert rows["gradients"].startswith(f"{rank * 4 / 2**30:.1f} GiB")
    assert rows["optimizer"].startswith(f"{rank * 12 / 16 / 2**30:.1f} GiB")
    assert "sequence parallel on" in rows["activations"] and "logits" in rows
    assert plan["headroom_bytes"] == pytest.approx((40 - 3) * 2**30 - plan["peak_bytes"])
    assert (run_dir / "plan-memory.png").read_bytes().startswith(b"\x89PNG")
    line = next(l for l in result.stdout.splitlines() if l.startswith("memory"))
    assert "GiB predicted peak per GPU of 40 GiB less 3 GiB runtime reserve" in line and line.endswith("fits")


def test_the_cheapest_fix_is_the_first_candidate_that_fits(tmp_path):
    """Every cheaper candidate (alone or with the free ones) was predicted not to fit, the fix does."""
    from occi import config as config_module
    from occi.rundir import RunDir
    from occi.slurm.estimate import model_shape

    config, run_dir = mistral_run(tmp_path, **UNFIT)
    cfg = config_module.load(str(config))
    shape = model_shape(cfg, RunDir(run_dir))
    fix = memory.cheapest_fix(cfg.train, shape, 32768, 40)
    assert fix == {"distributed_optimizer": True, "sequence_parallel": True, "micro_batch_size": 1}

    def total(changes):
        train = dataclasses.replace(cfg.train, **changes)
        return memory.peak(memory.estimate(shape, 32768, memory.Layout.of(train, shape))).total

    assert memory.fits(total(fix), 40)
    free = {"distributed_optimizer": True, "sequence_parallel": True}
    for cheaper in ({"distributed_optimizer": True}, {"sequence_parallel": True}, free, {"recompute": "selective"},
                    {**free, "recompute": "selective"}, {"micro_batch_size": 1}):
        assert not memory.fits(total(cheaper), 40), cheaper
    assert memory.cheapest_fix(cfg.train, shape, 32768, 64) == {"distributed_optimizer": True}
    assert memory.cheapest_fix(dataclasses.replace(cfg.train, **fix), shape, 32768, 40) is None or \
        memory.fits(total(fix), 40)


def test_submit_refuses_a_layout_that_does_not_fit_and_takes_the_fix(tmp_path):
    from conftest import occi

    config, run_dir = mistral_run(tmp_path, **UNFIT)
    refused = occi("slurm", "submit", str(config), "--run-dir", str(run_dir), "--cluster", "juwels-booster", "--dry-run")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "predicted to need 89.8 GiB per GPU" in refused.stderr and "GiB more than juwels-booster's 40 GiB" in refused.stderr
    assert ("the cheapest change that fits: train.distributed_optimizer: true, train.sequence_parallel: true, "
            "train.micro_batch_size: 1") in refused.stderr
    assert not (run_dir / "slurm" / "train.sbatch").exists()
    fixed, _ = mistral_run(tmp_path / "fixed", micro_batch_size=1, distributed_optimizer=True, sequence_parallel=True)
    accepted = occi("slurm", "submit", str(fixed), "--run-dir", str(tmp_path / "fixed" / "run"), "--cluster",
                    "juwels-booster", "--dry-run")
    assert accepted.returncode == 0, accepted.stderr
    roomier = occi("slurm", "submit", str(config), "--run-dir", str(run_dir), "--cluster", "generic-gpu", "--dry-run")
    assert roomier.returncode == 2 and "the cheapest change that fits: train.distributed_optimizer: true" in roomier.stderr


def test_doctor_fails_its_memory_check_with_the_fix(tmp_path):
    from occi import config as config_module
    from occi.preflight.doctor import memory_fit
    from occi.rundir import RunDir
    from occi.slurm.submit import load_profile

    config, run_dir = mistral_run(tmp_path, **UNFIT)
    cfg = config_module.load(str(config))
    check = memory_fit(cfg, RunDir(run_dir), load_profile("juwels-booster")[0], "juwels-booster")
    assert check.status == "fail" and "predicted to need 89.8 GiB per GPU" in check.detail
    assert check.fix.startswith("the cheapest change that fits: train.distributed_optimizer: true")
    fits = memory_fit(config_module.load("cpt-mistral-7b-eu"), RunDir(run_dir), load_profile("juwels-booster")[0],
                      "juwels-booster")
    assert fits.status == "ok"
    assert memory_fit(cfg, RunDir(run_dir), load_profile("local")[0], "local").status == "skip"


def test_every_cluster_recipe_fits_every_gpu_profile_as_the_memory_page_shows(capsys, monkeypatch):
    """bench/memory/recipes.py regenerates the table of docs/memory-and-stability.md unchanged; every row fits."""
    import runpy

    monkeypatch.setattr("sys.argv", ["recipes.py"])
    runpy.run_path(str(REPO / "bench" / "memory" / "recipes.py"), run_name="__main__")
    table = capsys.readouterr().out.strip().splitlines()
    page = (REPO / "docs" / "memory-and-stability.md").read_text(encoding="utf-8")
    assert len(table) == 8 and all(line in page for line in table)
    assert all(cell.endswith(": fits") for row in table[2:] for cell in row.strip(" |").split(" | ")[1:])


def test_context_parallel_splits_the_sequence_and_shards_the_optimizer_with_data_parallel():
    shape = ModelConfig(num_layers=4, hidden_size=1024, ffn_hidden_size=2816, num_attention_heads=16,
                        num_query_groups=4, seq_length=8192, vocab_size=32768)
    one = memory.Layout(data_parallel=4, distributed_optimizer=True, global_batch_size=4)
    two = dataclasses.replace(one, context_parallel=2)
    a, b = memory.estimate(shape, 32768, one)[0], memory.estimate(shape, 32768, two)[0]
    rotary = 4 * 4 * 8192 * 64 * 2  # per layer, per position: halved too
    assert b.activations - rotary / 2 == pytest.approx((a.activations - rotary) / 2, rel=1e-12)
    assert b.optimizer == pytest.approx(a.optimizer / 2) and b.weights == a.weights
    assert b.logits == pytest.approx(a.logits / 2)


def test_a_layout_nothing_rescues_says_so():
    from occi.train.config import TrainConfig

    shape = ModelConfig(num_layers=8, hidden_size=8192, ffn_hidden_size=28672, num_attention_heads=64,
                        num_query_groups=8, seq_length=4096, vocab_size=128256)
    train = TrainConfig(global_batch_size=8, micro_batch_size=1, steps=10, warmup_steps=1)
    assert memory.cheapest_fix(train, shape, 128256, 40) is None  # one GPU: no DP, TP or PP to take from
