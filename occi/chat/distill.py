"""`occi distill`: a teacher model's answers to a prompt set per language, as SFT rows.

The prompts of every language are cut into batches of `distill.batch_size` (in file order); a
batch is the unit of work: generated together, written atomically as one part file
(distill/parts/<lang>/<batch>.jsonl), skipped when its part exists, and shared round-robin
between SLURM array tasks (--rank/--world-size). Each batch samples with its own seed (the run's
seed + the batch's number), so a killed and re-run distillation writes the same rows as one that
was never interrupted. The step that joins (a run without --rank) checks every answer the way
R1's distills were filtered (occi/chat/answer_checks.py: the final answer, reasoning excluded, in
the prompt's language; its last number equal to the prompt row's `answer` where it has one), and
writes the kept ones to distill/<lang>.jsonl, one SFT row per line:

    {"messages": [...the prompt's turns..., {"role": "assistant", "content": ANSWER, "reasoning": THOUGHTS}],
     "language": "de",
     "provenance": {"teacher": ..., "revision": ..., "commit": ..., "sampling": {...}, "seed": ...,
                    "date": ..., "backend": ..., "prompt_file": ..., "prompt_index": ...}}

stats.json counts the dropped rows by reason. The checks run at the join, on the parts as
generated: changing them re-joins without generating again. With `distill.pairs`, the parts also
hold candidate answers (the teacher sampled again, or a weaker model), and the join writes
distill/pairs/<lang>.jsonl: the teacher's kept answer chosen, the first candidate failing a check
rejected (the DPO row format of occi/dpo/data.py, with provenance).

These files are then listed as SFT sources (`kind: distill`, or `kind: jsonl` with their path) and
DPO sources (`kind: distill`), where the readers' checks run on them like on any other chat data.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from occi.basemodel import resolve
from occi.chat.config import DistillConfig
from occi.chat.answer_checks import REASONS, problem, split_reasoning
from occi.chat.models import load, pick_device, prompt_text
from occi.chat.prompts import read_prompt_rows
from occi.chat.vllm_backend import engine, engine_dtype, stop_ids
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, atomic_write_text, mark_done, remove_stale_temporaries
from occi.hub import Item
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share
from occi.train.config import BaseModelConfig


def has_distill(cfg) -> bool:
    """The stage list's test: a run has the distill stage when its config has a `distill:` section."""
    return getattr(cfg, "distill", None) is not None


@dataclass(frozen=True)
class Batch:
    language: str
    """The prompts' language."""
    index: int
    """The batch's number within its language."""
    number: int
    """The batch's number over all languages (its seed offset)."""
    prompts: tuple
    """(prompt file, row index in the file, chat, expected number or None) per prompt."""


def plan(cfg) -> list[Batch]:
    """Every batch of the run, languages in the config's order."""
    d: DistillConfig = cfg.distill
    batches: list[Batch] = []
    for code in d.prompts:
        if code not in cfg.languages:
            raise OcciError(f"distill.prompts: {code} is not a language of this run ({', '.join(cfg.languages)})")
        prompts = [(path.name, index, chat, expected) for path in d.prompt_files(code)
                   for index, (chat, expected) in enumerate(read_prompt_rows(path, d.system))]
        if d.max_prompts is not None:
            prompts = prompts[: d.max_prompts]
        if not prompts:
            raise OcciError(f"distill.prompts.{code}: the prompt files hold no prompts")
        for index, start in enumerate(range(0, len(prompts), d.batch_size)):
            batches.append(Batch(code, index, len(batches), tuple(prompts[start:start + d.batch_size])))
    return batches


def shard_count(cfg, run: RunDir) -> int:
    """SLURM array tasks: at most one per batch."""
    return len(plan(cfg))


def local_folder(name: str, base_dir: str) -> Path | None:
    """The model folder `name` names (relative to the working directory or to the config's
    folder), else None (a hub id)."""
    for folder in (Path(name).expanduser(), Path(base_dir or ".", name).expanduser()):
        if folder.is_dir():
            return folder.resolve()
    return None


def local_teacher(d: DistillConfig) -> Path | None:
    """The teacher's folder when `teacher` names one, else None (a hub id)."""
    return local_folder(d.teacher, d.base_dir)


