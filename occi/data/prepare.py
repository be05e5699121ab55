"""`occi data prepare`: each language's corpus -> megatron indexed datasets + the blend.

Per language, the training documents go to data/<lang>_text_document.{bin,idx} and the held-out
ones (the run's shared rule, occi/corpora/reader.py) to data/<lang>_valid_text_document.{bin,idx},
written in megatron-core's indexed format (occi/data/indexed.py): the document's tokens followed by the end of
document token, uint16 when the vocabulary fits, else int32. A language is written under
temporary names and renamed, then marked done, so a re-run continues with the next language.
"""
from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sentencepiece as spm
from tqdm import tqdm

from occi.config import RunConfig
from occi.corpora.reader import language_dir, read_batches
from occi.data.blend import explicit_weights, megatron_data_path, temperature_weights, with_replay
from occi.data.encoder import DocumentEncoder
from occi.data.hf_encoder import HFDocumentEncoder
from occi.data.indexed import IndexedDatasetWriter
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, mark_done
from occi.machine import cores
from occi.pipeline import StageResult
from occi.rundir import RunDir
from occi.sharding import Share


BATCH_DOCUMENTS = 4096  # per batch, each distinct word is looked up once; larger batches hold more memory


def load_sentencepiece(run: RunDir):
    """The run's SentencePiece model (the tokenizer stage must have run)."""
    if not run.tokenizer_model.is_file():
        run.require("tokenizer")
        raise OcciError(f"{run.tokenizer_model}: no tokenizer model; run `occi tokenizer train` again")
    return spm.SentencePieceProcessor(model_file=str(run.tokenizer_model))


def tokenizer_info(run: RunDir) -> tuple[Path, int, int]:
    """(tokenizer file, vocabulary size, end-of-document id) of the run's tokenizer: a SentencePiece
    model, or a kept base's tokenizer.json when there is no tokenizer.model."""
    run = RunDir.of(run)
    folder = run.tokenizer
    if not (folder / "tokenizer.model").is_file() and (folder / "tokenizer.json").is_file():
        encoder = _hf_encoder(folder, (folder / "tokenizer.json").stat().st_mtime_ns)
        if encoder.eos_id is None:
            raise OcciError(f"{folder}: the tokenizer names no eos_token to end documents with")
        return folder / "tokenizer.json", encoder.vocab_size, encoder.eos_id
    sp = load_sentencepiece(run)
    return run.tokenizer_model, sp.get_piece_size(), sp.eos_id()


@cache
def _hf_encoder(folder: Path, modified_ns: int):
    return HFDocumentEncoder(folder)


def token_dtype(vocab_size: int) -> type:
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32


def prepare(cfg: RunConfig, run: RunDir, progress: bool = True, share: Share = Share()) -> dict | None:
    """Tokenizes every language not yet done (this share of them), then, when all are done and
    this process has the whole work, writes blend.json and returns the blend."""
    out = run.data
    if run.is_done("data"):
        return run.read_blend()
    tokenizer_file, vocab_size, eod_id = tokenizer_info(run)
    out.mkdir(parents=True, exist_ok=True)
    todo = [code for code in share.mine(cfg.languages) if not (out / f"{code}.json").exists()]
    if todo:
        _prepare_languages(cfg, run, todo, progress)
    if not share.whole:
        return None
    counts = {code: json.loads((out / f"{code}.json").read_text(encoding="utf-8")) for code in cfg.languages}
    tokens = {code: c["train"]["tokens"] for code, c in counts.items()}
    weights = explicit_weights(tokens, cfg.data.weights) if cfg.data.weights else temperature_weights(tokens, cfg.data.alpha)
    missing = [code for code in cfg.data.replay if code not in cfg.languages]
    if missing:
        raise OcciError(f"data.replay: {missing[0]} is not a run language; add it to `languages`")
    if cfg.data.replay:
        weights = with_replay(weights, cfg.data.replay)
    # stored relative to the run directory, so that a moved or copied run finds its data (RunDir.read_blend)
    prefixes = {code: run.relative(run.dataset_prefix(code)) for code in cfg.languages}
    valid = {code: run.relative(run.dataset_prefix(code, "valid")) for code in cfg.languages}
    blend = {
        "tokenizer": run.relative(tokenizer_file),
        "vocab_size": vocab_size,
        "eod_id": eod_id,
        "dtype": np.dtype(token_dtype(vocab_size)).name,
        "alpha": None if cfg.data.weights else cfg.data.alpha,
        "languages": {
            code: {**counts[code], "weight": round(weights[code], 6), "prefix": prefixes[code], "valid_prefix": valid[code]}
            for code in cfg.languages
        },
        "megatron_data_path": megatron_data_path(weights, prefixes),
        "megatron_valid_data_path": " ".join(valid[c] for c in cfg.languages if counts[c]["valid"]["documents"]),
    }
    atomic_write_json(run.blend_file, blend)
    mark_done(out)
    return run.read_blend()


def run(cfg: RunConfig, run: RunDir, share: Share = Share()) -> StageResult:
    """The data stage of the stage list (occi/pipeline.py)."""
    blend = prepare(cfg, run, share=share)
    if blend is None:
        return StageResult(f"data: rank {share.rank} of {share.world_size} done; run `occi data prepare` without "
                           "--rank once all ranks are done", complete=False)
    return StageResult(format_blend(blend))


