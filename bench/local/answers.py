"""Does llama.cpp give the same answers as transformers? Greedy continuations of a run's model.

For every GGUF file of a run (<run>/gguf/*.gguf) and the first sentence of the demo text of every
run language as the prompt, the greedy continuation by llama.cpp is compared with transformers'
(fp32, <run>/hf): how many prompts give exactly the same tokens, and how many tokens agree
before the first difference.

    .venv/bin/python bench/local/answers.py runs/demo [--new-tokens 32]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    from occi.eval.llamacpp import LlamaCppLM

    languages = yaml.safe_load((args.run_dir / "config.yaml").read_text())["languages"]
    files = sorted((args.run_dir / "gguf").glob("*.gguf"), key=lambda f: -f.stat().st_size)
    model = AutoModelForCausalLM.from_pretrained(args.run_dir / "hf", dtype=torch.float32)
    first = LlamaCppLM(str(files[0]))
    prompts = {}
    for code in languages:
        text = json.loads((REPO / "corpora" / "demo" / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
        prompts[code] = first.tok_encode(text.split(". ")[0] + ".")[:48]
    reference = {}
    with torch.no_grad():
        for code, prompt in prompts.items():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=args.new_tokens, do_sample=False,
                                 eos_token_id=first.eot_token_id, pad_token_id=first.eot_token_id)
            reference[code] = [t for t in out[0, len(prompt):].tolist() if t != first.eot_token_id]
    print(f"| file | same greedy continuation ({args.new_tokens} tokens) | tokens agreeing before the first difference |")
    print("|---|---|---|")
    for path in files:
        lm = LlamaCppLM(str(path))
        same, agreeing, total = 0, 0, 0
        for code, prompt in prompts.items():
            ours = lm.greedy(prompt, args.new_tokens)
            same += ours == reference[code]
            agreeing += next((i for i, (a, b) in enumerate(zip(ours, reference[code])) if a != b),
                             min(len(ours), len(reference[code])))
            total += len(reference[code])
        print(f"| {path.name} | {same}/{len(prompts)} languages | {agreeing}/{total} |", flush=True)
    print(f"\nexample ({languages[0]}): {first.tok_decode(prompts[languages[0]])!r} -> "
          f"{first.tok_decode(reference[languages[0]])!r}")


if __name__ == "__main__":
    main()