def fetch_items(cfg) -> list[Item]:
    """The teacher (and the pairs' candidate model), for `occi fetch` and the offline checks (a
    local folder is recorded as fetched)."""
    d: DistillConfig = cfg.distill
    models = [(d.teacher, d.revision)]
    if d.pairs is not None and d.pairs.model is not None:
        models.append((d.pairs.model, d.pairs.revision))
    items = []
    for name, revision in models:
        local = local_folder(name, d.base_dir)
        items.append(Item("model", str(local)) if local is not None else Item("model", name, revision=revision))
    return items


def teacher_folder(d: DistillConfig) -> Path:
    """The teacher's local folder: the configured folder, or the hub snapshot (as `occi import` does)."""
    local = local_teacher(d)
    return local if local is not None else resolve(BaseModelConfig(base=d.teacher, revision=d.revision))


def candidate_folder(d: DistillConfig) -> Path:
    """The local folder of the model writing the pairs' candidates (`pairs.model`)."""
    local = local_folder(d.pairs.model, d.base_dir)
    return local if local is not None else resolve(BaseModelConfig(base=d.pairs.model, revision=d.pairs.revision))


@dataclass(frozen=True)
class Sampling:
    """How one model writes: the teacher's answers, or the candidates of the pairs."""
    max_new_tokens: int
    temperature: float
    top_p: float
    samples: int = 1


def teacher_sampling(d: DistillConfig) -> Sampling:
    return Sampling(d.max_new_tokens, d.temperature, d.top_p)


def candidate_sampling(d: DistillConfig) -> Sampling:
    p = d.pairs
    return Sampling(d.max_new_tokens, p.temperature, p.top_p, p.samples)


def _clean(text: str, special: list[str]) -> str:
    for token in special:
        text = text.replace(token, "")
    return text.strip()


def parse_output(text: str, special: list[str]) -> tuple[str | None, str]:
    """(reasoning, final answer) of a raw output, the special tokens left over removed."""
    reasoning, answer = split_reasoning(text)
    return (_clean(reasoning, special) or None if reasoning else None), _clean(answer, special)


class _Transformers:
    """Batched generation with transformers' `generate` (left padding, the chat template)."""

    def __init__(self, folder: Path, d: DistillConfig):
        self.d = d
        self.model, self.tokenizer = load(folder, d.device, d.dtype)
        self.eos = _eos_ids(self.model, self.tokenizer)

    def answers(self, chats: list[list[dict]], seed: int, how: Sampling) -> list[tuple[str | None, str]]:
        """(reasoning, final answer) per chat and sample: chat i's samples at i * samples + k."""
        import torch  # loads torch: only when used

        texts = [prompt_text(self.tokenizer, chat) for chat in chats for _ in range(how.samples)]
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(self.model.device)
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": how.temperature, "top_p": how.top_p} \
            if how.temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=how.max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id, **sampling)
        special = list(self.tokenizer.all_special_tokens)
        results = []
        for row in output[:, inputs["input_ids"].shape[1]:].tolist():
            end = next((i for i, token in enumerate(row) if token in self.eos), len(row))
            text = self.tokenizer.decode(row[:end], skip_special_tokens=False)  # keeps <think> and channels
            results.append(parse_output(text, special))
        return results


def _eos_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    value = getattr(model.generation_config, "eos_token_id", None)
    ids.update(value if isinstance(value, (list, tuple)) else [value])
    return {int(i) for i in ids if i is not None}


class _Vllm:
    """vLLM's engine (occi/chat/vllm_backend.py): the same prompt tokens in and, greedy, the same
    answer tokens out as transformers."""

    def __init__(self, folder: Path, d: DistillConfig):
        from transformers import AutoTokenizer  # loads transformers: only when used

        self.d = d
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.stop = stop_ids(folder, self.tokenizer)
        self.engine = engine(folder, engine_dtype(d.dtype, pick_device(d.device)))

    def answers(self, chats: list[list[dict]], seed: int, how: Sampling) -> list[tuple[str | None, str]]:
        """(reasoning, final answer) per chat and sample: chat i's samples at i * samples + k (sample k
        drawn with seed + k, so the samples of one chat differ)."""
        prompts = [self.tokenizer(prompt_text(self.tokenizer, chat), add_special_tokens=False)["input_ids"]
                   for chat in chats]
        drawn = [self.engine.generate(prompts, how.max_new_tokens, how.temperature, how.top_p, seed + k, self.stop)
                 for k in range(how.samples)]
        special = list(self.tokenizer.all_special_tokens)
        return [parse_output(self.tokenizer.decode(drawn[k][i], skip_special_tokens=False), special)  # keeps <think>
                for i in range(len(prompts)) for k in range(how.samples)]


