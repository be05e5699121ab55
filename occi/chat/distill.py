"""`occi distill`: a teacher model's answers to a prompt set per language, as SFT rows.

The prompts of every language are cut into batches of `distill.batch_size` (in file order); a
batch is the unit of work: generated together, written atomically as one part file
(distill/parts/<lang>/<batch>.jsonl), skipped when its part exists, and shared round-robin
between SLURM array tasks (--rank/--world-size). Each batch samples with its own seed (the run's
seed + the batch's number), so a killed and re-run distillation writes the same rows as one that
was never interrupted. The step that joins (a run without --rank) concatenates the parts into
distill/<lang>.jsonl, one SFT row per line:

    {"messages": [...the prompt's turns..., {"role": "assistant", "content": ANSWER}], "language": "de",
     "provenance": {"teacher": ..., "revision": ..., "commit": ..., "sampling": {...}, "seed": ...,
                    "date": ..., "backend": ..., "prompt_file": ..., "prompt_index": ...}}

These files are then listed as SFT sources (`kind: jsonl`), where the SFT reader's language and
duplicate checks run on them like on any other chat data.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from occi.basemodel import resolve
from occi.chat.config import DistillConfig
from occi.chat.models import load, pick_device, prompt_text
from occi.chat.prompts import read_prompts
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
    """(prompt file, row index in the file, chat) per prompt."""


def plan(cfg) -> list[Batch]:
    """Every batch of the run, languages in the config's order."""
    d: DistillConfig = cfg.distill
    batches: list[Batch] = []
    for code in d.prompts:
        if code not in cfg.languages:
            raise OcciError(f"distill.prompts: {code} is not a language of this run ({', '.join(cfg.languages)})")
        prompts = [(path.name, index, chat) for path in d.prompt_files(code)
                   for index, chat in enumerate(read_prompts(path, d.system))]
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


def local_teacher(d: DistillConfig) -> Path | None:
    """The teacher's folder when `teacher` names one (relative to the working directory or to the
    config's folder), else None (a hub id)."""
    for folder in (Path(d.teacher).expanduser(), Path(d.base_dir or ".", d.teacher).expanduser()):
        if folder.is_dir():
            return folder.resolve()
    return None


def fetch_items(cfg) -> list[Item]:
    """The teacher, for `occi fetch` and the offline checks (a local folder is recorded as fetched)."""
    local = local_teacher(cfg.distill)
    if local is not None:
        return [Item("model", str(local))]
    return [Item("model", cfg.distill.teacher, revision=cfg.distill.revision)]


def teacher_folder(d: DistillConfig) -> Path:
    """The teacher's local folder: the configured folder, or the hub snapshot (as `occi import` does)."""
    local = local_teacher(d)
    return local if local is not None else resolve(BaseModelConfig(base=d.teacher, revision=d.revision))


class _Transformers:
    """Batched generation with transformers' `generate` (left padding, the chat template)."""

    def __init__(self, folder: Path, d: DistillConfig):
        self.d = d
        self.model, self.tokenizer = load(folder, d.device, d.dtype)

    def answers(self, chats: list[list[dict]], seed: int) -> list[str]:
        import torch  # loads torch: only when used

        texts = [prompt_text(self.tokenizer, chat) for chat in chats]
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(self.model.device)
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": self.d.temperature, "top_p": self.d.top_p} \
            if self.d.temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.d.max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new = output[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


class _Vllm:
    """vLLM's engine (occi/chat/vllm_backend.py): the same prompt tokens in and, greedy, the same
    answer tokens out as transformers."""

    def __init__(self, folder: Path, d: DistillConfig):
        from transformers import AutoTokenizer  # loads transformers: only when used

        self.d = d
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.stop = stop_ids(folder, self.tokenizer)
        self.engine = engine(folder, engine_dtype(d.dtype, pick_device(d.device)))

    def answers(self, chats: list[list[dict]], seed: int) -> list[str]:
        prompts = [self.tokenizer(prompt_text(self.tokenizer, chat), add_special_tokens=False)["input_ids"]
                   for chat in chats]
        outputs = self.engine.generate(prompts, self.d.max_new_tokens, self.d.temperature, self.d.top_p, seed,
                                       self.stop)
        return [text.strip() for text in self.tokenizer.batch_decode(outputs, skip_special_tokens=True)]


