"""Answer-language fidelity: of a model's answers to prompts in a language, the share that occi's
language ID (occi/corpora/langid.py, the run's configured identifier) reads as that language.

Models often answer a Slovenian or Maltese prompt in English or in a neighbour language; no
leaderboard reports it. The prompts are occi's own (eval/data/fidelity/<lang>.jsonl, four
everyday requests per language, written for the project). Each is sent through the model's chat
template (a base model without one continues the prompt text), the answer is generated greedily
(`eval.fidelity_max_new_tokens`), reasoning before `</think>` is left out, and the answer counts
when the identifier's top language is the prompt's (no score threshold: the question is which
language, not how clean). The result is written as an lm-eval results file (task
occi_fidelity_<lang>, metric `fidelity`, binomial standard error) with a samples file beside it,
so `occi leaderboard` and the card read it like any other benchmark.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from occi import languages
from occi.assets import asset_dir
from occi.chat.budget import THINK_END, generate
from occi.chat.models import encode_prompt, prompt_text
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, atomic_write_text


def prompts(code: str) -> list[str]:
    """The shipped fidelity prompts of a language."""
    path = asset_dir("eval") / "data" / "fidelity" / f"{code}.jsonl"
    if not path.is_file():
        raise OcciError(f"{path}: occi has no fidelity prompts for {code}")
    return [json.loads(line)["prompt"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def identifier(cfg):
    """The run's language identifier, over every language of the table."""
    from occi.corpora.langid import LanguageIdentifier  # loads numba: only when used

    return LanguageIdentifier.from_config(cfg.corpora.langid, list(languages.LANGUAGES), cfg.corpora.base_dir)


def answer_text(text: str) -> str:
    """The answer without the reasoning before `</think>`."""
    return text.split(THINK_END)[-1].strip()


def measure(model, tokenizer, code: str, ident, max_new_tokens: int, engine=None, stop: list[int] = ()) -> dict:
    """The fidelity of one language: value, standard error and one sample per prompt; with a vLLM
    `engine` (occi/chat/vllm_backend.py) the prompts are generated together through it, ending at
    the `stop` token ids."""
    texts = prompts(code)
    encoded = [encode_prompt(tokenizer, prompt_text(tokenizer, [{"role": "user", "content": prompt}],
                                                    require_template=False)) for prompt in texts]
    if engine is not None:
        outputs = engine.generate(encoded, max_new_tokens, stop_token_ids=stop)
        answers = [tokenizer.decode(ids, skip_special_tokens=True) for ids in outputs]
    else:
        answers = [generate(model, tokenizer, ids, max_new_tokens).answer for ids in encoded]
    samples = []
    for index, (prompt, text) in enumerate(zip(texts, answers)):
        answer = answer_text(text)
        found, score, label = ident.predict(answer) if answer else (None, 0.0, "")
        samples.append({"doc_id": index, "prompt": prompt, "answer": answer, "identified": found or label or None,
                        "score": round(score, 4), "fidelity": float(found == code)})
    value = sum(s["fidelity"] for s in samples) / len(samples)
    return {"value": value, "stderr": math.sqrt(value * (1 - value) / len(samples)), "samples": samples}


def write_results(folder: Path, task: str, model_name: str, label: str, result: dict, settings: dict) -> None:
    """lm-eval's layout: <folder>/<label>/results_<time>.json and samples_<task>_<time>.jsonl."""
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    out = Path(folder) / label
    atomic_write_json(out / f"results_{stamp}.json", {
        "results": {task: {"alias": task, "fidelity,none": result["value"], "fidelity_stderr,none": result["stderr"]}},
        "n-shot": {task: 0}, "n-samples": {task: {"original": len(result["samples"]),
                                                   "effective": len(result["samples"])}},
        "config": {"model": "occi", "model_args": {"pretrained": model_name}, **settings},
        "model_name": model_name, "model_name_sanitized": label, "date": time.time()})
    atomic_write_text(out / f"samples_{task}_{stamp}.jsonl",
                      "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in result["samples"]))