def _rows(cfg, batch: Batch, answers: list[tuple[str | None, str]], candidates: list[list[str]] | None,
          provenance: dict) -> list[dict]:
    seed = cfg.seed + batch.number
    rows = []
    for number, ((name, index, chat, _), (reasoning, answer)) in enumerate(zip(batch.prompts, answers)):
        turn = {"role": "assistant", "content": answer, **({"reasoning": reasoning} if reasoning else {})}
        row = {"messages": [*chat, turn], "language": batch.language,
               "provenance": {**provenance, "seed": seed, "prompt_file": name, "prompt_index": index}}
        if candidates is not None:
            row["candidates"] = candidates[number]
        rows.append(row)
    return rows


def _provenance(d: DistillConfig, name: str, revision: str | None, folder: Path) -> dict:
    is_hub = local_folder(name, d.base_dir) is None
    return {"teacher": name if is_hub else str(folder), "revision": revision,
            "commit": folder.name if is_hub else None, "sampling": d.sampling, "backend": d.backend}


def run(cfg, run: RunDir, share: Share = Share()) -> StageResult:
    """Generates this share's batches that are not written yet; the whole share also joins them."""
    from tqdm import tqdm  # loads tqdm: only when used

    d: DistillConfig = cfg.distill
    run = RunDir.of(run)
    batches = plan(cfg)
    todo = [b for b in share.mine(batches) if not run.distill_part(b.language, b.index).exists()]
    started = time.monotonic()
    if todo:
        engine = _Vllm if d.backend == "vllm" else _Transformers
        folder = teacher_folder(d)
        teacher = engine(folder, d)
        writer = None
        if d.pairs is not None:
            writer = teacher if d.pairs.model is None else engine(candidate_folder(d), d)
        provenance = _provenance(d, d.teacher, d.revision, folder)
        for code in {b.language for b in todo}:
            remove_stale_temporaries(run.distill_part(code, 0).parent)
        for batch in tqdm(todo, desc="distill", unit="batch"):
            chats = [chat for _, _, chat, _ in batch.prompts]
            answers = teacher.answers(chats, cfg.seed + batch.number, teacher_sampling(d))
            candidates = None
            if writer is not None:
                how = candidate_sampling(d)
                written = writer.answers(chats, cfg.seed + batch.number + 1_000_003, how)
                candidates = [[answer for _, answer in written[i * how.samples:(i + 1) * how.samples]]
                              for i in range(len(chats))]
            date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            rows = _rows(cfg, batch, answers, candidates, {**provenance, "date": date})
            atomic_write_text(run.distill_part(batch.language, batch.index),
                              "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    seconds = time.monotonic() - started
    if not share.whole:
        return StageResult(f"distill: {len(todo)} batch(es) of this share written in {seconds:.1f} s; "
                           "run `occi distill` without --rank when every share is done, to join them", complete=False)
    stats = join(cfg, run, batches)
    mark_done(run.distill)
    return StageResult(format_table(stats) + f"\n{len(todo)} batch(es) generated in {seconds:.1f} s -> {run.distill}")


def format_table(stats: dict) -> str:
    pairs = any("pairs" in s for s in stats["languages"].values())
    lines = ["| language | prompts | rows kept | with reasoning | dropped (why) |" + (" pairs |" if pairs else ""),
             "|---|---|---|---|---|" + ("---|" if pairs else "")]
    for code, s in stats["languages"].items():
        why = ", ".join(f"{reason} {n}" for reason, n in s["dropped"].items() if n) or "-"
        line = f"| {code} | {s['prompts']} | {s['rows']} | {s['with_reasoning']} | {why} |"
        lines.append(line + (f" {s['pairs']['written']} |" if pairs else ""))
    return "\n".join(lines)


def _langid(cfg):
    d: DistillConfig = cfg.distill
    if not d.check_language and d.pairs is None:
        return None
    from occi.corpora.langid import LanguageIdentifier  # loads numba: only when used

    return LanguageIdentifier.from_config(cfg.corpora.langid, cfg.languages, cfg.corpora.base_dir)


def join(cfg, run: RunDir, batches: list[Batch]) -> dict:
    """distill/<lang>.jsonl from the parts (rows failing a check left out, counted by reason),
    distill/pairs/<lang>.jsonl with `pairs`, and stats.json."""
    d: DistillConfig = cfg.distill
    missing = [b for b in batches if not run.distill_part(b.language, b.index).exists()]
    if missing:
        raise OcciError(f"{run.distill_part(missing[0].language, missing[0].index)}: {len(missing)} batch(es) "
                        "are not generated yet; run `occi distill` again (without --rank) to write them")
    langid = _langid(cfg)
    stats = {"teacher": d.teacher, "revision": d.revision, "sampling": d.sampling,
             "checks": {"language": d.check_language, "answers": d.check_answers,
                        "min_langid_chars": d.min_langid_chars, "keep_reasoning": d.keep_reasoning},
             "languages": {}}
    if d.pairs is not None:
        stats["pairs"] = {"candidates_by": d.pairs.model or d.teacher, "revision": d.pairs.revision if d.pairs.model
                          else d.revision, "samples": d.pairs.samples, "temperature": d.pairs.temperature}
    for code in d.prompts:
        kept, pairs, dropped = [], [], Counter({reason: 0 for reason in REASONS})
        chars = prompts = reasoned = verifiable = 0
        pair_reasons, unpaired = Counter(), 0
        for batch in (b for b in batches if b.language == code):
            lines = run.distill_part(code, batch.index).read_text(encoding="utf-8").splitlines()
            for (_, _, _, expected), line in zip(batch.prompts, lines):
                prompts += 1
                row = json.loads(line)
                candidates = row.pop("candidates", None)
                turn = row["messages"][-1]
                verifiable += expected is not None
                reason = problem(turn["content"], code, expected, langid, d.min_langid_chars,
                                 d.check_language, d.check_answers)
                if reason:
                    dropped[reason] += 1
                    continue
                if not d.keep_reasoning:
                    turn.pop("reasoning", None)
                reasoned += bool(turn.get("reasoning"))
                if expected is not None and d.check_answers:
                    row["provenance"]["verified_answer"] = expected
                chars += len(turn["content"])
                kept.append(json.dumps(row, ensure_ascii=False) + "\n")
                if d.pairs is not None:
                    pair = pair_row(row, candidates or [], expected, langid, d)
                    if pair is None:
                        unpaired += 1
                    else:
                        pair_reasons[pair["provenance"]["rejected_because"]] += 1
                        pairs.append(json.dumps(pair, ensure_ascii=False) + "\n")
        atomic_write_text(run.distill_rows(code), "".join(kept))
        stats["languages"][code] = {"prompts": prompts, "rows": len(kept), "dropped": dict(dropped),
                                    "with_reasoning": reasoned, "verifiable": verifiable, "answer_chars": chars,
                                    "file": run.relative(run.distill_rows(code))}
        if d.pairs is not None:
            atomic_write_text(run.distill_pairs(code), "".join(pairs))
            stats["languages"][code]["pairs"] = {"written": len(pairs), "no_failing_candidate": unpaired,
                                                 "rejected_because": dict(sorted(pair_reasons.items())),
                                                 "file": run.relative(run.distill_pairs(code))}
    atomic_write_json(run.distill_stats, stats)
    return stats


def pair_row(row: dict, candidates: list[str], expected: float | None, langid, d: DistillConfig) -> dict | None:
    """A DPO row (the format occi/dpo/data.py reads) for a kept SFT row: the teacher's final answer
    chosen, the first candidate failing a check rejected; None when every candidate passes."""
    for number, candidate in enumerate(candidates):
        reason = problem(candidate, row["language"], expected, langid, d.min_langid_chars, True, True)
        if reason is None or reason == "empty":
            continue
        provenance = {**row["provenance"], "chosen_by": row["provenance"]["teacher"],
                      "rejected_by": d.pairs.model or row["provenance"]["teacher"],
                      "rejected_because": reason, "candidate": number,
                      "candidate_sampling": {"temperature": d.pairs.temperature, "top_p": d.pairs.top_p,
                                             "samples": d.pairs.samples}}
        return {"prompt": row["messages"][:-1], "chosen": row["messages"][-1]["content"], "rejected": candidate,
                "language": row["language"], "provenance": provenance}
    return None
