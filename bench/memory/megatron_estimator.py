"""Runs Megatron-LM's own memory estimator (megatron/training/theoretical_memory_usage.py) on the
configurations tests/test_memory.py compares occi's memory model with, and records its figures
with their provenance in tests/golden/megatron_memory.json.

The estimator is not in the megatron-core wheel, so it is read from a Megatron-LM git checkout or
mirror (`git show COMMIT:megatron/training/theoretical_memory_usage.py`) and executed unchanged;
its only relative import (`.utils`: print_rank_0 and is_hybrid_model, which pull in the rest of
megatron.training) is given two stand-ins that print and answer "not hybrid".

    python bench/memory/megatron_estimator.py GIT_DIR [--commit REV] [--out tests/golden/megatron_memory.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

SOURCE = "megatron/training/theoretical_memory_usage.py"

LLAMA3_8B = dict(num_layers=32, hidden_size=4096, ffn_hidden_size=14336, num_attention_heads=32, num_query_groups=8,
                 padded_vocab_size=128256)
LLAMA3_70B = dict(num_layers=80, hidden_size=8192, ffn_hidden_size=28672, num_attention_heads=64, num_query_groups=8,
                  padded_vocab_size=128256)
MIXTRAL_8X7B = dict(num_layers=32, hidden_size=4096, ffn_hidden_size=14336, num_attention_heads=32, num_query_groups=8,
                    padded_vocab_size=32000, num_experts=8, moe_router_topk=2, moe_ffn_hidden_size=14336)


def layout(tp, pp, dp, ep=1, dist=False, recompute=None, sp=False, mbs=1, gbs=512, seq=4096):
    return dict(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, data_parallel_size=dp,
                expert_model_parallel_size=ep, use_distributed_optimizer=dist, recompute_granularity=recompute,
                sequence_parallel=sp, micro_batch_size=mbs, global_batch_size=gbs, seq_length=seq)


CONFIGURATIONS = {
    "llama3-8b tp1 pp1 dp8": (LLAMA3_8B, layout(1, 1, 8)),
    "llama3-8b tp1 pp1 dp8 distopt": (LLAMA3_8B, layout(1, 1, 8, dist=True)),
    "llama3-8b tp2 pp1 dp4": (LLAMA3_8B, layout(2, 1, 4)),
    "llama3-8b tp2 pp1 dp4 distopt sp selective": (LLAMA3_8B, layout(2, 1, 4, dist=True, recompute="selective", sp=True)),
    "llama3-8b tp4 pp1 dp2 mbs2 selective": (LLAMA3_8B, layout(4, 1, 2, recompute="selective", mbs=2)),
    "llama3-8b tp4 pp1 dp2 distopt sp selective": (LLAMA3_8B, layout(4, 1, 2, dist=True, recompute="selective", sp=True)),
    "llama3-8b tp1 pp2 dp4": (LLAMA3_8B, layout(1, 2, 4)),
    "llama3-8b tp2 pp2 dp2 distopt sp selective": (LLAMA3_8B, layout(2, 2, 2, dist=True, recompute="selective", sp=True)),
    "llama3-8b tp2 pp2 dp2 distopt sp full": (LLAMA3_8B, layout(2, 2, 2, dist=True, recompute="full", sp=True)),
    "llama3-8b tp4 pp2 dp1 sp selective, 1 micro batch": (LLAMA3_8B, layout(4, 2, 1, recompute="selective", sp=True, gbs=1)),
    "llama3-70b tp8 pp4 dp2 distopt sp selective": (LLAMA3_70B, layout(8, 4, 2, dist=True, recompute="selective", sp=True)),
    "llama3-70b tp8 pp4 dp2": (LLAMA3_70B, layout(8, 4, 2)),
    "mixtral-8x7b tp1 pp1 dp8 ep8 distopt": (MIXTRAL_8X7B, layout(1, 1, 8, ep=8, dist=True)),
    "mixtral-8x7b tp1 pp1 dp8 ep8": (MIXTRAL_8X7B, layout(1, 1, 8, ep=8)),
    "mixtral-8x7b tp2 pp1 dp8 ep8 distopt sp selective": (MIXTRAL_8X7B, layout(2, 1, 8, ep=8, dist=True, recompute="selective", sp=True)),
}


def megatron_args(shape: dict, parallel: dict) -> dict:
    """The argparse namespace fields the estimator reads, for a Llama-style model (SwiGLU, RMSNorm,
    grouped-query attention, untied embeddings, no biases, no MTP/MLA/latent MoE, no interleaving)."""
    args = dict(kv_channels=shape["hidden_size"] // shape["num_attention_heads"], group_query_attention=True,
                swiglu=True, normalization="RMSNorm", untie_embeddings_and_output_weights=True, add_bias_linear=False,
                multi_latent_attention=False, mtp_num_layers=None, moe_latent_size=None, num_experts=None,
                moe_router_topk=2, moe_ffn_hidden_size=None, moe_shared_expert_intermediate_size=None,
                moe_shared_expert_gate=False, moe_layer_freq=1, virtual_pipeline_model_parallel_size=None,
                hybrid_override_pattern=None, is_hybrid_model=False)
    args.update(shape)
    args.update(parallel)
    # occi leaves megatron's expert tensor-parallel size unset, so megatron-core takes the TP size
    args["expert_tensor_parallel_size"] = parallel["tensor_model_parallel_size"]
    args["world_size"] = (parallel["tensor_model_parallel_size"] * parallel["pipeline_model_parallel_size"]
                          * parallel["data_parallel_size"])
    return args


def load_estimator(git_dir: str, commit: str):
    source = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{SOURCE}"], check=True,
                            capture_output=True, text=True).stdout
    package = types.ModuleType("megatron_lm_estimator")
    package.__path__ = []
    utils = types.ModuleType("megatron_lm_estimator.utils")
    utils.print_rank_0 = lambda *a, **k: None
    utils.is_hybrid_model = lambda args: False
    sys.modules["megatron_lm_estimator"] = package
    sys.modules["megatron_lm_estimator.utils"] = utils
    module = types.ModuleType("megatron_lm_estimator.theoretical_memory_usage")
    module.__package__ = "megatron_lm_estimator"
    exec(compile(source, SOURCE, "exec"), module.__dict__)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dir", help="a Megatron-LM git directory (a clone's .git or a bare mirror)")
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests" / "golden" / "megatron_memory.json"))
    options = parser.parse_args()
    commit = subprocess.run(["git", "--git-dir", options.git_dir, "rev-parse", options.commit], check=True,
                            capture_output=True, text=True).stdout.strip()
    estimator = load_estimator(options.git_dir, commit)
    results = {}
    for name, (shape, parallel) in CONFIGURATIONS.items():
        args = megatron_args(shape, parallel)
        micro_batches = parallel["global_batch_size"] // (parallel["micro_batch_size"] * parallel["data_parallel_size"])
        weights = estimator.compute_weight_and_optimizer_memory(types.SimpleNamespace(**args))
        with_sp = estimator.compute_activation_memory(types.SimpleNamespace(**args), micro_batches)
        without_sp = estimator.compute_activation_memory_without_sp(types.SimpleNamespace(**args), micro_batches)
        report = estimator.report_theoretical_memory(types.SimpleNamespace(**args), micro_batches)
        results[name] = {"args": args, "num_microbatches": micro_batches,
                         "weight_and_optimizer_bytes": weights, "activation_with_sp_bytes": with_sp,
                         "activation_without_sp_bytes": without_sp,
                         "report_mb": {"weight_and_optimizer": report[0], "activation": report[1], "total": report[2]}}
        print(f"{name:<55} weights+optimizer {weights / 2**30:7.2f} GiB  activations {report[1] / 1024:7.2f} GiB")
    golden = {"provenance": {"repository": "https://github.com/NVIDIA/Megatron-LM", "commit": commit, "file": SOURCE,
                             "command": "python bench/memory/megatron_estimator.py GIT_DIR --commit " + commit,
                             "note": "the estimator's own functions, executed unchanged from that commit"},
              "configurations": results}
    Path(options.out).write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
