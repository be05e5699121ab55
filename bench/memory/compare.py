"""occi's memory model next to Megatron-LM's estimator on the layouts of
tests/golden/megatron_memory.json (written by bench/memory/megatron_estimator.py), as a Markdown table.

    python bench/memory/compare.py
"""
from __future__ import annotations

import json
from pathlib import Path

from occi.train import memory
from occi.train.config import ModelConfig

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "megatron_memory.json"


def main() -> None:
    golden = json.loads(GOLDEN.read_text())
    print(f"Megatron-LM {golden['provenance']['commit'][:12]}; GiB per GPU, first pipeline stage for activations\n")
    print("| layout | weights + grads + optimizer: Megatron / occi | activations: Megatron / occi | occi peak (stage) |")
    print("|---|---|---|---|")
    for name, entry in golden["configurations"].items():
        a = entry["args"]
        shape = ModelConfig(num_layers=a["num_layers"], hidden_size=a["hidden_size"], ffn_hidden_size=a["ffn_hidden_size"],
                            num_attention_heads=a["num_attention_heads"], num_query_groups=a["num_query_groups"],
                            seq_length=a["seq_length"], vocab_size=a["padded_vocab_size"], num_experts=a["num_experts"],
                            moe_top_k=a["moe_router_topk"], moe_ffn_hidden_size=a["moe_ffn_hidden_size"])
        layout = memory.Layout(tensor_parallel=a["tensor_model_parallel_size"],
                               pipeline_parallel=a["pipeline_model_parallel_size"], data_parallel=a["data_parallel_size"],
                               expert_parallel=a["expert_model_parallel_size"], micro_batch_size=a["micro_batch_size"],
                               global_batch_size=a["global_batch_size"], sequence_parallel=a["sequence_parallel"],
                               recompute=a["recompute_granularity"] or "none",
                               distributed_optimizer=a["use_distributed_optimizer"])
        stages = memory.estimate(shape, a["padded_vocab_size"], layout)
        states = max(s.weights + s.gradients + s.optimizer for s in stages)
        top = memory.peak(stages)
        megatron_activations = entry["report_mb"]["activation"] * 2**20
        g = memory.GIB
        print(f"| {name} | {entry['weight_and_optimizer_bytes'] / g:.2f} / {states / g:.2f} | "
              f"{megatron_activations / g:.2f} / {stages[0].activations / g:.2f} | {top.total / g:.2f} ({top.stage}) |")


if __name__ == "__main__":
    main()
