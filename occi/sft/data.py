"""Chat data for SFT: read the sources, check every conversation, tokenize with the chat template.

A row is a mapping with `messages` (a list of {role, content}; roles system, user, assistant),
an optional `language` (ISO 639-1; or the source's `language`), optional reasoning (inside the
assistant content as <think>...</think>, or in a `reasoning` field of the assistant turn, which
the chat template renders its own way: occi/sft/template.py) and an optional `provenance`
mapping (who wrote it; kept in the statistics). `occi distill` writes such rows.

Every row is kept or dropped with one reason of DROP_REASONS, never fatal:
- read/...: unreadable input (bad JSON, a file that cannot be opened);
- malformed/...: not_an_object (a JSON string, number or list), no_messages, missing_role,
  unknown_role, empty_content, assistant_first (an assistant turn before any user turn),
  system_not_first, no_assistant;
- language/...: undeclared, not_a_run_language, prompt_language, answer_language (the prompt,
  or the answer without its reasoning, identified as another language than declared);
- duplicate/exact, duplicate/near: the prompt (its user turns) seen before in that language;
- too_long: more tokens than the sequence (with checks.too_long: truncate, only when not even
  the first answer fits);
- weight/sampled_out: a source weight below 1 left it out.
The kept conversations go to <run>/sft/data/conversations.npz (ids, assistant mask, offsets,
repeats per epoch, language and source per conversation), with stats.json and kept_dropped.png;
a source's provenance counts its kept conversations only.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import xxhash

from occi.corpora.compressed import open_binary
from occi.errors import OcciError, warn
from occi.fsutil import atomic_path
from occi.globbing import glob_files
from occi.plots import pyplot, save_png
from occi.sft.config import ChatSourceConfig, SFTConfig
from occi.sft.template import encode

ROLES = ("system", "user", "assistant")
DROP_REASONS = (
    "read/malformed_json", "read/unreadable_file",
    "malformed/not_an_object", "malformed/no_messages", "malformed/missing_role", "malformed/unknown_role",
    "malformed/empty_content", "malformed/assistant_first", "malformed/system_not_first", "malformed/no_assistant",
    "language/undeclared", "language/not_a_run_language", "language/prompt_language", "language/answer_language",
    "duplicate/exact", "duplicate/near", "too_long", "weight/sampled_out")
"""Every reason a row can be dropped for: the statistics, the plot and the card name only these."""


@dataclass(frozen=True)
class Unreadable:
    """What a reader gives instead of a row it cannot read (a row itself may be any JSON value)."""
    reason: str
    """One of the read/ reasons of DROP_REASONS."""


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def read_rows(source: ChatSourceConfig, base_dir: str, section: str = "sft") -> Iterator[tuple[str, object]]:
    """(where, row) for every row of a source; row is an Unreadable when it cannot be read.
    `section`: the config section the source is listed in (its messages name it)."""
    count = 0
    for where, row in _rows(source, base_dir, section):
        if source.limit is not None and count >= source.limit:
            return
        count += 1
        yield where, row


def _rows(source: ChatSourceConfig, base_dir: str, section: str) -> Iterator[tuple[str, object]]:
    if source.kind == "hub":
        yield from _hub_rows(source, base_dir, section)
        return
    pattern = source.path if Path(source.path).expanduser().is_absolute() else str(Path(base_dir) / source.path)
    matched = glob_files(pattern)
    for link, target in matched.loops:
        warn(f"{section} source {source.name!r}: {link} is a symlink loop (it leads back to {target}); not followed")
    files = [p for p in matched.files if Path(p).is_file()]
    if not files:
        raise OcciError(f"{section} source {source.name!r}: no files match {source.path!r} (looked for {pattern}); "
                        f"fix `path` in the {section} section")
    for path in files:
        yield from (_parquet_rows(path) if source.kind == "parquet" else _jsonl_rows(path))


def _jsonl_rows(path: str) -> Iterator[tuple[str, object]]:
    line_number = 0
    try:
        with open_binary(path) as handle:
            for line_number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    yield f"{path}:{line_number}", json.loads(raw.decode("utf-8-sig"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    yield f"{path}:{line_number}", Unreadable("read/malformed_json")
    except OSError:
        yield f"{path} after line {line_number}", Unreadable("read/unreadable_file")


def _parquet_rows(path: str) -> Iterator[tuple[str, object]]:
    import pyarrow.parquet as pq  # loads pyarrow: only when used

    try:
        table = pq.read_table(path)
    except Exception:  # pyarrow raises ArrowInvalid / OSError for broken files
        yield path, Unreadable("read/unreadable_file")
        return
    for number, row in enumerate(table.to_pylist()):
        yield f"{path} row {number}", row


def _hub_rows(source: ChatSourceConfig, base_dir: str, section: str) -> Iterator[tuple[str, object]]:
    import datasets  # loads datasets: only when used

    files = None
    if source.data_files:
        files = [f if "://" in f or Path(f).is_absolute() else str(Path(base_dir) / f) for f in source.data_files]
    try:
        dataset = datasets.load_dataset(source.dataset, source.subset, split=source.split, data_files=files,
                                        streaming=True)
    except Exception as err:  # datasets raises many types for "cannot open"
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise OcciError(f"{section} source {source.name!r}: cannot open dataset {source.dataset!r}: {message}") from None
    for number, row in enumerate(dataset):
        yield f"{source.dataset} row {number}", row


def parse(row: object, source: ChatSourceConfig, run_languages: list[str]) -> tuple[list[dict], str] | str:
    """(messages, a non-empty `reasoning` kept on assistant turns, language) or the reason to drop the row."""
    if isinstance(row, Unreadable):
        return row.reason
    if not isinstance(row, dict):
        return "malformed/not_an_object"
    if not isinstance(row.get(source.messages_field), list) or not row[source.messages_field]:
        return "malformed/no_messages"
    messages = []
    for turn in row[source.messages_field]:
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or "content" not in turn:
            return "malformed/missing_role"
        role, content = turn["role"], turn["content"]
        if role not in ROLES:
            return "malformed/unknown_role"
        if not isinstance(content, str) or not content.strip():
            return "malformed/empty_content"
        message = {"role": role, "content": content}
        reasoning = turn.get("reasoning")
        if role == "assistant" and isinstance(reasoning, str) and reasoning.strip():
            message["reasoning"] = reasoning.strip()
        messages.append(message)
    roles = [m["role"] for m in messages]
    if "system" in roles[1:]:
        return "malformed/system_not_first"
    dialogue = [r for r in roles if r != "system"]
    if dialogue and dialogue[0] == "assistant":
        return "malformed/assistant_first"
    if "assistant" not in dialogue:
        return "malformed/no_assistant"
    language = source.language or row.get("language")
    if not isinstance(language, str) or not language:
        return "language/undeclared"
    if language not in run_languages:
        return "language/not_a_run_language"
    return messages, language


def prompt_text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def answer_text(messages: list[dict]) -> str:
    """The assistant turns without their reasoning (which may be in any language)."""
    return "\n".join(_THINK.sub("", m["content"]).strip() for m in messages if m["role"] == "assistant")


def truncated(tokenizer, messages: list[dict], limit: int):
    """The longest prefix of `messages` ending with an assistant turn whose encoding fits `limit`
    tokens, encoded; None when not even the first answer fits."""
    ends = [i + 1 for i, m in enumerate(messages) if m["role"] == "assistant"]
    for end in reversed(ends):
        encoded = encode(tokenizer, messages[:end])
        if len(encoded.ids) <= limit:
            return encoded
    return None


def copies_per_epoch(weight: float, seed: int, source: str, number: int) -> int:
    """Copies per epoch of a row of a source with this weight (the fraction by a seeded hash)."""
    whole, fraction = int(weight), weight - int(weight)
    draw = xxhash.xxh64_intdigest(f"{seed}/{source}/{number}".encode()) / 2**64
    return whole + (1 if draw < fraction else 0)


def prepare(sft: SFTConfig, run_languages: list[str], tokenizer, seq_length: int, seed: int, langid,
            out: Path) -> dict:
    """Reads, checks and tokenizes every source into `out` (nothing when no conversation is
    kept); returns the statistics."""
    from occi.corpora.dedup import MinHasher, exact_key, find_duplicates  # loads numba: only when used

    drops: dict[tuple[str, str], Counter] = defaultdict(Counter)  # (source, language or "?") -> reason counts
    rows_in: Counter = Counter()
    examples: list[dict] = []
    provenance: dict[str, Counter] = defaultdict(Counter)
    candidates = []  # (source index, row number, language, messages, where, teacher)

    def drop(source: str, language: str | None, reason: str, where: str) -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"{reason!r} is not a drop reason of occi/sft/data.py's DROP_REASONS")
        drops[(source, language or "?")][reason] += 1
        if len(examples) < 100:
            examples.append({"reason": reason, "where": where})

    for source_index, source in enumerate(sft.sources):
        for number, (where, row) in enumerate(read_rows(source, sft.base_dir)):
            declared = source.language or (row.get("language") if isinstance(row, dict) else None)
            declared = declared if isinstance(declared, str) else None
            rows_in[(source.name, declared or "?")] += 1
            parsed = parse(row, source, run_languages)
            if isinstance(parsed, str):
                drop(source.name, declared, parsed, where)
                continue
            messages, language = parsed
            if langid is not None:
                reason = _language_problem(langid, messages, language, sft.checks.min_langid_chars)
                if reason:
                    drop(source.name, language, reason, where)
                    continue
            candidates.append((source_index, number, language, messages, where, _teacher(row)))

    kept = []
    dedup = sft.checks.dedup
    hasher = MinHasher(dedup) if dedup.near else None
    for code in run_languages:
        group = [c for c in candidates if c[2] == code]
        if not group:
            continue
        prompts = [prompt_text(c[3]) for c in group]
        exact = [exact_key(p) for p in prompts] if dedup.exact else None
        bands = np.stack([hasher.band_hashes(p) for p in prompts]) if hasher else None
        is_exact, is_near, _ = find_duplicates(exact, bands, count=len(group))
        for candidate, dup_exact, dup_near in zip(group, is_exact, is_near):
            name = sft.sources[candidate[0]].name
            if dup_exact or dup_near:
                drop(name, code, "duplicate/exact" if dup_exact else "duplicate/near", candidate[4])
            else:
                kept.append(candidate)
    kept.sort(key=lambda c: (c[0], c[1]))

    ids, assistant, offsets, repeats, lang_index, source_index = [], [], [0], [], [], []
    totals: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for src, number, code, messages, where, teacher in kept:
        source = sft.sources[src]
        encoded = encode(tokenizer, messages)
        if len(encoded.ids) > seq_length:
            encoded = truncated(tokenizer, messages, seq_length) if sft.checks.too_long == "truncate" else None
            if encoded is None:
                drop(source.name, code, "too_long", where)
                continue
            totals[(source.name, code)]["truncated"] += 1
        copies = copies_per_epoch(source.weight, seed, source.name, number)
        if copies == 0:
            drop(source.name, code, "weight/sampled_out", where)
            continue
        ids.extend(encoded.ids)
        assistant.extend(encoded.assistant)
        offsets.append(len(ids))
        repeats.append(copies)
        lang_index.append(run_languages.index(code))
        source_index.append(src)
        if teacher is not None:
            provenance[source.name][teacher] += 1
        entry = totals[(source.name, code)]
        entry["kept"] += 1
        entry["tokens"] += len(encoded.ids)
        entry["assistant_tokens"] += sum(encoded.assistant)
        entry["tokens_per_epoch"] += copies * len(encoded.ids)
    stats = _statistics(sft, run_languages, rows_in, drops, totals, examples, provenance, seq_length)
    if not repeats:
        return stats

    with atomic_path(out / "conversations.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, ids=np.asarray(ids, dtype=np.int32), assistant=np.asarray(assistant, dtype=np.uint8),
                     offsets=np.asarray(offsets, dtype=np.int64), repeats=np.asarray(repeats, dtype=np.int32),
                     language=np.asarray(lang_index, dtype=np.int16), source=np.asarray(source_index, dtype=np.int16))
    return stats


def _teacher(row: dict) -> str | None:
    """Who wrote a row, from its `provenance` mapping ("unknown" when it names nobody); None without one."""
    if not isinstance(row.get("provenance"), dict):
        return None
    return str(next((row["provenance"][k] for k in ("teacher", "model", "author") if row["provenance"].get(k)),
                    "unknown"))


def _language_problem(langid, messages: list[dict], language: str, min_chars: int) -> str | None:
    for part, text in (("prompt", prompt_text(messages)), ("answer", answer_text(messages))):
        if len(text) >= min_chars:
            code, _, _ = langid.predict(text)
            if code != language:
                return f"language/{part}_language"
    return None


def _statistics(sft, run_languages, rows_in, drops, totals, examples, provenance, seq_length) -> dict:
    def entry(keys) -> dict:
        keys = list(keys)
        result = {"rows_in": sum(rows_in[k] for k in keys), "kept": 0, "truncated": 0, "tokens": 0,
                  "assistant_tokens": 0, "tokens_per_epoch": 0, "drops": {}}
        for key in keys:
            for name, value in totals[key].items():
                result[name] += value
            for reason, value in drops[key].items():
                result["drops"][reason] = result["drops"].get(reason, 0) + value
        result["drops"] = dict(sorted(result["drops"].items()))
        return result

    every = set(rows_in) | set(drops) | set(totals)
    sources = {s.name: {**entry(k for k in every if k[0] == s.name), "weight": s.weight, "kind": s.kind,
                        "provenance": dict(provenance.get(s.name, {}))} for s in sft.sources}
    languages = {code: entry(k for k in every if k[1] == code) for code in run_languages}
    languages = {code: value for code, value in languages.items() if value["rows_in"]}
    unknown = entry(k for k in every if k[1] not in run_languages)
    if unknown["rows_in"]:
        languages["?"] = unknown
    return {"seq_length": seq_length, "epochs": sft.epochs, "sources": sources, "languages": languages,
            "totals": entry(every), "examples": examples}


def format_table(stats: dict) -> str:
    header = f"{'lang':<5} {'rows':>7} {'kept':>7} {'tokens':>10} {'answer tok':>10}  top drop"
    lines = [header, "-" * len(header)]
    for code, entry in [*stats["languages"].items(), ("all", stats["totals"])]:
        top = max(entry["drops"].items(), key=lambda kv: kv[1], default=("", 0))
        lines.append(f"{code:<5} {entry['rows_in']:>7,} {entry['kept']:>7,} {entry['tokens']:>10,} "
                     f"{entry['assistant_tokens']:>10,}  {f'{top[0]} ({top[1]})' if top[1] else ''}")
    return "\n".join(lines)


def plot(stats: dict, path: Path) -> None:
    """Kept and dropped conversations per language, the drops split by reason group."""
    plt = pyplot()
    codes = list(stats["languages"])
    groups = sorted({reason.split("/")[0] for e in stats["languages"].values() for reason in e["drops"]})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(codes) + 2), 4))
    bottom = [stats["languages"][c]["kept"] for c in codes]
    ax.bar(codes, bottom, label="kept", color="#2b7bba")
    colours = ["#f0a35e", "#d95f5f", "#9b7fc2", "#7fbf7f", "#c2c27f", "#888888"]
    for number, group in enumerate(groups):
        values = [sum(v for r, v in stats["languages"][c]["drops"].items() if r.split("/")[0] == group) for c in codes]
        ax.bar(codes, values, bottom=bottom, label=f"dropped: {group}", color=colours[number % len(colours)])
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("conversations")
    ax.set_title("SFT data: kept and dropped conversations per language")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
