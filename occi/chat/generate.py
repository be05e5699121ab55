"""`occi generate CONFIG --prompt TEXT`: one answer from the run's model (or any), through its chat
template, with the s1 budget controls for reasoning models (occi/chat/budget.py)."""
from __future__ import annotations

from pathlib import Path

from occi.chat import budget as budgeting
from occi.chat.models import encode_prompt, load, prompt_text
from occi.errors import OcciError
from occi.rundir import RunDir


def prompt_language(text: str) -> str | None:
    """The language occi's language ID reads in the prompt (fastText lid.176), or None."""
    from occi import languages
    from occi.corpora.langid import LanguageIdentifier, default_model_path

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
    from occi.train.config import BaseModelConfig
    from occi.basemodel import resolve

    return resolve(BaseModelConfig(base=model))


def generate(cfg, run: RunDir, prompt: str, language: str | None = None, model: str | None = None,
             system: str | None = None, max_new_tokens: int = 256, min_thinking_tokens: int | None = None,
             max_thinking_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0,
             device: str = "auto") -> tuple[budgeting.Generation, dict]:
    """The model's answer and what was used (model, language, continuation word)."""
    from occi import languages

    if not prompt.strip():
        raise OcciError("--prompt: give a non-empty prompt")
    if language is not None:
        languages.get(language)
    folder = model_folder(RunDir.of(run), model)
    lm, tokenizer = load(folder, device)
    chat = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    ids = encode_prompt(tokenizer, prompt_text(tokenizer, chat, require_template=False))
    budget = None
    if min_thinking_tokens is not None or max_thinking_tokens is not None:
        budget = budgeting.Budget(min_thinking_tokens or 0, max_thinking_tokens)
    code = language or (prompt_language(prompt) if budget is not None else None)
    wait = budgeting.wait_word(code)
    result = budgeting.generate(lm, tokenizer, ids, max_new_tokens, budget, wait=wait, temperature=temperature,
                                top_p=top_p, seed=cfg.seed)
    return result, {"model": str(folder), "language": code, "wait_word": wait if budget else None,
                    "chat_template": bool(getattr(tokenizer, "chat_template", None))}
