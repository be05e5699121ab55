"""An Ollama Modelfile beside a GGUF file: `ollama create NAME -f <file>.Modelfile`.

Ollama wants a Go template, not the tokenizer's Jinja one; the two chat formats whose markers
are recognised in the Jinja template (ChatML, Llama 3) get their Go equivalent and their
end-of-turn token as a stop word. A base model (no chat template, like occi's own) gets the raw
prompt: it continues text. Parameters come from the generation config and the model's context.
"""
from __future__ import annotations

import json
from pathlib import Path

from occi.fsutil import atomic_write_text
from occi.gguf.vocab import chat_template, json_or_empty

CHATML = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
          "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n")
LLAMA3 = ("{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
          "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
          "<|start_header_id|>assistant<|end_header_id|>\n\n")


def template_and_stops(chat_template: str | None) -> tuple[str, list[str], str]:
    """(Go template, extra stop words, a word on which format it is)."""
    if chat_template and "<|im_start|>" in chat_template:
        return CHATML, ["<|im_end|>"], "ChatML chat format"
    if chat_template and "<|start_header_id|>" in chat_template:
        return LLAMA3, ["<|eot_id|>"], "Llama 3 chat format"
    if chat_template:
        return "{{ .Prompt }}", [], "the chat template is not a format occi translates; raw prompt"
    return "{{ .Prompt }}", [], "base model: continues the prompt"


def modelfile_text(gguf_name: str, hf_dir: Path, eos_text: str | None, context: int) -> str:
    hf_dir = Path(hf_dir)
    template, stops, what = template_and_stops(chat_template(hf_dir, json_or_empty(hf_dir / "tokenizer_config.json")))
    generation = json_or_empty(hf_dir / "generation_config.json")
    lines = [f"# Ollama Modelfile for {gguf_name}, written by `occi export --format gguf` ({what}).",
             f"# ollama create {Path(gguf_name).stem} -f {Path(gguf_name).stem}.Modelfile",
             f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    for stop in dict.fromkeys([*([eos_text] if eos_text else []), *stops]):
        lines.append(f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}")
    lines.append(f"PARAMETER num_ctx {context}")
    if generation.get("do_sample"):
        for key, name in (("temperature", "temperature"), ("top_k", "top_k"), ("top_p", "top_p"), ("min_p", "min_p")):
            if isinstance(generation.get(key), (int, float)):
                lines.append(f"PARAMETER {name} {generation[key]}")
    elif generation:
        lines.append("PARAMETER temperature 0")
    if isinstance(generation.get("repetition_penalty"), (int, float)):
        lines.append(f"PARAMETER repeat_penalty {generation['repetition_penalty']}")
    if isinstance(generation.get("max_new_tokens"), int):
        lines.append(f"PARAMETER num_predict {generation['max_new_tokens']}")
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: Path, hf_dir: Path, eos_text: str | None, context: int) -> Path:
    path = Path(gguf_path).with_suffix(".Modelfile")
    return atomic_write_text(path, modelfile_text(Path(gguf_path).name, hf_dir, eos_text, context))
