"""`occi generate CONFIG --prompt TEXT`: one answer from the run's model (or any), through its chat
template, with the s1 budget controls for reasoning models (occi/chat/budget.py)."""
from __future__ import annotations

from pathlib import Path

from occi import languages
from occi.basemodel import resolve
from occi.chat import budget as budgeting
from occi.chat.models import encode_prompt, load, pick_device, prompt_text
from occi.chat.vllm_backend import engine, engine_dtype, stop_ids
from occi.errors import OcciError
from occi.rundir import RunDir
from occi.train.config import BaseModelConfig


def prompt_language(text: str) -> str | None:
    """The language occi's language ID reads in the prompt (fastText lid.176), or None."""
    from occi.corpora.langid import LanguageIdentifier, default_model_path  # loads numba: only when used

    code, _, _ = LanguageIdentifier(default_model_path(), list(languages.LANGUAGES)).predict(text)
    return code


def model_folder(run: RunDir, model: str | None) -> Path:
    """--model, or the run's exported model."""
    if model is None:
        if not (run.hf / "config.json").exists():
            raise OcciError(f"{run.hf}: no exported model; run `occi export` (or `occi sft`) first, or pass --model")
        return run.hf
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder

    return resolve(BaseModelConfig(base=model))


def generate(cfg, run: RunDir, prompt: str, language: str | None = None, model: str | None = None,
             system: str | None = None, max_new_tokens: int = 256, min_thinking_tokens: int | None = None,
             max_thinking_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0,
             device: str = "auto", backend: str = "transformers") -> tuple[budgeting.Generation, dict]:
    """The model's answer and what was used (model, language, continuation word)."""
    if not prompt.strip():
        raise OcciError("--prompt: give a non-empty prompt")
    if language is not None:
        languages.get(language)
    budget = None
    if min_thinking_tokens is not None or max_thinking_tokens is not None:
        budget = budgeting.Budget(min_thinking_tokens or 0, max_thinking_tokens)
        if backend == "vllm":
            raise OcciError("--backend vllm: budget forcing (--min/--max-thinking-tokens) rewrites the sequence "
                            "token by token, which only the transformers backend does; drop one of them")
    folder = model_folder(RunDir.of(run), model)
    chat = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    if backend == "vllm":
        answer, tokenizer = vllm_answer(folder, chat, max_new_tokens, temperature, top_p, cfg.seed, device)
        return answer, {"model": str(folder), "language": language, "wait_word": None,
                        "chat_template": bool(getattr(tokenizer, "chat_template", None)), "backend": "vllm"}
    lm, tokenizer = load(folder, device)
    ids = encode_prompt(tokenizer, prompt_text(tokenizer, chat, require_template=False))
    code = language or (prompt_language(prompt) if budget is not None else None)
    wait = budgeting.wait_word(code)
    result = budgeting.generate(lm, tokenizer, ids, max_new_tokens, budget, wait=wait, temperature=temperature,
                                top_p=top_p, seed=cfg.seed)
    return result, {"model": str(folder), "language": code, "wait_word": wait if budget else None,
                    "chat_template": bool(getattr(tokenizer, "chat_template", None)), "backend": "transformers"}


def vllm_answer(folder: Path, chat: list[dict], max_new_tokens: int, temperature: float, top_p: float, seed: int,
                device: str) -> tuple[budgeting.Generation, object]:
    """One answer through vLLM (occi/chat/vllm_backend.py), from the same prompt tokens as
    transformers; and the tokenizer that made them."""
    from transformers import AutoTokenizer  # loads transformers: only when used

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ids = encode_prompt(tokenizer, prompt_text(tokenizer, chat, require_template=False))
    generator = engine(folder, engine_dtype("auto", pick_device(device)))
    [answer] = generator.generate([ids], max_new_tokens, temperature, top_p, seed, stop_ids(folder, tokenizer))
    return budgeting.Generation(thinking=None, answer=tokenizer.decode(answer, skip_special_tokens=True),
                                thinking_tokens=0, waits=0, forced_end=False, new_tokens=len(answer)), tokenizer
