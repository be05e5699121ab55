"""The predicted peak memory per GPU of every shipped cluster recipe on every GPU cluster profile,
as `occi plan` computes it, printed as the Markdown table of docs/memory-and-stability.md.

The 7-8B recipes continue from hub bases whose config.json a plan reads from the run or the
Hugging Face cache; this script writes the published architecture numbers of those two bases
(Llama-3.1-8B, Mistral-7B-v0.3) into a scratch run directory instead, so it needs no download.

    python bench/memory/recipes.py [--png docs/memory-recipes.png]
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

RECIPES = ["cpt-llama-3.1-8b-eu", "sft-llama-3.1-8b-eu", "cpt-mistral-7b-eu", "sft-mistral-7b-eu",
           "moe-8x1b-eu", "moe-16b-a2b-eu"]
CLUSTERS = ["juwels-booster", "leonardo-booster", "marenostrum5-acc", "lumi-g", "generic-gpu"]

# architecture numbers of the published config.json files
MISTRAL_7B_V03 = {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096,
                  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 32768, "max_position_embeddings": 32768,
                  "rope_theta": 1000000.0, "rms_norm_eps": 1e-5, "sliding_window": None, "hidden_act": "silu",
                  "tie_word_embeddings": False}
LLAMA_31_8B = {**MISTRAL_7B_V03, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
               "max_position_embeddings": 131072, "rope_theta": 500000.0,
               "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}}


def main() -> None:
    import argparse

    from occi import config
    from occi.slurm.memory_plot import memory_png
    from occi.rundir import RunDir
    from occi.slurm import estimate
    from occi.slurm.submit import load_profile
    from occi.train.memory import GIB

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", help="also draw each recipe's breakdown against the GPUs' memory")
    options = parser.parse_args()
    bars = []
    header = "| recipe (layout) | " + " | ".join(
        f"{c} ({load_profile(c)[0].gpu_memory_gib:g} GiB)" for c in CLUSTERS) + " |"
    print(header)
    print("|" + "---|" * (len(CLUSTERS) + 1))
    for name in RECIPES:
        cfg = config.load(name)
        t = cfg.train
        knobs = [f"TP{t.tensor_parallel} PP{t.pipeline_parallel} DP{t.data_parallel}"
                 + (f" EP{t.expert_parallel}" if t.expert_parallel > 1 else ""), f"micro batch {t.micro_batch_size}"]
        knobs += [k for k, on in (("distributed optimizer", t.distributed_optimizer), ("SP", t.sequence_parallel)) if on]
        knobs += [f"recompute {t.recompute}"] if t.recompute != "none" else []
        cells = []
        for cluster in CLUSTERS:
            with tempfile.TemporaryDirectory() as folder:
                run = RunDir(Path(folder))
                run.base.mkdir(parents=True)
                base = LLAMA_31_8B if "llama" in name else MISTRAL_7B_V03
                (run.base / "config.json").write_text(json.dumps(base))
                plan = estimate.estimate(cfg, run, load_profile(cluster)[0], cluster)
            memory = plan["memory"]
            if cluster == CLUSTERS[0]:
                bars.append((name, memory["parts"]))
            verdict = "fits" if memory["fits"] else "**does not fit**"
            cells.append(f"{memory['peak_bytes'] / GIB:.1f} GiB, {memory['headroom_bytes'] / GIB:+.1f}: {verdict}")
        print(f"| {name} ({', '.join(knobs)}) | " + " | ".join(cells) + " |")
    if options.png:
        from occi.train.memory import RUNTIME_RESERVE_GIB

        sizes = {f"{load_profile(c)[0].gpu_memory_gib:g} GiB": load_profile(c)[0].gpu_memory_gib for c in CLUSTERS}
        memory_png(bars, sizes, RUNTIME_RESERVE_GIB, Path(options.png))


if __name__ == "__main__":
    main()
