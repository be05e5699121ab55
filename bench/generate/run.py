"""occi's generation loop (occi/chat/budget.py, used by `occi generate` and the fidelity suite)
against transformers' `generate`, greedy, one sequence, the same random Llama: tokens per second
and whether both write the same tokens. Also the loop with budget forcing on (a minimum that
the random model reaches by itself or by continuation words).

    .venv/bin/python bench/generate/run.py [--hidden 512 --layers 8 --tokens 128 --rounds 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from occi.chat import budget  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.chat_models import save_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    save_tokenizer(folder)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.hidden * 3,
                         num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4,
                         max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Explain briefly why the sky is blue."}],
                                           add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def occi_loop():
        return budget.generate(model, tokenizer, ids, args.tokens)

    def hf_generate():
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=args.tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        return out[0, len(ids):].tolist()

    def occi_budget():
        return budget.generate(model, tokenizer, ids, args.tokens, budget.Budget(args.tokens // 2, None))

    counts = {"occi loop": lambda r: r.new_tokens, "transformers generate": len,
              "occi loop, budget forcing": lambda r: r.new_tokens}
    timings = {"occi loop": [], "transformers generate": [], "occi loop, budget forcing": []}
    outputs = {}
    for _ in range(args.rounds):
        for name, function in (("occi loop", occi_loop), ("transformers generate", hf_generate),
                               ("occi loop, budget forcing", occi_budget)):
            started = time.perf_counter()
            outputs[name] = function()
            timings[name].append((time.perf_counter() - started) / max(1, counts[name](outputs[name])))
    result = {"model": f"random Llama {args.hidden} x {args.layers}, vocab {len(tokenizer)}",
              "tokens": args.tokens, "prompt_tokens": len(ids), "threads": 1,
              "new_tokens": {k: counts[k](outputs[k]) for k in outputs},
              "tokens_per_second_median": {k: round(1 / statistics.median(v), 1) for k, v in timings.items()},
              "tokens_per_second_best": {k: round(1 / min(v), 1) for k, v in timings.items()},
              "same_text": outputs["occi loop"].answer == tokenizer.decode(outputs["transformers generate"],
                                                                           skip_special_tokens=True)}
    median = result["tokens_per_second_median"]
    result["ratio_occi_vs_generate_median"] = round(median["occi loop"] / median["transformers generate"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
