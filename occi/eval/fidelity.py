"""Answer-language fidelity: of a model's answers to prompts in a language, the share that occi's
language ID (occi/corpora/langid.py, the run's configured identifier) reads as that language.

Models often answer a Slovenian or Maltese prompt in English or in a neighbour language; no
leaderboard reports it. The prompts are occi's own (eval/data/fidelity/<lang>.jsonl, written for
the project in each language: a third each everyday, technical and reasoning requests, the `kind`
of each row). Each is sent through the model's chat template (a base model without one continues
the prompt text); the answers of a language are generated greedily in batches
(`eval.batch_size`, left padding: the same tokens as one prompt at a time), reasoning before
`</think>` is left out, and an answer counts when the identifier's top language is the prompt's
(no score threshold: the question is which language, not how clean). The result is written as an
lm-eval results file (task occi_fidelity_<lang>, metric `fidelity`, binomial standard error, and
a 95% Wilson interval) with a samples file beside it (each prompt's kind, answer and verdict), so
`occi leaderboard` and the card read it like any other benchmark.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from occi import languages
from occi.assets import asset_dir
from occi.chat.budget import THINK_END, eos_ids
from occi.chat.models import encode_prompt, prompt_text
from occi.errors import OcciError
from occi.eval.intervals import wilson
from occi.fsutil import atomic_write_json, atomic_write_text

KINDS = ("everyday", "technical", "reasoning")
"""The kinds of request every language's prompts cover, a third each."""
INTERVAL_KEYS = ("fidelity_ci95_low,none", "fidelity_ci95_high,none")
"""Where the results file keeps the 95% interval, beside lm-eval's `fidelity_stderr,none`."""


@dataclass(frozen=True)
class Prompt:
    text: str
    """The request, in the file's language."""
    kind: str
    """everyday, technical or reasoning."""


def prompt_file(code: str) -> Path:
    """The shipped prompt file of a language."""
    return asset_dir("eval") / "data" / "fidelity" / f"{code}.jsonl"


def load_prompts(code: str, limit: int | None = None) -> list[Prompt]:
    """The shipped prompts of a language; with `limit`, the first that many taken in turn from
    each kind (so a capped run keeps the mix)."""
    path = prompt_file(code)
    if not path.is_file():
        raise OcciError(f"{path}: occi has no fidelity prompts for {code}")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise OcciError(f"{path}:{number}: not a JSON object ({err.msg}); "
                            "write one {\"prompt\": ..., \"kind\": ...} per line") from None
        if not isinstance(row, dict) or row.get("kind") not in KINDS or not str(row.get("prompt", "")).strip():
            raise OcciError(f"{path}:{number}: expected a non-empty `prompt` and a `kind` of {', '.join(KINDS)}")
        rows.append(Prompt(row["prompt"], row["kind"]))
    if limit is None or limit >= len(rows):
        return rows
    queues = {kind: [p for p in rows if p.kind == kind] for kind in KINDS}
    chosen: list[Prompt] = []
    while len(chosen) < limit:
        for kind in KINDS:
            if queues[kind] and len(chosen) < limit:
                chosen.append(queues[kind].pop(0))
    return chosen


def prompts(code: str) -> list[str]:
    """The texts of a language's shipped prompts."""
    return [p.text for p in load_prompts(code)]


def identifier(cfg):
    """The run's language identifier, over every language of the table."""
    from occi.corpora.langid import LanguageIdentifier  # loads numba: only when used

    return LanguageIdentifier.from_config(cfg.corpora.langid, list(languages.LANGUAGES), cfg.corpora.base_dir)


def answer_text(text: str) -> str:
    """The answer without the reasoning before `</think>`."""
    return text.split(THINK_END)[-1].strip()