def shard_count(cfg: RunConfig, run: RunDir) -> int:
    """SLURM array tasks: one per language at most."""
    return len(cfg.languages)


def _prepare_languages(cfg: RunConfig, run: RunDir, todo: list[str], progress: bool) -> None:
    """Tokenizes the languages in `todo`, side by side on `data.workers` processes, and marks
    each one done as it finishes (a failed language does not lose the others)."""
    workers = min(len(todo), cfg.data.workers or cores())
    threads = cfg.data.threads or max(1, cores() // workers)
    out = run.data
    if workers == 1:
        for code in todo:
            atomic_write_json(out / f"{code}.json", _prepare_language(cfg, run, code, threads, progress))
        return
    failures = []
    bar = tqdm(total=len(todo), unit="language", desc="data: languages", disable=not progress)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        running = {pool.submit(_prepare_language, cfg, run, code, threads, False): code for code in todo}
        for finished in as_completed(running):
            try:
                atomic_write_json(out / f"{running[finished]}.json", finished.result())
            except Exception as error:  # the others go on; the first error is raised at the end
                failures.append(error)
            bar.update(1)
    bar.close()
    if failures:
        raise failures[0]


@cache
def _encoder(run: RunDir, modified_ns: int, threads: int) -> DocumentEncoder:
    """One encoder (and word cache) per process and tokenizer file."""
    sp = load_sentencepiece(run)
    return DocumentEncoder(sp, token_dtype(sp.get_piece_size()), threads)


def _prepare_language(cfg: RunConfig, run: RunDir, code: str, threads: int, progress: bool) -> dict:
    tokenizer_file, vocab_size, eod_id = tokenizer_info(run)
    if tokenizer_file.suffix == ".json":  # a kept base's HF tokenizer
        encoder = _hf_encoder(tokenizer_file.parent, tokenizer_file.stat().st_mtime_ns)
    else:
        encoder = _encoder(run, tokenizer_file.stat().st_mtime_ns, threads)
    dtype, out = np.dtype(token_dtype(vocab_size)).type, run.data
    # one pass over the corpus: each batch's held-out documents go to the validation set, the others to training
    held = pa.array(sorted(cfg.heldout.ids(_document_ids(run, code))), type=pa.string())
    names = {split: run.dataset_prefix(code, split).name for split in ("train", "heldout")}
    writers = {split: IndexedDatasetWriter(out / f".{name}.tmp.bin", dtype) for split, name in names.items()}
    counts = {split: {"documents": 0, "tokens": 0} for split in names}
    masks: deque[np.ndarray] = deque()  # each batch's held-out documents, appended as the encoder reads the batch

    def texts() -> Iterator[pa.Array]:
        for batch in read_batches(run, code, "all", cfg.heldout, BATCH_DOCUMENTS):
            masks.append(pc.is_in(batch.column("id"), value_set=held).to_numpy(zero_copy_only=False))
            yield batch.column("text")

    bar = tqdm(desc=f"data: {code}", unit="doc", disable=not progress, leave=False)
    for ids, lengths in encoder.encode_all(texts()):
        is_held = masks.popleft()
        in_document = np.repeat(is_held, lengths)
        for split, documents, tokens in (("train", ~is_held, ~in_document), ("heldout", is_held, in_document)):
            if documents.any():
                counts[split]["tokens"] += writers[split].add_documents(ids[tokens], lengths[documents], eod_id)
                counts[split]["documents"] += int(documents.sum())
        bar.update(len(lengths))
    bar.close()
    for split, name in names.items():
        writers[split].finalize(out / f".{name}.tmp.idx")
        os.replace(out / f".{name}.tmp.bin", out / f"{name}.bin")
        os.replace(out / f".{name}.tmp.idx", out / f"{name}.idx")
    result = {"train": counts["train"], "valid": counts["heldout"]}
    if result["train"]["documents"] == 0:
        raise OcciError(f"language {code!r} has no training documents in {run.corpus(code)}; "
                        "remove it from `languages` or add text for it")
    return result


def _document_ids(run: RunDir, code: str) -> list[str]:
    """The ids of a language's documents, as read_batches reads them for its held-out rule."""
    return [i for part in sorted(language_dir(run, code).glob("part-*.parquet"))
            for i in pq.read_table(part, columns=["id"]).column("id").to_pylist()]


def format_blend(blend: dict) -> str:
    """The blend as a table, and the same blend as Megatron-LM arguments."""
    lines = [f"{'lang':<5} {'train docs':>10} {'train tokens':>13} {'valid tokens':>13} {'weight':>8}"]
    for code, entry in blend["languages"].items():
        lines.append(f"{code:<5} {entry['train']['documents']:>10,} {entry['train']['tokens']:>13,} "
                     f"{entry['valid']['tokens']:>13,} {entry['weight']:>8.4f}")
    lines.append("")
    lines.append("Megatron-LM equivalent: --data-path " + blend["megatron_data_path"])
    return "\n".join(lines)
