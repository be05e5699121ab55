"""On one GPU: the memory model's prediction for the `1b` recipe's shape (bf16, Transformer Engine
when installed) against what megatron really allocates: tests/memory_measure.py under torchrun
(1 rank) counts weights, gradient buffers, optimizer state and saved activations as on CPU, and the
allocator's peak (torch.cuda.max_memory_allocated) over a training step with the optimizer state
allocated. Not run yet: no GPU was lent to the session that wrote it.

    python bench/memory/gpu_check.py OUT.json      (exit code 1 when a figure is off by more than 10 %)
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LAYOUT = {"micro_batch_size": 1, "global_batch_size": 1, "precision": "bf16"}


def main() -> int:
    from occi.train import memory
    from occi.train.config import ModelConfig, TrainConfig
    from occi.train.model import has_transformer_engine

    shape = yaml.safe_load((REPO / "models" / "1b.yaml").read_text())
    shape.pop("description", None)
    shape["seq_length"] = 2048
    job = {"name": "1b bf16", "vocab": 32000, "model": shape, "train": LAYOUT}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "layouts.json").write_text(json.dumps([job]))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                   str(REPO / "tests" / "memory_measure.py"), str(Path(folder) / "layouts.json"), str(Path(folder) / "out.json")]
        subprocess.run(command, check=True, timeout=600)
        measured = json.loads((Path(folder) / "out.json").read_text())[job["name"]][0]
    model, train = ModelConfig(**shape), TrainConfig(**LAYOUT)
    te = has_transformer_engine()
    layout = dataclasses.replace(memory.Layout.of(train, model, on_gpu=True), transformer_engine=te)
    stage = memory.estimate(model, 32000, layout)[0]
    predicted = {"weights": stage.weights, "gradients": stage.gradients, "optimizer": stage.optimizer,
                 "activations": stage.activations, "peak_allocated": stage.total}
    ratios = {k: measured[k] / predicted[k] for k in predicted if measured.get(k)}
    result = {"transformer_engine": te, "predicted": predicted, "measured": measured, "ratios": ratios,
              "met": all(abs(r - 1) <= 0.10 for r in ratios.values())}
    Path(sys.argv[1]).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