def generate_batch(model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy answers to several prompts at once: left-padded so every prompt ends where the
    answers begin, each answer cut at its first end-of-sequence token (which it does not keep)."""
    import torch  # loads torch: only when used

    device = next(model.parameters()).device
    eos = eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos, default=0)
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in prompt_ids], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                             do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=sorted(eos) or None,
                             temperature=None, top_p=None, top_k=None)
    answers = []
    for row in out[:, width:].tolist():
        end = next((i for i, token in enumerate(row) if token in eos), len(row))
        answers.append(row[:end])
    return answers


def measure(model, tokenizer, code: str, ident, max_new_tokens: int, batch_size: int = 8,
            max_prompts: int | None = None, engine=None, stop: list[int] = ()) -> dict:
    """The fidelity of one language: value, standard error, 95% interval, the value per kind and
    one sample per prompt; with a vLLM `engine` (occi/chat/vllm_backend.py) the prompts are
    generated together through it, ending at the `stop` token ids."""
    from tqdm import tqdm  # loads tqdm: only when used

    chosen = load_prompts(code, max_prompts)
    encoded = [encode_prompt(tokenizer, prompt_text(tokenizer, [{"role": "user", "content": p.text}],
                                                    require_template=False)) for p in chosen]
    answers: dict[int, str] = {}
    if engine is not None:
        for index, ids in enumerate(engine.generate(encoded, max_new_tokens, stop_token_ids=stop)):
            answers[index] = answer_text(tokenizer.decode(ids, skip_special_tokens=True))
    order = sorted(range(len(chosen)), key=lambda i: len(encoded[i])) if engine is None else []  # less padding
    for start in tqdm(range(0, len(order), batch_size), desc=f"fidelity {code}", unit="batch", leave=False):
        group = order[start:start + batch_size]
        for index, ids in zip(group, generate_batch(model, tokenizer, [encoded[i] for i in group], max_new_tokens)):
            answers[index] = answer_text(tokenizer.decode(ids, skip_special_tokens=True))
    samples = []
    for index, prompt in enumerate(chosen):
        answer = answers[index]
        found, score, label = ident.predict(answer) if answer else (None, 0.0, "")
        samples.append({"doc_id": index, "kind": prompt.kind, "prompt": prompt.text, "answer": answer,
                        "identified": found or label or None, "score": round(score, 4),
                        "fidelity": float(found == code)})
    return summarize(samples)


def summarize(samples: list[dict]) -> dict:
    """Value, standard error and 95% Wilson interval of the samples' verdicts, overall and per kind."""
    faithful = sum(int(s["fidelity"]) for s in samples)
    value = faithful / len(samples)
    by_kind = {}
    for kind in KINDS:
        verdicts = [int(s["fidelity"]) for s in samples if s["kind"] == kind]
        if verdicts:
            by_kind[kind] = {"fidelity": sum(verdicts) / len(verdicts), "answers": len(verdicts),
                             "ci95": list(wilson(sum(verdicts), len(verdicts)))}
    return {"value": value, "stderr": math.sqrt(value * (1 - value) / len(samples)),
            "interval": list(wilson(faithful, len(samples))), "by_kind": by_kind, "samples": samples}


def write_results(folder: Path, task: str, model_name: str, label: str, result: dict, settings: dict) -> None:
    """lm-eval's layout: <folder>/<label>/results_<time>.json and samples_<task>_<time>.jsonl."""
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    out = Path(folder) / label
    low, high = INTERVAL_KEYS
    atomic_write_json(out / f"results_{stamp}.json", {
        "results": {task: {"alias": task, "fidelity,none": result["value"], "fidelity_stderr,none": result["stderr"],
                           low: result["interval"][0], high: result["interval"][1], "by_kind": result["by_kind"]}},
        "n-shot": {task: 0}, "n-samples": {task: {"original": len(result["samples"]),
                                                   "effective": len(result["samples"])}},
        "config": {"model": "occi", "model_args": {"pretrained": model_name}, **settings},
        "model_name": model_name, "model_name_sanitized": label, "date": time.time()})
    atomic_write_text(out / f"samples_{task}_{stamp}.jsonl",
                      "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in result["samples"]))
