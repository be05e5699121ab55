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


@pytest.mark.parametrize("name", list(GOLDEN["configurations"]))
def test_activations_differ_from_megatrons_by_what_each_counts(name):
    """Megatron's estimator (after Korthikanti et al. 2022, Table 2) assumes selective recompute,
    GPT's layer (K and V as wide as Q, a GeLU MLP of two ffn-wide tensors, two dropout masks), an
    MoE layer as a dense MLP of ffn_hidden_size, token ids split over TP; without sequence
    parallelism it uses a per-layer 10 + 24/TP (f = 4h) bytes per hidden unit, bf16 logits and one
    hidden tensor at the output, and adds 5 %. occi counts its own layers term by term (SwiGLU, GQA,
    no dropout, fp32 norm statistics, flash attention's log-sum-exp, experts' top-k copies). Starting
    from occi's figure for the first pipeline stage (where Megatron measures), each difference is
    applied here by hand; the result must be Megatron's figure exactly."""
    entry = GOLDEN["configurations"][name]
    args = entry["args"]
    shape, layout = occi_shape(args), occi_layout(args)
    if layout.recompute == "full":  # Megatron does not model it (the test below): compare with selective
        layout = dataclasses.replace(layout, recompute="selective")
    stage0 = memory.estimate(shape, args["padded_vocab_size"], layout)[0]
    h, f, vocab, layers = shape.hidden_size, shape.ffn_hidden_size, args["padded_vocab_size"], shape.num_layers
    q, kv, heads = shape.num_attention_heads * shape.head_dim, shape.num_query_groups * shape.head_dim, shape.num_attention_heads
    t, p, sp = layout.tensor_parallel, layout.pipeline_parallel, layout.sequence_parallel
    tokens = args["seq_length"] * args["micro_batch_size"]
    factor = min(1, entry["num_microbatches"] / p)  # both: min(PP, micro batches) in flight on the first stage
    log_sum_exp = 4 * heads if layout.recompute != "selective" else 0
    # occi's per-token bytes of one layer's attention and MLP that are split over TP, and those that are not
    attention_split = 2 * (q + 2 * kv) + 2 * q + log_sum_exp
    if shape.is_moe:  # router input and fp32 logits/probabilities; k copies: input, SwiGLU, down input, output
        k, fe, experts = shape.moe_top_k, shape.expert_ffn_hidden_size, shape.num_experts
        mlp_whole = 2 * h + 8 * experts + (4 * h * k) * (t if sp else 1)  # expert inputs/outputs: not split
        mlp_split = 6 * fe * k
    else:
        mlp_whole, mlp_split = 2 * h, 6 * f
    if sp and layout.recompute == "selective":  # Megatron's compute_activation_memory
        occi_layer = (6 * h + 8 + mlp_whole + attention_split + mlp_split) / t
        megatron_layer = (18 * h + 4 * f) / t
        megatron_output = (4 * h + 4 * vocab) / t
        occi_output = (4 * h + 4) / t + 4 * vocab / t
        megatron_ids, occi_ids, masks_embedding = 8 * p / t, 8 * p, h * p / t
        overhead, megatron_figure = 1.0, entry["activation_with_sp_bytes"]
    else:  # compute_activation_memory_without_sp (Megatron's choice for anything else)
        whole = 1 if not sp else t
        occi_layer = (6 * h + 8 + mlp_whole) / whole + (attention_split + mlp_split) / t
        megatron_layer = 10 * h + 24 * h / t
        megatron_output = 2 * vocab / t + 2 * h
        occi_output = (4 * h + 4) / whole + 4 * vocab / t
        megatron_ids, occi_ids, masks_embedding = 8 * p, 8 * p, h * p
        overhead, megatron_figure = 1.05, entry["activation_without_sp_bytes"]
    occi_figure = tokens * (factor * (layers * occi_layer + occi_ids) + (occi_output if p == 1 else 0))
    assert stage0.activations == pytest.approx(occi_figure, rel=1e-12)
    explained = tokens * (factor * (layers * megatron_layer + megatron_ids + masks_embedding)
                          + (megatron_output if p == 1 else 0)) * overhead
    assert explained == pytest.approx(megatron_figure, rel=1e-12)


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
    assert full_stage.recompute_buffer == pytest.approx(tokens * (8 * h + 8 + 2 * (q + 2 * kv) + 2 * q + 6 * f + 4 * 32) / t)
    assert full_stage.total < selective_stage.total
