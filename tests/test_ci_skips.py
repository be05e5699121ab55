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

NEEDS = {
    "client": ("from conftest import needs_module\n\n\n"
               "@needs_module('occi_no_such_client', 'a client that CI installs')\n"
               "def test_needs_a_missing_client():\n"
               "    import occi_no_such_client  # noqa: F401\n", "1 failed"),
    # the venv of transformers 4, made with pip, which here cannot reach any package index
    "transformers4": ("def test_needs_transformers_4(transformers4):\n    pass\n", "1 error"),
}


def summary(folder: Path, ci: bool) -> str:
    """pytest's summary line for the file, with pip unable to reach any package index."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    env.update({"PYTHONPATH": str(TESTS), "OCCI_TEST_CACHE": str(folder / "cache"), "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull, **({"CI": "true"} if ci else {})})
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                           "-o", "addopts=", str(folder / "test_needs.py")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("ci", [False, True], ids=["developer", "ci"])
@pytest.mark.parametrize("needs", NEEDS)
def test_what_is_missing_skips_only_outside_ci(tmp_path, needs, ci):
    code, outcome_in_ci = NEEDS[needs]
    (tmp_path / "test_needs.py").write_text(code)
    line = summary(tmp_path, ci)
    if ci:
        assert outcome_in_ci in line and "skipped" not in line, line
    else:
        assert "1 skipped" in line and "failed" not in line and "error" not in line, line
