"""Prompt files for distillation: JSONL (plain or compressed) or Parquet, one prompt per row.

A row is `{"prompt": "..."}` or a chat `{"messages": [{"role": ..., "content": ...}, ...]}`; a
chat that ends with an assistant turn keeps everything before it (the teacher writes a new one).
A row may carry a verifiable `answer` (a number such as 42 or "3,5"; occi/chat/answer_checks.py).
A row that is neither is an error naming the file and line: a prompt set is small and curated,
so a broken row is a mistake to fix, not noise to drop.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from occi.chat.answer_checks import expected_number
from occi.corpora.compressed import open_binary
from occi.errors import OcciError

ROLES = ("system", "user", "assistant")


def read_prompts(path: Path, system: str | None = None) -> list[list[dict]]:
    """Every prompt of the file as a chat ending in a user turn (`system` prepended where the
    chat has no system message)."""
    return [chat for chat, _ in read_prompt_rows(path, system)]


def read_prompt_rows(path: Path, system: str | None = None) -> list[tuple[list[dict], float | None]]:
    """(chat, expected number or None) for every prompt of the file, chats as `read_prompts` gives them."""
    path = Path(path)
    if not path.is_file():
        raise OcciError(f"{path}: prompt file not found; distill.prompts names JSONL or Parquet files per language")
    rows = _parquet_rows(path) if path.suffix == ".parquet" else _jsonl_rows(path)
    chats = []
    for number, row in rows:
        chat = _chat(row, f"{path}:{number}")
        if system and chat[0]["role"] != "system":
            chat.insert(0, {"role": "system", "content": system})
        answer = row.get("answer") if isinstance(row, dict) else None
        try:
            expected = None if answer is None else expected_number(answer, f"{path}:{number}")
        except ValueError as err:
            raise OcciError(str(err)) from None
        chats.append((chat, expected))
    return chats


def _jsonl_rows(path: Path):
    with open_binary(str(path)) as raw:
        for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as err:
                raise OcciError(f"{path}:{number}: not a JSON object ({err})") from None


def _parquet_rows(path: Path):
    import pyarrow.parquet as pq  # loads pyarrow: only when used

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several kinds for a broken file
        raise OcciError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from None
    for number, row in enumerate(table.to_pylist(), 1):
        yield number, row


def _chat(row, where: str) -> list[dict]:
    if not isinstance(row, dict):
        raise OcciError(f"{where}: expected an object with `prompt` or `messages`, got {type(row).__name__}")
    if isinstance(row.get("prompt"), str) and row["prompt"].strip():
        return [{"role": "user", "content": row["prompt"]}]
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise OcciError(f"{where}: expected a non-empty `prompt` string or a `messages` list")
    chat = []
    for turn in messages:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise OcciError(f"{where}: every message needs a role ({', '.join(ROLES)}) and a content string")
        chat.append({"role": turn["role"], "content": turn["content"]})
    while chat and chat[-1]["role"] == "assistant":
        chat.pop()
    if not chat or chat[-1]["role"] != "user":
        raise OcciError(f"{where}: the chat must end with a user turn (after dropping a final assistant answer)")
    return chat
