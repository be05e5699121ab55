"""Shared fixtures: the demo corpus built once per session, small helpers to write inputs."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_SAMPLES = REPO / "corpora" / "demo"


def occi(*args: str, cwd: Path | None = None, env: dict | None = None, stdin: str | None = None,
         timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs the installed `occi` command line as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "occi.cli", *args], cwd=cwd, env={**os.environ, **(env or {})},
        input=stdin, capture_output=True, text=True, timeout=timeout,
    )


def write_jsonl(path: Path, rows: list[dict], compress: str | None = None) -> Path:
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress == "gz":
        data = gzip.compress(data)
    elif compress == "zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


def sample_docs(code: str) -> list[dict]:
    """The bundled demo documents of one language."""
    return [json.loads(line) for line in (DEMO_SAMPLES / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]


def write_config(folder: Path, languages: list[str], sources: list[dict], **corpora) -> Path:
    """A run config with an inline corpus recipe; paths are relative to `folder`."""
    import yaml

    config = {"name": "test", "languages": languages,
              "corpora": {"sources": sources, "workers": 1, **corpora}}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The demo run's corpora stage, built once through the command line."""
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    result = occi("corpora", "build", "demo", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    return run_dir
