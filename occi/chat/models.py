"""A transformers causal LM and its tokenizer for generation, and the prompt text of a chat."""
from __future__ import annotations

from pathlib import Path

from occi.errors import OcciError


def pick_device(device: str) -> str:
    import torch  # loads torch: only when used

    return device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")


def load(folder: str | Path, device: str = "auto", dtype: str = "auto"):
    """(model, tokenizer) from a local folder, in eval mode on `device`; the tokenizer pads on the
    left, as batched generation needs."""
    import torch  # loads torch: only when used
    from transformers import AutoModelForCausalLM, AutoTokenizer  # loads transformers: only when used

    device = pick_device(device)
    dtype = dtype if dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, dtype))
    except (OSError, ValueError) as err:
        raise OcciError(f"{folder}: cannot load it as a transformers causal LM ({str(err).splitlines()[0][:200]})") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer, chat: list[dict], require_template: bool = True) -> str:
    """The text the model continues: the chat through the tokenizer's chat template with the
    generation prompt; without a template (a base model) the last user message itself, unless
    `require_template`."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    if require_template:
        raise OcciError(f"{getattr(tokenizer, 'name_or_path', 'the model')}: its tokenizer has no chat template; "
                        "use an instruct model, or one exported by `occi sft` (which writes the template)")
    return chat[-1]["content"]


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a prompt text; a chat template writes its own special tokens, so the
    tokenizer adds none (a base model's plain prompt gets the tokenizer's usual BOS)."""
    return tokenizer(text, add_special_tokens=not has_chat_template(tokenizer))["input_ids"]
