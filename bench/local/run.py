"""bench/local: greedy generation on this CPU, llama.cpp (GGUF f16, q8_0, q4_0, q4_k_m) vs transformers.

The model is the `125m` recipe (models/125m.yaml: 12 layers, width 768, GQA 12/4) with random
weights (N(0, 0.02), as training starts) and a real 32k SentencePiece vocabulary (Mistral's, shipped
in mistral-common), written as occi's export writes hf/ and converted by occi's GGUF writer.
Every engine runs in its own process (so peak memory is its own), on the same prompt token ids,
with the same thread count; engines alternate over the repeats and the median is reported
(two runs of one benchmark differ by up to 40 % on this shared machine).

    .venv/bin/python bench/local/run.py --out /tmp/occi-bench-local [--repeats 3] [--new-tokens 64] [--prompts 8]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LANGS = ["en", "de", "fr", "es", "it", "pl", "el", "fi"]
QUANTS = ["f16", "q8_0", "q4_0", "q4_k_m"]


def build(out: Path) -> Path:
    """<out>/hf (random 125m Llama + the Mistral 32k tokenizer) and its GGUF files."""
    import mistral_common
    import torch
    import yaml
    from transformers import GenerationConfig, LlamaForCausalLM

    from occi.gguf.export import quantize_with_llama_cpp
    from occi.gguf.quant import QUANT_TYPES, llama_quantize, writes_directly
    from occi.gguf.writer import write_gguf
    from occi.train.config import ModelConfig
    from occi.families import family
    from occi.train.export import hf_config

    hf = out / "hf"
    if not (hf / "model.safetensors").exists():
        shape = ModelConfig(**yaml.safe_load((REPO / "models" / "125m.yaml").read_text()))
        torch.manual_seed(0)
        model = LlamaForCausalLM(hf_config(family("llama", "bench"), shape, None, 32000, {"bos": 1, "eos": 2}, torch.float32))
        model.save_pretrained(hf, safe_serialization=True)
        GenerationConfig(bos_token_id=1, eos_token_id=2, max_new_tokens=64).save_pretrained(hf)
        source = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
        (hf / "tokenizer.model").write_bytes(source.read_bytes())
        (hf / "tokenizer_config.json").write_text(json.dumps(
            {"add_bos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    for quant in QUANTS:
        path = out / f"bench-125m-{quant}.gguf"
        if path.exists():
            continue
        if writes_directly(quant):
            write_gguf(hf, path, QUANT_TYPES[quant], "bench-125m")
        else:
            quantize_with_llama_cpp(out / "bench-125m-f16.gguf", path, QUANT_TYPES[quant], llama_quantize())
    return hf


def prompts(hf: Path) -> list[list[int]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(hf / "tokenizer.model"))
    texts = [json.loads((REPO / "corpora" / "demo" / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()[0])["text"]
             for code in LANGS]
    return [sp.encode(text)[:48] for text in texts]


def worker(engine: str, model: str, prompt_file: Path, new_tokens: int, threads: int, prompt_count: int) -> dict:
    ids = json.loads(prompt_file.read_text())[:prompt_count]
    outputs = []
    if engine == "transformers":
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        started = time.perf_counter()
        with torch.no_grad():
            for prompt in ids:
                out = lm.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                  do_sample=False, pad_token_id=2)
                outputs.append(out[0, len(prompt):].tolist())
    else:
        from llama_cpp import Llama

        llm = Llama(model_path=model, n_ctx=256, n_batch=256, n_threads=threads, verbose=False)
        started = time.perf_counter()
        for prompt in ids:
            tokens = []
            for token in llm.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
                tokens.append(int(token))
                if len(tokens) == new_tokens:
                    break
            outputs.append(tokens)
    seconds = time.perf_counter() - started
    return {"engine": engine, "model": Path(model).name, "seconds": seconds,
            "tokens_per_s": sum(len(o) for o in outputs) / seconds,
            "peak_rss_mb": peak_rss_mb(), "outputs": outputs}


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program (VmHWM: getrusage's
    ru_maxrss would include the launching parent's memory, inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/occi-bench-local"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=len(LANGS), help="the first N of the languages' prompts")
    parser.add_argument("--worker", nargs=2, metavar=("ENGINE", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    prompt_file = args.out / "prompts.json"
    if args.worker:
        print(json.dumps(worker(*args.worker, prompt_file, args.new_tokens, args.threads, args.prompts)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    hf = args.out / "hf"
    if args.build_only:
        build(args.out)
        prompt_file.write_text(json.dumps(prompts(hf)))
        return
    subprocess.run([sys.executable, __file__, "--out", str(args.out), "--build-only"], check=True)
    engines = [("transformers", str(hf))] + [("llama.cpp", str(args.out / f"bench-125m-{q}.gguf")) for q in QUANTS]
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for engine, model in engines:
            done = subprocess.run([sys.executable, __file__, "--out", str(args.out), "--new-tokens", str(args.new_tokens),
                                   "--threads", str(args.threads), "--prompts", str(args.prompts), "--worker", engine, model],
                                  capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs.setdefault(f"{engine} {Path(model).name}", []).append(result)
            print(f"{engine:<12} {Path(model).name:<26} {result['tokens_per_s']:8.1f} tokens/s  "
                  f"peak {result['peak_rss_mb']:7.0f} MB", flush=True)
    reference = next(iter(runs.values()))[0]["outputs"]
    rows = []
    for name, results in runs.items():
        outputs = results[0]["outputs"]
        same = sum(a == b for a, b in zip(outputs, reference))
        agree = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a)) for a, b in zip(outputs, reference)]
        size = sum(f.stat().st_size for f in hf.glob("*.safetensors")) if "transformers" in name else \
            Path(name.split(" ", 1)[1]).stat().st_size if Path(name.split(" ", 1)[1]).exists() else \
            (args.out / name.split(" ", 1)[1]).stat().st_size
        rows.append({"engine": name, "size_mb": size / 1e6,
                     "tokens_per_s": statistics.median(r["tokens_per_s"] for r in results),
                     "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
                     "same_greedy_prompts": f"{same}/{len(reference)}",
                     "mean_tokens_before_divergence": statistics.mean(agree)})
    base = rows[0]["tokens_per_s"]
    print("\n| engine | file | tokens/s (median) | vs transformers | peak RSS | greedy = transformers | tokens before divergence |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['size_mb']:,.0f} MB | {row['tokens_per_s']:.1f} | {row['tokens_per_s'] / base:.2f}x "
              f"| {row['peak_rss_mb']:,.0f} MB | {row['same_greedy_prompts']} | {row['mean_tokens_before_divergence']:.1f} |")
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
