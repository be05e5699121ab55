"""The chat template: the base model's own where its tokenizer has one, else occi's default; and
the tokenization of a conversation with the mask of its assistant tokens.

Training never tokenizes turns one by one: it renders the whole conversation with the template
(in transformers, so the result is the one `apply_chat_template` gives) and tokenizes the text
in one go, as `apply_chat_template(messages)` does; the assistant tokens are found from
character offsets. A conversation therefore trains on exactly the ids a user of the exported
model gets from `AutoTokenizer.from_pretrained(...).apply_chat_template(messages)`.

The template travels in the tokenizer folder the way transformers 5 writes it (chat_template.jinja)
and, for transformers 4, in tokenizer_config.json's `chat_template`.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from occi.basemodel import TOKENIZER_FILES
from occi.errors import OcciError

OCCI_TEMPLATE = (
    "{{- bos_token if bos_token else '' }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|assistant|>\\n' }}"
    "{%- if message['reasoning'] is defined and message['reasoning'] %}"
    "{{- '<think>\\n' + message['reasoning'] + '\\n</think>\\n' }}"
    "{%- endif %}"
    "{{- message['content'] + (eos_token if eos_token else '') }}"
    "{%- else %}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}"
)
"""occi's default template: `<|system|>`, `<|user|>` and `<|assistant|>` lines, each assistant turn
closed by the end-of-sequence token (where generation stops); reasoning as <think>...</think>
before the answer; the generation prompt opens an assistant turn. The markers are plain text,
so any tokenizer can carry it without new tokens."""


@dataclass
class Encoded:
    ids: list[int]
    """The token ids of the rendered conversation (what apply_chat_template returns)."""
    assistant: list[bool]
    """Per token: part of an assistant turn (its answer and end-of-turn marker): trained on."""


def write_chat_tokenizer(source: Path, out: Path, policy: str = "auto") -> str:
    """Copies the tokenizer files of `source` to `out`, adding occi's template unless the tokenizer
    has its own (and `policy` is auto). Returns "base" or "occi", the template's origin."""
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    own = (out / "chat_template.jinja").read_text(encoding="utf-8") if (out / "chat_template.jinja").is_file() \
        else config.get("chat_template")
    if isinstance(own, list):  # several named templates: the default one
        own = next((t["template"] for t in own if t.get("name") == "default"), None)
    origin = "base" if own and policy == "auto" else "occi"
    template = own if origin == "base" else OCCI_TEMPLATE
    (out / "chat_template.jinja").write_text(template, encoding="utf-8")
    config["chat_template"] = template
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return origin


def load_tokenizer(folder: Path):
    """The chat tokenizer (a fast tokenizer: offsets are needed)."""
    from transformers import AutoTokenizer  # loads transformers: only when used

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if not getattr(tokenizer, "is_fast", False):
        raise OcciError(f"{folder}: the tokenizer has no fast (tokenizer.json) version; SFT needs its offsets")
    return tokenizer


_REASONING_FIELD = re.compile(r"message(?:\.|\[['\"])(reasoning_content|thinking|reasoning)\b")


def reasoning_field(tokenizer) -> str | None:
    """The assistant-turn field the chat template renders reasoning from: `thinking` (gpt-oss's
    harmony template: the analysis channel), `reasoning_content` (Qwen3), `reasoning` (occi's);
    None when it reads none (reasoning then goes into the content as <think>...</think>)."""
    found = _REASONING_FIELD.findall(getattr(tokenizer, "chat_template", None) or "")
    return found[0] if found else None


def for_template(tokenizer, messages: list[dict]) -> list[dict]:
    """The messages with each assistant turn's `reasoning` under the field the template reads."""
    field = reasoning_field(tokenizer)
    out = []
    for message in messages:
        reasoning = message.get("reasoning")
        message = {k: v for k, v in message.items() if k != "reasoning"}
        if reasoning and field:
            message[field] = reasoning
        elif reasoning:
            message["content"] = f"<think>\n{reasoning}\n</think>\n{message['content']}"
        out.append(message)
    return out


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def encode(tokenizer, messages: list[dict]) -> Encoded:
    """Token ids of the whole conversation and which of them belong to assistant turns (their
    reasoning included, where the template renders it)."""
    messages = for_template(tokenizer, messages)
    text = render(tokenizer, messages)
    spans = _assistant_spans(tokenizer, messages, text)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assistant = [any(start < b and end > a for a, b in spans) for start, end in encoding["offset_mapping"]]
    return Encoded(list(encoding["input_ids"]), assistant)


def _assistant_spans(tokenizer, messages: list[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of the assistant turns in `text`: between the text rendered up to the
    generation prompt and the text rendered through the turn when those are prefixes of the
    whole (most templates); else the turn's content found in order, with an end-of-sequence
    token right after it (templates that rewrite earlier turns, such as dropping old reasoning)."""
    spans, cursor = [], 0
    eos = tokenizer.eos_token or ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        through = render(tokenizer, messages[:i + 1])
        if text.startswith(before) and text.startswith(through) and len(through) > len(before):
            spans.append((len(before), len(through)))
            cursor = len(through)
            continue
        start = text.find(message["content"], cursor)
        if start < 0:
            raise OcciError("the chat template does not reproduce an assistant turn's content; "
                            "set sft.template: occi to use occi's template")
        end = start + len(message["content"])
        if eos and text.startswith(eos, end):
            end += len(eos)
        spans.append((start, end))
        cursor = end
    return spans
