"""Batched greedy generation: vLLM (occi/chat/vllm_backend.py, its own venv on CPU) against
transformers' `generate` (left padding), the same random Llama, the same prompt tokens, on the
same CPU, the same dtype and the same number of threads (--threads: torch's on the transformers
side, OMP_NUM_THREADS for the engine's worker; default: torch's default, every core). Rounds
alternate (transformers, vLLM, transformers, ...); each prints tokens/s, the ratio, and the CPU
seconds each side spent (transformers: this process; vLLM: its worker process plus this one),
which a shared machine's load disturbs less than the wall clock when --threads 1; the answers of
both must be the same tokens. The load average is recorded (figures taken with a load above the
core count are marked "under load"). occi's engine settings apply (OCCI_VLLM_COMPILE,
OCCI_VLLM_ENGINE_ARGS: occi/chat/vllm_backend.engine_options).

    .venv/bin/python bench/generate/vllm_vs_transformers.py [--hidden 512 --layers 8 --prompts 16 --tokens 64 --rounds 3 --threads N --dtype float32]
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

from occi.chat.vllm_backend import VllmGenerator, engine_options, interpreter, on_gpu  # noqa: E402

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
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the worker's, inherited
    dtype = getattr(torch, args.dtype)
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
    model = model.to(dtype)
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)] + " " * (i // 8)}],
                                           add_generation_prompt=True, tokenize=False) for i in range(args.prompts)]
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    # the answers run their full length on both sides (an EOS is a token like any other), so both
    # count the same tokens
    model.generation_config.eos_token_id = None

    def hf_generate() -> list[list[int]]:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=args.tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        return out[:, batch["input_ids"].shape[1]:].tolist()

    started = time.perf_counter()
    engine = VllmGenerator(folder, args.dtype)
    startup = time.perf_counter() - started
    engine.generate(prompts[:1], 4, ignore_eos=True)  # warm-up of both, outside the timings
    hf_generate()

    def vllm_generate() -> list[list[int]]:
        return engine.generate(prompts, args.tokens, ignore_eos=True)

    def cpu_seconds(name: str) -> float:
        """CPU seconds so far of this process, plus the worker's for vLLM (utime + stime in /proc)."""
        own = time.process_time()
        if name == "transformers" or engine.process is None:
            return own
        fields = Path(f"/proc/{engine.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return own + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    rounds, outputs = [], {}
    for _ in range(args.rounds):
        row = {"load_1min": round(os.getloadavg()[0], 2)}
        for name, function in (("transformers", hf_generate), ("vllm", vllm_generate)):
            begun, cpu = time.perf_counter(), cpu_seconds(name)
            outputs[name] = function()
            row[name] = round(sum(map(len, outputs[name])) / (time.perf_counter() - begun), 1)
            row[f"{name}_cpu_s"] = round(cpu_seconds(name) - cpu, 2)
        row["ratio"] = round(row["vllm"] / row["transformers"], 2)
        row["cpu_ratio"] = round(row["transformers_cpu_s"] / row["vllm_cpu_s"], 2)
        rounds.append(row)
        print(json.dumps(row), flush=True)
    engine.close()
    ratios = sorted(r["ratio"] for r in rounds)
    cpu_ratios = sorted(r["cpu_ratio"] for r in rounds)
    same = sum(a == b for a, b in zip(outputs["transformers"], outputs["vllm"]))
    loads = [r["load_1min"] for r in rounds]
    print(json.dumps({
        "model": f"random Llama {args.hidden} x {args.layers}, vocab {len(tokenizer)}, {args.dtype}",
        "prompts": args.prompts, "new_tokens_each": args.tokens, "cores": os.cpu_count(),
        "threads": torch.get_num_threads(), "engine_options": engine_options(on_gpu()),
        "vllm_python": interpreter() or sys.executable, "vllm_startup_s": round(startup, 1),
        "tokens_per_second": {name: [r[name] for r in rounds] for name in ("transformers", "vllm")},
        "ratio_min_median_max": [ratios[0], statistics.median(ratios), ratios[-1]],
        "cpu_ratio_min_median_max": [cpu_ratios[0], statistics.median(cpu_ratios), cpu_ratios[-1]],
        "same_greedy_tokens": f"{same}/{len(prompts)}", "load_1min": loads,
        "under_load": max(loads) > (os.cpu_count() or 1)}, indent=2))


if __name__ == "__main__":
    main()
