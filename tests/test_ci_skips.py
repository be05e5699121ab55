"""Tests that need a client fail instead of skipping under CI=true (CI installs every client).

Each check runs pytest itself on a small test file that uses the helpers of conftest.py the real
tests use, once as on a developer's machine and once with CI=true, and reads the outcome.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

NEEDS_A_CLIENT = """
from conftest import needs_module


@needs_module("occi_no_such_client", "a client that CI installs")
def test_needs_a_missing_client():
    import occi_no_such_client  # noqa: F401


def test_needs_transformers_4(transformers4):
    pass
"""


def outcomes(folder: Path, ci: bool) -> str:
    """pytest's summary line for the file, with pip unable to reach any package index."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    env.update({"PYTHONPATH": str(TESTS), "OCCI_TEST_CACHE": str(folder / "cache"), "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull, **({"CI": "true"} if ci else {})})
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "-o", "addopts=", str(folder / "test_client.py")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("ci", [False, True], ids=["developer", "ci"])
def test_a_missing_client_skips_only_outside_ci(tmp_path, ci):
    (tmp_path / "test_client.py").write_text(NEEDS_A_CLIENT)
    summary = outcomes(tmp_path, ci)
    if ci:
        assert "1 failed" in summary and "1 error" in summary and "skipped" not in summary, summary
    else:
        assert "2 skipped" in summary and "failed" not in summary and "error" not in summary, summary
