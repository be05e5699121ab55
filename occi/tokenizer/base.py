"""`tokenizer: base`: the run keeps the imported base model's tokenizer (SentencePiece or an HF
tokenizer.json such as Llama 3's and Qwen's byte-level BPE), ids unchanged.

<run>/tokenizer/ gets the base's tokenizer files and the report on the run's held-out text, so
that every later stage (data prepare, export, eval) finds the tokenizer where it always is.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from occi.basemodel import TOKENIZER_FILES, resolve
from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_dir, atomic_write_json, mark_done
from occi.tokenizer import models
from occi.tokenizer import report as tokenizer_report
from occi.rundir import RunDir
from occi.tokenizer.sampling import corpus_lines


def keep(cfg: RunConfig, run_dir: Path) -> dict:
    """Copies the base's tokenizer into <run>/tokenizer/ with its report; returns the report."""
    folder = resolve(cfg.model)
    if not ((folder / "tokenizer.json").is_file() or (folder / "tokenizer.model").is_file()):
        raise OcciError(f"{folder}: the base has no tokenizer.json or tokenizer.model to keep")
    out = RunDir.of(run_dir).tokenizer
    with atomic_dir(out) as tmp:
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, tmp / name)
        atomic_write_json(tmp / "source.json", {"policy": "base", "base": cfg.model.base,
                                                "revision": cfg.model.revision, "folder": str(folder)})
        heldout = {code: "\n".join(lines) for code, lines in corpus_lines(cfg, run_dir, "heldout").items() if lines}
        base = models.load(str(tmp))
        base.name = f"base ({Path(cfg.model.base).name})"
        result = tokenizer_report.evaluate([base], heldout, parallel=False)
        tokenizer_report.write(result, tmp)
        mark_done(tmp)
    return result
