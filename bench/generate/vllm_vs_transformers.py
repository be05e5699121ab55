"""Batched greedy generation: vLLM (occi/chat/vllm_backend.py, its own venv on CPU) against
transformers' `generate` (left padding), the same random Llama, the same prompt tokens, on the
same CPU. Rounds alternate (transformers, vLLM, transformers, ...); each prints tokens/s and the
ratio; the answers of both must be the same tokens. The load average is recorded (this machine is
shared: figures taken with a load above the core count are marked "under load").

    .venv/bin/python bench/generate/vllm_vs_transformers.py [--hidden 512 --layers 8 --prompts 16 --tokens 64 --rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from occi.chat.vllm_backend import VllmGenerator, interpreter  # noqa: E402

QUESTIONS = ["Explain briefly why the sky is blue.", "Wie spät ist es in Helsinki?", "Quelle est la capitale de la Suède ?",
             "Name three rivers of Europe.", "Was ist ein Tokenizer?", "Écris un poème sur la mer.",
             "How do trains brake?", "Warum ist Schnee weiß?"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.chat_models import save_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    save_tokenizer(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.hidden * 3,
                         num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4,
                         max_position_embeddings=1024, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(str(folder))
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)] + " " * (i // 8)}],
                                           add_generation_prompt=True, tokenize=False) for i in range(args.prompts)]
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    # the answers run their full length on both sides (an EOS is a token like any other), so both
    # count the same tokens
    model.generation_config.eos_token_id = None

    def hf_generate() -> list[list[int]]:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=args.tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        return out[:, batch["input_ids"].shape[1]:].tolist()

    started = time.perf_counter()
    engine = VllmGenerator(folder, "float32")
    startup = time.perf_counter() - started
    engine.generate(prompts[:1], 4, ignore_eos=True)  # warm-up of both, outside the timings
    hf_generate()

    def vllm_generate() -> list[list[int]]:
        return engine.generate(prompts, args.tokens, ignore_eos=True)

    rounds, outputs = [], {}
    for _ in range(args.rounds):
        row = {"load_1min": round(os.getloadavg()[0], 2)}
        for name, function in (("transformers", hf_generate), ("vllm", vllm_generate)):
            begun = time.perf_counter()
            outputs[name] = function()
            row[name] = round(sum(map(len, outputs[name])) / (time.perf_counter() - begun), 1)
        row["ratio"] = round(row["vllm"] / row["transformers"], 2)
        rounds.append(row)
        print(json.dumps(row), flush=True)
    engine.close()
    ratios = sorted(r["ratio"] for r in rounds)
    same = sum(a == b for a, b in zip(outputs["transformers"], outputs["vllm"]))
    loads = [r["load_1min"] for r in rounds]
    print(json.dumps({
        "model": f"random Llama {args.hidden} x {args.layers}, vocab {len(tokenizer)}, float32",
        "prompts": args.prompts, "new_tokens_each": args.tokens, "cores": os.cpu_count(),
        "vllm_python": interpreter() or sys.executable, "vllm_startup_s": round(startup, 1),
        "tokens_per_second": {name: [r[name] for r in rounds] for name in ("transformers", "vllm")},
        "ratio_min_median_max": [ratios[0], statistics.median(ratios), ratios[-1]],
        "same_greedy_tokens": f"{same}/{len(prompts)}", "load_1min": loads,
        "under_load": max(loads) > (os.cpu_count() or 1)}, indent=2))


if __name__ == "__main__":
    main()
