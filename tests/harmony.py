"""A harmony-style chat template for tiny gpt-oss bases, written for occi's tests with the structure
of the one gpt-oss ships: a system header, the system message as the developer's instructions,
each message `<|start|>ROLE<|message|>...<|end|>`, the assistant's answer on the `final` channel,
the reasoning of the conversation's last assistant turn on the `analysis` channel (the `thinking`
field), `<|return|>` closing that last turn (`<|end|>` every other message), and `<|start|>assistant`
as the generation prompt (the model writes the channel itself)."""
from __future__ import annotations

from pathlib import Path

HARMONY_TOKENS = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>"]

HARMONY_TEMPLATE = (
    "{{- '<|start|>system<|message|>Reasoning: medium<|end|>' -}}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{{- '<|start|>developer<|message|># Instructions\\n\\n' + messages[0].content + '<|end|>' -}}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{%- if message.thinking is defined and message.thinking and loop.last -%}"
    "{{- '<|start|>assistant<|channel|>analysis<|message|>' + message.thinking + '<|end|>' -}}"
    "{%- endif -%}"
    "{{- '<|start|>assistant<|channel|>final<|message|>' + message.content -}}"
    "{{- '<|return|>' if loop.last and not add_generation_prompt else '<|end|>' -}}"
    "{%- else -%}"
    "{{- '<|start|>' + message.role + '<|message|>' + message.content + '<|end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start|>assistant' -}}{%- endif -%}"
)


def add_harmony(folder: Path) -> None:
    """Gives the tokenizer in `folder` harmony's special tokens and the template (as a base ships them)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.add_special_tokens({"additional_special_tokens": HARMONY_TOKENS})
    tokenizer.chat_template = HARMONY_TEMPLATE
    tokenizer.save_pretrained(str(folder))
