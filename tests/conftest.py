"""Shared fixtures: the demo corpus built once per session, small helpers to write inputs."""
from __future__ import annotations

import fcntl
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NoReturn

import pytest
import yaml

from longest_first import (  # noqa: F401  the suite's scheduling hooks, registered from here
    pytest_addoption, pytest_configure, pytest_runtest_protocol, pytest_runtest_setup, pytest_xdist_make_scheduler)

REPO = Path(__file__).resolve().parents[1]
DEMO_SAMPLES = REPO / "corpora" / "demo"


def occi(*args: str, cwd: Path | None = None, env: dict | None = None, stdin: str | None = None,
         timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs the installed `occi` command line as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "occi.cli", *args], cwd=cwd, env={**os.environ, **(env or {})},
        input=stdin, capture_output=True, text=True, timeout=timeout,
    )


def in_ci() -> bool:
    """CI=true: CI installs every client (transformers 4, llama-cpp-python...), so there a test
    that needs one fails when it is missing instead of skipping out of sight."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def skip_unless_ci(reason: str) -> NoReturn:
    """pytest.skip(reason) on a developer's machine; under CI=true, pytest.fail(reason)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: CI installs it, so the test fails instead of skipping)")
    pytest.skip(reason)


def have_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def needs_module(name: str, what: str) -> pytest.MarkDecorator:
    """Skips a test when `name` is not installed, except under CI=true, where it runs (and fails)."""
    return pytest.mark.skipif(not have_module(name) and not in_ci(), reason=f"{what} is not installed")


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A real full disk: a tmpfs of `size` (mount's syntax: 512k, 2m) mounted at `folder` while the
    block runs. Needs root (CI runs as root); elsewhere skipped, under CI=true failed."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                              capture_output=True, text=True)
    except FileNotFoundError:
        skip_unless_ci("no `mount` command to make a small full disk")
    if done.returncode != 0:
        skip_unless_ci(f"cannot mount a small tmpfs (needs root): {done.stderr.strip()[:200]}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


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


PREPARED_LANGS = ["fr", "fi", "sv", "et"]
"""The languages of the prepared run that test_train, test_train_knobs, test_moe and test_deepseek
train their models on (the tiny and the mixture-of-experts recipes alike: data do not depend on the model)."""


def prepared_config(folder: Path) -> Path:
    """The config that made the shared prepared run: the demo corpus in PREPARED_LANGS and the
    demo tokenizer at 600 pieces (a model section only because every run config has one)."""
    config = {"name": "t", "languages": PREPARED_LANGS, "corpora": {"recipe": "demo", "workers": 1},
              "tokenizer": {"recipe": "demo", "vocab_size": 600}, "model": {"recipe": "tiny", "seq_length": 32}}
    path = folder / "prepared.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def shared_prepared(tmp_path_factory) -> Path:
    """A run directory with corpora, tokenizer and prepared data (no training), built once per test
    session through the command line and shared by the pytest-xdist workers (the first to need it
    builds it under a lock in the session's common temporary folder). Tests must not write into it:
    they train in copies (test_train.fresh_copy)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker has its own basetemp under the session's
        root = root.parent
    folder = root / "shared-prepared"
    folder.mkdir(exist_ok=True)
    run_dir = folder / "run"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "_COMPLETE").exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a worker that failed half-way
            config = prepared_config(folder)
            for stage in (["corpora", "build"], ["tokenizer", "train"], ["data", "prepare"]):
                result = occi(*stage, str(config), "--run-dir", str(run_dir))
                assert result.returncode == 0, result.stderr[-2000:]
            (folder / "_COMPLETE").touch()
    return run_dir


TRANSFORMERS4_CHECK = """
import json, sys
from transformers import AutoConfig, AutoTokenizer, __version__
folder, texts = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(folder)
config = AutoConfig.from_pretrained(folder)
print(json.dumps({"version": __version__, "class": type(tokenizer).__name__,
                  "ids": [tokenizer(t)["input_ids"] for t in texts], "rope_theta": config.rope_theta,
                  "rope_scaling": getattr(config, "rope_scaling", None)}))
"""


@pytest.fixture(scope="session")
def transformers4() -> Path:
    """The python of a small venv with transformers<5 (tokenizers and configs only, no torch),
    made once and cached under ~/.cache/occi-tests (or $OCCI_TEST_CACHE)."""
    import fcntl

    cache = Path(os.environ.get("OCCI_TEST_CACHE", Path.home() / ".cache" / "occi-tests")) / "transformers4"
    python = cache / "bin" / "python"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / "transformers4.lock", "w") as lock:  # pytest-xdist workers make it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        _make_transformers4(cache, python)
    return python


def _make_transformers4(cache: Path, python: Path) -> None:
    import shutil

    if not (cache / ".complete").exists():
        shutil.rmtree(cache, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(cache)], check=True, capture_output=True)
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "transformers<5"], capture_output=True,
                                text=True, timeout=1200)
        if result.returncode != 0:
            shutil.rmtree(cache, ignore_errors=True)
            reason = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
            if any(word in result.stderr for word in ("No matching distribution", "Could not find a version",
                                                      "NewConnectionError", "Temporary failure in name resolution")):
                skip_unless_ci(f"pip cannot reach the package index for transformers<5: {reason}")
            raise RuntimeError(f"pip install transformers<5 failed: {reason}")
        (cache / ".complete").touch()


BORROWED_TORCH = """
import sys
sys.path.append(sys.argv[1])  # after the interpreter's own packages: its transformers comes first
exec(sys.stdin.read())
"""


def run_python(python: Path | str, code: str) -> subprocess.CompletedProcess:
    """`code` run by `python`, which may be the transformers 4 venv's: that venv has no torch of its
    own (a second copy would be large), so it borrows this environment's, found after its own
    packages."""
    import torch

    torch_site = str(Path(torch.__file__).resolve().parents[1])
    return subprocess.run([str(python), "-c", BORROWED_TORCH, torch_site], input=code, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})


def transformers4_view(python: Path, folder: Path, texts: list[str]) -> dict:
    """What transformers 4 sees in a model folder: tokenizer class, ids of `texts`, rope_theta."""
    result = subprocess.run([str(python), "-c", TRANSFORMERS4_CHECK, str(folder), json.dumps(texts)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