def _rows(cfg, batch: Batch, answers: list[str], provenance: dict) -> list[dict]:
    seed = cfg.seed + batch.number
    return [{"messages": [*chat, {"role": "assistant", "content": answer}], "language": batch.language,
             "provenance": {**provenance, "seed": seed, "prompt_file": name, "prompt_index": index}}
            for (name, index, chat), answer in zip(batch.prompts, answers)]


def run(cfg, run: RunDir, share: Share = Share()) -> StageResult:
    """Generates this share's batches that are not written yet; the whole share also joins them."""
    from tqdm import tqdm  # loads tqdm: only when used

    d: DistillConfig = cfg.distill
    run = RunDir.of(run)
    batches = plan(cfg)
    todo = [b for b in share.mine(batches) if not run.distill_part(b.language, b.index).exists()]
    started = time.monotonic()
    if todo:
        folder = teacher_folder(d)
        teacher = (_Vllm if d.backend == "vllm" else _Transformers)(folder, d)
        is_hub = local_teacher(d) is None
        provenance = {"teacher": d.teacher if is_hub else str(folder), "revision": d.revision,
                      "commit": folder.name if is_hub else None, "sampling": d.sampling, "backend": d.backend}
        for code in {b.language for b in todo}:
            remove_stale_temporaries(run.distill_part(code, 0).parent)
        for batch in tqdm(todo, desc="distill", unit="batch"):
            answers = teacher.answers([chat for _, _, chat in batch.prompts], cfg.seed + batch.number)
            date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            rows = _rows(cfg, batch, answers, {**provenance, "date": date})
            atomic_write_text(run.distill_part(batch.language, batch.index),
                              "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    seconds = time.monotonic() - started
    if not share.whole:
        return StageResult(f"distill: {len(todo)} batch(es) of this share written in {seconds:.1f} s; "
                           "run `occi distill` without --rank when every share is done, to join them", complete=False)
    stats = join(cfg, run, batches)
    mark_done(run.distill)
    lines = ["| language | prompts | rows | empty answers | answer characters |", "|---|---|---|---|---|"]
    lines += [f"| {code} | {s['prompts']} | {s['rows']} | {s['empty_answers']} | {s['answer_chars']:,} |"
              for code, s in stats["languages"].items()]
    return StageResult("\n".join(lines) + f"\n{len(todo)} batch(es) generated in {seconds:.1f} s -> {run.distill}")


def join(cfg, run: RunDir, batches: list[Batch]) -> dict:
    """distill/<lang>.jsonl from the parts (empty answers left out and counted) and stats.json."""
    missing = [b for b in batches if not run.distill_part(b.language, b.index).exists()]
    if missing:
        raise OcciError(f"{run.distill_part(missing[0].language, missing[0].index)}: {len(missing)} batch(es) "
                        "are not generated yet; run `occi distill` again (without --rank) to write them")
    stats = {"teacher": cfg.distill.teacher, "revision": cfg.distill.revision, "sampling": cfg.distill.sampling,
             "languages": {}}
    for code in cfg.distill.prompts:
        lines, empty, chars, prompts = [], 0, 0, 0
        for batch in (b for b in batches if b.language == code):
            for line in run.distill_part(code, batch.index).read_text(encoding="utf-8").splitlines():
                prompts += 1
                answer = json.loads(line)["messages"][-1]["content"]
                if not answer.strip():
                    empty += 1
                    continue
                chars += len(answer)
                lines.append(line + "\n")
        atomic_write_text(run.distill_rows(code), "".join(lines))
        stats["languages"][code] = {"prompts": prompts, "rows": len(lines), "empty_answers": empty,
                                    "answer_chars": chars, "file": run.relative(run.distill_rows(code))}
    atomic_write_json(run.distill_stats, stats)
    return stats
