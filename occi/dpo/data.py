"""Preference pairs for DPO: read the sources, check every pair, tokenize prompt + answer as TRL does.

A row is a mapping with a prompt (a string, one user turn, or a list of {role, content} turns
ending with a user turn), a chosen and a rejected answer (a string, or a list of assistant turns),
and an optional `language` (or the source's). Field names are the source's `*_field` settings.

Every row is kept or dropped with one reason of DROP_REASONS, never fatal:
- read/...: unreadable input (bad JSON, a file that cannot be opened);
- malformed/...: not_an_object, no_prompt, no_chosen, no_rejected (absent, empty or not a string
  or a list of turns), missing_role, unknown_role, empty_content, prompt_not_ending_with_user,
  answer_not_assistant, identical_answers;
- language/...: undeclared, not_a_run_language, prompt_language, chosen_language,
  rejected_language (identified as another language than declared);
- duplicate/exact, duplicate/near: the prompt (its user turns) seen before in that language;
- too_long: prompt + an answer longer than the sequence (with checks.too_long: truncate, only
  when the prompt alone fills it);
- weight/sampled_out: a source weight below 1 left it out.

Tokenization follows TRL's DPOTrainer for conversational rows, so both train on the same ids:
the prompt with the generation prompt, prompt + chosen and prompt + rejected are each rendered
and tokenized by `apply_chat_template`; the answer starts where the prompt's ids and the pair's
ids first differ (the shorter of the two common prefixes). The kept pairs go to
<run>/dpo/data/pairs.npz: per pair two sequences (chosen, rejected) and where their answer starts.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occi.dpo.config import DPOConfig, PreferenceSourceConfig
from occi.fsutil import atomic_path
from occi.plots import pyplot, save_png
from occi.sft.data import ROLES, Unreadable, copies_per_epoch, read_rows

DROP_REASONS = (
    "read/malformed_json", "read/unreadable_file",
    "malformed/not_an_object", "malformed/no_prompt", "malformed/no_chosen", "malformed/no_rejected",
    "malformed/missing_role", "malformed/unknown_role", "malformed/empty_content",
    "malformed/prompt_not_ending_with_user", "malformed/answer_not_assistant", "malformed/identical_answers",
    "language/undeclared", "language/not_a_run_language", "language/prompt_language", "language/chosen_language",
    "language/rejected_language", "duplicate/exact", "duplicate/near", "too_long", "weight/sampled_out")
"""Every reason a row can be dropped for: the statistics, the plot and the card name only these."""


@dataclass
class Pair:
    prompt: list[dict]
    chosen: list[dict]
    rejected: list[dict]
    language: str


def _turns(value: object, default_role: str, missing: str) -> list[dict] | str:
    """A field as a list of turns, or the drop reason."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}] if value.strip() else "malformed/empty_content"
    if not isinstance(value, list) or not value:
        return missing
    turns = []
    for turn in value:
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or "content" not in turn:
            return "malformed/missing_role"
        if turn["role"] not in ROLES:
            return "malformed/unknown_role"
        if not isinstance(turn["content"], str) or not turn["content"].strip():
            return "malformed/empty_content"
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def parse(row: object, source: PreferenceSourceConfig, run_languages: list[str]) -> Pair | str:
    """The pair, or the reason to drop the row."""
    if isinstance(row, Unreadable):
        return row.reason
    if not isinstance(row, dict):
        return "malformed/not_an_object"
    parts = []
    for field, role, missing in ((source.prompt_field, "user", "malformed/no_prompt"),
                                 (source.chosen_field, "assistant", "malformed/no_chosen"),
                                 (source.rejected_field, "assistant", "malformed/no_rejected")):
        turns = _turns(row.get(field), role, missing)
        if isinstance(turns, str):
            return turns
        parts.append(turns)
    prompt, chosen, rejected = parts
    if prompt[-1]["role"] != "user":
        return "malformed/prompt_not_ending_with_user"
    if any(t["role"] != "assistant" for t in chosen + rejected):
        return "malformed/answer_not_assistant"
    if chosen == rejected:
        return "malformed/identical_answers"
    language = source.language or row.get("language")
    if not isinstance(language, str) or not language:
        return "language/undeclared"
    if language not in run_languages:
        return "language/not_a_run_language"
    return Pair(prompt, chosen, rejected, language)


def prompt_text(pair: Pair) -> str:
    return "\n".join(t["content"] for t in pair.prompt if t["role"] == "user")


