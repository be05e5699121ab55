"""bench/tokenizer: occi-32k and occi-64k against Mistral-32k and Tekken-131k on held-out text.

    .venv/bin/python bench/tokenizer/run.py [--corpus-run /tmp/occi-bench/runs/29-shards/occi]
        [--raw /tmp/occi-bench/corpus] [--work /tmp/occi-bench/tokenizer]
        [--char-budget 60000000] [--input-sentence-size 1000000]

Input: the corpora that occi's corpora stage built from the Debian documentation corpus in
bench/corpora (CORPUS_RUN/corpora/<lang>/part-*.parquet), and that corpus's raw JSONL (RAW).

Held out: 5 % of the LibreOffice help pages (the page's path inside the help tree, hashed), in
every language, so that no translation of a held-out page is seen in training. The tokenizers
are trained with `occi tokenizer train` on the rest (recipes eu-32k and eu-64k; the character
budget and SentencePiece's sentence sample are lowered to finish on a 2-core machine: see
--char-budget, --input-sentence-size; both are recorded in result.json).

Evaluation text:
- parallel (fertility and parity): the held-out pages in each language that has a LibreOffice
  help package (English: en-US), keeping only pages that occi's language ID reads as the
  package's language in every one of them (partial translations fall back to English, and
  libreoffice-help-sk is Czech, so Slovak is not in this set);
- fertility only: the languages without such a package, from the run's held-out split of the
  filtered corpus (occi/corpora/reader.py); a language without any text is listed as missing.

Also measured: training time per tokenizer, and encoding throughput (tokens/s, all cores) of
occi's SentencePiece model against Hugging Face `tokenizers` loading occi's tokenizer.json, on
the same lines, with a check that the ids are equal. Writes WORK/result.json and WORK/report.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from occi import languages
from occi.corpora.langid import LanguageIdentifier, default_model_path
from occi.corpora.reader import read_texts
from occi.tokenizer import models, report

EU24 = "bg cs da de el en es et fi fr ga hr hu it lt lv mt nl pl pt ro sk sl sv".split()
HELD_OUT_PERCENT = 5
REFERENCES = ("mistral-32k", "tekken-131k")
THROUGHPUT_MB = 20


def page(doc_id: str) -> tuple[str, str] | None:
    """(help folder, page key) of a LibreOffice help document, e.g. ("de", "text/swriter/...#0")."""
    if not doc_id.startswith("libreoffice-help-"):
        return None
    parts = doc_id.split("/")
    return (parts[3], "/".join(parts[4:])) if len(parts) > 4 else None


def held_out(key: str) -> bool:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 100 < HELD_OUT_PERCENT


def training_corpora(corpus_run: Path, target: Path) -> dict[str, int]:
    """TARGET/corpora: the filtered corpus without any held-out LibreOffice page."""
    removed = {}
    shutil.rmtree(target, ignore_errors=True)
    for folder in sorted((corpus_run / "corpora").iterdir()):
        parts = sorted(folder.glob("part-*.parquet"))
        if not folder.is_dir() or folder.name not in languages.LANGUAGES or not parts:
            continue
        table = pa.concat_tables(pq.read_table(part) for part in parts)
        keep = [not (found := page(i)) or not held_out(found[1]) for i in table.column("id").to_pylist()]
        (target / folder.name).mkdir(parents=True)
        pq.write_table(table.filter(keep), target / folder.name / "part-00000.parquet")
        removed[folder.name] = keep.count(False)
    (target / "_DONE").write_text("{}\n")
    return removed


def train(work: Path, corpora: Path, vocab: str, args) -> dict:
    """`occi tokenizer train` of recipe eu-<vocab>, timed."""
    run_dir = work / f"tok-{vocab}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    (run_dir / "corpora").symlink_to(corpora.resolve())
    config = run_dir / "bench.yaml"
    config.write_text(yaml.safe_dump({
        "name": f"bench-tokenizer-{vocab}", "corpora": "demo",
        "languages": [c for c in languages.LANGUAGES if (corpora / c).is_dir()],
        "tokenizer": {"recipe": f"eu-{vocab}", "char_budget": args.char_budget,
                      "input_sentence_size": args.input_sentence_size}}))
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "occi"), "tokenizer", "train", str(config), "--run-dir",
                    str(run_dir)], check=True, stdout=subprocess.DEVNULL)
    return {"folder": str(run_dir / "tokenizer"), "train_s": round(time.perf_counter() - started, 1)}


def parallel_texts(raw: Path) -> tuple[dict[str, str], int]:
    """Per language, the held-out pages found in every help language, in key order."""
    folders = {code: code for code in languages.LANGUAGES if code != "sk"} | {"en-US": "en"}
    pages: dict[str, dict[str, str]] = {}
    for shard in sorted(raw.glob("part-*.jsonl")):
        for line in shard.open(encoding="utf-8"):
            record = json.loads(line)
            found = page(record["id"])
            if found and found[0] in folders and held_out(found[1]):
                pages.setdefault(folders[found[0]], {})[found[1]] = record["text"]
    identifier = LanguageIdentifier(default_model_path(), list(languages.LANGUAGES))
    codes = sorted(pages)
    common = set.intersection(*(set(p) for p in pages.values()))
    keys = sorted(k for k in common if all(identifier.predict(pages[c][k])[0] == c for c in codes))
    return {code: "\n".join(pages[code][k] for k in keys) for code in codes}, len(keys)


def throughput(tokenizer_dir: Path, texts: dict[str, str]) -> dict:
    import sentencepiece as spm
    from tokenizers import Tokenizer

    lines = [line for text in texts.values() for line in text.splitlines() if line.strip()]
    size = sum(len(line.encode()) for line in lines)
    copies = max(1, round(THROUGHPUT_MB * 1e6 / size))
    lines = lines * copies
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    hf = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    threads = os.cpu_count() or 1
    sp.encode(lines[:1000], num_threads=threads), hf.encode_batch(lines[:1000], add_special_tokens=False)
    started = time.perf_counter()
    ours = sp.encode(lines, out_type=int, num_threads=threads)
    sp_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)]
    hf_s = time.perf_counter() - started
    tokens = sum(map(len, ours))
    return {"lines": len(lines), "megabytes": round(size * copies / 1e6, 1),
            "tokens": tokens, "sentencepiece_tokens_per_s": round(tokens / sp_s),
            "hf_tokenizers_tokens_per_s": round(sum(map(len, theirs)) / hf_s),
            "ratio_sentencepiece_over_hf": round((tokens / sp_s) / (sum(map(len, theirs)) / hf_s), 2),
            "lines_with_different_ids": sum(1 for a, b in zip(ours, theirs) if a != b), "threads": threads}


def targets(parallel: dict, rest: dict, names: list[str]) -> dict:
    fertility = {name: {**{c: v["fertility"] for c, v in parallel["tokenizers"][name]["languages"].items()},
                        **{c: v["fertility"] for c, v in rest["tokenizers"][name]["languages"].items()}}
                 for name in names}
    parity = {name: {c: v["parity"] for c, v in parallel["tokenizers"][name]["languages"].items()} for name in names}
    occi32, occi64 = names[0], names[1]
    measured_eu = [c for c in EU24 if c in fertility[occi32]]
    worst64 = max(fertility[occi64].items(), key=lambda kv: kv[1])
    return {
        "eu_languages_measured": measured_eu,
        "max_fertility_64k": {"language": worst64[0], "fertility": worst64[1], "target": "<= 2.0", "met": worst64[1] <= 2.0},
        "worst_parity": {name: max(parity[name].items(), key=lambda kv: kv[1]) for name in names},
        "worst_parity_64k_better_than_tekken": max(parity[occi64].values()) < max(parity["tekken-131k"].values()),
        "occi32k_beats_mistral32k": {
            "languages": [c for c in measured_eu if fertility[occi32][c] < fertility["mistral-32k"][c]],
            "count": sum(fertility[occi32][c] < fertility["mistral-32k"][c] for c in measured_eu),
            "of": len(measured_eu), "target": ">= 20 of 24"},
        "fertility": fertility, "parity": parity,
    }


def markdown(result: dict, names: list[str]) -> str:
    t = result["targets"]
    lines = ["| lang | " + " | ".join(f"fertility {n}" for n in names) + " | " + " | ".join(f"parity {n}" for n in names) + " |",
             "|---|" + "---|" * (2 * len(names))]
    for code in languages.LANGUAGES:
        if code not in t["fertility"][names[0]]:
            lines.append(f"| {code} | " + " | ".join("missing" for _ in names) + " | " + " | ".join("–" for _ in names) + " |")
            continue
        lines.append(f"| {code} | " + " | ".join(f"{t['fertility'][n][code]:.2f}" for n in names) + " | "
                     + " | ".join(f"{t['parity'][n][code]:.2f}" if code in t["parity"][n] else "–" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-run", type=Path, default=Path("/tmp/occi-bench/runs/29-shards/occi"))
    parser.add_argument("--raw", type=Path, default=Path("/tmp/occi-bench/corpus"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/occi-bench/tokenizer"))
    parser.add_argument("--char-budget", type=int, default=60_000_000)
    parser.add_argument("--input-sentence-size", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="32k,64k")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    removed = training_corpora(args.corpus_run, args.work / "train-corpora")
    trained = {size: train(args.work, args.work / "train-corpora", size, args) for size in args.sizes.split(",")}
    parallel, pages = parallel_texts(args.raw)
    rest = {}
    for code in languages.LANGUAGES:
        if code not in parallel and (args.work / "train-corpora" / code).is_dir():
            text = "\n".join(t for _, t in read_texts(args.work / f"tok-{args.sizes.split(',')[0]}", code, "heldout"))
            if text.strip():
                rest[code] = text
    tokenizers = [models.load(trained[s]["folder"]) for s in trained] + [models.load(r) for r in REFERENCES]
    for tokenizer, size in zip(tokenizers, trained):
        tokenizer.name = f"occi-{size}"
    names = [t.name for t in tokenizers]
    result = {
        "settings": {"char_budget": args.char_budget, "input_sentence_size": args.input_sentence_size,
                     "held_out_percent_of_pages": HELD_OUT_PERCENT},
        "held_out_documents_removed_from_training": removed,
        "trained": trained,
        "parallel_pages": pages, "parallel_languages": sorted(parallel), "fertility_only_languages": sorted(rest),
        "missing_languages": [c for c in languages.LANGUAGES if c not in parallel and c not in rest],
    }
    evaluated_parallel = report.evaluate(tokenizers, parallel, parallel=True)
    evaluated_rest = report.evaluate(tokenizers, rest, parallel=False)
    result["targets"] = targets(evaluated_parallel, evaluated_rest, names)
    result["throughput"] = {size: throughput(Path(trained[size]["folder"]), parallel) for size in trained}
    (args.work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.work / "report.md").write_text(markdown(result, names))
    summary = {k: v for k, v in result["targets"].items() if k not in ("fertility", "parity")}
    print(markdown(result, names))
    print(json.dumps({"trained": trained, "parallel_pages": pages, "missing": result["missing_languages"],
                      **summary, "throughput": result["throughput"]}, indent=1))


if __name__ == "__main__":
    main()
