"""bench/train, part 1: `occi data prepare` against Megatron-LM's tools/preprocess_data.py.

  .venv/bin/python bench/train/prepare_vs_megatron.py MEGATRON_LM_CHECKOUT RUN_DIR [MB]

Both tokenize the same documents with the same SentencePiece model (RUN_DIR's tokenizer, e.g.
runs/demo after `occi run demo`) into megatron indexed datasets, with 2 workers/threads each, one
after the other on this machine. The corpus (MB of text, default 50) is built from the demo
corpus's documents with their sentences reshuffled and numbered, so no two documents are equal.
Megatron-LM's source is obtained separately (a checkout of tag core_v0.16.1, matching the
installed megatron-core) and never committed. Peak memory: the maximum RSS of each run
(/usr/bin/time -v).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[2]


def build_corpus(run_dir: Path, megabytes: int, folder: Path) -> int:
    texts = [t for part in sorted((run_dir / "corpora").glob("*/part-*.parquet")) for t in pq.read_table(part).column("text").to_pylist()]
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if s]
    rng = random.Random(0)
    docs, size = [], 0
    while size < megabytes * 1_000_000:
        text = " ".join(rng.sample(sentences, 12)) + f" ({len(docs)})"
        docs.append(text)
        size += len(text.encode("utf-8"))
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        for i, text in enumerate(docs):
            out.write(json.dumps({"id": str(i), "text": text}, ensure_ascii=False) + "\n")
    occi_run = folder / "occi-run"
    (occi_run / "corpora" / "de").mkdir(parents=True)
    pq.write_table(pa.table({"text": docs, "id": [str(i) for i in range(len(docs))]}), occi_run / "corpora" / "de" / "part-00000.parquet")
    (occi_run / "corpora" / "_DONE").write_text("{}")
    shutil.copytree(run_dir / "tokenizer", occi_run / "tokenizer")
    return len(docs)


def timed(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{result.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return seconds, rss, result.stdout


def main(megatron: Path, run_dir: Path, megabytes: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="occi-prepare-"))
    documents = build_corpus(run_dir, megabytes, folder)
    config = folder / "bench.yaml"
    config.write_text(yaml.safe_dump({"name": "bench", "languages": ["de"], "corpora": "demo",
                                      "heldout_fraction": 0.0, "data": {"threads": 2}}))
    occi_s, occi_rss, _ = timed([sys.executable, "-m", "occi.cli", "data", "prepare", str(config),
                                 "--run-dir", str(folder / "occi-run")])
    blend = json.loads((folder / "occi-run" / "data" / "blend.json").read_text())
    occi_tokens = blend["languages"]["de"]["train"]["tokens"]
    (folder / "mlm").mkdir()
    # Megatron-LM's training package imports triton even on CPU: MEGATRON_EXTRA_PATH may add it
    extra = os.environ.get("MEGATRON_EXTRA_PATH", "")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(megatron), extra) if p)}
    mlm_s, mlm_rss, _ = timed([sys.executable, str(megatron / "tools" / "preprocess_data.py"), "--input",
                               str(folder / "corpus.jsonl"), "--output-prefix", str(folder / "mlm" / "de"),
                               "--tokenizer-type", "SentencePieceTokenizer", "--tokenizer-model",
                               str(run_dir / "tokenizer" / "tokenizer.model"), "--append-eod", "--workers", "2",
                               "--json-keys", "text"], env)
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    mlm = IndexedDataset(str(folder / "mlm" / "de_text_document"))
    mlm_tokens = int(mlm.sequence_lengths.sum())
    print(f"{documents:,} documents, {megabytes} MB of text, 2 workers each")
    print(f"occi data prepare:          {occi_s:6.1f} s  {occi_tokens / occi_s:>10,.0f} tokens/s  peak RSS {occi_rss / 1024:,.0f} MB  ({occi_tokens:,} tokens)")
    print(f"Megatron-LM preprocess_data: {mlm_s:6.1f} s  {mlm_tokens / mlm_s:>10,.0f} tokens/s  peak RSS {mlm_rss / 1024:,.0f} MB  ({mlm_tokens:,} tokens, {len(mlm):,} documents)")
    print(f"ratio (occi / Megatron-LM tokens/s): {(occi_tokens / occi_s) / (mlm_tokens / mlm_s):.2f} (target >= 2)")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 50)