def _chat_ids(tokenizer, messages: list[dict], generation_prompt: bool = False) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            add_generation_prompt=generation_prompt)
    return list(encoded["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize(tokenizer, pair: Pair) -> tuple[list[int], list[int], int]:
    """(prompt + chosen ids, prompt + rejected ids, where both answers start)."""
    prompt = _chat_ids(tokenizer, pair.prompt, generation_prompt=True)
    chosen = _chat_ids(tokenizer, pair.prompt + pair.chosen)
    rejected = _chat_ids(tokenizer, pair.prompt + pair.rejected)
    start = min(_common_prefix(prompt, chosen), _common_prefix(prompt, rejected))
    return chosen, rejected, start


@dataclass
class Pairs:
    """The tokenized pairs: sequence 2i is pair i's prompt + chosen, 2i + 1 its prompt + rejected."""
    ids: np.ndarray
    offsets: np.ndarray
    """Sequence s is ids[offsets[s]:offsets[s + 1]]."""
    answer_start: np.ndarray
    """Per sequence: the index of its first answer token."""
    repeats: np.ndarray
    """Per pair: copies per epoch."""

    @classmethod
    def load(cls, path: Path) -> "Pairs":
        with np.load(path) as data:
            return cls(data["ids"], data["offsets"], data["answer_start"], data["repeats"])

    def __len__(self) -> int:
        return len(self.repeats)

    def sequence(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index]:self.offsets[index + 1]]

    def positions(self, pair: int) -> int:
        """Training positions of a pair's two sequences (tokens minus one each)."""
        return int(self.offsets[2 * pair + 2] - self.offsets[2 * pair] - 2)

    def answer_tokens(self, pair: int) -> int:
        """Tokens that count in the pair's log-probabilities (both answers)."""
        return sum(int(self.offsets[s + 1] - self.offsets[s] - max(1, self.answer_start[s]))
                   for s in (2 * pair, 2 * pair + 1))


def _language_problem(langid, pair: Pair, min_chars: int, rejected: bool) -> str | None:
    texts = [("prompt", prompt_text(pair)), ("chosen", "\n".join(t["content"] for t in pair.chosen))]
    if rejected:
        texts.append(("rejected", "\n".join(t["content"] for t in pair.rejected)))
    for part, text in texts:
        if len(text) >= min_chars:
            code, _, _ = langid.predict(text)
            if code != pair.language:
                return f"language/{part}_language"
    return None


def prepare(dpo: DPOConfig, run_languages: list[str], tokenizer, seq_length: int, seed: int, langid,
            out: Path) -> dict:
    """Reads, checks and tokenizes every source into `out`/pairs.npz (nothing when no pair is
    kept); returns the statistics."""
    from tqdm import tqdm  # loads tqdm: only when used

    from occi.corpora.dedup import MinHasher, exact_key, find_duplicates  # loads numba: only when used

    drops: dict[tuple[str, str], Counter] = defaultdict(Counter)
    rows_in: Counter = Counter()
    examples: list[dict] = []
    candidates = []  # (source index, row number, pair, where, origin)

    def drop(source: str, language: str | None, reason: str, where: str) -> None:
        if reason not in DROP_REASONS:
            raise ValueError(f"{reason!r} is not a drop reason of occi/dpo/data.py's DROP_REASONS")
        drops[(source, language or "?")][reason] += 1
        if len(examples) < 100:
            examples.append({"reason": reason, "where": where})

    for source_index, source in enumerate(dpo.sources):
        rows = tqdm(read_rows(source, dpo.base_dir, "dpo"), desc=f"dpo: reading {source.name}", unit=" rows",
                    disable=None)
        for number, (where, row) in enumerate(rows):
            declared = source.language or (row.get("language") if isinstance(row, dict) else None)
            declared = declared if isinstance(declared, str) else None
            rows_in[(source.name, declared or "?")] += 1
            parsed = parse(row, source, run_languages)
            if isinstance(parsed, str):
                drop(source.name, declared, parsed, where)
                continue
            if langid is not None:
                reason = _language_problem(langid, parsed, dpo.checks.min_langid_chars,
                                               dpo.checks.rejected_language)
                if reason:
                    drop(source.name, parsed.language, reason, where)
                    continue
            candidates.append((source_index, number, parsed, where, origin(row)))

    kept = []
    dedup = dpo.checks.dedup
    hasher = MinHasher(dedup) if dedup.near else None
    for code in run_languages:
        group = [c for c in candidates if c[2].language == code]
        if not group:
            continue
        prompts = [prompt_text(c[2]) for c in group]
        exact = [exact_key(p) for p in prompts] if dedup.exact else None
        bands = np.stack([hasher.band_hashes(p) for p in prompts]) if hasher else None
        is_exact, is_near, _ = find_duplicates(exact, bands, count=len(group))
        for candidate, dup_exact, dup_near in zip(group, is_exact, is_near):
            if dup_exact or dup_near:
                drop(dpo.sources[candidate[0]].name, code, "duplicate/exact" if dup_exact else "duplicate/near",
                     candidate[3])
            else:
                kept.append(candidate)
    kept.sort(key=lambda c: (c[0], c[1]))

    ids, offsets, starts, repeats, lang_index, source_index = [], [0], [], [], [], []
    totals: dict[tuple[str, str], Counter] = defaultdict(Counter)
    provenance: dict[str, Counter] = defaultdict(Counter)
    for src, number, pair, where, who in tqdm(kept, desc="dpo: tokenizing", unit=" pairs", disable=None):
        source = dpo.sources[src]
        chosen, rejected, start = tokenize(tokenizer, pair)
        if max(len(chosen), len(rejected)) > seq_length:
            if dpo.checks.too_long == "drop" or start >= seq_length:
                drop(source.name, pair.language, "too_long", where)
                continue
            chosen, rejected = chosen[:seq_length], rejected[:seq_length]
            totals[(source.name, pair.language)]["truncated"] += 1
        copies = copies_per_epoch(source.weight, seed, source.name, number)
        if copies == 0:
            drop(source.name, pair.language, "weight/sampled_out", where)
            continue
        for sequence in (chosen, rejected):
            ids.extend(sequence)
            offsets.append(len(ids))
            starts.append(start)
        repeats.append(copies)
        lang_index.append(run_languages.index(pair.language))
        source_index.append(src)
        if who is not None:
            provenance[source.name][who] += 1
        entry = totals[(source.name, pair.language)]
        entry["kept"] += 1
        entry["tokens"] += len(chosen) + len(rejected)
        entry["assistant_tokens"] += len(chosen) + len(rejected) - 2 * start
        entry["tokens_per_epoch"] += copies * (len(chosen) + len(rejected))
    stats = _statistics(dpo, run_languages, rows_in, drops, totals, examples, seq_length, provenance)
    if not repeats:
        return stats

    with atomic_path(out / "pairs.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, ids=np.asarray(ids, dtype=np.int32), offsets=np.asarray(offsets, dtype=np.int64),
                     answer_start=np.asarray(starts, dtype=np.int32), repeats=np.asarray(repeats, dtype=np.int32),
                     language=np.asarray(lang_index, dtype=np.int16), source=np.asarray(source_index, dtype=np.int16))
    return stats


def origin(row: dict) -> str | None:
    """Where a pair came from, from its `provenance` mapping: who wrote the chosen and the rejected
    answer (and why that one was rejected) for `occi distill`'s pairs, else its teacher, model or
    author ("unknown" when it names nobody); None without one."""
    provenance = row.get("provenance")
    if not isinstance(provenance, dict):
        return None
    if provenance.get("chosen_by") and provenance.get("rejected_by"):
        why = f" ({provenance['rejected_because']})" if provenance.get("rejected_because") else ""
        return f"chosen: {provenance['chosen_by']}; rejected: {provenance['rejected_by']}{why}"
    return str(next((provenance[k] for k in ("teacher", "model", "author") if provenance.get(k)), "unknown"))


def _statistics(dpo, run_languages, rows_in, drops, totals, examples, seq_length, provenance) -> dict:
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
                        "provenance": dict(provenance.get(s.name, {}))} for s in dpo.sources}
    languages = {code: entry(k for k in every if k[1] == code) for code in run_languages}
    languages = {code: value for code, value in languages.items() if value["rows_in"]}
    unknown = entry(k for k in every if k[1] not in run_languages)
    if unknown["rows_in"]:
        languages["?"] = unknown
    return {"seq_length": seq_length, "epochs": dpo.epochs, "sources": sources, "languages": languages,
            "totals": entry(every), "examples": examples}


def plot(stats: dict, path: Path) -> None:
    """Kept and dropped pairs per language, the drops split by reason group."""
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
    ax.set_ylabel("preference pairs")
    ax.set_title("DPO data: kept and dropped pairs per language")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
